"""`run_jobs`: render one slice into resumable, atomically written output.

Job states in the manifest:

- ``done``: the sample is staged (``.staging/<key>/``) or packed into one of the slice's tars.
- ``failed``: the inputs cannot be used (``render_fn`` raised any exception but a crash); skipped by
  later runs unless ``retry_failed``.
- ``crashed``: the worker died (``WorkerCrashError``: killed by a signal, out of memory), the run
  itself stopped while the job was rendering (a ``running`` entry found by the next run), or its
  staged sample turned out damaged when it was packed; retried by later runs until the job has had
  ``max_attempts`` attempts.
- ``running``: written just before the job starts, so that a run killed together with its worker
  (a node's kill -9, the OOM killer) still counts the attempt.
"""

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
DEFAULT_MAX_ATTEMPTS = 3
_STAGING = ".staging"
_SHARDS = "shards"
_INTERRUPTED = "the run stopped while this job was rendering (killed, out of memory or power loss)"

RenderFn = Callable[[Job, Path], Sample]
WarnFn = Callable[[Sample], "str | None"]


class WorkerCrashError(RuntimeError):
    """The process rendering a job died (a signal such as SIGKILL, or out of memory) rather than
    rejecting its inputs; ``run_jobs`` records the job as ``crashed`` and a later run retries it."""


@dataclass(frozen=True)
class RunSummary:
    """What a call of :func:`run_jobs` did.

    Attributes:
        shard: ``(i, N)``.
        done: keys rendered successfully by this call.
        skipped: keys not rendered because an earlier run finished them, or recorded them as failed
            (without ``retry_failed``) or as crashed too often.
        failed: key -> ``"Type: message"`` for every job of the slice now recorded as failed for a
            bad input, whether it failed in this call or an earlier one.
        crashed: key -> reason for every job of the slice now recorded as crashed (it will be
            retried by the next run unless it has had ``max_attempts`` attempts).
        parts: tar files (or sample folders, for ``fmt="folders"``) written by this call.
        seconds: wall time of the call.
        manifest: path of the slice's manifest.
        warnings: notes about samples rendered by this call (e.g. a character leaving the frame).
    """

    shard: tuple[int, int]
    done: tuple[str, ...]
    skipped: tuple[str, ...]
    failed: Mapping[str, str]
    parts: tuple[str, ...]
    seconds: float
    manifest: Path
    crashed: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))
    warnings: tuple[str, ...] = ()

    @property
    def ok(self) -> bool:
        """True when no job of the slice is recorded as failed or crashed."""
        return not self.failed and not self.crashed

    def to_json(self) -> dict[str, Any]:
        """Plain-JSON form (what a Ray task sends back)."""
        return {"shard": list(self.shard), "done": list(self.done), "skipped": list(self.skipped),
                "failed": dict(self.failed), "crashed": dict(self.crashed), "parts": list(self.parts),
                "seconds": self.seconds, "manifest": str(self.manifest), "warnings": list(self.warnings)}

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> RunSummary:
        """Inverse of :meth:`to_json`."""
        return cls(shard=tuple(d["shard"]), done=tuple(d["done"]), skipped=tuple(d["skipped"]),
                   failed=MappingProxyType(dict(d["failed"])), parts=tuple(d["parts"]), seconds=float(d["seconds"]),
                   manifest=Path(d["manifest"]), crashed=MappingProxyType(dict(d.get("crashed", {}))),
                   warnings=tuple(d.get("warnings", ())))


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


