"""Leaderboard rows of the 4D Gaussian reference model: fit every registered ground-truth sample, score, submit.

Steps (each re-runnable; finished fits are skipped):

    # CPU: compact packs of what the fits need (12 training views x all frames + 9 held-out views x protocol frames)
    python scripts/gs4d_leaderboard.py pack --gt out/board-gt --out .whl-gs4d/packs
    # GPU (scripts/gpu/gs4d_run.sh): fit, in priority order, within a deadline
    python scripts/gs4d_leaderboard.py fit --data .whl-gs4d/packs --runs /tmp/runs --jobs default,no_neighbour
    python scripts/gs4d_leaderboard.py bundle --runs $OUT/runs --out $OUT        # held-out renders -> one .npz per preset
    # CPU: unpack, score with characterbench eval, submit one row per preset that covers every sample
    python scripts/gs4d_leaderboard.py unbundle --bundles DIR --runs out/gs4d-runs
    python scripts/gs4d_leaderboard.py submit --runs out/gs4d-runs --gt out/board-gt

A row is submitted only when every sample of the ground truth was fitted with that preset; its label states
the split (12 training views, the protocol's 9 views held out). When a fit of the preset kept its ``.ply``
sequence, the row links a splat player page of it (``charactershot view``, ``characterbench submit --viewer``).
"""

from __future__ import annotations

import argparse
import io
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

PRESET_ROWS = {
    "default": "gs4d (neighbour-constrained 4DGS, toolkit default)",
    "research": "gs4d research preset (released CharacterShot schedule, fixed)",
    "no_neighbour": "gs4d ablation: no neighbour loss",
    "no_gate": "gs4d ablation: neighbour loss without gate",
    "no_progressive": "gs4d ablation: no progressive windows",
}
METRICS = "ssim,psnr,lpips,fvd_f,fvd_v,fvd_d,fv4d"


def cmd_pack(args: argparse.Namespace) -> int:
    from character4d.format import open_samples
    from reference_model.gs4d.config import PROTOCOL_FRAMES, SplitConfig
    from reference_model.gs4d.data import write_pack

    out = Path(args.out)
    total = 0
    keys = None if args.samples == "all" else args.samples.split(",")
    for sample in open_samples(args.gt, keys=keys, validate=False):
        train, evals = SplitConfig().views(sample.num_views)
        cells = {v: None for v in train} | {v: list(PROTOCOL_FRAMES) for v in evals}
        path = write_pack(sample, out / f"{sample.key}.npz", cells)
        size = path.stat().st_size
        total += size
        print(f"{sample.key}: {size / 2**20:.1f} MiB -> {path}")
    print(f"total {total / 2**20:.1f} MiB")
    return 0


def _keys(data: Path) -> list[str]:
    if data.is_dir() and any(p.suffix == ".npz" for p in data.iterdir()):
        return sorted(p.stem for p in data.glob("*.npz"))
    from character4d.format import open_samples

    return [s.key for s in open_samples(data, validate=False)]


def _source(data: Path, key: str) -> Path:
    pack = data / f"{key}.npz"
    return pack if pack.is_file() else data


def _fit_command(data: Path, runs: Path, key: str, preset: str, extra: list[str]) -> list[str]:
    return [sys.executable, "-m", "reference_model.cli", "fit4d", "--data", str(_source(data, key)), "--sample", key,
            "--out", str(runs / preset / key), "--preset", preset, "--quiet", *extra]


def _jobs(spec: str, keys: list[str]) -> list[tuple[str, str]]:
    """``"default:all,no_gate:ada__dance"`` -> [(preset, key), ...] in that order (``preset`` alone = all)."""
    jobs = []
    for item in filter(None, (x.strip() for x in spec.split(","))):
        preset, _, which = item.partition(":")
        for key in keys if which in ("", "all") else [which]:
            if (preset, key) not in jobs:
                jobs.append((preset, key))
    return jobs


