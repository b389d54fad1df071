"""Full-size denoising-step benchmark of the multi-view CharacterShot transformer (random weights, GPU).

One step = one forward of ``MultiViewTransformer3DModel`` at the paper's settings: CogVideoX-5B width and
depth, 5 views x (1 reference + 7 target) latent frames of 60 x 90 (480 x 720, 25 frames), 226 text
tokens, camera tokens, classifier-free guidance batched (batch 2). Weights are random (the published ones
cannot be had here): the numbers are speed and memory, never quality.

It prints (and writes as markdown + JSON with ``--out``):

- the machine's bf16 GEMM ceiling (8192^3 products) and the SDPA throughput of both attention shapes per
  backend (what bounds the step);
- per mode (``eager``, ``compiled`` = ``torch.compile`` of every block, optionally ``fused`` QKV
  projections, ``fp8`` linears): seconds per step, peak memory, model FLOPs and the utilisation of the
  GEMM ceiling, counting the FLOPs of both attention branches;
- the derived time for 21 views x 50 steps (5 groups of 5 views sharing view 0).

Run: ``python scripts/bench/transformer_step.py --modes eager,compiled --out DIR`` (needs CUDA).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

MEASURED_GEMM_CEILING = 790e12  # bf16, H200 of the lending workplace (8192^3, random data)


def step_flops(layers: int, dim: int, ff_dim: int, batch: int, views: int, frames: int, tokens: int,
               text: int, view_branch: bool = True) -> dict[str, float]:  # fmt: skip
    """Model FLOPs of one forward (multiply-add = 2), by part.

    Args:
        layers, dim, ff_dim: depth, width and feed-forward width.
        batch: 2 with guidance batched. views, frames (reference included), tokens per frame, text tokens.
        view_branch: count the spatial-view attention branch.

    Returns:
        ``{"gemm_temporal", "attn_temporal", "gemm_view", "attn_view", "gemm_ff", "total"}`` FLOPs.
    """
    seq_t = text + frames * tokens  # one view: all its frames + its text stream
    seq_v = text + views * tokens  # one frame: all views + the frame's text stream
    out = {
        "gemm_temporal": layers * batch * views * seq_t * 4 * 2 * dim * dim,  # q, k, v, out projections
        "attn_temporal": layers * batch * views * 2 * 2 * seq_t * seq_t * dim,  # QK^T and PV
        "gemm_view": layers * batch * frames * seq_v * 4 * 2 * dim * dim if view_branch else 0,
        "attn_view": layers * batch * frames * 2 * 2 * seq_v * seq_v * dim if view_branch else 0,
        "gemm_ff": layers * batch * (views * frames * tokens + (views + (frames if view_branch else 0)) * text)
        * 2 * 2 * dim * ff_dim,
    }
    out["total"] = sum(out.values())
    return out


def _sync() -> None:
    if torch.cuda.is_available():
        torch.cuda.synchronize()


def _time(fn, warmup: int, iters: int) -> float:
    for _ in range(warmup):
        fn()
    _sync()
    start = time.perf_counter()
    for _ in range(iters):
        fn()
    _sync()
    return (time.perf_counter() - start) / iters


def gemm_ceiling() -> float:
    a = torch.randn(8192, 8192, device="cuda", dtype=torch.bfloat16)
    b = torch.randn(8192, 8192, device="cuda", dtype=torch.bfloat16)
    seconds = _time(lambda: a @ b, 3, 10)
    return 2 * 8192**3 / seconds


def sdpa_throughput(batch: int, heads: int, seq: int, head_dim: int) -> dict[str, float]:
    from torch.nn.attention import SDPBackend, sdpa_kernel

    q, k, v = (torch.randn(batch, heads, seq, head_dim, device="cuda", dtype=torch.bfloat16) for _ in range(3))
    flops = 4 * batch * heads * seq * seq * head_dim
    out = {}
    for name, backend in (("default", None), ("cudnn", SDPBackend.CUDNN_ATTENTION),
                          ("flash", SDPBackend.FLASH_ATTENTION), ("efficient", SDPBackend.EFFICIENT_ATTENTION)):  # fmt: skip
        fn = lambda: torch.nn.functional.scaled_dot_product_attention(q, k, v)  # noqa: E731
        try:
            if backend is None:
                seconds = _time(fn, 2, 5)
            else:
                with sdpa_kernel(backend):
                    seconds = _time(fn, 2, 5)
            out[name] = flops / seconds
        except RuntimeError as exc:  # backend not available for this shape/GPU
            out[name] = float("nan")
            print(f"  sdpa {name}: unavailable ({str(exc).splitlines()[0][:80]})")
    return out


def build_model(layers: int, device: str = "cuda"):
    from reference_model.transformer_multiview import MultiViewTransformer3DModel

    torch.set_default_dtype(torch.bfloat16)
    with torch.device(device):  # random init directly on the GPU, in bf16: no 5B CPU initialisation
        model = MultiViewTransformer3DModel(num_layers=layers)
    torch.set_default_dtype(torch.float32)
    return model.eval().requires_grad_(False)


def _report(args, device, flops, micro, rows, h, w, f, text) -> None:
    """Print the table and write it (markdown + JSON) to ``--out``; called after every mode."""
    tokens = (h // 2) * (w // 2)
    lines = [
        f"# transformer step (MultiViewTransformer3DModel, random weights, bf16) on {device}",
        "",
        f"{args.layers} layers, {args.views} views x {f} latent frames (1 reference + {args.frames}) of {h} x {w}, "
        f"{text} text tokens, guidance batched (batch 2). FLOPs per step: {flops['total'] / 1e15:.3f} PFLOP "
        f"(attention {100 * (flops['attn_temporal'] + flops['attn_view']) / flops['total']:.0f}%, view branch "
        f"{100 * (flops['attn_view'] + flops['gemm_view']) / flops['total']:.0f}%).",
        "",
        "| mode | s/step | first call s | peak GiB | TFLOP/s | % of 790 TFLOP/s | 21 views x 50 steps (min) | rel. diff |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['mode']} | {r['s_per_step']:.3f} | {r['first_call_s']:.1f} | {r['peak_gib']:.1f} | {r['tflops']:.0f} | "
            f"{100 * r['mfu_790']:.1f} | {r['minutes_21v_50steps']:.1f} | {r['rel_diff_vs_first_mode']:.2e} |"
        )
    if micro:
        lines += ["", f"bf16 GEMM 8192^3: {micro['gemm_tflops']:.0f} TFLOP/s. SDPA TFLOP/s (B, 48 heads, d 64):",
                  f"temporal S={text + f * tokens}: " + ", ".join(f"{k} {v:.0f}" for k, v in micro["sdpa_temporal"].items()),
                  f"view S={text + args.views * tokens}: " + ", ".join(f"{k} {v:.0f}" for k, v in micro["sdpa_view"].items())]  # fmt: skip
    text_out = "\n".join(lines) + "\n"
    print(text_out)
    if args.out:
        out = Path(args.out)
        out.mkdir(parents=True, exist_ok=True)
        (out / "transformer_step.md").write_text(text_out)
        (out / "transformer_step.json").write_text(json.dumps({"device": device, "flops": flops, "micro": micro, "rows": rows}, indent=2))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--modes", default="eager,compiled",
        help="comma list, applied in order and cumulatively: eager, compiled (torch.compile of the blocks), "
        "fused (+ one QKV product), fp8 (+ FP8 linears)",
    )  # fmt: skip
    parser.add_argument("--views", type=int, default=5)
    parser.add_argument("--frames", type=int, default=7, help="target latent frames (25 video frames -> 7)")
    parser.add_argument("--layers", type=int, default=42)
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--iters", type=int, default=2)
    parser.add_argument("--steps", type=int, default=50, help="denoising steps of the derived generation time")
    parser.add_argument("--groups", type=int, default=5, help="view groups of the derived generation time")
    parser.add_argument("--no-micro", action="store_true", help="skip the GEMM / SDPA micro-benchmarks")
    parser.add_argument("--out", help="folder for transformer_step.md / .json")
    parser.add_argument("--device", default="cuda", help="cuda (the benchmark); cpu only to check the script")
    parser.add_argument("--profile", action="store_true", help="after the last mode, GPU time per kernel class of one step")
    parser.add_argument("--size", type=int, nargs=2, default=(60, 90), metavar=("H", "W"), help="latent size")
    args = parser.parse_args(argv)
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        print("transformer_step: needs CUDA (or --device cpu to check the script on a tiny size)", file=sys.stderr)
        return 2

    from reference_model.transformer import compile_blocks, enable_fp8_linears, fuse_qkv_projections

    dev = args.device
    device = torch.cuda.get_device_name() if dev.startswith("cuda") else "cpu"
    print(f"device: {device}, torch {torch.__version__}")
    rows, micro = [], {}
    dim, heads, head_dim, ff_dim, text = 3072, 48, 64, 4 * 3072, 226
    h, w = args.size
    tokens = (h // 2) * (w // 2)
    f = args.frames + 1
    if not args.no_micro and dev.startswith("cuda"):
        micro["gemm_tflops"] = gemm_ceiling() / 1e12
        print(f"bf16 GEMM 8192^3: {micro['gemm_tflops']:.0f} TFLOP/s")
        micro["sdpa_temporal"] = {k: v / 1e12 for k, v in sdpa_throughput(2 * args.views, heads, text + f * tokens, head_dim).items()}
        micro["sdpa_view"] = {k: v / 1e12 for k, v in sdpa_throughput(2 * f, heads, text + args.views * tokens, head_dim).items()}
        print(f"SDPA TFLOP/s temporal (S={text + f * tokens}): {micro['sdpa_temporal']}")
        print(f"SDPA TFLOP/s view (S={text + args.views * tokens}): {micro['sdpa_view']}")

    t0 = time.perf_counter()
    model = build_model(args.layers, dev)
    print(f"built {sum(p.numel() for p in model.parameters()) / 1e9:.2f} B parameters in {time.perf_counter() - t0:.1f} s")
    gen = torch.Generator(device=dev).manual_seed(0)
    kw = dict(device=dev, dtype=torch.bfloat16, generator=gen)
    b = 2
    inputs = dict(
        hidden_states=torch.randn(b, args.views, args.frames, 16, h, w, **kw),
        encoder_hidden_states=torch.randn(b, text, 4096, **kw),
        timestep=torch.tensor([500, 500], device=dev),
        reference_latents=torch.randn(b, args.views, 1, 16, h, w, **kw),
        pose_latents=torch.randn(b, args.views, f, 16, h, w, **kw),
        camera_tokens=0.02 * torch.randn(b, args.views, tokens, dim, **kw),
        image_rotary_emb=model.rotary_embeddings(f, h, w, torch.device(dev)),
        view_rotary_emb=model.rotary_embeddings(args.views, h, w, torch.device(dev)),
        return_dict=False,
    )
    flops = step_flops(args.layers, dim, ff_dim, b, args.views, f, tokens, text)
    ceiling = MEASURED_GEMM_CEILING
    reference_out = None
    for mode in [m.strip() for m in args.modes.split(",") if m.strip()]:
        if mode == "fused":
            print(f"fused: {fuse_qkv_projections(model)} attention layers")
        if mode == "fp8":
            print(f"fp8: {enable_fp8_linears(model)} linears replaced")
        if mode in ("compiled", "fused", "fp8") and not getattr(model, "_blocks_compiled", False):
            compile_blocks(model)
            model._blocks_compiled = True
        if dev.startswith("cuda"):
            torch.cuda.reset_peak_memory_stats()
        with torch.no_grad():
            t0 = time.perf_counter()
            out = model(**inputs)[0]
            _sync()
            first = time.perf_counter() - t0
            seconds = _time(lambda: model(**inputs), max(args.warmup - 1, 0), args.iters)
            out = model(**inputs)[0].float()
        if reference_out is None:
            reference_out, diff = out, 0.0
        else:
            diff = float(((out - reference_out).norm() / reference_out.norm()).item())
        peak = torch.cuda.max_memory_allocated() / 2**30 if dev.startswith("cuda") else float("nan")
        row = {
            "mode": mode, "s_per_step": seconds, "first_call_s": first, "peak_gib": peak,
            "tflops": flops["total"] / seconds / 1e12, "mfu_790": flops["total"] / seconds / ceiling,
            "minutes_21v_50steps": args.groups * args.steps * seconds / 60,
            "rel_diff_vs_first_mode": diff,
        }  # fmt: skip
        if "gemm_tflops" in micro:
            row["mfu_measured"] = flops["total"] / seconds / (micro["gemm_tflops"] * 1e12)
        rows.append(row)
        print(json.dumps(row))
        _report(args, device, flops, micro, rows, h, w, f, text)  # partial results survive a time-out

    if args.profile:
        breakdown = profile_step(lambda: model(**inputs), dev)
        print("kernel time of one step by class (s):", json.dumps(breakdown))
        if args.out:
            (Path(args.out) / "transformer_step_profile.json").write_text(json.dumps(breakdown, indent=2))
    return 0


def _kernel_class(name: str) -> str:
    n = name.lower()
    if any(k in n for k in ("fmha", "flash", "attention", "cudnn", "sdpa")):
        return "attention"
    if any(k in n for k in ("gemm", "cutlass", "xmma", "nvjet", "matmul", "scaled_mm", "cublas")):
        return "gemm"
    if "triton" in n:
        return "triton (fused elementwise/norm)"
    return "other"


def profile_step(fn, device: str) -> dict[str, float]:
    """Device time of one call of ``fn`` by kernel class (GEMM, attention, fused Triton, other)."""
    from torch.profiler import ProfilerActivity, profile

    activities = [ProfilerActivity.CUDA] if device.startswith("cuda") else [ProfilerActivity.CPU]
    with torch.no_grad():
        fn()
        _sync()
        with profile(activities=activities) as prof:
            fn()
            _sync()
    out: dict[str, float] = {}
    for event in prof.key_averages():
        t = (event.device_time_total if device.startswith("cuda") else event.self_cpu_time_total) / 1e6
        if t > 0 and (not device.startswith("cuda") or str(event.device_type).upper().endswith("CUDA")):
            key = _kernel_class(event.key)
            out[key] = out.get(key, 0.0) + t
    out["total"] = sum(out.values())
    return out


if __name__ == "__main__":
    sys.exit(main())
