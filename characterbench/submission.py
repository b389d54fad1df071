"""Scores nobody can fake: re-scoring a submitted record from its predictions, the SHA-256 manifest of
those predictions, and the verification of a whole board.

A record alone proves nothing (it only agrees with itself). ``characterbench submit RESULTS --pred DIR
--gt PATH`` therefore evaluates ``DIR`` again with the record's own task, metrics, bootstrap and seed
and refuses the record unless every number agrees within :data:`TOLERANCE`; the entry then stores the
prediction files' SHA-256 manifest, so the predictions behind a row can be checked later.
``characterbench leaderboard verify`` re-computes every baseline row from the ground truth (baselines
are deterministic functions of it) and every entry whose predictions are at hand.
"""

from __future__ import annotations

import hashlib
import math
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from characterbench.results import Results

# Agreement needed between a record and its re-scoring: |a - b| <= rel * max(|a|, |b|) + abs.
# Re-scoring on another device or batch size moves float32 network outputs (LPIPS, I3D logits) by about
# 1e-6 relative; Frechet distances of identical sets are round-off around 0 (1e-12 .. 1e-6), hence
# the absolute terms. Anything edited by hand is off by far more.
TOLERANCE = {"rel": 1e-4, "abs_cell": 1e-6, "abs_set": 1e-3}


def _close(a: float, b: float, absolute: float) -> bool:
    return math.isfinite(a) and math.isfinite(b) and abs(a - b) <= TOLERANCE["rel"] * max(abs(a), abs(b)) + absolute


def compare_records(claimed: Results, rescored: Results) -> list[str]:
    """Every number of ``claimed`` that its re-scoring does not reproduce (within :data:`TOLERANCE`).

    Compares the headline metrics, the sample keys and per-sample values, the per-cell grid, the
    clip counts, the bootstrap intervals and the weight hashes.

    Returns:
        One line per difference; empty when the record is reproduced.
    """
    from characterbench.metric_specs import METRICS

    problems = []

    def tol(metric: str) -> float:
        level = METRICS.get(metric).level if metric in METRICS else "set"
        return TOLERANCE["abs_set"] if level == "set" else TOLERANCE["abs_cell"]

    if set(claimed.metrics) != set(rescored.metrics):
        problems.append(f"metrics: the record has {sorted(claimed.metrics)}, re-scoring gives {sorted(rescored.metrics)}")
    for m in sorted(set(claimed.metrics) & set(rescored.metrics)):
        if not _close(claimed.metrics[m], rescored.metrics[m], tol(m)):
            problems.append(f"metrics.{m}: the record says {claimed.metrics[m]!r}, re-scoring gives {rescored.metrics[m]!r}")
    if [s.key for s in claimed.per_sample] != [s.key for s in rescored.per_sample]:
        problems.append("per_sample: the sample keys differ from the re-scoring's")
    else:
        for a, b in zip(claimed.per_sample, rescored.per_sample):
            for m in sorted(set(a.metrics) | set(b.metrics)):
                if m not in a.metrics or m not in b.metrics or not _close(a.metrics[m], b.metrics[m], tol(m)):
                    problems.append(f"per_sample[{a.key}].{m}: {a.metrics.get(m)!r} vs re-scored {b.metrics.get(m)!r}")
    for m in sorted(set(claimed.grid.values) | set(rescored.grid.values)):
        ga, gb = claimed.grid.values.get(m), rescored.grid.values.get(m)
        flat_a = [v for row in ga for v in row] if ga else []
        flat_b = [v for row in gb for v in row] if gb else []
        if len(flat_a) != len(flat_b) or not all(_close(x, y, tol(m)) for x, y in zip(flat_a, flat_b)):
            problems.append(f"grid.{m}: the per-cell values differ from the re-scoring's")
    if claimed.clip_counts != rescored.clip_counts:
        problems.append(f"clip_counts: {claimed.clip_counts} vs re-scored {rescored.clip_counts}")
    for m in sorted(set(claimed.intervals) | set(rescored.intervals)):
        a, b = claimed.intervals.get(m), rescored.intervals.get(m)
        if a is None or b is None:
            problems.append(f"intervals.{m}: present in only one of the record and its re-scoring")
        elif not (_close(a.low, b.low, TOLERANCE["abs_set"]) and _close(a.high, b.high, TOLERANCE["abs_set"])):
            problems.append(f"intervals.{m}: [{a.low!r}, {a.high!r}] vs re-scored [{b.low!r}, {b.high!r}]")
    for w in sorted(set(claimed.weights) | set(rescored.weights)):
        if claimed.weights.get(w) != rescored.weights.get(w):
            problems.append(f"weights.{w}: {claimed.weights.get(w)!r} vs the loaded {rescored.weights.get(w)!r}")
    return problems


