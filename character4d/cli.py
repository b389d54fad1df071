"""``character4d`` command line: render, preview, inspect, default-data, export, import.

Thin on purpose: each subcommand parses its flags into a config and calls one library function.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
from pathlib import Path

from character4d.config import (
    CODECS,
    ENGINES,
    OUTPUT_FORMATS,
    PAIRINGS,
    POSE_VARIANTS,
    RIG_FIELDS,
    ROOT_MOTIONS,
    RunConfig,
    RunPlan,
    field_docs,
    parse_start,
)
from character4d.charactershot_layouts import EXPORT_LAYOUTS
from character4d.errors import EXIT_BAD_INPUT, EXIT_OK, exit_code

# Flag names that differ from the config field (short names users already type).
_FLAG_NAMES = {"num_frames": "frames", "num_views": "views"}
_CHOICES = {"engine": ENGINES, "pose_variant": POSE_VARIANTS, "root_motion": ROOT_MOTIONS, "codec": CODECS}
_OPTIONAL_TYPES = {"samples": int, "height": float, "png_level": int}  # fields whose default is None


def _config_docs() -> dict[str, str]:
    """Every config field's full documentation (rig fields from RigConfig's own docstring)."""
    from character4d.cameras import RigConfig

    run, rig = field_docs(RunConfig), field_docs(RigConfig)
    docs = {name: doc for name, doc in run.items() if name != "rig"}
    docs.update({flat: rig[rig_name] for flat, rig_name in RIG_FIELDS.items()})
    return docs


def _add_config_args(p: argparse.ArgumentParser) -> None:
    """One flag per RunConfig field (rig fields flat), with the field's full doc and default as help."""
    docs = _config_docs()
    defaults = RunConfig().to_json()
    group = p.add_argument_group("render settings (RunConfig)")
    for name, default in defaults.items():
        flag = "--" + _FLAG_NAMES.get(name, name).replace("_", "-")
        doc = docs[name].replace("%", "%%")
        if isinstance(default, bool):
            if default:  # on by default: the flag turns it off
                group.add_argument("--no-" + flag[2:], dest=name, action="store_false",
                                   help=f"switch off (on by default): {doc}")
            else:
                group.add_argument(flag, dest=name, action="store_true", help=doc)
            continue
        kwargs: dict = {"dest": name, "default": default, "help": f"{doc} (default: {default})"}
        if name in _CHOICES:
            kwargs["choices"] = _CHOICES[name]
        elif name == "start":
            kwargs["type"] = parse_start
            kwargs["metavar"] = "auto|SECONDS"
        elif default is None:  # optional numbers
            kwargs["type"] = _OPTIONAL_TYPES[name]
        else:
            kwargs["type"] = type(default)
        group.add_argument(flag, **kwargs)


def _add_render_args(p: argparse.ArgumentParser) -> None:
    plan_docs, plan = field_docs(RunPlan), RunPlan()
    p.add_argument("--characters", nargs="+", type=Path, help="character files or folders (default: embedded data)")
    p.add_argument("--motions", nargs="+", type=Path, help="motion files or folders (default: embedded data)")
    p.add_argument("--out", type=Path, required=True, help="output directory")
    group = p.add_argument_group("job list and output (RunPlan)")
    group.add_argument("--pairing", choices=PAIRINGS, default=plan.pairing, help=plan_docs["pairing"])
    group.add_argument("--shard", default="0/1", metavar="I/N", help=plan_docs["shard"] + " (default 0/1)")
    group.add_argument("--format", dest="fmt", choices=OUTPUT_FORMATS, default=plan.fmt, help=plan_docs["fmt"])
    group.add_argument("--samples-per-tar", type=int, default=plan.samples_per_tar,
                       help=f"{plan_docs['samples_per_tar']} (default {plan.samples_per_tar})")
    group.add_argument("--retry-failed", action="store_true", help=plan_docs["retry_failed"])
    group.add_argument("--max-attempts", type=int, default=plan.max_attempts,
                       help=f"{plan_docs['max_attempts']} (default {plan.max_attempts})")
    _add_config_args(p)
    p.add_argument("--ray", type=int, metavar="N", default=None,
                   help="fan the job list out as N shards over a Ray cluster (RAY_ADDRESS, or a local one)")
    p.add_argument("--ray-cpus", type=int, default=None,
                   help="start the local Ray cluster with this many CPUs (default: all); ignored with RAY_ADDRESS")
    p.add_argument("--quiet", action="store_true", help="no progress output")


def _run_plan(a: argparse.Namespace, shard: tuple[int, int] = (0, 1)) -> RunPlan:
    return RunPlan(pairing=a.pairing, shard=shard, fmt=a.fmt, samples_per_tar=a.samples_per_tar,
                   retry_failed=a.retry_failed, max_attempts=a.max_attempts)


