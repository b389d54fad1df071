"""``charactershot``: thin command line over the reference model.

Each subcommand lives in the module that owns its work and exposes two functions,
``add_arguments(parser)`` and ``run(args) -> int``; this file only dispatches, importing the module of the
command that runs (so ``charactershot --help`` loads no torch). Exit status: 0 on success, 1 when the
input is bad (missing sample, malformed checkpoint, ...), 2 for command-line usage errors.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import sys
from collections.abc import Sequence

# name -> (module, one-line help). The module provides add_arguments(parser) and run(args) -> int.
COMMANDS: dict[str, tuple[str, str]] = {
    "fit4d": ("reference_model.gs4d.cli", "fit a neighbour-constrained 4D Gaussian model to a character4d sample"),
    "generate": ("reference_model.generate", "multi-view video of a character from reference images and poses"),
    "train": ("reference_model.train", "train stage 1 (2d) or stage 2 (multiview) on character4d data"),
    "view": ("reference_model.export.viewer", "a self-contained web page that plays a .ply splat sequence"),
    "export-mesh": ("reference_model.export.mesh", "an animated glTF mesh from a fitted 4D Gaussian model"),
    "export-rig": ("reference_model.export.rig", "a skeletal animation of a character from 3D joints"),
}


def _available() -> dict[str, tuple[str, str]]:
    """The commands whose module is installed (a command lands with its module)."""
    found = {}
    for name, (module, text) in COMMANDS.items():
        try:
            if importlib.util.find_spec(module) is not None:
                found[name] = (module, text)
        except ModuleNotFoundError:  # a parent package of the module is absent
            continue
    return found


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="charactershot",
        description="The CharacterShot reference model: 4D Gaussian fitting, multi-view generation, training, exports.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, (module, text) in _available().items():
        # Arguments are added lazily below; help lists every command without importing them.
        sub.add_parser(name, help=text, description=text, add_help=False)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    commands = _available()
    if argv and argv[0] in commands:
        module_name, text = commands[argv[0]]
        module = importlib.import_module(module_name)
        parser = argparse.ArgumentParser(prog=f"charactershot {argv[0]}", description=text)
        module.add_arguments(parser)
        args = parser.parse_args(argv[1:])
        return int(module.run(args) or 0)
    parser = build_parser()
    parser.parse_args(argv)  # prints help / usage errors (exit 2)
    return 2


if __name__ == "__main__":
    sys.exit(main())