def prediction_manifest(pred: str | Path, files: Any = None) -> dict[str, Any]:
    """SHA-256 of every prediction file, relative to the folder.

    Args:
        pred: The prediction folder.
        files: The files to hash (default: every file below ``pred``).

    Returns:
        ``{"sha256": <hash of the sorted manifest>, "files": {relative path: sha256}}``.
    """
    root = Path(pred)
    paths = sorted(Path(p) for p in files) if files is not None else sorted(p for p in root.rglob("*") if p.is_file())
    table = {}
    for path in paths:
        table[path.relative_to(root).as_posix()] = hashlib.sha256(path.read_bytes()).hexdigest()
    digest = hashlib.sha256("".join(f"{k}\t{v}\n" for k, v in sorted(table.items())).encode()).hexdigest()
    return {"sha256": "sha256:" + digest, "files": table}


def rescore(record: Results, pred: str | Path, gt: str | Path, device: str = "auto", workers: int = 4,
            progress: bool = False) -> Results:
    """Evaluate ``pred`` again with the record's task, metrics, bootstrap size and seed.

    Raises:
        Everything :func:`characterbench.evaluate.evaluate` raises (invalid predictions, weights...).
    """
    return rescore_with_files(record, pred, gt, device, workers, progress)[0]


def rescore_with_files(record: Results, pred: str | Path, gt: str | Path, device: str = "auto", workers: int = 4,
                       progress: bool = False) -> tuple[Results, list[Path]]:
    """:func:`rescore`, also returning the prediction files it scored (for the entry's manifest), from the
    same pass over the folder."""
    from characterbench.config import EvalConfig
    from characterbench.evaluate import evaluate_with_index
    from characterbench.protocol import get_protocol

    resamples = {iv.resamples for iv in record.intervals.values()}
    bootstrap = resamples.pop() if len(resamples) == 1 else int(record.config.get("bootstrap", 0) or 0)
    config = EvalConfig(
        pred=str(pred), gt=str(gt), task=record.task, metrics=tuple(record.metrics), device=device,
        workers=workers, bootstrap=bootstrap if record.intervals else 0, seed=int(record.config.get("seed", 0)),
        label=record.label, protocol=get_protocol(record.protocol_version),
    )
    rescored, index = evaluate_with_index(config, progress=progress)
    return rescored, [p for cells in index.files.values() for p in cells.values()]


@dataclass(frozen=True)
class Verification:
    """The outcome of re-scoring one entry.

    Attributes:
        entry: The entry file.
        status: ``"reproduced"``, ``"differs"``, ``"skipped"`` (no predictions at hand).
        problems: The differences (or why it was skipped).
    """

    entry: str
    status: str
    problems: tuple[str, ...] = ()


def baseline_of(record: Results) -> str | None:
    """The baseline an entry is, if it is one (its record names a registered baseline)."""
    from characterbench.baselines import BASELINE_NAMES

    entry = record.entry or {}
    name = entry.get("baseline")
    if name is None and record.label in BASELINE_NAMES and str(entry.get("name", "")).endswith("(baseline)"):
        name = record.label
    return name if name in BASELINE_NAMES else None


