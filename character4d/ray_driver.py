"""Fan a render out over a Ray cluster: one Ray task per shard ``i/N`` of the same job list.

Every task runs the same code path as ``character4d render --shard i/N`` on a worker node, so the
output directory (a shared file system) ends up exactly as N separate SLURM array tasks would leave it,
and a re-run resumes the same way.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from character4d.config import RenderConfig


def _render_shard(characters, motions, out, cfg_json, i, n, fmt, samples_per_tar, pairing) -> dict:
    from character4d.pipeline import render

    s = render(characters, motions, Path(out), RenderConfig.from_json(cfg_json), shard=(i, n), fmt=fmt,
               samples_per_tar=samples_per_tar, progress=False, pairing=pairing)
    return {"shard": [i, n], "done": list(s.done), "skipped": list(s.skipped), "failed": dict(s.failed)}


def render_with_ray(characters: Sequence[Path] | None, motions: Sequence[Path] | None, out: Path,
                    cfg: RenderConfig, num_shards: int, fmt: str = "shards", samples_per_tar: int = 8,
                    cpus_per_task: int = 2, pairing: str = "product") -> list[dict]:
    """Render all ``num_shards`` slices as Ray tasks and wait for them.

    Connects to the cluster named by ``RAY_ADDRESS`` (or starts a local one).

    Args:
        characters, motions: inputs as for ``character4d render`` (None: embedded data).
        out: output directory, on storage every node can write.
        cfg: render settings.
        num_shards: N.
        fmt, samples_per_tar: output layout.
        pairing: "product" or "zip", as for ``character4d render``.
        cpus_per_task: CPUs reserved per task (Blender uses them all).

    Returns:
        One summary dict per shard.

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
        ray.init()
    task = ray.remote(num_cpus=cpus_per_task)(_render_shard)
    if not cfg.threads:  # Blender would use every core of the node, whatever Ray reserved
        cfg = RenderConfig.from_json({**cfg.to_json(), "threads": cpus_per_task})
    chars = [str(p) for p in characters] if characters else None
    mots = [str(p) for p in motions] if motions else None
    refs = [task.remote(chars, mots, str(out), cfg.to_json(), i, num_shards, fmt, samples_per_tar, pairing)
            for i in range(num_shards)]
    return ray.get(refs)
