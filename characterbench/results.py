"""The typed result record of an evaluation, its JSON schema and (de)serialisation.

A record is a frozen :class:`Results`; on disk it is JSON checked against ``RESULTS_SCHEMA``
(a small JSON Schema, checked by :func:`schema_errors` without extra dependencies).
"""

from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from characterbench.tasks import TASKS

SCHEMA_VERSION = "characterbench-results/3"
# Versions still read. /2 added the interval's ``std`` and ``method`` (basic bootstrap); /1 records
# (percentile intervals, no ``std``) load with ``method="percentile"`` and ``std=None``. /3 added the
# optional ``breakdown`` tables (per-joint pose errors...) and ``official`` (per weight: the pinned one?).
READABLE_SCHEMA_VERSIONS = ("characterbench-results/1", "characterbench-results/2", SCHEMA_VERSION)

_NUM = {"type": "number"}
_STR = {"type": "string"}
_NUM_MAP = {"type": "object", "additionalProperties": _NUM}
_GRID_VALUES = {"type": "object", "additionalProperties": {"type": "array", "items": {"type": "array", "items": _NUM}}}
_BREAKDOWN = {"type": ["object", "null"], "additionalProperties": _NUM_MAP}

RESULTS_SCHEMA: dict[str, Any] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "title": "CharacterBench result record",
    "type": "object",
    "required": [
        "schema_version", "task", "metrics", "sample_count", "clip_counts", "intervals", "grid", "per_sample",
        "protocol_version", "protocol_fingerprint", "protocol", "gt_manifest_hash", "weights",
        "package_version", "git_commit", "date", "device", "config", "timing",
    ],
    "additionalProperties": False,
    "properties": {
        "schema_version": {"enum": list(READABLE_SCHEMA_VERSIONS)},
        "task": {"enum": TASKS.names()},
        "label": {"type": ["string", "null"]},
        "metrics": _NUM_MAP,
        "sample_count": {"type": "integer"},
        "clip_counts": {"type": "object", "additionalProperties": {"type": "integer"}},
        "intervals": {
            "type": "object",
            "additionalProperties": {
                "type": "object",
                "required": ["low", "high", "confidence", "resamples", "unit", "seed"],
                "additionalProperties": False,
                "properties": {
                    "low": _NUM, "high": _NUM, "confidence": _NUM, "resamples": {"type": "integer"},
                    "unit": _STR, "seed": {"type": "integer"}, "std": {"type": ["number", "null"]},
                    "method": {"enum": ["basic", "percentile"]},
                },
            },
        },
        "grid": {
            "type": "object",
            "required": ["row_axis", "row_labels", "col_axis", "col_labels", "values"],
            "additionalProperties": False,
            "properties": {
                "row_axis": _STR, "col_axis": _STR,
                "row_labels": {"type": "array", "items": {"type": "integer"}},
                "col_labels": {"type": "array", "items": {"type": "integer"}},
                "values": _GRID_VALUES,
            },
        },
        "per_sample": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["key", "metrics", "grid"],
                "additionalProperties": False,
                "properties": {"key": _STR, "metrics": _NUM_MAP, "grid": _GRID_VALUES, "breakdown": _BREAKDOWN},
            },
        },
        "protocol_version": _STR,
        "protocol_fingerprint": _STR,
        "protocol": {"type": "object"},
        "gt_manifest_hash": _STR,
        "weights": {"type": "object", "additionalProperties": _STR},
        "official": {"type": "object", "additionalProperties": {"type": "boolean"}},
        "breakdown": _BREAKDOWN,
        "package_version": _STR,
        "git_commit": {"type": ["string", "null"]},
        "date": _STR,
        "device": _STR,
        "config": {"type": "object"},
        "timing": _NUM_MAP,
        "entry": {"type": ["object", "null"]},
    },
}

_TYPES = {
    "object": dict, "array": list, "string": str, "integer": int, "number": (int, float), "boolean": bool, "null": type(None)
}


