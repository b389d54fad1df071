"""Reference baselines built from the ground truth itself, as prediction folders.

- ``ground-truth``: the ground truth (the ceiling: SSIM 1, PSNR at the cap, LPIPS 0, FVD ~0; for the
  pose task its own pose maps, the round trip of decoding and triangulation);
- ``static-apose``: each view's A-pose image repeated over time (no motion at all); for the pose task
  the A-pose joints held still, as OpenPose keypoints;
- ``front-view``: view 0 shown for every view (no 3D consistency at all).

They are scored by ``characterbench eval`` like any method, so the leaderboard gets reproduced rows
that bracket real methods. Images are copied byte for byte from the ground truth (no re-encoding).
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from characterbench.protocol import PROTOCOL_V1, Protocol


Source = Callable[[Any, tuple[int, ...]], tuple[bytes, str]]  # (ground-truth sample, cell) -> (file bytes, suffix)


@dataclass(frozen=True)
class Baseline:
    """A baseline: for each task it applies to, what stands in for each predicted cell.

    Attributes:
        name: Registry name.
        description: One line.
        sources: ``{task name: (sample, cell) -> (file bytes, suffix)}``; tasks absent here are not
            covered (for ``static-apose`` the A-pose task would be the ground truth itself).
    """

    name: str
    description: str
    sources: dict[str, Source]


def _copy(field: Callable[..., str]) -> Source:
    """A source that copies a ground-truth file byte for byte."""
    return lambda sample, cell: (sample.files[field(*cell)], ".png")


def _apose_keypoints_json(sample: Any, cell: tuple[int, ...]) -> tuple[bytes, str]:
    """OpenPose keypoints of the A-pose joints seen by the cell's camera (the A-pose held still)."""
    import numpy as np

    from characterbench.pose import coco18_from_joints, keypoints_to_openpose_json, project_points

    v = cell[0]
    cams = sample.cameras
    kp3d = coco18_from_joints(np.asarray(sample.apose_joints, np.float64), sample.meta["joint_names"])
    uv = project_points(kp3d, np.asarray(cams.viewmats[v], np.float64), np.asarray(cams.Ks[v], np.float64))
    inside = (uv >= 0).all(-1) & (uv[:, 0] < cams.width) & (uv[:, 1] < cams.height)
    uv[~inside] = np.nan
    return keypoints_to_openpose_json(uv).encode(), ".json"


def _registry() -> dict[str, Baseline]:
    from character4d.format import apose_name, frame_name, pose_name

    return {
        b.name: b
        for b in (
            Baseline("ground-truth", "the ground truth itself (the ceiling)",
                     {"multiview": _copy(frame_name), "apose": _copy(apose_name), "pose": _copy(pose_name)}),
            Baseline("static-apose", "each view's A-pose image repeated over time (pose: the A-pose joints held still)",
                     {"multiview": _copy(lambda v, f: apose_name(v)), "pose": _apose_keypoints_json}),
            Baseline("front-view", "view 0 shown for every view",
                     {"multiview": _copy(lambda v, f: frame_name(0, f)), "apose": _copy(lambda v: apose_name(0))}),
        )
    }


BASELINE_NAMES = ("ground-truth", "static-apose", "front-view")


def get_baseline(name: str) -> Baseline:
    """The baseline registered under ``name``.

    Raises:
        KeyError: Unknown name (with the known names and the closest match).
    """
    from characterbench.registry import closest

    registry = _registry()
    if name not in registry:
        raise KeyError(f"unknown baseline {name!r}{closest(name, list(registry))}; known baselines: {list(registry)}")
    return registry[name]


def write_baseline_sample(sample: Any, baseline: Baseline, root: Path, protocol: Protocol) -> None:
    """Write one sample's prediction files of a baseline under ``root``, for every task it covers.

    Args:
        sample: Ground-truth ``character4d.format.Sample``.
        baseline: The baseline.
        root: Prediction folder being built.
        protocol: Gives each task's cells.
    """
    from characterbench.tasks import get_task

    for task_name, source in baseline.sources.items():
        task = get_task(task_name)
        for cell in task.cells(protocol):
            data, suffix = source(sample, cell)
            path = task.pred_path(root, sample.key, cell, suffix)
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(data)


def make_baseline(
    name: str, gt: str | Path, out: str | Path, protocol: Protocol = PROTOCOL_V1, progress: bool = True
) -> Path:
    """Build a baseline's prediction folder from the ground truth.

    The folder is written to ``<out>.tmp`` and renamed when complete.

    Args:
        name: A name of ``BASELINE_NAMES``.
        gt: Ground truth (anything ``character4d.format.open_samples`` reads).
        out: Prediction folder to create (must not exist).
        protocol: The protocol whose cells are written.
        progress: Show a progress bar.

    Returns:
        ``out``.

    Raises:
        KeyError: Unknown baseline.
        FileExistsError: ``out`` exists.
    """
    from tqdm import tqdm

    from characterbench.groundtruth import iter_ground_truth

    baseline = get_baseline(name)
    out = Path(out)
    if out.exists():
        raise FileExistsError(f"{out} already exists; choose a new folder for the {name} baseline")
    staging = out.with_name(out.name + ".tmp")
    if staging.exists():
        shutil.rmtree(staging)
    staging.mkdir(parents=True)
    try:
        for sample in tqdm(iter_ground_truth(gt), desc=f"baseline {name}", unit="sample", disable=not progress):
            write_baseline_sample(sample, baseline, staging, protocol)
        staging.rename(out)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return out
