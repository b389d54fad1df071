"""Full-size stage-2 training step with random weights: seconds per step, peak memory, MFU.

The CharacterShot stage-2 model at full size (CogVideoX-5B-I2V transformer config, 42 blocks of width
3072, plus the spatial-view branch and the camera encoder), one example of 5 views x 25 frames at
480 x 720 (7 latent frames + the reference frame, 30 x 45 patches), gradient checkpointing on, built
directly on the GPU (never 5B parameters on the CPU), loss and backward exactly as
``reference_model.training`` computes them, then an AdamW step.

Precision modes (``--mode``, repeatable):

- ``bf16``: parameters, gradients and AdamW states in bf16 (what fits one GPU with room to spare);
- ``mixed``: fp32 parameters with bf16 autocast, fp32 AdamW states (what DeepSpeed ZeRO-2 does on one GPU,
  without its bucketing); 16 bytes per parameter.
- ``fwdbwd``: bf16, forward + backward only (no optimiser), comparable with the block-stack figure the
  issue quotes.

FLOPs are counted analytically (matmuls only: both attention branches, text tokens included, the shared
feed-forward, the patch embedding and output projection). MFU = 3 x forward FLOPs / time / peak (the model
FLOPs of forward + backward; the recomputation of checkpointing is not counted as useful work); the
hardware utilisation with the recomputed forward (4 x) is printed beside it. Peaks: the H200's bf16 dense
spec (989 TFLOP/s) and the bf16 GEMM ceiling measured on the GPU machine (790 TFLOP/s, see docs).

    python scripts/bench/train_step.py --mode bf16 --mode fwdbwd --steps 2
"""

from __future__ import annotations

import argparse
import gc
import json
import sys
import time

import torch

PEAK_SPEC_TFLOPS = 989.0  # H200 / H100 SXM bf16 dense, NVIDIA spec sheet
PEAK_GEMM_TFLOPS = 790.0  # bf16 GEMM ceiling measured on the GPU machine (reference_model speed issue)


def forward_flops(config: dict, views: int, latent_frames: int, grid_h: int, grid_w: int) -> float:
    from reference_model.training.flops import multiview_forward_flops

    return multiview_forward_flops(config, views, latent_frames, grid_h, grid_w)


def build(device: torch.device, dtype: torch.dtype):
    from reference_model.camera import CameraEncoder
    from reference_model.training.trainer import DiffusionModel
    from reference_model.transformer import COGVIDEOX_5B_I2V_CONFIG
    from reference_model.transformer_multiview import MultiViewTransformer3DModel

    torch.manual_seed(0)
    config = {k: v for k, v in COGVIDEOX_5B_I2V_CONFIG.items()}
    with torch.device(device):
        transformer = MultiViewTransformer3DModel(**config).to(dtype)
        encoder = CameraEncoder().to(dtype)
    model = DiffusionModel(transformer, encoder)
    transformer.enable_gradient_checkpointing()
    return model, config


def inputs(device: torch.device, dtype: torch.dtype, views: int, frames: int, height: int, width: int):
    from reference_model.camera import plucker_rays
    from character4d.cameras import RigConfig, rig_cameras

    from reference_model.data import canvas_intrinsics

    cams = rig_cameras(RigConfig())
    idx = [0, 4, 8, 12, 16][:views]
    Ks = canvas_intrinsics(cams.Ks[idx], 512, height, width)
    rays = plucker_rays(Ks, cams.viewmats[idx], height, width)[None].to(device, dtype)
    g = torch.Generator(device).manual_seed(0)
    h, w = height // 8, width // 8
    lat = lambda f: torch.randn(1, views, f, 16, h, w, generator=g, device=device, dtype=dtype)  # noqa: E731
    return {"clean": lat(frames), "noise": lat(frames), "reference": lat(1), "poses": lat(frames + 1),
            "text": torch.randn(1, 226, 4096, generator=g, device=device, dtype=dtype), "rays": rays}