def cmd_fit(args: argparse.Namespace) -> int:
    """Foreground jobs run one after another in this process (the first alone, so its timing is clean);
    ``--background`` jobs run alongside as separate processes, started after the first foreground fit. A
    foreground fit is not started when its expected duration would pass the deadline; background fits still
    running at the deadline are stopped. Finished fits (``fit.json`` present) are skipped."""
    from reference_model.gs4d.config import preset as make_preset
    from reference_model.gs4d.runner import fit_sample

    data, runs = Path(args.data), Path(args.runs)
    runs.mkdir(parents=True, exist_ok=True)
    overrides = {k: json.loads(v) for k, _, v in (item.partition("=") for item in args.set)}
    keys = _keys(data) if args.samples == "all" else args.samples.split(",")
    if args.first in keys:
        keys = [args.first] + [k for k in keys if k != args.first]
    start = time.monotonic()
    deadline = start + args.deadline
    durations: dict[str, float] = {}
    background: list[tuple[subprocess.Popen, str]] = []
    env = dict(os.environ, PYTHONPATH=f"{ROOT}{os.pathsep}{os.environ.get('PYTHONPATH', '')}")
    log = open(runs / "fit-log.txt", "a")

    def say(text: str) -> None:
        print(f"[{time.monotonic() - start:6.1f}s] {text}", file=log, flush=True)
        print(f"[{time.monotonic() - start:6.1f}s] {text}", flush=True)

    def launch_background() -> None:
        for preset, key in _jobs(args.background, keys):
            if (runs / preset / key / "fit.json").is_file():
                continue
            (runs / preset / key).mkdir(parents=True, exist_ok=True)
            out = open(runs / preset / key / "stdout.txt", "w")
            sets = [x for item in args.set for x in ("--set", item)]
            proc = subprocess.Popen(_fit_command(data, runs, key, preset, ["--no-ply", *sets]), stdout=out,
                                    stderr=subprocess.STDOUT, env=env, cwd=ROOT)
            background.append((proc, f"{preset}/{key}"))
            say(f"started {preset}/{key} (background)")

    launched = False
    for i, (preset, key) in enumerate(_jobs(args.jobs, keys)):
        if (runs / preset / key / "fit.json").is_file():
            continue
        expected = durations.get(preset, durations.get("default", args.estimate))
        if time.monotonic() + expected > deadline:
            say(f"skipped {preset}/{key}: {expected:.0f} s would pass the deadline")
            continue
        t0 = time.monotonic()
        try:
            record = fit_sample(_source(data, key), runs / preset / key, key, make_preset(preset, **overrides),
                                ply=(i == 0 and not args.no_ply), progress=False)
            held = record["metrics"]["heldout"]
            say(f"{preset}/{key}: fit {record['wall_seconds']['fit']:.1f} s, PSNR {held['psnr']:.2f}, "
                f"SSIM {held['ssim']:.4f}, LPIPS {held['lpips']} ({time.monotonic() - t0:.1f} s with outputs, "
                f"{len(background)} background)")
        except Exception as exc:  # one failed fit must not lose the others; the log says why
            say(f"{preset}/{key} failed: {type(exc).__name__}: {exc}")
        durations[preset] = time.monotonic() - t0
        if not launched:
            launch_background()
            launched = True
    if not launched:
        launch_background()
    for proc, name in background:
        try:
            proc.wait(timeout=max(deadline - time.monotonic(), 1))
            say(f"{name} exit {proc.returncode}")
        except subprocess.TimeoutExpired:
            proc.kill()
            say(f"{name} stopped at the deadline")
    log.close()
    return 0


