"""Running one job in a worker process: the job file, the worker's progress and result lines, crashes.

`render_job` starts ``python -m character4d.blender.worker JOB.json`` (the only place bpy is imported),
follows its ``PROGRESS`` lines, reads its ``RESULT`` line and turns the folder of fields it wrote into a
`Sample`. A worker that dies without a result (a signal, the OOM killer) or runs out of memory raises
`WorkerCrashError`, which the job runner retries; a rejected input raises `BadInputError`.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

from character4d.config import RunConfig
from character4d.errors import InputError
from character4d.format import Sample
from character4d.jobs import Job
from character4d.jobs.runner import WorkerCrashError

__all__ = ["WORKER_MODULE", "BadInputError", "RenderError", "WorkerCrashError", "render_job"]

# The worker process: ``python -m character4d.blender.worker JOB.json`` (the only place bpy is imported).
# CHARACTER4D_WORKER_MODULE names another module with the same job-file protocol (the test suite uses a
# bpy-free one to crash workers on purpose and to run Ray tasks quickly).
WORKER_MODULE = "character4d.blender.worker"


class RenderError(RuntimeError):
    """Blender failed on a job for a reason other than a bad input (an internal error)."""


class BadInputError(InputError):
    """A job's input file cannot be used (corrupt file, empty mesh, non-humanoid skeleton, no animation)."""


def _tail(path: Path, lines: int = 15) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


def _die_with_parent() -> None:
    """In the worker (before exec): ask Linux to SIGKILL it when the parent dies, so a killed
    ``character4d render`` leaves no Blender writing into the scratch folder that a resumed run reuses."""
    try:
        import ctypes
        import signal

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG = 1
    except OSError:  # not Linux: the worker notices a closed pipe at its next progress report instead
        pass


def _signal_name(code: int) -> str:
    import signal

    try:
        return signal.Signals(-code).name
    except ValueError:
        return f"signal {-code}"


def render_job(job: Job, scratch: Path, cfg: RunConfig,
               on_progress: Callable[[int, int], None] | None = None) -> Sample:
    """Render one job in a Blender worker process.

    Args:
        job: the (character, motion) pair.
        scratch: empty folder for the worker's files.
        cfg: render settings.
        on_progress: called with (images done, images total) as the worker reports them.

    Returns:
        The rendered sample.

    Raises:
        BadInputError: the worker rejected an input file (message from the worker).
        WorkerCrashError: the worker died without reporting (killed by a signal, e.g. the OOM killer's
            SIGKILL) or ran out of memory; the job runner retries these.
        RenderError: the worker failed otherwise (with its traceback).
    """
    out = scratch / job.key
    job_file = scratch / "job.json"
    job_file.write_text(json.dumps({
        "character": str(Path(job.character_path).resolve()), "motion": str(Path(job.motion_path).resolve()),
        "key": job.key, "config": cfg.to_json(), "out": str(out),
    }))
    module = os.environ.get("CHARACTER4D_WORKER_MODULE", WORKER_MODULE)
    proc = subprocess.Popen([sys.executable, "-m", module, str(job_file)],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            preexec_fn=_die_with_parent)
    result = None
    assert proc.stdout is not None
    for line in proc.stdout:
        kind, _, payload = line.strip().partition(" ")
        if kind == "PROGRESS" and on_progress is not None:
            done, total = json.loads(payload)
            on_progress(done, total)
        elif kind == "RESULT":
            result = json.loads(payload)
    code = proc.wait()
    log = scratch / f"{job.key}.log"
    if result is None:
        how = f"killed by {_signal_name(code)}" if code < 0 else f"exit code {code}"
        raise WorkerCrashError(f"Blender worker died ({how}) on {job.key}; log tail:\n{_tail(log)}")
    if not result["ok"]:
        if result.get("bad_input"):
            raise BadInputError(result["message"])
        if result.get("error") == "MemoryError":
            raise WorkerCrashError(f"Blender worker ran out of memory on {job.key}: {result['message']}")
        # The scratch folder (with the worker's log) is deleted after the job: keep the traceback.
        raise RenderError(f"{result['error']}: {result['message']}\nworker traceback:\n{result.get('traceback', '')}")
    files = {p.name: p.read_bytes() for p in sorted(out.iterdir()) if p.is_file()}
    return Sample.from_files(job.key, files, validate=True)