def run_mode(mode: str, args: argparse.Namespace) -> dict:
    from diffusers import CogVideoXDDIMScheduler

    from reference_model.training.config import COGVIDEOX_SCHEDULER
    from reference_model.training.loss import diffusion_loss

    device = torch.device("cuda")
    param_dtype = torch.float32 if mode == "mixed" else torch.bfloat16
    torch.cuda.reset_peak_memory_stats()
    t0 = time.perf_counter()
    model, config = build(device, param_dtype)
    build_s = time.perf_counter() - t0
    params = sum(p.numel() for p in model.parameters())
    opt = None
    if mode != "fwdbwd":
        opt = torch.optim.AdamW(model.parameters(), lr=1e-5, betas=(0.9, 0.95), weight_decay=1e-4, fused=True)
    scheduler = CogVideoXDDIMScheduler(**COGVIDEOX_SCHEDULER)
    latent_frames = (args.frames - 1) // 4 + 1
    x = inputs(device, torch.bfloat16, args.views, latent_frames, args.height, args.width)
    t = torch.tensor([500], device=device)

    def step() -> float:
        with torch.autocast("cuda", dtype=torch.bfloat16, enabled=mode == "mixed"):
            noisy = scheduler.add_noise(x["clean"], x["noise"], t)
            pred = model(noisy, x["text"], t, x["reference"], x["poses"], x["rays"])
            loss = diffusion_loss(pred.flatten(1, 2), noisy.flatten(1, 2), x["clean"].flatten(1, 2), t,
                                  scheduler.alphas_cumprod)
        loss.backward()
        if opt is not None:
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opt.step()
            opt.zero_grad(set_to_none=True)
        else:
            model.zero_grad(set_to_none=True)
        return float(loss)

    for _ in range(args.warmup):
        step()
    torch.cuda.synchronize()
    times = []
    for _ in range(args.steps):
        t1 = time.perf_counter()
        step()
        torch.cuda.synchronize()
        times.append(time.perf_counter() - t1)
    s_step = sorted(times)[len(times) // 2]
    fwd = forward_flops(config, args.views, latent_frames + 1, args.height // 16, args.width // 16)
    peak_gib = torch.cuda.max_memory_allocated() / 2**30
    row = {
        "mode": mode, "params_B": params / 1e9, "s_per_step": s_step, "steps": times, "peak_GiB": peak_gib,
        "model_TFLOP_per_step": 3 * fwd / 1e12, "TFLOPs": 3 * fwd / s_step / 1e12,
        "MFU_spec": 3 * fwd / s_step / 1e12 / PEAK_SPEC_TFLOPS, "MFU_gemm": 3 * fwd / s_step / 1e12 / PEAK_GEMM_TFLOPS,
        "HFU_gemm": 4 * fwd / s_step / 1e12 / PEAK_GEMM_TFLOPS, "build_s": build_s,
    }
    del model, opt, x
    gc.collect()
    torch.cuda.empty_cache()
    return row


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mode", action="append", choices=["bf16", "mixed", "fwdbwd"], help="repeatable (default bf16)")
    parser.add_argument("--views", type=int, default=5)
    parser.add_argument("--frames", type=int, default=25)
    parser.add_argument("--height", type=int, default=480)
    parser.add_argument("--width", type=int, default=720)
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--steps", type=int, default=2)
    parser.add_argument("--json", help="also write the rows here")
    args = parser.parse_args(argv)
    if not torch.cuda.is_available():
        print("train_step.py needs a CUDA GPU", file=sys.stderr)
        return 1
    torch.backends.cuda.matmul.allow_tf32 = True
    print(f"device: {torch.cuda.get_device_name()}, torch {torch.__version__}; stage 2 full size, 1 example of "
          f"{args.views} views x {args.frames} frames at {args.height} x {args.width}, gradient checkpointing")
    try:
        import deepspeed  # noqa: F401

        print("deepspeed is installed (ZeRO-2 on one GPU: run with an accelerate DeepSpeed config)")
    except ImportError:
        print("deepspeed is not installed here: ZeRO-2 on one GPU not measured")
    rows = []
    for mode in args.mode or ["bf16"]:
        try:
            rows.append(run_mode(mode, args))
        except torch.OutOfMemoryError as exc:
            rows.append({"mode": mode, "error": f"out of memory: {str(exc).splitlines()[0]}"})
            gc.collect()
            torch.cuda.empty_cache()
        print(json.dumps(rows[-1]), flush=True)
    print(f"\n| mode | params (B) | s / step | peak GiB | model TFLOP/step | TFLOP/s | MFU (989 spec) | MFU (790 GEMM) | HFU (790, with recompute) |")
    print("|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        if "error" in r:
            print(f"| {r['mode']} | {r['error']} |")
            continue
        print(f"| {r['mode']} | {r['params_B']:.2f} | {r['s_per_step']:.2f} | {r['peak_GiB']:.1f} | "
              f"{r['model_TFLOP_per_step']:.0f} | {r['TFLOPs']:.0f} | {r['MFU_spec']:.1%} | {r['MFU_gemm']:.1%} | {r['HFU_gemm']:.1%} |")
    if args.json:
        with open(args.json, "w") as handle:
            json.dump(rows, handle, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
