"""Time of the fit's photometric loss (L1 + SSIM) with its backward, per step's images, on a device.

    python scripts/bench/gs4d_loss.py --device cpu --sizes 64,128,512
    python scripts/bench/gs4d_loss.py --device cuda --sizes 512 --images 12

The fit computes it once a step over all the step's images (12 at 512 px by default); the SSIM's blurs
dominate it.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))


def main(argv: list[str] | None = None) -> int:
    import torch

    from reference_model.gs4d.losses import photometric_loss

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--device", default="cpu")
    p.add_argument("--sizes", default="64,128,512")
    p.add_argument("--images", type=int, default=12)
    p.add_argument("--repeats", type=int, default=5)
    a = p.parse_args(argv)
    device = torch.device(a.device)

    def sync() -> None:
        if device.type == "cuda":
            torch.cuda.synchronize(device)

    gen = torch.Generator().manual_seed(0)
    print(f"photometric loss (L1 + 0.2 SSIM) forward + backward, {a.images} images, {device}")
    print("| side | ms (best of repeats) |\n|---|---|")
    for side in (int(s) for s in a.sizes.split(",")):
        pred = torch.rand(a.images, side, side, 3, generator=gen).to(device).requires_grad_(True)
        target = torch.rand(a.images, side, side, 3, generator=gen).to(device)
        photometric_loss(pred, target, 0.2).backward()  # warm-up (kernel choice, allocator)
        best = float("inf")
        for _ in range(a.repeats):
            sync()
            t0 = time.perf_counter()
            photometric_loss(pred, target, 0.2).backward()
            sync()
            best = min(best, time.perf_counter() - t0)
        print(f"| {side} | {best * 1000:.2f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
