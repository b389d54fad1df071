"""Fan a render out over a Ray cluster: one Ray task per shard ``i/N`` of the same job list.

Every task runs the same code path as ``character4d render --shard i/N`` on a worker node, so the
output directory (a shared file system) ends up exactly as N separate SLURM array tasks would leave it,
and a re-run resumes the same way. Input paths are made absolute here, before they travel: a Ray
worker's working directory is not the driver's.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from character4d.config import RunConfig, RunPlan
from character4d.jobs import RunSummary


def _render_shard(characters: list[str] | None, motions: list[str] | None, out: str, cfg_json: dict,
                  plan: dict[str, Any]) -> dict:
    from character4d.pipeline import render

    chars = [Path(p) for p in characters] if characters else None
    mots = [Path(p) for p in motions] if motions else None
    summary = render(chars, mots, Path(out), RunConfig.from_json(cfg_json), RunPlan(**plan), progress=False)
    return summary.to_json()


def _absolute(paths: Sequence[Path | str] | None) -> list[str] | None:
    return [str(Path(p).expanduser().resolve()) for p in paths] if paths else None


def render_with_ray(characters: Sequence[Path] | None, motions: Sequence[Path] | None, out: Path,
                    cfg: RunConfig, num_shards: int, plan: RunPlan | None = None, cpus_per_task: int = 2,
                    num_cpus: int | None = None) -> list[RunSummary]:
    """Render all ``num_shards`` slices as Ray tasks and wait for them.

    Connects to the cluster named by ``RAY_ADDRESS``, or starts a local one (with ``num_cpus`` CPUs)
    when Ray is not initialised yet.

    Args:
        characters, motions: inputs as for ``character4d render`` (None: embedded data).
        out: output directory, on storage every node can write.
        cfg: run settings.
        num_shards: N; task i renders the slice ``i/N`` (``plan.shard`` is ignored).
        plan: pairing, output layout and retries, as for ``character4d render``.
        cpus_per_task: CPUs reserved per task (Blender gets as many threads unless ``cfg.threads`` is set).
        num_cpus: CPUs of a local cluster started here (None: all of the machine's).

    Returns:
        One :class:`~character4d.jobs.RunSummary` per shard, in shard order.

    Raises:
        ImportError: when ray is not installed (with the install command).
        ValueError: for num_shards < 1.
    """
    if num_shards < 1:
        raise ValueError(f"--ray: expected at least 1 shard, got {num_shards}")
    try:
        import ray
    except ImportError as exc:
        raise ImportError("--ray needs Ray: pip install 'character4d-toolkit[ray]' (or pip install ray)") from exc
    if not ray.is_initialized():
        ray.init(num_cpus=num_cpus, include_dashboard=False, log_to_driver=False)
    task = ray.remote(num_cpus=cpus_per_task)(_render_shard)
    if not cfg.threads:  # Blender would use every core of the node, whatever Ray reserved
        cfg = cfg.replace(threads=cpus_per_task)
    plan = RunPlan() if plan is None else plan
    out = Path(out).expanduser().resolve()
    refs = [task.remote(_absolute(characters), _absolute(motions), str(out), cfg.to_json(),
                        {**dataclasses.asdict(plan), "shard": (i, num_shards)})
            for i in range(num_shards)]
    return [RunSummary.from_json(d) for d in ray.get(refs)]