def verify_board(board_dir: str | Path, gt: str | Path | None = None, predictions: dict[str, Path] | None = None,
                 device: str = "auto", progress: bool = False) -> list[Verification]:
    """Re-compute every baseline entry (from ``gt``) and every entry whose predictions are given.

    Args:
        board_dir: The board folder.
        gt: The board's ground truth (its manifest hash must be the registered one); without it the
            baselines are skipped.
        predictions: ``{entry file stem or entry name: prediction folder}`` of other entries.
        device: Where to evaluate.
        progress: Show progress bars.

    Returns:
        One :class:`Verification` per entry, in file order.

    Raises:
        character4d.errors.InputError: ``gt`` is not the board's registered ground truth.
    """
    from characterbench.baselines import make_baseline
    from characterbench.groundtruth import index_ground_truth
    from characterbench.leaderboard import load_board, load_entries_with_paths
    from characterbench.protocol import get_protocol

    board = load_board(board_dir)
    predictions = dict(predictions or {})
    if gt is not None:
        index = index_ground_truth(gt, get_protocol(board.protocol_version))
        if index.manifest_hash != board.gt_manifest_hash:
            from character4d.errors import InputError

            raise InputError(f"--gt {gt} has manifest hash {index.manifest_hash}, the board registers {board.gt_manifest_hash}")
    out = []
    with tempfile.TemporaryDirectory(prefix="characterbench-verify-") as tmp:
        built: dict[str, Path] = {}
        for path, record in load_entries_with_paths(board_dir):
            name = (record.entry or {}).get("name")
            pred = predictions.get(path.stem) or (predictions.get(name) if name else None)
            baseline = baseline_of(record)
            if pred is None and baseline is not None and gt is not None:
                if baseline not in built:
                    built[baseline] = make_baseline(baseline, gt, Path(tmp) / baseline, get_protocol(board.protocol_version),
                                                    progress=progress)
                pred = built[baseline]
            if pred is None:
                why = "a baseline: pass --gt to rebuild it" if baseline else "predictions not at hand (--pred NAME=DIR)"
                out.append(Verification(path.name, "skipped", (why,)))
                continue
            problems = []
            stored = (record.entry or {}).get("predictions")
            if stored and baseline is None:
                files = [Path(pred) / rel for rel in stored.get("files", {})]
                missing = [str(f) for f in files if not f.is_file()]
                if missing or prediction_manifest(pred, files)["sha256"] != stored.get("sha256"):
                    problems.append(f"{pred}: the prediction files differ from those submitted (SHA-256 manifest)")
            rescored = rescore(record, pred, gt if gt is not None else record.config.get("gt"), device, progress=progress)
            problems += compare_records(record, rescored)
            out.append(Verification(path.name, "differs" if problems else "reproduced", tuple(problems)))
    return out


def write_preview(pred: str | Path, task_name: str, out: str | Path, protocol: Any = None, thumb: int = 96) -> Path | None:
    """A strip of one sample's predictions: the protocol's 9 views at the middle frame (the A-pose task:
    the same 9 views of the A-pose), composited on white, ``thumb`` px each, for the board's rows.

    Args:
        pred: A validated prediction folder (its first sample folder in name order is shown).
        task_name: The task whose files are shown.
        out: PNG to write.
        protocol: The protocol (default v1).
        thumb: Side of each view.

    Returns:
        ``out``, or None when the task's predictions are not images (pose keypoints in JSON).
    """
    import numpy as np
    from PIL import Image

    from characterbench.predictions import read_prediction
    from characterbench.protocol import PROTOCOL_V1
    from characterbench.tasks import get_task

    protocol = protocol or PROTOCOL_V1
    task = get_task(task_name)
    samples = sorted(p.name for p in Path(pred).iterdir() if p.is_dir())
    if not samples:
        return None
    key = samples[0]
    frame = protocol.frames[len(protocol.frames) // 2]
    cells = [(v,) if len(task.cells(protocol)[0]) == 1 else (v, frame) for v in protocol.views]
    tiles = []
    for cell in cells:
        path = next((p for p in (task.pred_path(pred, key, cell, sfx) for sfx in (".png", ".npy")) if p.is_file()), None)
        if path is None:
            return None
        image = read_prediction(path)
        rgb = image.astype(np.float64) / (255.0 if image.dtype == np.uint8 else 1.0)
        if rgb.shape[2] == 4:
            rgb = rgb[..., :3] * rgb[..., 3:] + (1.0 - rgb[..., 3:])
        tile = Image.fromarray((rgb * 255).round().astype(np.uint8)).resize((thumb, thumb), Image.BILINEAR)
        tiles.append(np.asarray(tile))
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.concatenate(tiles, axis=1)).save(out, optimize=True)
    return out


def verification_entry(pred: str | Path, files: list[Path], rescored: Results) -> dict[str, Any]:
    """What an entry stores about its verification: the prediction manifest and where it was re-scored."""
    manifest = prediction_manifest(pred, files)
    return {
        "predictions": {"sha256": manifest["sha256"], "count": len(manifest["files"]), "files": manifest["files"]},
        "verified": {"by": "characterbench submit", "date": rescored.date, "device": rescored.device,
                     "package_version": rescored.package_version, "tolerance": dict(TOLERANCE)},
    }


__all__ = [
    "TOLERANCE", "Verification", "baseline_of", "compare_records", "prediction_manifest", "rescore", "rescore_with_files",
    "verification_entry", "verify_board",
]
