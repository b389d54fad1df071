"""Where a 4D Gaussian fit's step time goes: a short fit under ``torch.profiler``, top operators by time.

    python scripts/bench/gs4d_profile.py --data .whl-gs4d/packs/ada__dance.npz --sample ada__dance --steps 60

Runs a warm-up fit (gsplat's first call compiles CUDA code), then a profiled one with ``--steps`` final-stage
steps (deformation and neighbour loss on), and prints per-step wall time and the operator tables.

``--budget SECONDS`` instead times (unprofiled) the coarse and the final stage's steps of the configuration and
prints ``FINAL_STEPS=N``: the final-stage steps that bring the whole fit to that wall time on this machine.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))


def main(argv: list[str] | None = None) -> int:
    import torch
    from torch.profiler import ProfilerActivity, profile

    from reference_model.gs4d.config import preset
    from reference_model.gs4d.fitting import fit

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", required=True)
    parser.add_argument("--sample", default="ada__dance")
    parser.add_argument("--steps", type=int, default=60)
    parser.add_argument("--set", action="append", default=[], metavar="FIELD=JSON")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--resolution", type=int)
    parser.add_argument("--rows", type=int, default=25)
    parser.add_argument("--budget", type=float, help="seconds a whole fit may take: print FINAL_STEPS for it")
    args = parser.parse_args(argv)
    overrides = {k: json.loads(v) for k, _, v in (s.partition("=") for s in args.set)}
    if args.budget:
        return _budget(args, overrides)
    # Windows of one step give the final stage an anchor, so the neighbour loss runs as in a real fit.
    config = preset("default", **(dict(coarse_steps=5, window_steps=1, final_steps=args.steps) | overrides))
    train = _warm_views(args, config)
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if args.device.startswith("cuda") else [])
    with profile(activities=activities) as prof:
        t0 = time.perf_counter()
        result = fit(train, config, args.device, progress=False)
        wall = time.perf_counter() - t0
    final = result.stage_seconds["final"]
    print(f"{args.sample} at {train.resolution} px on {args.device}: final stage {final:.2f} s for {args.steps} steps "
          f"= {1000 * final / args.steps:.1f} ms/step (profiled; {result.final_gaussians} Gaussians; whole fit {wall:.1f} s)")
    key = "self_cuda_time_total" if args.device.startswith("cuda") else "self_cpu_time_total"
    print(prof.key_averages().table(sort_by=key, row_limit=args.rows))
    print(prof.key_averages().table(sort_by="cpu_time_total", row_limit=args.rows))
    return 0


def _warm_views(args: argparse.Namespace, config):
    """The sample's training views, after a short warm-up fit (gsplat compiles its CUDA code on first use)."""
    from reference_model.gs4d.data import load_views
    from reference_model.gs4d.fitting import fit

    train = load_views(args.data, config.split.views(21)[0], resolution=args.resolution, key=args.sample)
    fit(train, config.replace(coarse_steps=5, final_steps=5), args.device, progress=False)
    return train


def _budget(args: argparse.Namespace, overrides: dict) -> int:
    from reference_model.gs4d.config import preset
    from reference_model.gs4d.fitting import fit

    full = preset("default", **overrides)
    probe = full.replace(coarse_steps=100, window_steps=1, final_steps=args.steps)
    train = _warm_views(args, probe)
    result = fit(train, probe, args.device, progress=False)
    coarse = result.stage_seconds["coarse"] / probe.coarse_steps
    final = result.stage_seconds["final"] / probe.final_steps
    windows = sum(s.steps for s in result.stages if s.name.startswith("window")) // probe.window_steps * full.window_steps
    left = args.budget - result.init_seconds - full.coarse_steps * coarse - windows * final
    steps = max(int(left / final), 0)
    print(f"{args.sample} at {train.resolution} px on {args.device}: coarse {1000 * coarse:.1f} ms/step, "
          f"final {1000 * final:.1f} ms/step, init {result.init_seconds:.2f} s, {windows} window steps; "
          f"{args.budget:.0f} s leave {steps} final steps")
    print(f"FINAL_STEPS={steps}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
