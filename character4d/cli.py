"""``character4d`` command line: render, preview, inspect, default-data.

Thin on purpose: each subcommand parses its flags into a config and calls one library function.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
from dataclasses import fields
from pathlib import Path

from character4d.config import ENGINES, POSE_VARIANTS, ROOT_MOTIONS, RenderConfig


def _config_help(name: str) -> str:
    """The attribute's line from RenderConfig's docstring, so --help and the code never disagree."""
    doc = RenderConfig.__doc__ or ""
    for line in doc.splitlines():
        line = line.strip()
        if line.startswith(f"{name}:"):
            return line.split(":", 1)[1].strip()
    return ""


def _add_render_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--characters", nargs="+", type=Path, help="character files or folders (default: embedded data)")
    p.add_argument("--motions", nargs="+", type=Path, help="motion files or folders (default: embedded data)")
    p.add_argument("--out", type=Path, required=True, help="output directory")
    p.add_argument("--pairing", choices=("product", "zip"), default="product",
                   help="every character x every motion (product), or one motion per character (zip)")
    p.add_argument("--shard", default="0/1", help="I/N: render every N-th job starting at I (default 0/1)")
    p.add_argument("--format", dest="fmt", choices=("shards", "folders"), default="shards")
    p.add_argument("--samples-per-tar", type=int, default=8, help="samples per shard tar (default 8)")
    p.add_argument("--resolution", type=int, default=512, help=_config_help("resolution"))
    p.add_argument("--frames", type=int, default=25, help=_config_help("num_frames"))
    p.add_argument("--views", type=int, default=21, help=_config_help("num_views"))
    p.add_argument("--fps", type=float, default=15.0, help=_config_help("fps"))
    p.add_argument("--start", type=float, default=0.0, help=_config_help("start"))
    p.add_argument("--engine", choices=ENGINES, default="cycles", help=_config_help("engine"))
    p.add_argument("--samples", type=int, default=None, help=_config_help("samples"))
    p.add_argument("--no-denoise", action="store_true", help="disable the Cycles denoiser")
    p.add_argument("--seed", type=int, default=0, help=_config_help("seed"))
    p.add_argument("--mask", action="store_true", help=_config_help("mask"))
    p.add_argument("--depth", action="store_true", help=_config_help("depth"))
    p.add_argument("--hands", action="store_true", help=_config_help("hands"))
    p.add_argument("--pose-variant", choices=POSE_VARIANTS, default="openpose", help=_config_help("pose_variant"))
    p.add_argument("--height", type=float, default=None, help=_config_help("height"))
    p.add_argument("--root-motion", choices=ROOT_MOTIONS, default="center", help=_config_help("root_motion"))
    p.add_argument("--no-face-front", action="store_true", help="keep each motion's own heading")
    p.add_argument("--threads", type=int, default=0, help=_config_help("threads"))
    for name in ("radius", "cam_height", "fov_deg", "elevation_deg", "apose_arm_deg"):
        default = {f.name: f.default for f in fields(RenderConfig)}[name]
        p.add_argument(f"--{name.replace('_', '-')}", type=float, default=default, help=_config_help(name))
    p.add_argument("--ray", type=int, metavar="N", default=None,
                   help="fan the job list out as N shards over a Ray cluster (needs `pip install ray`)")
    p.add_argument("--quiet", action="store_true", help="no progress output")


def _render_config(a: argparse.Namespace) -> RenderConfig:
    return RenderConfig(
        resolution=a.resolution, num_frames=a.frames, fps=a.fps, start=a.start, num_views=a.views,
        radius=a.radius, cam_height=a.cam_height, fov_deg=a.fov_deg, elevation_deg=a.elevation_deg,
        engine=a.engine, samples=a.samples, denoise=not a.no_denoise, seed=a.seed, mask=a.mask, depth=a.depth,
        hands=a.hands, pose_variant=a.pose_variant, apose_arm_deg=a.apose_arm_deg, height=a.height,
        root_motion=a.root_motion, face_front=not a.no_face_front, threads=a.threads,
    )


def cmd_render(a: argparse.Namespace) -> int:
    from character4d.jobs import parse_shard
    from character4d.pipeline import render

    cfg = _render_config(a)
    if a.ray is not None:
        from character4d.ray_driver import render_with_ray

        summaries = render_with_ray(a.characters, a.motions, a.out, cfg, a.ray, fmt=a.fmt,
                                    samples_per_tar=a.samples_per_tar, pairing=a.pairing)
        failed = sum(len(s["failed"]) for s in summaries)
        print(f"ray: {len(summaries)} shards done, {sum(len(s['done']) for s in summaries)} samples rendered, "
              f"{failed} failed; output in {a.out}")
        return 1 if failed else 0
    shard = parse_shard(a.shard)
    summary = render(a.characters, a.motions, a.out, cfg, shard=shard, fmt=a.fmt,
                     samples_per_tar=a.samples_per_tar, progress=not a.quiet, pairing=a.pairing)
    print(f"shard {shard[0]}/{shard[1]}: {len(summary.done)} rendered, {len(summary.skipped)} already done, "
          f"{len(summary.failed)} failed in {summary.seconds:.1f} s; manifest: {summary.manifest}")
    for key, reason in summary.failed.items():
        print(f"  FAILED {key}: {reason}")
    return 1 if summary.failed else 0


def cmd_preview(a: argparse.Namespace) -> int:
    from character4d.format import open_samples
    from character4d.preview import write_preview

    found = 0
    for sample in open_samples(a.sample, keys=a.key):
        png, gif = write_preview(sample, a.out / sample.key, view=a.view)
        print(f"{sample.key}: {png}  {gif}")
        found += 1
    if not found:
        print(f"no samples found in {a.sample}" + (f" with keys {a.key}" if a.key else ""), file=sys.stderr)
        return 1
    return 0


@contextlib.contextmanager
def _quiet_fds():
    """Silence Blender's C-level prints (fd 1 and 2) for the duration."""
    sys.stdout.flush()
    sys.stderr.flush()
    saved = os.dup(1), os.dup(2)
    null = os.open(os.devnull, os.O_WRONLY)
    os.dup2(null, 1)
    os.dup2(null, 2)
    try:
        yield
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os.dup2(saved[0], 1)
        os.dup2(saved[1], 2)
        for fd in (*saved, null):
            os.close(fd)


