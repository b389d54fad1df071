"""The deterministic job list and resumable, atomic output of a render run (DESIGN.md section 9).

A job is one (character, motion) pair. ``make_jobs`` builds the full list, sorted by key, from the
input files; ``--shard i/N`` takes every N-th job starting at i (:func:`select_shard`), so the N
slices are disjoint and cover every job. :func:`run_jobs` renders one slice with a caller-supplied
``render_fn`` (no Blender here) and writes::

    out_dir/
      manifest-{i:05d}-of-{N:05d}.json     config, slice layout, per-job status (atomic rewrite per job)
      shards/c4d-{i:05d}-of-{N:05d}-{p:04d}.tar   part p: the slice's jobs [p*K, (p+1)*K) that succeeded
      .staging/<key>/                      finished samples waiting for their part to be packed

Resuming (re-running the same command) is driven by what is on disk: a job is done when its
sample is in one of the slice's tars or staged as a complete folder (folders are written under a
``.tmp`` name and renamed, so a kill mid-write leaves only a ``.tmp`` that is discarded). Jobs that
failed are recorded with their reason and skipped on a re-run; delete a job's entry from the
manifest (or the whole manifest) to retry it. A part's tar, once written, is never rewritten: a
retried job whose part is already packed goes into an extra ``...-{p:04d}-r{r:02d}.tar``.
Slices of one output directory may run concurrently (each touches only its own files); one slice
must not run twice at the same time.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import sys
import tarfile
import time
import traceback
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any

from character4d.format import (
    Sample,
    SampleFormatError,
    ShardWriter,
    read_folder_sample,
    sample_key,
    sanitize_id,
    write_folder_sample,
)

__all__ = [
    "ConfigMismatchError",
    "Job",
    "RunSummary",
    "collect_inputs",
    "make_jobs",
    "manifest_name",
    "parse_shard",
    "part_name",
    "run_jobs",
    "select_shard",
]

MANIFEST_VERSION = 1
FORMATS = ("shards", "folders")
_STAGING = ".staging"
_SHARDS = "shards"

RenderFn = Callable[["Job", Path], Sample]


class ConfigMismatchError(ValueError):
    """An output directory was started with another config or job slice than the current run.

    Attributes:
        keys: the differing config (or layout) keys.
    """

    def __init__(self, message: str, keys: Sequence[str]) -> None:
        super().__init__(message)
        self.keys = tuple(keys)


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


# --------------------------------------------------------------------------------------------
# Summary
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RunSummary:
    """What a call of :func:`run_jobs` did.

    Attributes:
        shard: ``(i, N)``.
        done: keys rendered successfully by this call.
        skipped: keys not rendered because an earlier run finished them (done or failed).
        failed: key -> ``"Type: message"`` for every job of the slice now recorded as failed,
            whether it failed in this call or an earlier one.
        parts: tar files (or sample folders, for ``fmt="folders"``) written by this call.
        seconds: wall time of the call.
        manifest: path of the slice's manifest.
    """

    shard: tuple[int, int]
    done: tuple[str, ...]
    skipped: tuple[str, ...]
    failed: Mapping[str, str]
    parts: tuple[str, ...]
    seconds: float
    manifest: Path

    @property
    def ok(self) -> bool:
        """True when no job of the slice is recorded as failed."""
        return not self.failed


# --------------------------------------------------------------------------------------------
# Manifest
# --------------------------------------------------------------------------------------------


def _write_json_atomic(path: Path, data: Any) -> None:
    tmp = path.with_name(path.name + ".tmp")
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


# --------------------------------------------------------------------------------------------
# The run
# --------------------------------------------------------------------------------------------


def _check_jobs(jobs: Sequence[Job]) -> None:
    previous = None
    for index, job in enumerate(jobs):
        if not isinstance(job, Job):
            raise TypeError(f"jobs[{index}]: expected Job, got {type(job).__name__}")
        if previous is not None and job.key <= previous:
            raise ValueError(
                f"jobs: expected the full job list sorted by key without duplicates (see make_jobs), "
                f"got {job.key!r} after {previous!r}"
            )
        previous = job.key


def _tar_keys(path: Path) -> set[str]:
    try:
        with tarfile.open(path, "r:") as tar:
            return {name.split(".", 1)[0] for name in tar.getnames()}
    except (tarfile.TarError, OSError) as exc:
        raise SampleFormatError(f"{path}: unreadable shard ({exc}); delete it to render its jobs again") from exc


def _failure_entry(job: Job, exc: Exception, seconds: float) -> dict[str, Any]:
    return {
        "status": "failed",
        "part": None,
        "reason": f"{type(exc).__name__}: {exc}",
        "character": job.character_path,
        "motion": job.motion_path,
        "seconds": round(seconds, 3),
        "traceback": "".join(traceback.format_exception(exc)[-20:]),
    }


def _done_entry(job: Job, part: str, seconds: float | None) -> dict[str, Any]:
    return {
        "status": "done",
        "part": part,
        "reason": None,
        "character": job.character_path,
        "motion": job.motion_path,
        "seconds": seconds,
        "traceback": None,
    }


def _check_rendered(sample: Any, job: Job) -> Sample:
    if not isinstance(sample, Sample):
        raise TypeError(f"render_fn: expected a character4d.format.Sample, got {type(sample).__name__}")
    if sample.key != job.key:
        raise ValueError(f"render_fn: returned sample {sample.key!r} for job {job.key!r}")
    sample.validate()
    return sample


@dataclass
class _Run:
    """State of one run_jobs call over one slice (helper; all paths belong to this slice only)."""

    jobs: list[Job]
    render_fn: RenderFn
    out_dir: Path
    shard: tuple[int, int]
    config: dict[str, Any]
    layout: dict[str, Any]
    fmt: str
    per_tar: int
    entries: dict[str, dict] = field(default_factory=dict)
    packed: dict[str, str] = field(default_factory=dict)
    staged: set[str] = field(default_factory=set)
    written: list[str] = field(default_factory=list)

    @property
    def manifest_path(self) -> Path:
        return self.out_dir / manifest_name(*self.shard)

    @property
    def staging(self) -> Path:
        return self.out_dir / _STAGING

    @property
    def shards_dir(self) -> Path:
        return self.out_dir / _SHARDS

    def _save(self) -> None:
        _write_json_atomic(
            self.manifest_path,
            {
                "version": MANIFEST_VERSION,
                "config": self.config,
                "shard": list(self.shard),
                "layout": self.layout,
                "jobs": {key: self.entries[key] for key in sorted(self.entries)},
            },
        )

    def _remove_leftovers(self) -> None:
        i, n = self.shard
        for tmp in self.shards_dir.glob(f"c4d-{i:05d}-of-{n:05d}-*.tar.tmp"):
            tmp.unlink()
        self.manifest_path.with_name(self.manifest_path.name + ".tmp").unlink(missing_ok=True)
        keys = {job.key for job in self.jobs}
        for root in (self.staging, self.out_dir):
            for tmp in root.glob(".*.tmp"):
                # ".<key>.tmp" (write_folder_sample) or ".<key>.render.tmp" (render scratch).
                if tmp.name[1:].split(".", 1)[0] not in keys:
                    continue
                if tmp.is_dir():
                    shutil.rmtree(tmp)
                else:
                    tmp.unlink()

    def _scan_outputs(self) -> None:
        """Find finished jobs on disk; the outputs, not the manifest, say what is done."""
        keys = {job.key for job in self.jobs}
        i, n = self.shard
        for tar in sorted(self.shards_dir.glob(f"c4d-{i:05d}-of-{n:05d}-*.tar")):
            for key in _tar_keys(tar):
                if key not in keys:
                    raise ConfigMismatchError(f"{tar}: holds {key!r}, which is not a job of slice {i}/{n}", ["jobs"])
                self.packed[key] = tar.name
        if self.fmt == "folders":
            self.packed.update({key: key for key in keys if (self.out_dir / key).is_dir()})
            return
        for key in keys:
            if (self.staging / key).is_dir():
                if key in self.packed:  # killed after packing, before the staging folder was removed
                    shutil.rmtree(self.staging / key)
                else:
                    self.staged.add(key)

    def _reconcile(self, recorded: dict[str, dict]) -> list[Job]:
        """Rebuild the manifest entries from the outputs; return the jobs still to render."""
        pending = []
        for job in self.jobs:
            old = recorded.get(job.key, {})
            if job.key in self.packed or job.key in self.staged:
                part = self.packed.get(job.key, f"{_STAGING}/{job.key}")
                self.entries[job.key] = _done_entry(job, part, old.get("seconds"))
            elif old.get("status") == "failed":
                self.entries[job.key] = old
            else:
                pending.append(job)
        return pending

    def _num_parts(self) -> int:
        return -(-len(self.jobs) // self.per_tar)

    def _pack_if_ready(self, p: int) -> None:
        """Pack part p once each of its jobs is done or failed (staged samples only)."""
        part_jobs = self.jobs[p * self.per_tar : (p + 1) * self.per_tar]
        if self.fmt == "shards" and all(job.key in self.entries for job in part_jobs):
            to_pack = sorted(job.key for job in part_jobs if job.key in self.staged)
            if to_pack:
                self._pack(p, to_pack)

    def _pack(self, p: int, keys: list[str]) -> None:
        retry = 0
        while (self.shards_dir / part_name(*self.shard, p, retry)).exists():
            retry += 1
        name = part_name(*self.shard, p, retry)
        with ShardWriter(self.shards_dir / name) as writer:
            for key in keys:
                writer.write(read_folder_sample(self.staging / key, validate=False))
        # Order matters for resuming: tar renamed, then manifest, then staging removed.
        for key in keys:
            self.packed[key] = name
            self.staged.discard(key)
            self.entries[key]["part"] = name
        self._save()
        for key in keys:
            shutil.rmtree(self.staging / key)
        self.written.append(name)

    def _render(self, job: Job) -> bool:
        scratch = self.staging / f".{job.key}.render.tmp"
        if scratch.exists():
            shutil.rmtree(scratch)
        scratch.mkdir(parents=True)
        start = time.perf_counter()
        try:
            sample = _check_rendered(self.render_fn(job, scratch), job)
        except Exception as exc:  # noqa: BLE001 - a failing job is recorded; KeyboardInterrupt/SystemExit stop the run
            self.entries[job.key] = _failure_entry(job, exc, time.perf_counter() - start)
            return False
        finally:
            shutil.rmtree(scratch, ignore_errors=True)
        # Writing is outside the try: a full disk must stop the run, not fail every job in turn.
        if self.fmt == "folders":
            write_folder_sample(sample, self.out_dir)
            self.packed[job.key] = job.key
            self.written.append(job.key)
            part = job.key
        else:
            write_folder_sample(sample, self.staging)
            self.staged.add(job.key)
            part = f"{_STAGING}/{job.key}"
        self.entries[job.key] = _done_entry(job, part, round(time.perf_counter() - start, 3))
        return True


def _progress_bar(total: int, initial: int, shard: tuple[int, int], enabled: bool) -> Any:
    from tqdm import tqdm

    show = enabled and sys.stderr.isatty()
    return tqdm(total=total, initial=initial, desc=f"render {shard[0]}/{shard[1]}", unit="job", disable=not show)


def _check_run_args(render_fn: Any, shard: Any, fmt: str, samples_per_tar: Any) -> tuple[int, int]:
    if not callable(render_fn):
        raise TypeError(f"render_fn: expected a callable (job, staging_dir) -> Sample, got {type(render_fn).__name__}")
    if fmt not in FORMATS:
        raise ValueError(f"fmt: expected one of {list(FORMATS)}, got {fmt!r}")
    if isinstance(samples_per_tar, bool) or not isinstance(samples_per_tar, int) or samples_per_tar < 1:
        raise ValueError(f"samples_per_tar: expected an integer >= 1, got {samples_per_tar!r}")
    if not isinstance(shard, (tuple, list)) or len(shard) != 2:
        raise ValueError(f"shard: expected (i, N), got {shard!r}")
    return _check_shard(*shard)


def run_jobs(
    jobs: Sequence[Job],
    render_fn: RenderFn,
    out_dir: str | os.PathLike,
    shard: tuple[int, int] = (0, 1),
    config: Mapping[str, Any] | None = None,
    fmt: str = "shards",
    samples_per_tar: int = 8,
    progress: bool = True,
) -> RunSummary:
    """Render one slice of the job list into resumable, atomically written output.

    ``render_fn(job, staging_dir)`` renders one job and returns its :class:`Sample` (e.g. from
    ``build_sample``); ``staging_dir`` is an empty scratch folder for its intermediate files,
    removed afterwards. Any ``Exception`` it raises (or an invalid returned sample) marks the job
    failed with ``"Type: message"`` and the run goes on; KeyboardInterrupt and SystemExit stop it,
    and a re-run resumes. See the module docstring for the layout and the resume rules.

    Args:
        jobs: the full job list, sorted by key (from :func:`make_jobs`); the slice is chosen here.
        render_fn: ``(Job, Path) -> Sample``.
        out_dir: output directory (shared by all slices).
        shard: ``(i, N)``: render ``jobs[i::N]``.
        config: JSON-serialisable render settings recorded in the manifest; a re-run with
            different settings is refused, so one output never mixes e.g. resolutions.
        fmt: ``"shards"`` (tars of ``samples_per_tar`` samples) or ``"folders"`` (``out_dir/<key>/``).
        samples_per_tar: K, jobs per part.
        progress: show a tqdm bar (only when stderr is a terminal).

    Returns:
        A :class:`RunSummary`.

    Raises:
        TypeError: if ``render_fn`` is not callable or ``jobs`` holds non-Job items.
        ValueError: for a bad ``shard``, ``fmt``, ``samples_per_tar``, unsorted jobs or a config
            that is not JSON.
        ConfigMismatchError: if the slice's manifest records another config, job slice or layout.
        SampleFormatError: if an existing part tar of the slice is unreadable.
    """
    start = time.perf_counter()
    shard = _check_run_args(render_fn, shard, fmt, samples_per_tar)
    _check_jobs(jobs)
    selected = select_shard(jobs, *shard)
    normalised = _json_normalised(config or {})
    layout = {
        "fmt": fmt,
        "samples_per_tar": samples_per_tar,
        "num_jobs": len(jobs),
        "slice_sha256": hashlib.sha256("\n".join(job.key for job in selected).encode()).hexdigest(),
    }
    run = _Run(selected, render_fn, Path(out_dir), shard, normalised, layout, fmt, samples_per_tar)
    recorded = _load_manifest(run.manifest_path, normalised, layout, shard)
    for folder in (run.out_dir, run.staging) + ((run.shards_dir,) if fmt == "shards" else ()):
        folder.mkdir(parents=True, exist_ok=True)
    run._remove_leftovers()
    run._scan_outputs()
    pending = run._reconcile(recorded)
    skipped = tuple(job.key for job in selected if job.key in run.entries)
    run._save()
    for p in range(run._num_parts()):  # parts completed just before an interruption
        run._pack_if_ready(p)
    done = []
    position = {job.key: index for index, job in enumerate(selected)}
    with _progress_bar(len(selected), len(skipped), shard, progress) as bar:
        for job in pending:
            if run._render(job):
                done.append(job.key)
            run._save()
            run._pack_if_ready(position[job.key] // samples_per_tar)
            bar.update(1)
    failed = {k: e["reason"] for k, e in run.entries.items() if e["status"] == "failed"}
    return RunSummary(
        shard=shard,
        done=tuple(done),
        skipped=skipped,
        failed=MappingProxyType(dict(sorted(failed.items()))),
        parts=tuple(run.written),
        seconds=time.perf_counter() - start,
        manifest=run.manifest_path,
    )
