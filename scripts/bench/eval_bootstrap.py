"""Cost of the FVD bootstrap interval (resampling samples): the current replicate route against the previous one.

For the shapes of a CharacterBench evaluation (N samples; per sample 9 FVD-F clips, 9 FVD-V clips, 1 FVD-D
clip and 1 FV4D clip of 400-d I3D features) this times the replicates of
``metrics.frechet.bootstrap_frechet_distance`` with ``unit="samples"`` (what ``characterbench eval`` runs, on
its ``--device``), on the same draws, two ways:

- **after**: the current route. Full form (more clips than D = 400: FVD-F and FVD-V from 45 samples on):
  covariances from per-sample sums, ``tr sqrt`` through a Cholesky factor of whichever covariance is
  positive definite (``eigh`` where neither is), batches of 512 MiB.
- **before**: the previous one. Full form: weighted centred ``[B, M, D]`` features and their products,
  ``eigh`` with vectors of ``S_a`` and ``eigvalsh`` of ``R S_b R``, batches of 32 MiB.

The small-N form (up to D clips) is the same in both. Features are random, of rank ``--feature-rank``
(default 400: full rank, so the Cholesky route; a rank below 400 makes every covariance singular and times
the fallback). The table gives seconds per variant (wall, and the process's CPU time, steadier on shared
cores; ``before`` scaled to ``--resamples`` when fewer replicates were timed), the largest absolute and
relative difference between the two routes' replicates, and whether they agree to round-off (absolute
difference within 1e-9 of ``tr S_a + tr S_b``).

    python scripts/bench/eval_bootstrap.py --samples 100                  # CPU: about 3 min on 2 cores
    python scripts/bench/eval_bootstrap.py --samples 100 --device cuda    # the GPU machine (one H200)

On the GPU machine the second call needs only this checkout and its torch (no weights, no data); the
previous route took about 28 s there for the two full-form variants inside a 100-sample evaluation, so the
call should stay well under 90 s. Add ``--before-resamples 200`` to shorten it further.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import platform
import time

import numpy as np
import torch

VARIANTS = (("fvd_f", 9), ("fvd_v", 9), ("fvd_d", 1), ("fv4d", 1))


def _before(a: np.ndarray, b: np.ndarray, weights: np.ndarray, device: str) -> np.ndarray:
    """The previous replicate route (the code before per-sample sums and the Cholesky route)."""
    from metrics.frechet import (
        _trace_sqrt_eigh_numpy,
        _trace_sqrt_eigh_torch,
        _weighted_centred,
        weighted_frechet_distances,
    )

    d = a.shape[1]
    xa, xb = (torch.from_numpy(x).to(device) for x in (a, b))
    small = max(len(a), len(b)) <= d
    per_replicate = 8 * (3 * len(a) * len(b) if small else (len(a) + len(b)) * d + 4 * d * d)
    batch = max(1, min(len(weights), 32 * 2**20 // per_replicate))
    out = np.empty(len(weights))
    for start in range(0, len(weights), batch):
        w = torch.from_numpy(weights[start:start + batch].astype(np.float64)).to(device)
        if small:
            out[start:start + batch] = weighted_frechet_distances(xa, w, xb, w).cpu().numpy()
            continue
        (mu_a, ca), (mu_b, cb) = _weighted_centred(xa, w), _weighted_centred(xb, w)
        cov_a, cov_b = ca.transpose(1, 2) @ ca, cb.transpose(1, 2) @ cb
        cov_a, cov_b = (cov_a + cov_a.transpose(1, 2)) / 2, (cov_b + cov_b.transpose(1, 2)) / 2
        if xa.device.type == "cpu":
            trace_sqrt = torch.from_numpy(_trace_sqrt_eigh_numpy(cov_a.numpy(), cov_b.numpy()))
        else:
            trace_sqrt = _trace_sqrt_eigh_torch(cov_a, cov_b)
        diff = mu_a - mu_b
        traces = cov_a.diagonal(dim1=-2, dim2=-1).sum(-1) + cov_b.diagonal(dim1=-2, dim2=-1).sum(-1)
        out[start:start + batch] = ((diff * diff).sum(-1) + traces - 2 * trace_sqrt).cpu().numpy()
    return out


def _timed(fn):
    """``fn()`` with its wall and process CPU seconds (CPU time is the steadier measure on shared cores)."""
    t0, c0 = time.perf_counter(), time.process_time()
    result = fn()
    return result, time.perf_counter() - t0, time.process_time() - c0


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--samples", type=int, default=4)
    p.add_argument("--resamples", type=int, default=1000)
    p.add_argument("--before-resamples", type=int, default=None,
                   help="replicates timed on the previous route (default: --resamples); the table scales them")
    p.add_argument("--feature-rank", type=int, default=400, help="rank of the random 400-d features")
    p.add_argument("--device", default="cpu")
    p.add_argument("--retained-heap", action="store_true",
                   help="run inside characterbench.evaluate.retained_heap(), as characterbench eval does")
    a = p.parse_args()
    if a.samples < 2 or a.resamples < 1 or not 1 <= a.feature_rank <= 400:
        p.error("expected --samples >= 2, --resamples >= 1 and 1 <= --feature-rank <= 400")
    n_before = min(a.resamples, a.before_resamples or a.resamples)

    from characterbench.evaluate import retained_heap

    with retained_heap() if a.retained_heap else contextlib.nullcontext():
        _run(a, n_before)


def _run(a: argparse.Namespace, n_before: int) -> None:
    """Time both routes per variant and print the table."""
    from metrics.frechet import _bootstrap_replicates

    rng = np.random.default_rng(0)
    load = os.getloadavg()[0]
    # The draws of bootstrap_frechet_distance(..., seed=0, unit="samples") on samples in key order.
    draws_rng = np.random.default_rng(0)
    draws = np.stack([np.bincount(draws_rng.integers(0, a.samples, a.samples), minlength=a.samples)
                      for _ in range(a.resamples)])
    rows, total_after, total_before = [], 0.0, 0.0
    for variant, per in VARIANTS:
        m = a.samples * per
        mix = rng.normal(size=(a.feature_rank, 400)) / np.sqrt(a.feature_rank)
        real = rng.normal(size=(m, a.feature_rank)) @ mix * 3
        fake = rng.normal(size=(m, a.feature_rank)) @ mix * 3 + 0.3
        weights = np.repeat(draws, per, axis=1)
        after, t_after, c_after = _timed(lambda: _bootstrap_replicates(
            real, fake, weights, weights, ([per] * a.samples, draws), a.device, 512 * 2**20))
        before, t_before, c_before = _timed(lambda: _before(real, fake, weights[:n_before], a.device))
        scale = np.trace(np.cov(real, rowvar=False)) + np.trace(np.cov(fake, rowvar=False))
        diff = np.abs(after[:n_before] - before)
        agree = bool(diff.max() <= 1e-9 * scale)
        rel = float((diff / np.abs(before)).max())
        form = "full" if m > 400 else "small"
        t_before, c_before = t_before * a.resamples / n_before, c_before * a.resamples / n_before
        total_after, total_before = total_after + t_after, total_before + t_before
        rows.append((variant, m, form, t_after, t_before, c_after, c_before, float(diff.max()), rel, agree))
    gpu = f" ({torch.cuda.get_device_name()})" if a.device.startswith("cuda") else ""
    print(f"\nFVD bootstrap replicates, {a.samples} samples, {a.resamples} replicates, D = 400 (feature rank "
          f"{a.feature_rank}), device {a.device}{gpu}{', retained heap' if a.retained_heap else ''}; {platform.processor() or platform.machine()} with "
          f"{os.cpu_count()} cores, load average {load:.1f} -> {os.getloadavg()[0]:.1f}, torch {torch.__version__}")
    if n_before < a.resamples:
        print(f"(before: {n_before} replicates timed, scaled to {a.resamples}; differences over those {n_before})")
    print(f"{'variant':8s} {'clips':>6s} {'form':>6s} {'after s':>9s} {'before s':>9s} {'speed-up':>9s} "
          f"{'after CPU s':>12s} {'before CPU s':>12s} {'max abs diff':>13s} {'max rel diff':>13s}  routes agree")
    for variant, m, form, t_after, t_before, c_after, c_before, abs_diff, rel, agree in rows:
        print(f"{variant:8s} {m:6d} {form:>6s} {t_after:9.2f} {t_before:9.2f} {t_before / t_after:8.1f}x "
              f"{c_after:12.2f} {c_before:12.2f} {abs_diff:13.2e} {rel:13.2e}  {agree}")
    print(f"all four: after {total_after:.2f} s, before {total_before:.2f} s ({total_before / total_after:.1f}x)")


if __name__ == "__main__":
    main()
