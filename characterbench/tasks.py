"""Registries of CharacterBench tasks and metrics (names, directions, what each needs).

Unknown names raise with the list of known names and the closest match.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass


@dataclass(frozen=True)
class MetricSpec:
    """One metric as the benchmark reports it.

    Attributes:
        name: Key in results (``"ssim"``, ``"fvd_f"``, ...).
        label: Column header (``"SSIM"``, ``"FVD-F"``, ...).
        higher_is_better: Direction, for sorting and for "worst cell" reports.
        kind: ``"image"`` (one value per image pair, averaged), ``"video"`` (FVD over pooled
            clip statistics) or ``"set"`` (FID over pooled image statistics).
        needs_weights: Whether fetched weights are required (``characterbench weights fetch``).
        description: One line for ``characterbench ls``.
    """

    name: str
    label: str
    higher_is_better: bool
    kind: str
    needs_weights: bool
    description: str


METRICS: dict[str, MetricSpec] = {
    m.name: m
    for m in (
        MetricSpec("ssim", "SSIM", True, "image", False, "structural similarity, gaussian 11 / sigma 1.5, per channel then mean"),
        MetricSpec("psnr", "PSNR", True, "image", False, "peak signal-to-noise ratio in dB, data range 1, capped (protocol.psnr_cap_db)"),
        MetricSpec("lpips", "LPIPS", False, "image", True, "LPIPS v0.1 (AlexNet trunk by default), inputs mapped to [-1, 1]"),
        MetricSpec("clip_s", "CLIP-S", True, "image", True, "cosine similarity of CLIP ViT-B/32 image embeddings (not x100)"),
        MetricSpec("fvd_f", "FVD-F", False, "video", True, "FVD over each view's frames in time order (V clips per sample)"),
        MetricSpec("fvd_v", "FVD-V", False, "video", True, "FVD over each frame's views in view order (F clips per sample)"),
        MetricSpec("fvd_d", "FVD-D", False, "video", True, "FVD over the diagonal M[i, i] (1 clip per sample)"),
        MetricSpec("fv4d", "FV4D", False, "video", True, "FVD over all cells in boustrophedon order (1 clip per sample)"),
        MetricSpec("fid", "FID", False, "set", True, "Frechet Inception Distance over all A-pose views of all samples"),
    )
}


@dataclass(frozen=True)
class TaskSpec:
    """One benchmark task.

    Attributes:
        name: ``"multiview"`` or ``"apose"``.
        metrics: Metric names the task reports, in column order.
        layout: The prediction folder layout, for messages and ``characterbench ls``.
        description: One line.
    """

    name: str
    metrics: tuple[str, ...]
    layout: str
    description: str


TASKS: dict[str, TaskSpec] = {
    t.name: t
    for t in (
        TaskSpec(
            "multiview",
            ("ssim", "psnr", "lpips", "clip_s", "fvd_f", "fvd_v", "fvd_d", "fv4d"),
            "<pred>/<sample_key>/view{VV}/frame{FFF}.png (the 9 x 9 matrix, or all 21 x 25)",
            "multi-view videos on the 9-view x 9-frame matrix M[v, f]",
        ),
        TaskSpec(
            "apose",
            ("fid", "psnr", "ssim", "lpips"),
            "<pred>/<sample_key>/apose/view{VV}.png (all 21 views)",
            "21-view A-pose images of the character",
        ),
    )
}


def _closest(name: str, known: list[str]) -> str:
    match = difflib.get_close_matches(name, known, n=1)
    return f" (did you mean {match[0]!r}?)" if match else ""


def get_task(name: str) -> TaskSpec:
    """The task registered under ``name``.

    Raises:
        KeyError: Unknown task; the message lists the known tasks and the closest match.
    """
    if name not in TASKS:
        raise KeyError(f"unknown task {name!r}{_closest(name, list(TASKS))}; known tasks: {sorted(TASKS)}")
    return TASKS[name]


def resolve_metrics(task: str, names: str | list[str] | tuple[str, ...] | None) -> tuple[str, ...]:
    """Check a metric selection against a task.

    Args:
        task: Task name.
        names: ``None`` (all of the task's metrics), a comma-separated string, or names.

    Returns:
        The selected metric names in the task's column order.

    Raises:
        KeyError: Unknown task, or a metric the task does not report (with the known names and
            the closest match).
        ValueError: An empty selection.
    """
    spec = get_task(task)
    if names is None:
        return spec.metrics
    if isinstance(names, str):
        names = [n.strip() for n in names.split(",") if n.strip()]
    if not names:
        raise ValueError(f"expected at least one metric for task {task!r}, got an empty selection")
    for n in names:
        if n not in spec.metrics:
            raise KeyError(
                f"metric {n!r} is not reported by task {task!r}{_closest(n, list(spec.metrics))}; "
                f"its metrics: {list(spec.metrics)}"
            )
    return tuple(m for m in spec.metrics if m in set(names))