def schema_errors(value: Any, schema: dict[str, Any] = RESULTS_SCHEMA, where: str = "$") -> list[str]:
    """Check a JSON value against the subset of JSON Schema used by ``RESULTS_SCHEMA``.

    Supports ``type``, ``const``, ``enum``, ``required``, ``properties``, ``additionalProperties``
    and ``items``.

    Args:
        value: Parsed JSON.
        schema: The schema (default: the result record's).
        where: JSON path of ``value`` in messages.

    Returns:
        Every violation as ``"<path>: expected ..., got ..."``; empty when valid.
    """
    errors: list[str] = []
    if "const" in schema and value != schema["const"]:
        return [f"{where}: expected {schema['const']!r}, got {value!r}"]
    if "enum" in schema and value not in schema["enum"]:
        return [f"{where}: expected one of {schema['enum']}, got {value!r}"]
    if "type" in schema:
        names = schema["type"] if isinstance(schema["type"], list) else [schema["type"]]
        ok = any(
            isinstance(value, _TYPES[n]) and not (isinstance(value, bool) and n in ("integer", "number")) for n in names
        )
        if ok and isinstance(value, float) and not math.isfinite(value):
            return [f"{where}: expected a finite number, got {value!r}"]
        if not ok:
            return [f"{where}: expected {' or '.join(names)}, got {type(value).__name__}"]
    if isinstance(value, dict):
        for key in schema.get("required", []):
            if key not in value:
                errors.append(f"{where}: missing required field {key!r}")
        props = schema.get("properties", {})
        extra = schema.get("additionalProperties", True)
        for key, item in value.items():
            if key in props:
                errors += schema_errors(item, props[key], f"{where}.{key}")
            elif extra is False:
                errors.append(f"{where}: unexpected field {key!r}")
            elif isinstance(extra, dict):
                errors += schema_errors(item, extra, f"{where}.{key}")
    if isinstance(value, list) and "items" in schema:
        for i, item in enumerate(value):
            errors += schema_errors(item, schema["items"], f"{where}[{i}]")
    return errors


class InvalidResultsError(ValueError):
    """A result record does not match the schema; ``.errors`` lists every violation."""

    def __init__(self, source: str, errors: list[str]):
        self.errors = errors
        super().__init__(f"{source} is not a valid CharacterBench result record:\n  " + "\n  ".join(errors))


@dataclass(frozen=True)
class Interval:
    """A bootstrap confidence interval.

    Attributes:
        low: Lower end.
        high: Upper end.
        confidence: Nominal coverage (e.g. 0.95).
        resamples: Bootstrap replicates.
        unit: What was resampled (``"sample"``: a sample with all its clips).
        seed: Seed of the resampling.
        std: Standard deviation of the replicates (None in records before schema /2).
        method: ``"basic"`` (reverse percentile, ``[2 value - q_hi, 2 value - q_lo]``, since schema
            /2) or ``"percentile"`` (``[q_lo, q_hi]``, records of schema /1).
    """

    low: float
    high: float
    confidence: float
    resamples: int
    unit: str
    seed: int
    std: float | None = None
    method: str = "percentile"


@dataclass(frozen=True)
class Grid:
    """Metric values laid out on the protocol matrix (multiview: views x frames; apose: views x 1).

    Attributes:
        row_axis: ``"view"``.
        row_labels: Rig view index of each row.
        col_axis: ``"frame"`` (multiview) or ``"apose"``.
        col_labels: Rig frame index of each column (``[0]`` for apose).
        values: ``values[metric][row][col]``.
    """

    row_axis: str
    row_labels: list[int]
    col_axis: str
    col_labels: list[int]
    values: dict[str, list[list[float]]]


@dataclass(frozen=True)
class SampleScores:
    """One sample's metric values, its per-cell values (same layout as :class:`Grid`) and its
    breakdown tables (e.g. ``{"mpjpe_per_joint": {"nose": 12.3, ...}}``), if the task has any."""

    key: str
    metrics: dict[str, float]
    grid: dict[str, list[list[float]]]
    breakdown: dict[str, dict[str, float]] | None = None