def _entry(job: Job, status: str, attempts: int, part: str | None = None, reason: str | None = None,
           seconds: float | None = None, trace: str | None = None) -> dict[str, Any]:
    return {"status": status, "part": part, "reason": reason, "character": job.character_path,
            "motion": job.motion_path, "seconds": seconds, "traceback": trace, "attempts": attempts}


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
    retry_failed: bool = False
    max_attempts: int = DEFAULT_MAX_ATTEMPTS
    warn_fn: WarnFn | None = None
    entries: dict[str, dict] = field(default_factory=dict)
    packed: dict[str, str] = field(default_factory=dict)
    staged: set[str] = field(default_factory=set)
    written: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

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
        # Temporary names carry the writer's pid (``x.tar.<pid>.tmp``); older releases wrote ``x.tar.tmp``.
        for tmp in self.shards_dir.glob(f"c4d-{i:05d}-of-{n:05d}-*.tar*.tmp"):
            tmp.unlink()
        for tmp in self.out_dir.glob(f"{self.manifest_path.name}*.tmp"):
            tmp.unlink()
        keys = {job.key for job in self.jobs}
        for root in (self.staging, self.out_dir):
            for tmp in root.glob(".*.tmp"):
                # ".<key>.<pid>.tmp" (write_folder_sample) or ".<key>.render.<pid>.tmp" (render scratch).
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

    def _retry(self, entry: dict) -> bool:
        if entry["status"] == "failed":
            return self.retry_failed
        return self.retry_failed or entry.get("attempts", 1) < self.max_attempts

    def _reconcile(self, recorded: dict[str, dict]) -> list[Job]:
        """Rebuild the manifest entries from the outputs; return the jobs still to render."""
        pending = []
        for job in self.jobs:
            old = recorded.get(job.key, {})
            attempts = int(old.get("attempts", 1 if old else 0))
            if job.key in self.packed or job.key in self.staged:
                part = self.packed.get(job.key, f"{_STAGING}/{job.key}")
                self.entries[job.key] = _entry(job, "done", max(attempts, 1), part, seconds=old.get("seconds"))
                continue
            status = old.get("status")
            if status == "done":  # recorded done but its output is gone (deleted to render it again)
                pending.append(job)
                continue
            if status == "running":
                old = _entry(job, "crashed", max(attempts, 1), reason=_INTERRUPTED)
                status = "crashed"
            if status in ("failed", "crashed"):
                old.setdefault("attempts", max(attempts, 1))
                self.entries[job.key] = old
                if not self._retry(old):
                    continue
            pending.append(job)
        return pending

    def _num_parts(self) -> int:
        return -(-len(self.jobs) // self.per_tar)

    def _pack_if_ready(self, p: int) -> None:
        """Pack part p once each of its jobs is done, failed or crashed for good (staged samples only)."""
        part_jobs = self.jobs[p * self.per_tar : (p + 1) * self.per_tar]
        settled = all(
            job.key in self.entries and (self.entries[job.key]["status"] == "done" or not self._retry_now(job.key))
            for job in part_jobs
        )
        if self.fmt == "shards" and settled:
            to_pack = sorted(job.key for job in part_jobs if job.key in self.staged)
            if to_pack:
                self._pack(p, to_pack)

    def _retry_now(self, key: str) -> bool:
        # Within one call a failed or crashed job is not rendered again, so its part need not wait for it.
        return self.entries[key]["status"] == "running"

    def _checked_staged(self, key: str) -> Sample | None:
        """Read a staged sample and decode every field; a damaged one is discarded and marked crashed."""
        folder = self.staging / key
        try:
            sample = read_folder_sample(folder, validate=False)
            sample.validate(decode=True)
            return sample
        except (SampleFormatError, OSError) as exc:
            entry = self.entries[key]
            self.entries[key] = {**entry, "status": "crashed", "part": None,
                                 "reason": f"staged sample damaged, discarded before packing: {exc}"}
            self.staged.discard(key)
            shutil.rmtree(folder, ignore_errors=True)
            return None

    def _pack(self, p: int, keys: list[str]) -> None:
        samples = [s for s in (self._checked_staged(key) for key in keys) if s is not None]
        if not samples:
            self._save()
            return
        retry = 0
        while (self.shards_dir / part_name(*self.shard, p, retry)).exists():
            retry += 1
        name = part_name(*self.shard, p, retry)
        with ShardWriter(self.shards_dir / name) as writer:
            for sample in samples:
                writer.write(sample)
        # Order matters for resuming: tar renamed, then manifest, then staging removed.
        for sample in samples:
            self.packed[sample.key] = name
            self.staged.discard(sample.key)
            self.entries[sample.key]["part"] = name
        self._save()
        for sample in samples:
            shutil.rmtree(self.staging / sample.key)
        self.written.append(name)

    def _render(self, job: Job) -> bool:
        previous = self.entries.get(job.key)
        attempts = int(previous.get("attempts", 1)) + 1 if previous else 1
        self.entries[job.key] = _entry(job, "running", attempts)
        self._save()
        scratch = self.staging / f".{job.key}.render.{os.getpid()}.tmp"
        if scratch.exists():
            shutil.rmtree(scratch)
        scratch.mkdir(parents=True)
        start = time.perf_counter()
        try:
            sample = _check_rendered(self.render_fn(job, scratch), job)
        except (WorkerCrashError, MemoryError) as exc:
            self.entries[job.key] = _entry(job, "crashed", attempts, reason=f"{type(exc).__name__}: {exc}",
                                           seconds=round(time.perf_counter() - start, 3),
                                           trace="".join(traceback.format_exception(exc)[-20:]))
            return False
        except Exception as exc:  # noqa: BLE001 - a failing job is recorded; KeyboardInterrupt/SystemExit stop the run
            self.entries[job.key] = _entry(job, "failed", attempts, reason=f"{type(exc).__name__}: {exc}",
                                           seconds=round(time.perf_counter() - start, 3),
                                           trace="".join(traceback.format_exception(exc)[-20:]))
            return False
        except BaseException:
            # Stopped by the user: the attempt does not count; the job is pending again.
            if previous is None:
                del self.entries[job.key]
            else:
                self.entries[job.key] = previous
            self._save()
            raise
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
        self.entries[job.key] = _entry(job, "done", attempts, part, seconds=round(time.perf_counter() - start, 3))
        if self.warn_fn is not None:
            warning = self.warn_fn(sample)
            if warning:
                self.warnings.append(warning)
        return True


def _progress_bar(total: int, initial: int, shard: tuple[int, int], enabled: bool) -> Any:
    from tqdm import tqdm

    show = enabled and sys.stderr.isatty()
    return tqdm(total=total, initial=initial, desc=f"render {shard[0]}/{shard[1]}", unit="job", disable=not show)


def _check_run_args(render_fn: Any, shard: Any, fmt: str, samples_per_tar: Any, max_attempts: Any) -> tuple[int, int]:
    if not callable(render_fn):
        raise TypeError(f"render_fn: expected a callable (job, staging_dir) -> Sample, got {type(render_fn).__name__}")
    if fmt not in FORMATS:
        raise ValueError(f"fmt: expected one of {list(FORMATS)}, got {fmt!r}")
    if isinstance(samples_per_tar, bool) or not isinstance(samples_per_tar, int) or samples_per_tar < 1:
        raise ValueError(f"samples_per_tar: expected an integer >= 1, got {samples_per_tar!r}")
    if isinstance(max_attempts, bool) or not isinstance(max_attempts, int) or max_attempts < 1:
        raise ValueError(f"max_attempts: expected an integer >= 1, got {max_attempts!r}")
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
    retry_failed: bool = False,
    max_attempts: int = DEFAULT_MAX_ATTEMPTS,
    warn_fn: WarnFn | None = None,
) -> RunSummary:
    """Render one slice of the job list into resumable, atomically written output.

    ``render_fn(job, staging_dir)`` renders one job and returns its :class:`Sample` (e.g. from
    ``build_sample``); ``staging_dir`` is an empty scratch folder for its intermediate files,
    removed afterwards. A :class:`WorkerCrashError` or ``MemoryError`` marks the job crashed (retried
    by later runs); any other ``Exception`` (or an invalid returned sample) marks it failed with
    ``"Type: message"``; the run goes on either way. KeyboardInterrupt and SystemExit stop it, and a
    re-run resumes. Staged samples are fsynced before they are renamed into place, and each one is
    decoded in full before it goes into a tar. See the module docstrings for the layout and states.

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
        retry_failed: also render again the jobs recorded as failed (bad input), and crashed jobs
            that have used up their attempts.
        max_attempts: attempts a crashing job gets over all runs (3: a job that kills its worker
            three times is left alone until ``retry_failed``).
        warn_fn: called with each sample rendered by this call; a returned string goes into
            ``RunSummary.warnings``.

    Returns:
        A :class:`RunSummary`.

    Raises:
        TypeError: if ``render_fn`` is not callable or ``jobs`` holds non-Job items.
        ValueError: for a bad ``shard``, ``fmt``, ``samples_per_tar``, ``max_attempts``, unsorted jobs
            or a config that is not JSON.
        ConfigMismatchError: if the slice's manifest records another config, job slice or layout.
        SampleFormatError: if an existing part tar of the slice is unreadable.
    """
    start = time.perf_counter()
    shard = _check_run_args(render_fn, shard, fmt, samples_per_tar, max_attempts)
    _check_jobs(jobs)
    selected = select_shard(jobs, *shard)
    normalised = _json_normalised(config or {})
    layout = {
        "fmt": fmt,
        "samples_per_tar": samples_per_tar,
        "num_jobs": len(jobs),
        "slice_sha256": hashlib.sha256("\n".join(job.key for job in selected).encode()).hexdigest(),
    }
    run = _Run(selected, render_fn, Path(out_dir), shard, normalised, layout, fmt, samples_per_tar,
               retry_failed=retry_failed, max_attempts=max_attempts, warn_fn=warn_fn)
    recorded = _load_manifest(run.manifest_path, normalised, layout, shard)
    for folder in (run.out_dir, run.staging) + ((run.shards_dir,) if fmt == "shards" else ()):
        folder.mkdir(parents=True, exist_ok=True)
    run._remove_leftovers()
    run._scan_outputs()
    pending = run._reconcile(recorded)
    pending_keys = {job.key for job in pending}
    skipped = tuple(job.key for job in selected if job.key in run.entries and job.key not in pending_keys)
    run._save()
    for p in range(run._num_parts()):  # parts completed just before an interruption
        if not any(job.key in pending_keys for job in selected[p * samples_per_tar : (p + 1) * samples_per_tar]):
            run._pack_if_ready(p)
    done = []
    position = {job.key: index for index, job in enumerate(selected)}
    with _progress_bar(len(selected), len(skipped), shard, progress) as bar:
        for index, job in enumerate(pending):
            if run._render(job):
                done.append(job.key)
            run._save()
            p = position[job.key] // samples_per_tar
            later = pending[index + 1 :]
            if not any(position[other.key] // samples_per_tar == p for other in later):
                run._pack_if_ready(p)
            bar.update(1)
    by_status = {status: {k: e["reason"] for k, e in sorted(run.entries.items()) if e["status"] == status}
                 for status in ("failed", "crashed")}
    return RunSummary(
        shard=shard,
        done=tuple(done),
        skipped=skipped,
        failed=MappingProxyType(by_status["failed"]),
        parts=tuple(run.written),
        seconds=time.perf_counter() - start,
        manifest=run.manifest_path,
        crashed=MappingProxyType(by_status["crashed"]),
        warnings=tuple(run.warnings),
    )
