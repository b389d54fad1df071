"""``charactershot fit4d``: fit a neighbour-constrained 4D Gaussian model to one character4d sample."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data", required=True, help="character4d shard / shard folder / sample folder / render output, or a gs4d pack (.npz)")
    parser.add_argument("--sample", help="sample key (default: the only sample in --data)")
    parser.add_argument("--out", required=True, help="output directory (fit.json, model/, ply/, pred/, orbit.gif)")
    parser.add_argument("--preset", default="default", help="default | research | no_neighbour | no_gate | no_progressive")
    parser.add_argument("--config", help="JSON file of Gs4dConfig field overrides")
    parser.add_argument("--set", action="append", default=[], metavar="FIELD=VALUE",
                        help="override one config field (JSON value), e.g. --set final_steps=500")
    parser.add_argument("--split", help="heldout (default) | all | heldout_times")
    parser.add_argument("--device", default="auto", help="auto (CUDA when available) | cpu | cuda")
    parser.add_argument("--backend", default="auto", help="rasteriser: auto | gsplat | torch")
    parser.add_argument("--resolution", type=int, help="fit at this side, a divisor of the sample's (default: native)")
    parser.add_argument("--no-ply", action="store_true", help="skip the per-frame .ply sequence")
    parser.add_argument("--no-orbit", action="store_true", help="skip the orbit GIF")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")


def _overrides(args: argparse.Namespace) -> dict:
    changes: dict = {}
    if args.config:
        changes.update(json.loads(Path(args.config).read_text()))
    for item in args.set:
        name, sep, value = item.partition("=")
        if not sep:
            raise ValueError(f"--set: expected FIELD=VALUE, got {item!r}")
        try:
            changes[name.strip()] = json.loads(value)
        except json.JSONDecodeError:
            changes[name.strip()] = value
    if args.split:
        changes["split"] = args.split
    if isinstance(changes.get("split"), dict):
        from reference_model.gs4d.config import SplitConfig

        changes["split"] = SplitConfig(**changes["split"])
    for name in ("multires", "background"):
        if isinstance(changes.get(name), list):
            changes[name] = tuple(changes[name])
    return changes


def run(args: argparse.Namespace) -> int:
    from character4d.format import SampleFormatError
    from reference_model.gs4d.config import preset
    from reference_model.gs4d.runner import fit_sample

    try:
        config = preset(args.preset, **_overrides(args))
    except (ValueError, TypeError, json.JSONDecodeError, OSError) as exc:
        print(f"charactershot fit4d: {exc}", file=sys.stderr)
        return 2
    try:
        record = fit_sample(args.data, args.out, args.sample, config, args.device, args.resolution, args.backend,
                            ply=not args.no_ply, orbit=not args.no_orbit, progress=not args.quiet)
    except (FileNotFoundError, SampleFormatError, ValueError) as exc:
        print(f"charactershot fit4d: {exc}", file=sys.stderr)
        return 1
    held = record["metrics"]["heldout"]
    lp = "n/a" if held["lpips"] is None else f"{held['lpips']:.4f}"
    print(f"{record['sample']}: fit {record['wall_seconds']['fit']:.1f} s, {record['iterations']['total']} steps, "
          f"held-out PSNR {held['psnr']:.2f} dB, SSIM {held['ssim']:.4f}, LPIPS {lp} -> {args.out}")
    return 0
