"""The per-slice manifest: config, layout and per-job status, rewritten atomically after every job."""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from character4d.errors import UsageError

MANIFEST_VERSION = 1


class ConfigMismatchError(UsageError):
    """An output directory was started with another config or job slice than the current run.

    Attributes:
        keys: the differing config (or layout) keys.
    """

    def __init__(self, message: str, keys: Sequence[str]) -> None:
        super().__init__(message)
        self.keys = tuple(keys)



def _write_json_atomic(path: Path, data: Any) -> None:
    tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")  # unique per process
    with open(tmp, "w", encoding="utf-8") as handle:
        json.dump(data, handle, indent=1, sort_keys=True)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, path)


def _json_normalised(config: Mapping[str, Any]) -> dict[str, Any]:
    # Compare configs as JSON sees them (tuples become lists), since that is what the manifest holds.
    try:
        return json.loads(json.dumps(dict(config), sort_keys=True, allow_nan=False))
    except (TypeError, ValueError) as exc:
        raise ValueError(f"config: expected a JSON-serialisable mapping, got {exc}") from exc


def _differing_keys(old: Mapping[str, Any], new: Mapping[str, Any]) -> list[str]:
    return sorted(k for k in set(old) | set(new) if old.get(k, ...) != new.get(k, ...))


def _load_manifest(path: Path, config: dict, layout: dict, shard: tuple[int, int]) -> dict[str, dict]:
    """Return the recorded job entries of an existing manifest after checking it matches this run."""
    if not path.exists():
        return {}
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
        recorded_config, recorded_layout, jobs = manifest["config"], manifest["layout"], manifest["jobs"]
    except (json.JSONDecodeError, KeyError, TypeError) as exc:
        raise ValueError(f"{path}: not a run_jobs manifest ({exc}); move it away to start over") from exc
    if list(manifest.get("shard", [])) != list(shard):
        raise ConfigMismatchError(f"{path}: records shard {manifest.get('shard')}, expected {list(shard)}", ["shard"])
    differing = _differing_keys(recorded_config, config)
    if differing:
        details = ", ".join(
            f"{k}: {recorded_config.get(k, '<absent>')!r} -> {config.get(k, '<absent>')!r}" for k in differing
        )
        raise ConfigMismatchError(
            f"{path}: this output was started with another config ({details}); use a new out_dir "
            "so that one output never mixes settings",
            differing,
        )
    differing = _differing_keys(recorded_layout, layout)
    if differing:
        raise ConfigMismatchError(
            f"{path}: this output was started with another job slice or output layout (differs in "
            f"{', '.join(differing)}: the job list, fmt or samples_per_tar changed); use a new out_dir",
            differing,
        )
    return {key: dict(entry) for key, entry in jobs.items()}


