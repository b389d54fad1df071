"""Where the time of one `characterbench eval` goes: a table of stage -> seconds, with the machine's load.

Runs :func:`characterbench.evaluate.evaluate` once on a prediction folder and ground truth (e.g. the
registered board ground truth and a baseline built from it), timing each stage in the main thread:
indexing the ground truth, validating (and decoding) the predictions, loading the metric weights, and
inside the scoring the wait for decoded images plus compositing, the resizes, each per-cell metric and
the I3D/Inception features; then the pooled statistics and the bootstrap. Decoding runs on worker
threads, so it shows up as the wait of the scoring loop. The load average (``/proc/loadavg``) before and
after and the process' CPU time (user + sys) are printed next to the numbers: other jobs sharing the
cores make the wall time longer than the CPU time the evaluation got.

    characterbench baseline static-apose --gt out/board-gt --out out/bench/static-apose
    python scripts/bench/eval_stages.py --pred out/bench/static-apose --gt out/board-gt --device cpu \\
        --reference out/bench/before.json --json out/bench/after.json

``--reference`` compares every metric value and interval with an earlier record (the largest relative
difference is printed), so a speed change can be shown not to move any number.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import time
from collections import defaultdict
from pathlib import Path

BOARD_METRICS = "ssim,psnr,lpips,fvd_f,fvd_v,fvd_d,fv4d"


def load_average() -> str:
    """The 1/5/15-minute load averages (what `uptime` prints)."""
    try:
        return " ".join(Path("/proc/loadavg").read_text().split()[:3])
    except OSError:
        return "n/a"


def cpu_seconds() -> tuple[float, float]:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime, r.ru_stime


class Stages:
    """Accumulates seconds per stage name."""

    def __init__(self):
        self.seconds: dict[str, float] = defaultdict(float)
        self.calls: dict[str, int] = defaultdict(int)

    def wrap(self, name: str, fn):
        def timed(*args, **kwargs):
            t0 = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                self.seconds[name] += time.perf_counter() - t0
                self.calls[name] += 1

        return timed


def instrument(stages: Stages) -> None:
    """Wrap the evaluation's stages (module attributes looked up at call time)."""
    import characterbench.evaluate as E
    import characterbench.prefetch as PF
    from characterbench import protocol as P

    E.index_ground_truth = stages.wrap("index ground truth", E.index_ground_truth)
    E.validate_predictions = stages.wrap("validate + decode predictions", E.validate_predictions)
    build = E.build_suite

    def build_suite(*args, **kwargs):
        t0 = time.perf_counter()
        suite = build(*args, **kwargs)
        stages.seconds["load metric weights"] += time.perf_counter() - t0
        for m, fn in list(suite.image.items()):
            suite.image[m] = stages.wrap(f"  {m}", fn)
        for g, fn in list(suite.features.items()):
            suite.features[g] = stages.wrap(f"  {g} features", fn)
        return suite

    E.build_suite = build_suite
    PF.PendingSample.batch = stages.wrap("  wait for decoding + composite", PF.PendingSample.batch)
    P.resize = stages.wrap("  resize", P.resize)
    E.score_samples = stages.wrap("scoring (all samples)", E.score_samples)


def compare(results: dict, reference: dict) -> float:
    """Largest relative difference of metric values and interval bounds between two records."""
    worst = 0.0
    for m, v in reference["metrics"].items():
        got = results["metrics"][m]
        worst = max(worst, abs(got - v) / max(abs(v), 1e-12))
    for m, ci in (reference.get("intervals") or {}).items():
        for k in ("low", "high"):
            got = results["intervals"][m][k]
            worst = max(worst, abs(got - ci[k]) / max(abs(ci[k]), 1e-12))
    return worst


