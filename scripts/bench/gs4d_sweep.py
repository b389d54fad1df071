"""Sweep of 4D Gaussian fit settings on one sample: held-out quality per variant, several fits sharing the GPU.

    python scripts/bench/gs4d_sweep.py --data .whl-gs4d/packs/ada__dance.npz --sample ada__dance \
        --variants scripts/bench/gs4d_variants/speed.json --runs out/gs4d-sweep --parallel 4

A variant is a set of ``Gs4dConfig`` overrides of a preset (``{"name": {"preset": "default", "final_steps": 1400}}``).
The first variant runs alone, so its wall time is clean; the others run ``--parallel`` at a time, so their
wall times are not comparable (the table says how many fits shared the GPU) but their quality is: a fit's
result depends on its steps, not on how fast they ran. Finished fits (``fit.json``) are skipped.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "scripts" / "bench"))

from gs4d_fit import fit_command, print_table  # noqa: E402


def _command(args: argparse.Namespace, name: str, spec: dict) -> list[str]:
    spec = dict(spec)
    preset = spec.pop("preset", "default")
    sets = [f"{field}={json.dumps(value)}" for field, value in spec.items()]
    return fit_command(args.data, args.sample, Path(args.runs) / name / args.sample, preset, args.device,
                       args.resolution, sets, "--no-orbit")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", required=True)
    parser.add_argument("--sample", default="ada__dance")
    parser.add_argument("--variants", required=True, help="JSON file: {name: {preset?, field: value, ...}}")
    parser.add_argument("--runs", required=True)
    parser.add_argument("--parallel", type=int, default=4, help="fits sharing the GPU after the first")
    parser.add_argument("--deadline", type=float, default=1e9, help="seconds from now; later fits are stopped")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--resolution", type=int)
    parser.add_argument("--out", help="write the table (Markdown) here too")
    args = parser.parse_args(argv)
    variants = json.loads(Path(args.variants).read_text())
    runs = Path(args.runs)
    start = time.monotonic()
    shared: dict[str, int] = {}
    todo = [n for n in variants if not (runs / n / args.sample / "fit.json").is_file()]
    running: list[tuple[subprocess.Popen, str]] = []
    for i, name in enumerate(todo):
        limit = 1 if i == 0 else args.parallel
        while len(running) >= limit or (i == 1 and running):
            _reap(running, start, args.deadline)
        (runs / name / args.sample).mkdir(parents=True, exist_ok=True)
        log = open(runs / name / args.sample / "stdout.txt", "w")
        running.append((subprocess.Popen(_command(args, name, variants[name]), stdout=log, stderr=subprocess.STDOUT,
                                         cwd=ROOT), name))
        for _, n in running:
            shared[n] = max(shared.get(n, 1), len(running))
        print(f"[{time.monotonic() - start:6.1f}s] started {name} ({len(running)} running)", flush=True)
    while running:
        _reap(running, start, args.deadline)
    rows = []
    for name in variants:
        fit_json = runs / name / args.sample / "fit.json"
        if fit_json.is_file():
            record = json.loads(fit_json.read_text())
            record["preset"] = f"{name} ({shared.get(name, 1)} on GPU)"
            rows.append(record)
    print_table(rows, args.out)
    return 0


def _reap(running: list, start: float, deadline: float) -> None:
    time.sleep(1.0)
    for proc, name in list(running):
        if time.monotonic() - start > deadline and proc.poll() is None:
            proc.kill()
            print(f"[{time.monotonic() - start:6.1f}s] {name} stopped at the deadline", flush=True)
        if proc.poll() is not None:
            running.remove((proc, name))
            print(f"[{time.monotonic() - start:6.1f}s] {name} exit {proc.returncode}", flush=True)


if __name__ == "__main__":
    sys.exit(main())