def cmd_bundle(args: argparse.Namespace) -> int:
    """One ``<preset>.npz`` per preset: the held-out renders (WebP lossless) and every fit.json."""
    from PIL import Image

    runs, out = Path(args.runs), Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    for preset_dir in sorted(p for p in runs.iterdir() if p.is_dir()):
        arrays: dict[str, np.ndarray] = {}
        for fit_json in sorted(preset_dir.glob("*/fit.json")):
            key = fit_json.parent.name
            arrays[f"fit__{key}"] = np.frombuffer(fit_json.read_bytes(), dtype=np.uint8)
            for png in sorted((fit_json.parent / "pred" / key).glob("view*/frame*.png")):
                buf = io.BytesIO()
                Image.open(png).save(buf, "WEBP", lossless=True, quality=100, method=4, exact=True)
                arrays[f"img__{key}__{png.parent.name}__{png.stem}"] = np.frombuffer(buf.getvalue(), dtype=np.uint8)
        if arrays:
            np.savez(out / f"{preset_dir.name}.npz", **arrays)
            print(f"{preset_dir.name}: {(out / f'{preset_dir.name}.npz').stat().st_size / 2**20:.1f} MiB")
    return 0


def cmd_unbundle(args: argparse.Namespace) -> int:
    from PIL import Image

    runs = Path(args.runs)
    for bundle in sorted(Path(args.bundles).glob("*.npz")):
        preset = bundle.stem
        with np.load(bundle) as data:
            for name in data.files:
                parts = name.split("__")
                if parts[0] == "fit":
                    key = "__".join(parts[1:])
                    (runs / preset / key).mkdir(parents=True, exist_ok=True)
                    (runs / preset / key / "fit.json").write_bytes(data[name].tobytes())
                else:
                    key, view, frame = "__".join(parts[1:-2]), parts[-2], parts[-1]
                    folder = runs / preset / key / "pred" / key / view
                    folder.mkdir(parents=True, exist_ok=True)
                    Image.open(io.BytesIO(data[name].tobytes())).convert("RGB").save(folder / f"{frame}.png")
        print(f"{preset}: unpacked into {runs / preset}")
    return 0


def _pred_folder(runs: Path, preset: str, keys: list[str]) -> Path:
    """A prediction folder holding every sample (symbolic links to each fit's pred/<key>)."""
    folder = runs / preset / "_pred"
    folder.mkdir(parents=True, exist_ok=True)
    for key in keys:
        link = folder / key
        if not link.exists():
            link.symlink_to((runs / preset / key / "pred" / key).resolve(), target_is_directory=True)
    return folder


def _viewer_page(runs: Path, preset: str, keys: list[str], max_gaussians: int) -> Path | None:
    """The row's splat player (``charactershot view``) of the first sample whose fit kept its ``.ply`` sequence."""
    for key in keys:
        fit_dir = runs / preset / key
        if (fit_dir / "ply").is_dir():
            page = fit_dir / "viewer.html"
            cmd = [sys.executable, "-m", "reference_model.cli", "view", str(fit_dir), "--out", str(page),
                   "--max-gaussians", str(max_gaussians), "--title", f"{PRESET_ROWS.get(preset, preset)}: {key}"]
            if subprocess.call(cmd, cwd=ROOT) == 0:
                return page
            print(f"{preset}: no viewer page ({' '.join(cmd)} failed)")
            return None
    return None