def timed_evaluate(cfg, stages: Stages, profile: Path | None = None):
    """Run ``evaluate(cfg)`` once with the stages instrumented; returns ``(results, run)`` where ``run``
    holds the wall time, CPU time and load averages."""
    from characterbench.evaluate import evaluate

    load_before = load_average()
    u0, s0 = cpu_seconds()
    t0 = time.perf_counter()
    if profile:
        import cProfile

        prof = cProfile.Profile()
        results = prof.runcall(evaluate, cfg, False)
        prof.dump_stats(profile)
    else:
        results = evaluate(cfg, progress=False)
    wall = time.perf_counter() - t0
    u1, s1 = cpu_seconds()
    stages.seconds["bootstrap"] = results.timing["bootstrap_s"]
    scoring = stages.seconds["scoring (all samples)"]
    inner = sum(v for k, v in stages.seconds.items() if k.startswith("  "))
    stages.seconds["  other (cell copies, clip assembly, loop)"] = max(scoring - inner, 0.0)
    run = {"wall_s": wall, "user_s": u1 - u0, "sys_s": s1 - s0, "load_before": load_before, "load_after": load_average(),
           "max_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}
    return results, run


def print_table(stages: Stages, results, run: dict, title: str) -> None:
    """The stage table (Markdown), with the machine and its load."""
    import torch

    order = ["index ground truth", "validate + decode predictions", "load metric weights", "scoring (all samples)"]
    order += sorted(k for k in stages.seconds if k.startswith("  ") and "other" not in k)
    order += ["  other (cell copies, clip assembly, loop)", "bootstrap"]
    print(f"\n{title}")
    print(f"machine: {platform.machine()} {platform.processor() or ''}, {os.cpu_count()} cores, "
          f"torch {torch.__version__} ({torch.get_num_threads()} threads), device {results.device}")
    print(f"load average (1/5/15 min): before {run['load_before']}, after {run['load_after']}\n")
    print(f"| {'stage':<44} | {'seconds':>8} |")
    print(f"|{'-' * 46}|{'-' * 10}|")
    for k in order:
        if k in stages.seconds:
            print(f"| {k:<44} | {stages.seconds[k]:8.2f} |")
    print(f"| {'total (wall)':<44} | {run['wall_s']:8.2f} |")
    print(f"| {'CPU time of the process (user + sys)':<44} | {run['user_s'] + run['sys_s']:8.2f} |")
    print(f"| {'  of it sys':<44} | {run['sys_s']:8.2f} |")
    print(f"\npeak resident memory of the process: {run['max_rss_mib']:.0f} MiB")
    timing = results.timing
    if timing.get("feature_clips"):
        print(f"\nI3D/Inception inputs per second inside the run: {timing['feature_clips_per_s']:.2f} "
              f"({int(timing['feature_clips'])} clips or images)")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--pred", required=True)
    p.add_argument("--gt", required=True)
    p.add_argument("--task", default="multiview")
    p.add_argument("--metrics", default=BOARD_METRICS, help=f"comma-separated (default: the board's, {BOARD_METRICS})")
    p.add_argument("--device", default="cpu")
    p.add_argument("--workers", type=int, default=None, help="decode threads (default: the EvalConfig default)")
    p.add_argument("--batch-size", type=int, default=None)
    p.add_argument("--bootstrap", type=int, default=1000)
    p.add_argument("--image-resolution", type=int, default=None,
                   help="score at this size instead of the protocol's (experiments: the record becomes '+custom')")
    p.add_argument("--reference", type=Path, default=None, help="an earlier result record to compare the numbers with")
    p.add_argument("--json", type=Path, default=None, help="write the result record (with the stage table) here")
    p.add_argument("--profile", type=Path, default=None, help="also write a cProfile dump here")
    p.add_argument("--label", default="", help="a name for this run in the table's title")
    a = p.parse_args()

    from characterbench.config import EvalConfig
    from characterbench.protocol import PROTOCOL_V1

    stages = Stages()
    instrument(stages)
    extra = {k: v for k, v in (("workers", a.workers), ("batch_size", a.batch_size)) if v is not None}
    protocol = PROTOCOL_V1.replace(image_resolution=a.image_resolution) if a.image_resolution else PROTOCOL_V1
    cfg = EvalConfig(pred=a.pred, gt=a.gt, task=a.task, metrics=tuple(a.metrics.split(",")), device=a.device,
                     bootstrap=a.bootstrap, protocol=protocol, **extra)
    results, run = timed_evaluate(cfg, stages, a.profile)
    print_table(stages, results, run, f"characterbench eval stages{' (' + a.label + ')' if a.label else ''}: task "
                f"{a.task}, {results.sample_count} samples, metrics {a.metrics}, --device {a.device}, bootstrap {a.bootstrap}")
    record = results.to_dict()
    print("metrics:", {k: round(v, 6) for k, v in record["metrics"].items()})
    if a.reference:
        ref = json.loads(a.reference.read_text())
        print(f"largest relative difference to {a.reference}: {compare(record, ref):.3g}")
    if a.json:
        record["stage_seconds"] = dict(stages.seconds)
        record["stage_run"] = run
        a.json.parent.mkdir(parents=True, exist_ok=True)
        a.json.write_text(json.dumps(record, indent=1))


if __name__ == "__main__":
    main()
