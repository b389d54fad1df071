"""``charactershot train``: train stage 1 (``--stage 2d``) or stage 2 (``--stage multiview``) on character4d data.

Single process: ``charactershot train --stage 2d --config reference_model/configs/small-c4d-2d.json``.
Several GPUs or nodes: ``accelerate launch --config_file reference_model/configs/accelerate/zero2.yaml
-m reference_model.cli train ...`` (see docs/training.md). The run resumes exactly with ``--resume latest``.
"""

from __future__ import annotations

import argparse
import json

# reference_model.data.STAGES, repeated so that `charactershot train --help` imports no torch.
STAGES = ("2d", "multiview")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--stage", choices=STAGES, required=True, help="2d: stage 1; multiview: stage 2")
    parser.add_argument("--config", required=True, help="training config (JSON; reference_model/configs/)")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="override a config field, e.g. max_steps=100 or data.root=out/c4d (repeatable)")
    parser.add_argument("--output-dir", help="where checkpoints, logs and the model go (config: output_dir)")
    parser.add_argument("--init-from", help="stage 2: a stage-1 model folder or training output to start from")
    parser.add_argument("--resume", help="'latest' or a checkpoint folder")
    parser.add_argument("--cpu", action="store_true", help="train on the CPU even when a GPU is present")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")


def run(args: argparse.Namespace) -> int:
    from reference_model.training.config import load_config

    overrides = list(args.overrides)
    if args.output_dir:
        overrides.append(f"output_dir={json.dumps(args.output_dir)}")
    if args.init_from:
        overrides.append(f"init_from={json.dumps(args.init_from)}")
    try:
        config = load_config(args.config, overrides, stage=args.stage)
    except (FileNotFoundError, ValueError, TypeError) as exc:
        print(f"charactershot train: {exc}")
        return 1
    from reference_model.training.trainer import Trainer

    try:
        trainer = Trainer(config, resume=args.resume, cpu=args.cpu, progress=not args.quiet)
    except (FileNotFoundError, FileExistsError, ValueError) as exc:  # missing or unfit weights, existing run
        print(f"charactershot train: {exc}")
        return 1
    summary = trainer.train()
    if trainer.accelerator.is_main_process:
        print(f"trained stage {config.stage}: {summary['step']} steps, final loss {summary['loss']:.5f}, "
              f"{summary['parameters'] / 1e6:.2f} M parameters, {summary['seconds']:.1f} s; model in {config.output_dir}/model")
    return 0
