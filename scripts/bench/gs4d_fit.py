"""Benchmark of the 4D Gaussian fit: wall time, peak GPU memory, it/s and held-out quality per preset.

    python scripts/bench/gs4d_fit.py --data .whl-gs4d/packs/ada__dance.npz --sample ada__dance \
        --runs out/gs4d-bench --presets default,research,no_neighbour,no_gate,no_progressive

CPU runs at low resolution: add ``--device cpu --resolution 32 --set FIELD=VALUE ...`` (e.g. the demo's
settings, scripts/demo.py GS4D_CPU). Fits each preset (skipping fits whose ``fit.json`` exists, so a table can be re-made from earlier runs) and
prints a Markdown table. ``--rescore GT`` recomputes the held-out PSNR / SSIM / LPIPS from the saved renders
against the ground truth on this machine (for runs made where the LPIPS weights were absent).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))


def rescore(fit_dir: Path, gt: str, key: str) -> dict:
    import numpy as np
    from PIL import Image

    from reference_model.gs4d.data import load_views
    from reference_model.gs4d.runner import score

    record = json.loads((fit_dir / "fit.json").read_text())
    views, frames = record["split"]["eval_views"], record["split"]["eval_frames"]
    evals = load_views(gt, views, frames, key=key)
    pred = np.stack([[np.array(Image.open(fit_dir / "pred" / key / f"view{v:02d}" / f"frame{f:03d}.png").convert("RGB"))
                      for f in frames] for v in views])
    return score(pred, evals, tuple(record["config"]["background"]))


def fit_command(data: str, sample: str, out: Path, preset: str, device: str, resolution: int | None,
                sets: list[str], *extra: str) -> list[str]:
    """``charactershot fit4d`` of one sample without the ``.ply`` sequence (``sets``: ``FIELD=JSON`` overrides)."""
    cmd = [sys.executable, "-m", "reference_model.cli", "fit4d", "--data", data, "--sample", sample, "--out", str(out),
           "--preset", preset, "--device", device, "--quiet", "--no-ply", *extra]
    cmd += ["--resolution", str(resolution)] if resolution else []
    return cmd + [x for item in sets for x in ("--set", item)]


def print_table(rows: list[dict], out: str | None) -> None:
    """Print the Markdown table of fit records, and write it to ``out`` when given."""
    text = table(rows)
    print(text)
    if out:
        Path(out).write_text(text + "\n")


def table(rows: list[dict]) -> str:
    head = ("| preset | device | steps | images | fit s | coarse / windows / final s | peak GPU MiB | it/s | Gaussians "
            "| held-out PSNR | SSIM | LPIPS | initial held-out PSNR | train PSNR |")
    lines = [head, "|" + "|".join(["---"] * (head.count("|") - 1)) + "|"]
    for r in rows:
        st = r["wall_seconds"]["stages"]
        windows = sum(v for k, v in st.items() if k.startswith("window"))
        held, init, train = r["metrics"]["heldout"], r["metrics"]["initial_heldout"], r["metrics"]["train"]
        mem = r["peak_gpu_memory_bytes"]
        lp = "n/a" if held.get("lpips") is None else f"{held['lpips']:.4f}"
        lines.append(
            f"| {r['preset']} | {r['device']} | {r['iterations']['total']} | {r['iterations']['images']} "
            f"| {r['wall_seconds']['fit']:.1f} | {st.get('coarse', 0):.1f} / {windows:.1f} / {st.get('final', 0):.1f} "
            f"| {'n/a' if mem is None else f'{mem / 2**20:.0f}'} | {r['it_per_s']:.1f} "
            f"| {r['gaussians']['initial']} -> {r['gaussians']['final']} | {held['psnr']:.2f} | {held['ssim']:.4f} | {lp} "
            f"| {init['psnr']:.2f} | {train['psnr']:.2f} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", help="sample source or pack (needed to run fits)")
    parser.add_argument("--sample", default="ada__dance")
    parser.add_argument("--runs", required=True, help="folder of fits: <runs>/<preset>/<sample>/fit.json")
    parser.add_argument("--presets", default="default,research,no_neighbour,no_gate,no_progressive")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--resolution", type=int, help="fit at this side (CPU runs)")
    parser.add_argument("--set", action="append", default=[], metavar="FIELD=JSON", help="config override for every fit")
    parser.add_argument("--rescore", help="ground truth to rescore the held-out renders against (LPIPS here)")
    parser.add_argument("--out", help="write the table (Markdown) here too")
    args = parser.parse_args(argv)
    runs = Path(args.runs)
    rows = []
    for preset in args.presets.split(","):
        fit_dir = runs / preset / args.sample
        if not (fit_dir / "fit.json").is_file():
            if not args.data:
                print(f"{preset}: no fit in {fit_dir} and no --data to make one", file=sys.stderr)
                continue
            cmd = fit_command(args.data, args.sample, fit_dir, preset, args.device, args.resolution, args.set)
            if subprocess.call(cmd, cwd=ROOT) != 0:
                print(f"{preset}: fit failed", file=sys.stderr)
                continue
        record = json.loads((fit_dir / "fit.json").read_text())
        if args.rescore:
            record["metrics"]["heldout"] = rescore(fit_dir, args.rescore, args.sample)
        rows.append(record)
    print_table(rows, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
