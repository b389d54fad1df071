"""The deterministic job list: input discovery, (character, motion) jobs, ``--shard i/N`` slices, file names."""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from character4d.format import sample_key, sanitize_id

@dataclass(frozen=True)
class Job:
    """One (character, motion) pair to render.

    Attributes:
        character_path: the character file, as given.
        motion_path: the motion file, as given.
        character_id: ``sanitize_id`` of the character file's stem.
        motion_id: ``sanitize_id`` of the motion file's stem.
        key: the sample key ``{character_id}__{motion_id}``.
    """

    character_path: str
    motion_path: str
    character_id: str
    motion_id: str
    key: str



# --------------------------------------------------------------------------------------------
# Job list
# --------------------------------------------------------------------------------------------


def _normalise_suffixes(suffixes: Iterable[str]) -> tuple[str, ...]:
    if isinstance(suffixes, str):
        suffixes = [suffixes]
    normalised = tuple(sorted({("." + s.lower().lstrip(".")) for s in suffixes}))
    if not normalised or normalised == (".",):
        raise ValueError(f"suffixes: expected file suffixes such as ['.vrm', '.glb'], got {list(suffixes)!r}")
    return normalised


def collect_inputs(paths: Iterable[str | os.PathLike], suffixes: Iterable[str]) -> list[Path]:
    """Gather input files from files and folders (recursively), sorted and without duplicates.

    Args:
        paths: files or folders; folders are searched recursively, hidden entries skipped.
        suffixes: accepted suffixes, case-insensitive, with or without the dot (``[".fbx", "bvh"]``).

    Returns:
        The files, sorted by their POSIX path.

    Raises:
        FileNotFoundError: if a path does not exist.
        ValueError: if a file given explicitly has another suffix, or ``suffixes`` is empty.
    """
    accepted = _normalise_suffixes(suffixes)
    found: set[Path] = set()
    for raw in [paths] if isinstance(paths, (str, os.PathLike)) else paths:
        path = Path(raw)
        if path.is_file():
            if path.suffix.lower() not in accepted:
                raise ValueError(f"paths: {path} does not have one of the suffixes {list(accepted)}")
            found.add(path)
        elif path.is_dir():
            for candidate in path.rglob("*"):
                hidden = any(part.startswith(".") for part in candidate.relative_to(path).parts)
                if not hidden and candidate.is_file() and candidate.suffix.lower() in accepted:
                    found.add(candidate)
        else:
            raise FileNotFoundError(f"paths: {path} does not exist")
    return sorted(found, key=lambda p: p.as_posix())


def _ids(files: Sequence[str | os.PathLike], arg: str) -> dict[str, Path]:
    if not files:
        raise ValueError(f"{arg}: expected at least one file, got none")
    ids: dict[str, Path] = {}
    for raw in files:
        path = Path(raw)
        identifier = sanitize_id(path.stem)
        if identifier in ids:
            raise ValueError(
                f"{arg}: {ids[identifier]} and {path} both give the id {identifier!r} (and the same sample keys); "
                "rename one of them"
            )
        ids[identifier] = path
    return ids


def make_jobs(characters: Sequence[str | os.PathLike], motions: Sequence[str | os.PathLike]) -> list[Job]:
    """The full, deterministic job list: every character with every motion, sorted by key.

    Args:
        characters: character files (ids from their stems via ``sanitize_id``).
        motions: motion files.

    Returns:
        ``len(characters) * len(motions)`` jobs sorted by key.

    Raises:
        ValueError: if a list is empty, or two files give the same id (both files are named).
    """
    character_ids = _ids(characters, "characters")
    motion_ids = _ids(motions, "motions")
    jobs = [
        Job(str(cpath), str(mpath), cid, mid, sample_key(cid, mid))
        for cid, cpath in character_ids.items()
        for mid, mpath in motion_ids.items()
    ]
    return sorted(jobs, key=lambda job: job.key)


def _check_shard(i: Any, n: Any) -> tuple[int, int]:
    valid = all(isinstance(x, int) and not isinstance(x, bool) for x in (i, n)) and n >= 1 and 0 <= i < n
    if not valid:
        raise ValueError(f"shard: expected integers i/N with N >= 1 and 0 <= i < N, got {i!r}/{n!r}")
    return i, n


def parse_shard(text: str) -> tuple[int, int]:
    """Parse ``"i/N"`` (e.g. from ``--shard`` or ``$SLURM_ARRAY_TASK_ID/N``).

    Args:
        text: ``"i/N"`` with ``0 <= i < N``.

    Returns:
        ``(i, N)``.

    Raises:
        ValueError: if the text is not of that form or ``i`` is out of range.
    """
    match = re.fullmatch(r"\s*(\d+)\s*/\s*(\d+)\s*", text) if isinstance(text, str) else None
    if match is None:
        raise ValueError(f"shard: expected 'i/N' such as '0/4', got {text!r}")
    i, n = int(match.group(1)), int(match.group(2))
    if n < 1 or i >= n:
        raise ValueError(f"shard: expected 0 <= i < N, got {i}/{n} (shards are numbered from 0)")
    return i, n


def select_shard(jobs: Sequence[Job], i: int, n: int) -> list[Job]:
    """Every N-th job starting at job i: the slice ``i/N`` of the job list.

    Args:
        jobs: the full job list (from :func:`make_jobs`).
        i: slice index, ``0 <= i < n``.
        n: number of slices.

    Returns:
        ``jobs[i::n]``.

    Raises:
        ValueError: if ``i``/``n`` are out of range.
    """
    _check_shard(i, n)
    return list(jobs[i::n])


def part_name(i: int, n: int, p: int, retry: int = 0) -> str:
    """File name of part ``p`` of slice ``i/n`` (``retry`` > 0: an extra part for retried jobs)."""
    suffix = f"-r{retry:02d}" if retry else ""
    return f"c4d-{i:05d}-of-{n:05d}-{p:04d}{suffix}.tar"


def manifest_name(i: int, n: int) -> str:
    """File name of the manifest of slice ``i/n``."""
    return f"manifest-{i:05d}-of-{n:05d}.json"


