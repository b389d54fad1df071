"""Per-sample cost of what the renderer does besides rendering: the --start auto scan and the framing check.

The scan runs once per sample, the framing check once per image (on the mesh vertices the renderer
projects anyway for its render border; decoding each written PNG's alpha instead was measured at
~22 ms per image, ~12 s per sample, on the shared 2-core machine). Both are timed here in isolation
and compared with a sample's render time (scripts/bench/render_speed.py), which the shared CPU makes
too noisy to resolve them.

    python scripts/bench/render_overhead.py          # default walk BVH, 50k projected vertices
"""

from __future__ import annotations

import os
import platform
import subprocess
import sys
import time

import numpy as np

_SCAN = r"""
import sys, time
from character4d.blender.character import reset_scene
from character4d.blender.motion import sample_motion
out = []
for start in ("auto", 0.0, "auto", 0.0, "auto", 0.0):
    reset_scene()
    t0 = time.perf_counter()
    sample_motion(sys.argv[1], 25, 15.0, start)
    out.append((str(start), time.perf_counter() - t0))
print("RESULT", out)
"""


def main() -> int:
    from character4d.default_data import ensure_default_motions
    from character4d.framing import silhouette_outside

    rng = np.random.default_rng(0)
    uv = rng.uniform(40, 470, (50_000, 2))
    depth = rng.uniform(3.0, 4.0, 50_000)
    n = 200
    t0 = time.perf_counter()
    for _ in range(n):
        silhouette_outside(uv, depth, 512, 512)
    per_image = (time.perf_counter() - t0) / n

    walk = next(p for p in ensure_default_motions() if p.stem == "walk")
    proc = subprocess.run([sys.executable, "-c", _SCAN, str(walk)], capture_output=True, text=True, check=True)
    runs = eval(next(ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT"))[7:])  # noqa: S307 - our own output
    auto = np.median([t for s, t in runs if s == "auto"])
    fixed = np.median([t for s, t in runs if s != "auto"])
    images = 21 * 26
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, load {os.getloadavg()[0]:.1f}")
    print(f"{'step':<34} {'s/unit':>8} {'s/sample':>9}")
    print(f"{'framing check (50k vertices)':<34} {per_image:>8.4f} {per_image * images:>9.2f}   (x {images} images)")
    print(f"{'--start auto scan (walk, 2.4 s)':<34} {auto - fixed:>8.3f} {auto - fixed:>9.2f}   (auto {auto:.3f} s vs seconds {fixed:.3f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
