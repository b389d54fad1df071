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

The package holds one module per idea: ``joblist`` (jobs and slices), ``manifest`` (the per-slice
record), ``runner`` (:func:`run_jobs`); every public name is re-exported here.
"""

from __future__ import annotations

from character4d.jobs.joblist import Job, collect_inputs, make_jobs, manifest_name, parse_shard, part_name, select_shard
from character4d.jobs.manifest import MANIFEST_VERSION, ConfigMismatchError
from character4d.jobs.runner import FORMATS, RenderFn, RunSummary, run_jobs

__all__ = [
    "ConfigMismatchError",
    "Job",
    "FORMATS",
    "MANIFEST_VERSION",
    "RenderFn",
    "RunSummary",
    "collect_inputs",
    "make_jobs",
    "manifest_name",
    "parse_shard",
    "part_name",
    "run_jobs",
    "select_shard",
]
