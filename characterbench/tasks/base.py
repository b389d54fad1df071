"""The :class:`Task` interface: everything the evaluation, validation, baselines, results and boards
ask of a task, so that none of them branches on a task's name.

Image tasks (``multiview``, ``apose``) share :class:`ImageTask`: cells are ground-truth images, a
prediction is one image per cell, cell metrics run on image pairs and set metrics on features of
clips or images. The ``pose`` task (``characterbench/tasks/pose.py``) overrides reading and scoring.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from characterbench.protocol import Protocol

if TYPE_CHECKING:
    from characterbench.groundtruth import GroundTruthSample

Cell = tuple[int, ...]


@dataclass
class ScoredSample:
    """What a task's scoring returns for one sample.

    Attributes:
        grids: Per-cell values by cell metric, shaped like the task's grid (rows x cols).
        features: By set metric, ``(real, fake)`` features ``[n, D]`` float64.
        values: By ``"sample"``-level metric, the sample's value (its task computed it).
        breakdown: Named per-sample breakdowns (e.g. per-joint errors), ``{name: {label: value}}``.
    """

    grids: dict[str, np.ndarray]
    features: dict[str, tuple[Any, Any]]
    values: dict[str, float]
    breakdown: dict[str, dict[str, float]]


@dataclass(frozen=True)
class Task:
    """One benchmark task (subclasses implement the layout and the scoring).

    Attributes:
        name: Registry name (``"multiview"``, ``"apose"``, ``"pose"``).
        version: Version of the task's definition; a change that moves numbers bumps it.
        description: One line for ``characterbench ls`` and the board.
        metrics: Metric names the task reports, in column order.
        main_metric: The metric boards sort by.
        layout: The prediction folder layout, for messages and ``characterbench ls``.
        subfolder: The sample sub-folder holding this task's predictions (None: ``view{VV}/`` folders).
    """

    name: str
    version: str
    description: str
    metrics: tuple[str, ...]
    main_metric: str
    layout: str
    subfolder: str | None

    # ---- cells and grids
    def cells(self, protocol: Protocol) -> list[Cell]:
        """The scored cells, in scoring order (rig indices)."""
        raise NotImplementedError

    def grid_axes(self, protocol: Protocol) -> tuple[str, list[int], str, list[int]]:
        """``(row_axis, row_labels, col_axis, col_labels)`` of the per-cell grid."""
        raise NotImplementedError

    def cell_of(self, grid_axes: tuple[str, list[int], str, list[int]], i: int, j: int) -> Cell:
        """The cell at grid position ``[i, j]``."""
        raise NotImplementedError

    def items_per_sample(self, protocol: Protocol, metric: str) -> int:
        """Feature vectors one sample contributes to a set metric (clips, images)."""
        raise KeyError(f"task {self.name!r} has no set metric {metric!r}")

    # ---- ground truth and predictions
    def read_gt(self, sample: Any, cell: Cell) -> Any:
        """The ground truth of one cell."""
        raise NotImplementedError

    def pred_path(self, root: str | Path, key: str, cell: Cell, suffix: str = ".png") -> Path:
        """Where the prediction of a cell lives."""
        raise NotImplementedError

    def pred_suffixes(self) -> tuple[str, ...]:
        """File suffixes a prediction may have."""
        return (".png", ".npy")

    def match(self, rel_parts: tuple[str, ...], gt: "GroundTruthSample") -> Cell | None:
        """The cell a file (path parts below the sample folder) holds, or None if it is not one."""
        raise NotImplementedError

    def owns(self, first_part: str) -> bool:
        """Whether an entry directly below a sample folder belongs to this task's layout."""
        raise NotImplementedError

    def wanted(self, gt: "GroundTruthSample", protocol: Protocol, found: Mapping[Cell, Path]) -> tuple[list[Cell], str]:
        """``(cells that must be present, layout name)`` given what was found."""
        return self.cells(protocol), self.name

    def expected_size(self, gt: "GroundTruthSample") -> tuple[int, int]:
        """``(W, H)`` a prediction file must have."""
        return gt.frame_size

    def check_file(self, path: Path, rel: str, size: tuple[int, int]) -> list:
        """Every problem of one prediction file (a list of ``predictions.Problem``)."""
        return self.check_and_decode(path, rel, size)[0]

    def check_and_decode(self, path: Path, rel: str, size: tuple[int, int]) -> tuple[list, Any]:
        """Every problem of one prediction file, and the file's decoded prediction (what
        :meth:`read_prediction` returns) when it has none and decoding it was part of the check
        (a PNG), else None. Validation keeps it so that scoring need not decode the file again."""
        from characterbench.predictions import inspect_image_file

        return inspect_image_file(path, rel, size)

    def read_prediction(self, path: Path) -> Any:
        """Decode one prediction file."""
        from characterbench.predictions import read_prediction

        return read_prediction(path)

    # ---- scoring
    def score_sample(self, pending: Any, protocol: Protocol, suite: Any, metric_names: tuple[str, ...],
                     batch_size: int, device: Any, timer: Any) -> ScoredSample:
        """Score one sample (``pending`` is an ``evaluate.PendingSample``)."""
        raise NotImplementedError


_VIEW_DIR = re.compile(r"^view(\d{2})$")


def view_dir(name: str) -> int | None:
    """``"view07"`` -> 7, anything else -> None."""
    m = _VIEW_DIR.match(name)
    return int(m.group(1)) if m else None


def image_scores(fns: Mapping[str, Callable], gt: Any, pr: Any, protocol: Protocol, device: Any) -> dict:
    """Per-cell metric values of a batch of composited images ``[n, 3, H, W]`` (resized to the protocol)."""
    from characterbench import protocol as P

    if not fns:
        return {}
    g = P.resize(gt, protocol.image_resolution, protocol.resize_filter).to(device)
    p = P.resize(pr, protocol.image_resolution, protocol.resize_filter).to(device)
    return {m: fn(p, g).cpu().numpy() for m, fn in fns.items()}


def timed_features(fn: Callable, x: Any, batch: int, timer: Any) -> Any:
    """``fn(x, batch)``, adding its time and input count to ``timer``."""
    import time

    t0 = time.perf_counter()
    out = fn(x, batch)
    timer.feature_s += time.perf_counter() - t0
    timer.clips += x.shape[0]
    return out
