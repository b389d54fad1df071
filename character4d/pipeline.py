"""The render pipeline seen from outside Blender: run one job in a worker process, collect its sample.

`render_job` is the ``render_fn`` that `character4d.jobs.run_jobs` calls. It starts
``python -m character4d.blender.worker`` (the only place bpy is imported), follows its progress and turns
the folder of fields it wrote into a `Sample`.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from character4d.blender.character import CHARACTER_SUFFIXES, MOTION_SUFFIXES  # bpy only inside functions
from character4d.config import PAIRINGS, RunConfig, RunPlan
from character4d.errors import InputError
from character4d.format import Sample
from character4d.jobs import Job, RunSummary, make_jobs, run_jobs
from character4d.jobs.runner import WorkerCrashError

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


def default_inputs() -> tuple[list[Path], list[Path]]:
    """The embedded default characters and motions (generated on first use)."""
    from character4d.default_data import ensure_default_motions

    return _default_characters(), ensure_default_motions()


def _default_characters() -> list[Path]:
    # Building the characters imports bpy; do it in a child process so this one stays bpy-free.
    from character4d.default_data import CHARACTERS, default_data_dir

    expected = [default_data_dir() / "characters" / f"{s.name}.glb" for s in CHARACTERS]
    if not all(p.exists() for p in expected):
        code = subprocess.run([sys.executable, "-c",
                               "from character4d.default_data import ensure_default_characters as e; e()"],
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        if code.returncode != 0:
            raise RenderError(f"could not build the default characters:\n{code.stderr[-2000:]}")
    return sorted(expected)


def pair_jobs(chars: Sequence[Path], motions: Sequence[Path], pairing: str = "product") -> list[Job]:
    """The sorted job list: every character with every motion ("product"), or one motion per character
    ("zip": character i with motion i, cycling through the shorter list).

    Raises:
        ValueError: for an unknown pairing.
    """
    jobs = make_jobs(chars, motions)
    if pairing == "product":
        return jobs
    if pairing != "zip":
        raise ValueError(f"pairing: expected one of {PAIRINGS}, got {pairing!r}")
    chars, motions = sorted(chars, key=lambda p: p.stem), sorted(motions, key=lambda p: p.stem)
    n = max(len(chars), len(motions))
    wanted = {(str(chars[i % len(chars)]), str(motions[i % len(motions)])) for i in range(n)}
    return [j for j in jobs if (str(j.character_path), str(j.motion_path)) in wanted]


def render(characters: Sequence[Path] | None, motions: Sequence[Path] | None, out: Path, cfg: RunConfig,
           plan: RunPlan | None = None, progress: bool = True) -> RunSummary:
    """Render a slice of the characters x motions job list into ``out``.

    Args:
        characters: character files/folders (None: the embedded default characters).
        motions: motion files/folders (None: the embedded default motions).
        out: output directory.
        cfg: what to render (pixels and their encoding).
        plan: how the job list is paired, sliced and written, and what is retried (default `RunPlan()`).
        progress: show progress bars.

    Returns:
        The run summary (done, skipped, failed and crashed with reasons, framing warnings).

    Raises:
        InputError: when no character or motion file is found.
        FileNotFoundError: for an input path that does not exist.
        ConfigMismatchError: if ``out`` was started with another config or job slice.
    """
    plan = RunPlan() if plan is None else plan
    from character4d.jobs import collect_inputs

    if not characters or not motions:  # None or empty: the embedded default data
        default_chars, default_motions = default_inputs()
    # Absolute paths: jobs travel to other processes and nodes (Ray), whose working directory differs.
    chars = [p.resolve() for p in (collect_inputs(characters, CHARACTER_SUFFIXES) if characters else default_chars)]
    mots = [p.resolve() for p in (collect_inputs(motions, MOTION_SUFFIXES) if motions else default_motions)]
    if not chars:
        raise InputError(f"--characters: no character files ({', '.join(CHARACTER_SUFFIXES)}) in {characters}")
    if not mots:
        raise InputError(f"--motions: no motion files ({', '.join(MOTION_SUFFIXES)}) in {motions}")
    jobs = pair_jobs(chars, mots, plan.pairing)
    bar = _ImageBar(progress)

    def render_fn(job: Job, scratch: Path) -> Sample:
        bar.start(job.key)
        try:
            return encode_images(render_job(job, scratch, cfg, bar.update), cfg)
        finally:
            bar.close()

    # Thread count changes speed, not pixels: it stays out of the recorded config, so a resumed run may
    # use another one.
    recorded = {k: v for k, v in cfg.to_json().items() if k != "threads"}
    return run_jobs(jobs, render_fn, out, shard=plan.shard, config=recorded, fmt=plan.fmt,
                    samples_per_tar=plan.samples_per_tar, progress=progress, retry_failed=plan.retry_failed,
                    max_attempts=plan.max_attempts, warn_fn=_framing_warning)


def _framing_warning(sample: Sample) -> str | None:
    """The run summary's note when the character leaves the frame (meta.json ``framing``)."""
    try:
        from character4d.framing import framing_warning
    except ImportError:  # older Blender layers record no framing
        return None
    return framing_warning(sample.meta, sample.key)


def encode_images(sample: Sample, cfg: RunConfig) -> Sample:
    """Re-encode a rendered sample's images with the config's codec (``codec``, ``png_level``).

    The renderer writes PNGs; with ``codec="png"`` and ``png_level=None`` the sample is returned as it is
    (byte-identical to earlier releases).

    Args:
        sample: the rendered sample.
        cfg: run settings.

    Returns:
        The sample with its RGBA frames, A-pose images and pose maps in the chosen encoding.
    """
    from character4d.format import transcode

    if cfg.codec == "png" and cfg.png_level is None:
        return sample
    return transcode(sample, cfg.codec, png_level=cfg.png_level)


class _ImageBar:
    """A per-job bar of rendered images (on a terminal), or one log line per job otherwise."""

    def __init__(self, enabled: bool):
        self.enabled = enabled
        self.tty = sys.stderr.isatty()
        self.bar = None
        self.key = ""
        self.last = (0, 0)

    def start(self, key: str) -> None:
        self.key, self.last = key, (0, 0)
        if self.enabled and self.tty:
            from tqdm import tqdm

            self.bar = tqdm(total=1, desc=f"  {key}", unit="img", leave=False, position=1)

    def update(self, done: int, total: int) -> None:
        self.last = (done, total)
        if self.bar is not None:
            self.bar.total = total
            self.bar.n = done
            self.bar.refresh()

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None
        elif self.enabled:
            print(f"[character4d] {self.key}: {self.last[0]}/{self.last[1]} images", file=sys.stderr, flush=True)