def _render_config(a: argparse.Namespace) -> RunConfig:
    return RunConfig.from_json({name: getattr(a, name) for name in RunConfig().to_json()})


def _print_summary(summary) -> None:
    shard = summary.shard
    print(f"shard {shard[0]}/{shard[1]}: {len(summary.done)} rendered, {len(summary.skipped)} already done, "
          f"{len(summary.failed)} failed (bad input), {len(summary.crashed)} crashed in {summary.seconds:.1f} s; "
          f"manifest: {summary.manifest}")
    for key, reason in summary.failed.items():
        print(f"  FAILED {key}: {reason}")
    for key, reason in summary.crashed.items():
        print(f"  CRASHED {key}: {reason}")
    for warning in summary.warnings:
        print(f"  WARNING {warning}")


def cmd_render(a: argparse.Namespace) -> int:
    from character4d.jobs import parse_shard
    from character4d.pipeline import render

    cfg = _render_config(a)
    if a.ray is not None:
        from character4d.ray_driver import render_with_ray

        summaries = render_with_ray(a.characters, a.motions, a.out, cfg, a.ray, _run_plan(a), num_cpus=a.ray_cpus)
        for summary in summaries:
            _print_summary(summary)
        bad = sum(len(s.failed) + len(s.crashed) for s in summaries)
        print(f"ray: {len(summaries)} shards, {sum(len(s.done) for s in summaries)} samples rendered, "
              f"{bad} failed or crashed; output in {a.out}")
        return EXIT_BAD_INPUT if bad else EXIT_OK
    summary = render(a.characters, a.motions, a.out, cfg, _run_plan(a, parse_shard(a.shard)), progress=not a.quiet)
    _print_summary(summary)
    return EXIT_OK if summary.ok else EXIT_BAD_INPUT


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


def cmd_export(a: argparse.Namespace) -> int:
    from character4d import charactershot_layouts as layouts
    from character4d.format import export_folders

    if a.layout == "folders":
        keys = [p.name for p in export_folders(a.src, a.out, keys=a.key)]
    elif a.layout == "charactershot-train":
        keys = layouts.export_charactershot_train(a.src, a.out, keys=a.key)
    else:
        keys = layouts.export_charactershot_inference(a.src, a.out, keys=a.key, reference=a.reference)
    print(f"exported {len(keys)} samples ({a.layout}) to {a.out}")
    return EXIT_OK if keys else EXIT_BAD_INPUT


def cmd_import(a: argparse.Namespace) -> int:
    from character4d.charactershot_layouts import import_character4d

    keys = import_character4d(a.src, a.out, fps=a.fps, sequences=a.sequences, fmt=a.fmt)
    print(f"imported {len(keys)} sequences as samples into {a.out}: {', '.join(keys)}")
    return EXIT_OK


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
    from character4d.inspection import inspect_file

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
    parser = argparse.ArgumentParser(prog="character4d", description="Character4D dataset builder: render, "
                                     "preview, inspect, default-data, export, import.")
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
    p = sub.add_parser("export", help="write samples in another layout: sample folders, or the released "
                                      "CharacterShot training / inference layouts")
    p.add_argument("src", type=Path, help="shards, a render output, sample folders (anything open_samples reads)")
    p.add_argument("--layout", choices=("folders", *EXPORT_LAYOUTS), required=True,
                   help="folders: <key>/motion/view00/000.png ...; charactershot-train: render_results/"
                        "binded_motion/<seq>/view{k}/<i>.png, binded_pose/<seq>/<i>.png and train.txt; "
                        "charactershot-inference: images/<id>/view{k}.png and poses/<id>/<i>.png at 720 x 480")
    p.add_argument("--out", type=Path, required=True, help="output root")
    p.add_argument("--key", nargs="+", default=None, help="only these sample keys")
    p.add_argument("--reference", choices=("apose", "frame0"), default="apose",
                   help="charactershot-inference: the reference image of each view (default apose)")
    p.set_defaults(fn=cmd_export)
    p = sub.add_parser("import", help="turn a folder in the released Character4D layout into samples")
    p.add_argument("src", type=Path, help="the root holding render_results/binded_motion (and binded_pose)")
    p.add_argument("--out", type=Path, required=True, help="output folder")
    p.add_argument("--fps", type=float, default=15.0, help="frame rate of the renders (default 15)")
    p.add_argument("--sequences", nargs="+", default=None, help="only these sequence folders")
    p.add_argument("--format", dest="fmt", choices=("folders", "shards"), default="folders")
    p.set_defaults(fn=cmd_import)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run the ``character4d`` command line; returns the exit status (character4d.errors: 0 ok, 1 bad input,
    2 usage)."""
    args = build_parser().parse_args(argv)
    try:
        return args.fn(args)
    except (ValueError, TypeError, OSError) as exc:
        print(f"character4d {args.command}: error: {exc}", file=sys.stderr)
        return exit_code(exc)


if __name__ == "__main__":
    sys.exit(main())
