"""Cost of the FVD bootstrap interval (resampling samples), before and after the small-N Frechet form.

For the shapes of a CharacterBench evaluation (N samples; per sample 9 FVD-F clips, 9 FVD-V clips, 1 FVD-D
clip and 1 FV4D clip of 400-d I3D features), times ``metrics.frechet.bootstrap_frechet_distance`` with
``unit="samples"``, ``method="basic"`` (what ``characterbench eval`` runs), and the earlier route: one
replicate at a time, weighted 400 x 400 covariances and two eigendecompositions each (the full form).
Features are random (the cost does not depend on their values); both routes must agree.

    python scripts/bench/eval_bootstrap.py --samples 4 --resamples 1000 --before-resamples 100
"""

from __future__ import annotations

import argparse
import os
import platform
import time

import numpy as np


def _before(real: np.ndarray, fake: np.ndarray, sizes: list[int], resamples: int, seed: int) -> np.ndarray:
    """The earlier replicate loop: weighted moments and the full-form distance, one replicate at a time."""
    from metrics.frechet import frechet_distance_from_moments

    def moments(x, w):
        total = w.sum()
        mu = w @ x / total
        c = x - mu
        return mu, (c * w[:, None]).T @ c / (total - 1)

    n = len(sizes)
    rng = np.random.default_rng(seed)
    out = np.empty(resamples)
    for b in range(resamples):
        w = np.repeat(np.bincount(rng.integers(0, n, n), minlength=n), sizes).astype(np.float64)
        out[b] = frechet_distance_from_moments(*moments(real, w), *moments(fake, w))
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--samples", type=int, default=4)
    p.add_argument("--resamples", type=int, default=1000)
    p.add_argument("--before-resamples", type=int, default=100, help="replicates timed on the earlier route (slow)")
    p.add_argument("--device", default="cpu")
    a = p.parse_args()

    from metrics.frechet import bootstrap_frechet_distance

    rng = np.random.default_rng(0)
    keys = [f"s{i:03d}" for i in range(a.samples)]
    rows = []
    total_after = total_before = 0.0
    for variant, per in (("fvd_f", 9), ("fvd_v", 9), ("fvd_d", 1), ("fv4d", 1)):
        m = a.samples * per
        real = rng.normal(size=(m, 400)) * 3
        fake = rng.normal(size=(m, 400)) * 3 + 0.3
        t0 = time.perf_counter()
        ci = bootstrap_frechet_distance(real, fake, a.resamples, 0.95, 0, unit="samples", method="basic",
                                        groups=[per] * a.samples, keys=keys, device=a.device)
        after = time.perf_counter() - t0
        t0 = time.perf_counter()
        old = _before(real, fake, [per] * a.samples, a.before_resamples, 0)
        before = time.perf_counter() - t0
        # Same draws, same replicates: the first ones of the two routes agree.
        check = bootstrap_frechet_distance(real, fake, a.before_resamples, 0.95, 0, unit="samples", method="percentile",
                                           groups=[per] * a.samples, keys=keys, device=a.device)
        q = np.quantile(old, [0.025, 0.975])
        agree = np.allclose([check.low, check.high], q, rtol=1e-6)
        total_after += after
        total_before += before / a.before_resamples * a.resamples
        rows.append((variant, m, after, before, a.before_resamples, agree, ci.std))
    print(f"\nFVD bootstrap, {a.samples} samples, D = 400, device {a.device}, "
          f"{platform.machine()} with {os.cpu_count()} cores")
    print(f"{'variant':8s} {'clips':>6s} {'after: ' + str(a.resamples) + ' repl.':>20s} "
          f"{'before: ' + str(a.before_resamples) + ' repl.':>20s}  routes agree")
    for variant, m, after, before, nb, agree, _ in rows:
        print(f"{variant:8s} {m:6d} {after:18.3f} s {before:18.3f} s  {agree}")
    print(f"all four, {a.resamples} replicates: after {total_after:.2f} s; before (per-replicate cost x "
          f"{a.resamples}) {total_before:.1f} s")


if __name__ == "__main__":
    main()