def cmd_inspect(a: argparse.Namespace) -> int:
    from character4d.inspect import inspect_file

    status = 0
    for path in a.files:
        with _quiet_fds():
            report, ok = inspect_file(path)
        print(report)
        status |= 0 if ok else 1
    return status


def cmd_default_data(a: argparse.Namespace) -> int:
    from character4d.pipeline import default_inputs

    chars, motions = default_inputs()
    for p in chars + motions:
        print(p)
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="character4d", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("render", help="render characters x motions into 21-view shards or folders")
    _add_render_args(p)
    p.set_defaults(fn=cmd_render)
    p = sub.add_parser("preview", help="write a contact sheet PNG and a GIF for samples")
    p.add_argument("sample", type=Path, help="a shard .tar, a folder of shards, or a folder export")
    p.add_argument("--key", nargs="+", default=None, help="only these sample keys")
    p.add_argument("--out", type=Path, default=Path("previews"), help="output folder (default ./previews)")
    p.add_argument("--view", type=int, default=0, help="view shown in the GIF (default 0)")
    p.set_defaults(fn=cmd_preview)
    p = sub.add_parser("inspect", help="show what a character/motion file holds and how its skeleton maps")
    p.add_argument("files", nargs="+", type=Path)
    p.set_defaults(fn=cmd_inspect)
    p = sub.add_parser("default-data", help="generate (once) and list the embedded default data")
    p.set_defaults(fn=cmd_default_data)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.fn(args)
    except (ValueError, FileNotFoundError) as exc:
        print(f"character4d {args.command}: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