def cmd_submit(args: argparse.Namespace) -> int:
    from character4d.format import open_samples

    runs = Path(args.runs)
    keys = [s.key for s in open_samples(args.gt, validate=False)]
    status = 0
    for preset in args.presets.split(","):
        missing = [k for k in keys if not (runs / preset / k / "fit.json").is_file()]
        if missing:
            print(f"{preset}: not submitted, no fit of {missing}")
            continue
        fits = [json.loads((runs / preset / k / "fit.json").read_text()) for k in keys]
        split = fits[0]["split"]["label"]
        secs = [f["wall_seconds"]["fit"] for f in fits]
        devices = sorted({f["device"] for f in fits})
        label = f"{PRESET_ROWS.get(preset, 'gs4d ' + preset)} [{split}]"
        notes = (f"Reproduced here: charactershot fit4d --preset {preset}, one fit per sample on {', '.join(devices)}; "
                 f"fit wall time {min(secs):.0f}-{max(secs):.0f} s per sample ({', '.join(f'{s:.0f}' for s in secs)}); "
                 f"trained on rig views {split}; scored on the held-out protocol views. Made by scripts/gs4d_leaderboard.py.")
        if args.concurrent:
            notes += f" {args.concurrent}"
        results = runs / preset / "results.json"
        if not results.is_file() or args.rescore:
            cmd = [sys.executable, "-m", "characterbench.cli", "eval", "--pred", str(_pred_folder(runs, preset, keys)),
                   "--gt", args.gt, "--out", str(results), "--label", label, "--metrics", METRICS,
                   "--device", args.device, "--quiet"]
            print(" ".join(cmd))
            if subprocess.call(cmd, cwd=ROOT) != 0:
                status = 1
                continue
        # submit re-scores the predictions and stores their SHA-256 manifest (a verified row).
        cmd = [sys.executable, "-m", "characterbench.cli", "submit", str(results), "--name", label, "--notes", notes,
               "--pred", str(_pred_folder(runs, preset, keys)), "--gt", args.gt, "--device", args.device, "--quiet"]
        if args.board:
            cmd += ["--board", args.board]
        if args.replace:
            cmd.append("--replace")
        if page := _viewer_page(runs, preset, keys, args.viewer_gaussians):
            cmd += ["--viewer", str(page)]
        print(" ".join(cmd[:5]), "...")
        if subprocess.call(cmd, cwd=ROOT) != 0:
            status = 1
    return status


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("pack", help="compact packs of the training + held-out cells of every ground-truth sample")
    p.add_argument("--gt", required=True)
    p.add_argument("--out", required=True)
    p.add_argument("--samples", default="all", help="comma-separated keys (default: every sample)")
    p.set_defaults(func=cmd_pack)
    p = sub.add_parser("fit", help="fit the presets on every sample, within a deadline")
    p.add_argument("--data", required=True, help="folder of packs, or the ground truth itself")
    p.add_argument("--runs", required=True)
    p.add_argument("--jobs", default="default", help="foreground jobs in order: preset[:sample|all],...")
    p.add_argument("--background", default="", help="jobs run alongside, one process each: preset[:sample|all],...")
    p.add_argument("--samples", default="all")
    p.add_argument("--first", default="ada__dance", help="sample fitted first, alone (clean timing)")
    p.add_argument("--deadline", type=float, default=1e9, help="seconds from now")
    p.add_argument("--estimate", type=float, default=60.0, help="expected seconds of a fit before one was timed")
    p.add_argument("--no-ply", action="store_true")
    p.add_argument("--set", action="append", default=[], metavar="FIELD=JSON", help="config override for every fit")
    p.set_defaults(func=cmd_fit)
    p = sub.add_parser("bundle", help="held-out renders and fit.json files -> one .npz per preset")
    p.add_argument("--runs", required=True)
    p.add_argument("--out", required=True)
    p.set_defaults(func=cmd_bundle)
    p = sub.add_parser("unbundle", help="inverse of bundle")
    p.add_argument("--bundles", required=True)
    p.add_argument("--runs", required=True)
    p.set_defaults(func=cmd_unbundle)
    p = sub.add_parser("submit", help="characterbench eval + submit, one row per complete preset")
    p.add_argument("--runs", required=True)
    p.add_argument("--gt", required=True)
    p.add_argument("--presets", default=",".join(PRESET_ROWS))
    p.add_argument("--device", default="cpu")
    p.add_argument("--replace", action="store_true")
    p.add_argument("--board", help="board folder (default: characterbench's)")
    p.add_argument("--rescore", action="store_true")
    p.add_argument("--concurrent", default="", help="extra note, e.g. how many fits shared the GPU")
    p.add_argument("--viewer-gaussians", type=int, default=16384,
                   help="Gaussians in the row's viewer page (16,384 x 25 frames is ~7 MB)")
    p.set_defaults(func=cmd_submit)
    args = parser.parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