@dataclass(frozen=True)
class Results:
    """The record of one evaluation (written by ``characterbench eval``, read by report/submit).

    Attributes:
        schema_version: ``SCHEMA_VERSION`` (or an older readable one for a loaded record).
        task: A registered task (``"multiview"``, ``"apose"``, ``"pose"``).
        label: Free name of the evaluated method (``eval --label``), or None.
        metrics: Headline value of every metric computed.
        sample_count: Samples evaluated (FVD is biased upwards on few samples: always report it).
        clip_counts: Clips pooled per FVD variant (per FID: images).
        intervals: Bootstrap confidence intervals of the set-level metrics (FVD, FID).
        grid: Means over samples, per cell, of the image metrics.
        per_sample: Per-sample breakdown, in key order.
        protocol_version: e.g. ``"characterbench-v1"``.
        protocol_fingerprint: ``Protocol.fingerprint()``.
        protocol: Every protocol field.
        gt_manifest_hash: ``GroundTruthIndex.manifest_hash``.
        weights: SHA-256 of every weights file used, by name.
        official: Per weight, whether it is the official one the protocol pins (empty in records
            before schema /3: the board then compares ``weights`` with the pins itself).
        breakdown: Means over samples of the per-sample breakdown tables, or None.
        package_version: ``characterbench.__version__``.
        git_commit: Commit of the code (``+dirty`` when modified), or None outside a checkout.
        date: ISO 8601 UTC time of the evaluation.
        device: Device the metrics ran on, in words.
        config: The evaluation's configuration (paths, metric selection, batch size, ...).
        timing: Seconds spent (``total_s``, ``per_sample_s``, ``feature_clips_per_s``,
            ``bootstrap_s`` ...).
        entry: Leaderboard metadata added by ``characterbench submit`` (name, url, notes).
    """

    task: str
    metrics: dict[str, float]
    sample_count: int
    clip_counts: dict[str, int]
    intervals: dict[str, Interval]
    grid: Grid
    per_sample: list[SampleScores]
    protocol_version: str
    protocol_fingerprint: str
    protocol: dict[str, Any]
    gt_manifest_hash: str
    weights: dict[str, str]
    package_version: str
    git_commit: str | None
    date: str
    device: str
    config: dict[str, Any]
    timing: dict[str, float]
    label: str | None = None
    entry: dict[str, Any] | None = None
    official: dict[str, bool] = dataclasses.field(default_factory=dict)
    breakdown: dict[str, dict[str, float]] | None = None
    schema_version: str = SCHEMA_VERSION

    def to_dict(self) -> dict[str, Any]:
        """The record as plain JSON values."""
        return dataclasses.asdict(self)

    def save(self, path: str | Path) -> Path:
        """Write the record as JSON (after a schema check) and return the path.

        Raises:
            InvalidResultsError: The record does not match the schema (e.g. a non-finite value).
        """
        data = self.to_dict()
        if errors := schema_errors(data):
            raise InvalidResultsError("the record to save", errors)
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(data, indent=1, allow_nan=False) + "\n")
        return path

    @classmethod
    def from_dict(cls, data: dict[str, Any], source: str = "record") -> "Results":
        """Build a record from parsed JSON.

        Raises:
            InvalidResultsError: Every schema violation.
        """
        if errors := schema_errors(data):
            raise InvalidResultsError(source, errors)
        d = dict(data)
        d["intervals"] = {k: Interval(**v) for k, v in d["intervals"].items()}
        d["grid"] = Grid(**d["grid"])
        d["per_sample"] = [SampleScores(**s) for s in d["per_sample"]]

        return cls(**d)

    def with_entry(self, entry: dict[str, Any]) -> "Results":
        """A copy with leaderboard metadata."""
        return dataclasses.replace(self, entry=dict(entry))


def load_results(path: str | Path) -> Results:
    """Read and check a result JSON.

    Raises:
        FileNotFoundError: No such file.
        InvalidResultsError: Not JSON, or not matching the schema.
    """
    path = Path(path)
    try:
        data = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise InvalidResultsError(str(path), [f"not valid JSON: {exc}"]) from exc
    return Results.from_dict(data, str(path))


__all__ = [
    "SCHEMA_VERSION", "READABLE_SCHEMA_VERSIONS", "RESULTS_SCHEMA", "Results", "Interval", "Grid", "SampleScores", "InvalidResultsError",
    "load_results", "schema_errors",
]
