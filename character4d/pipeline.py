"""The render pipeline seen from outside Blender: inputs, the job list, and one slice of it rendered.

`render` collects the inputs (or the embedded default data), pairs them into the sorted job list and
hands one slice to `character4d.jobs.run_jobs`, rendering each job in a worker process
(`character4d.worker_client.render_job`) and re-encoding it with the config's codec.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

from character4d.assets import CHARACTER_SUFFIXES, MOTION_SUFFIXES
from character4d.config import PAIRINGS, RunConfig, RunPlan
from character4d.errors import InputError
from character4d.format import Sample
from character4d.jobs import Job, RunSummary, make_jobs, run_jobs
from character4d.worker_client import WORKER_MODULE, BadInputError, RenderError, WorkerCrashError, render_job

# Kept importable from here: scripts and tests written against earlier releases import them from pipeline.
__all__ = ["PAIRINGS", "WORKER_MODULE", "BadInputError", "RenderError", "WorkerCrashError", "default_inputs",
           "encode_images", "pair_jobs", "render", "render_job"]

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
