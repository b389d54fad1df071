"""Throughput of the metric networks: I3D clips/s, LPIPS images/s, SSIM images/s.

Runs from a plain checkout (no install) with torch, numpy, torchmetrics and safetensors, loading the
converted weights from $CHARACTERBENCH_HOME (fetch them first: ``characterbench weights fetch`` or
``python scripts/fetch_weights.py``; only i3d_kinetics400 and lpips_alex are needed here).

    python scripts/bench/metrics_throughput.py --device cuda --tf32
    python scripts/bench/metrics_throughput.py --device cuda --fp16 --i3d-batch 32
    python scripts/bench/metrics_throughput.py --device cpu --iters 2 --i3d-batch 2 --image-batch 4
"""

from __future__ import annotations

import argparse
import contextlib
import json
import platform
import sys
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # run from a checkout without installing

import torch  # noqa: E402


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_per_call(fn: Callable[[], object], device: torch.device, warmup: int, iters: int) -> float:
    """Median wall time of ``fn`` in seconds over ``iters`` calls, after ``warmup`` calls."""
    for _ in range(warmup):
        fn()
    _sync(device)
    times = []
    for _ in range(iters):
        start = time.perf_counter()
        fn()
        _sync(device)
        times.append(time.perf_counter() - start)
    return sorted(times)[len(times) // 2]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu", help="cuda | cpu")
    parser.add_argument("--fp16", action="store_true", help="autocast to float16 for I3D and LPIPS (CUDA)")
    parser.add_argument("--tf32", action="store_true", help="allow TF32 in matmuls and cuDNN convolutions (CUDA)")
    parser.add_argument("--i3d-batch", type=int, default=16, help="9-frame 224 x 224 clips per I3D call")
    parser.add_argument("--frames", type=int, default=9, help="frames per I3D clip (>= 9)")
    parser.add_argument("--image-batch", type=int, default=64, help="images per LPIPS / SSIM call")
    parser.add_argument("--image-size", type=int, default=512, help="LPIPS / SSIM image side (protocol: 512)")
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--iters", type=int, default=10)
    parser.add_argument("--json", help="also write the results to this JSON file")
    args = parser.parse_args(argv)

    from metrics.i3d import load_i3d
    from metrics.lpips import load_lpips
    from metrics.ssim import ssim

    device = torch.device(args.device)
    if device.type == "cuda":
        if not torch.cuda.is_available():
            parser.error("--device cuda: CUDA is not available")
        torch.backends.cudnn.benchmark = True  # fixed shapes: let cuDNN pick the fastest kernels
        torch.backends.cuda.matmul.allow_tf32 = args.tf32
        torch.backends.cudnn.allow_tf32 = args.tf32
    elif args.fp16 or args.tf32:
        parser.error("--fp16/--tf32: only with --device cuda")

    def autocast():
        # Autocast rather than .half(): LPIPS's feature normalisation (sum of squares, 1e-10 eps) must stay
        # in float32, which autocast does for reductions.
        if args.fp16:
            return torch.autocast("cuda", dtype=torch.float16)
        return contextlib.nullcontext()

    from metrics.weights import WeightsNotFoundError

    try:
        i3d = load_i3d(device)
        lpips_net = load_lpips("alex", device)
    except WeightsNotFoundError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    g = torch.Generator(device=device).manual_seed(0)
    clips = torch.rand(args.i3d_batch, 3, args.frames, 224, 224, device=device, generator=g) * 2 - 1
    size = args.image_size
    images_a = torch.rand(args.image_batch, 3, size, size, device=device, generator=g)
    images_b = torch.rand(args.image_batch, 3, size, size, device=device, generator=g)

    @torch.no_grad()
    def run_i3d():
        with autocast():
            return i3d(clips)

    @torch.no_grad()
    def run_lpips():
        with autocast():
            return lpips_net(images_a * 2 - 1, images_b * 2 - 1)

    @torch.no_grad()
    def run_ssim():
        return ssim(images_a, images_b)

    rows = []
    for name, fn, batch, unit in (
        (f"I3D {args.frames}x224x224", run_i3d, args.i3d_batch, "clips/s"),
        (f"LPIPS alex {size}x{size}", run_lpips, args.image_batch, "images/s"),
        (f"SSIM {size}x{size} (float64)", run_ssim, args.image_batch, "images/s"),
    ):
        seconds = time_per_call(fn, device, args.warmup, args.iters)
        rows.append(
            {"metric": name, "batch": batch, "seconds_per_batch": seconds, "throughput": batch / seconds, "unit": unit}
        )

    name = torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor() or "cpu"
    print(
        f"device: {name} | torch {torch.__version__} | python {platform.python_version()} | "
        f"fp16={args.fp16} tf32={args.tf32}"
    )
    print(f"{'metric':32s} {'batch':>6s} {'ms/batch':>10s} {'throughput':>12s}")
    for r in rows:
        ms = 1000 * r["seconds_per_batch"]
        print(f"{r['metric']:32s} {r['batch']:6d} {ms:10.1f} {r['throughput']:10.1f} {r['unit']}")
    if args.json:
        meta = {"device": name, "torch": torch.__version__, "fp16": args.fp16, "tf32": args.tf32}
        Path(args.json).write_text(json.dumps({"meta": meta, "rows": rows}, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
