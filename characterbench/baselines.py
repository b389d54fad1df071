"""Reference baselines built from the ground truth itself, as prediction folders.

- ``ground-truth``: the ground truth (the ceiling: SSIM 1, PSNR at the cap, LPIPS 0, FVD ~0);
- ``static-apose``: each view's A-pose image repeated over time (no motion at all);
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

from characterbench.predictions import cell_path
from characterbench.protocol import PROTOCOL_V1, Protocol


@dataclass(frozen=True)
class Baseline:
    """A baseline: which ground-truth image stands in for each predicted cell.

    Attributes:
        name: Registry name.
        description: One line.
        multiview: ``(view, frame) -> ground-truth field name`` for the multiview task.
        apose: ``view -> ground-truth field name`` for the A-pose task, or None when the baseline
            does not apply to it (for ``static-apose`` it would be the ground truth).
    """

    name: str
    description: str
    multiview: Callable[[int, int], str]
    apose: Callable[[int], str] | None


def _registry() -> dict[str, Baseline]:
    from character4d.format import apose_name, frame_name

    return {
        b.name: b
        for b in (
            Baseline("ground-truth", "the ground truth itself (the ceiling)", frame_name, apose_name),
            Baseline("static-apose", "each view's A-pose image repeated over time", lambda v, f: apose_name(v), None),
            Baseline("front-view", "view 0 shown for every view", lambda v, f: frame_name(0, f), lambda v: apose_name(0)),
        )
    }


BASELINE_NAMES = ("ground-truth", "static-apose", "front-view")


def get_baseline(name: str) -> Baseline:
    """The baseline registered under ``name``.

    Raises:
        KeyError: Unknown name (with the known names and the closest match).
    """
    import difflib

    registry = _registry()
    if name not in registry:
        close = difflib.get_close_matches(name, list(registry), n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise KeyError(f"unknown baseline {name!r}{hint}; known baselines: {list(registry)}")
    return registry[name]


def write_baseline_sample(sample: Any, baseline: Baseline, root: Path, protocol: Protocol) -> None:
    """Write one sample's prediction images of a baseline under ``root``.

    Args:
        sample: Ground-truth ``character4d.format.Sample``.
        baseline: The baseline.
        root: Prediction folder being built.
        protocol: Gives the matrix cells and the A-pose views.
    """
    targets = [(cell_path(root, sample.key, (v, f)), baseline.multiview(v, f)) for v, f in protocol.cells()]
    if baseline.apose is not None:
        targets += [(cell_path(root, sample.key, (v,)), baseline.apose(v)) for v in protocol.apose_views]
    for path, source in targets:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(sample.files[source])


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
