"""`run_jobs`: render one slice into resumable, atomically written output."""

from __future__ import annotations

import hashlib
import os
import shutil
import sys
import tarfile
import time
import traceback
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any

from character4d.format import Sample, SampleFormatError, ShardWriter, read_folder_sample, write_folder_sample
from character4d.jobs.joblist import Job, _check_shard, manifest_name, part_name, select_shard
from character4d.jobs.manifest import (
    MANIFEST_VERSION,
    ConfigMismatchError,
    _json_normalised,
    _load_manifest,
    _write_json_atomic,
)

FORMATS = ("shards", "folders")
_STAGING = ".staging"
_SHARDS = "shards"

RenderFn = Callable[[Job, Path], Sample]


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
