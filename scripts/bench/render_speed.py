"""Render speed of one default sample per engine: seconds per image and per sample.

A full sample is 21 A-pose views + 21 views x 25 frames (546 images) + 525 pose maps. EEVEE runs through
software OpenGL on CPU machines and takes seconds per image, so by default it renders a shorter clip and
the per-sample time is extrapolated (marked with ~).

    python scripts/bench/render_speed.py                      # all engines, 512 px
    python scripts/bench/render_speed.py --engines cycles --samples 8 16
"""

from __future__ import annotations

import argparse
import os
import platform
import tempfile
import time
from pathlib import Path

from character4d.config import RenderConfig
from character4d.jobs import make_jobs
from character4d.pipeline import default_inputs, render_job


def bench(engine: str, samples: int | None, frames: int, resolution: int, views: int, character: str,
          motion: str) -> dict:
    chars, motions = default_inputs()
    job = next(j for j in make_jobs(chars, motions) if j.key == f"{character}__{motion}")
    cfg = RenderConfig(engine=engine, samples=samples, num_frames=frames, resolution=resolution, num_views=views)
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        sample = render_job(job, Path(tmp), cfg)
        wall = time.perf_counter() - t0
    images = views * (frames + 1)
    full_images = views * 26
    return {
        "engine": engine, "samples": cfg.effective_samples, "images": images, "wall_s": wall,
        "s_per_image": wall / images, "s_per_sample": wall / images * full_images,
        "extrapolated": frames != 25 or views != 21, "key": sample.key,
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--engines", nargs="+", default=["cycles", "workbench", "eevee"])
    p.add_argument("--samples", nargs="+", type=int, default=[None], help="samples per pixel to try")
    p.add_argument("--frames", type=int, default=25)
    p.add_argument("--eevee-frames", type=int, default=1, help="clip length for EEVEE (slow on CPU)")
    p.add_argument("--views", type=int, default=21)
    p.add_argument("--resolution", type=int, default=512)
    p.add_argument("--character", default="ada")
    p.add_argument("--motion", default="walk")
    a = p.parse_args()
    rows = []
    for engine in a.engines:
        for samples in a.samples:
            frames = a.eevee_frames if engine == "eevee" else a.frames
            rows.append(bench(engine, samples, frames, a.resolution, a.views, a.character, a.motion))
            r = rows[-1]
            print(f"  {engine} ({r['samples']} spp): {r['images']} images in {r['wall_s']:.1f} s", flush=True)
    print(f"\nmachine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores; "
          f"{a.resolution} px, sample = {a.views} A-pose + {a.views} x 25 frames + pose maps")
    print(f"{'engine':<10} {'spp':>4} {'images':>7} {'s/image':>8} {'s/sample':>10} {'min/sample':>11}")
    for r in rows:
        mark = "~" if r["extrapolated"] else " "
        print(f"{r['engine']:<10} {r['samples']:>4} {r['images']:>7} {r['s_per_image']:>8.3f} "
              f"{mark}{r['s_per_sample']:>9.1f} {mark}{r['s_per_sample'] / 60:>10.2f}")


if __name__ == "__main__":
    main()
