"""Task ``apose``: the 21 A-pose views of the character.

Predictions: ``<pred>/<key>/apose/view{VV}.png`` (or ``.npy``) for every A-pose view of the protocol.
Cell metrics per view (PSNR, SSIM, LPIPS); FID over Inception features of all views of all samples.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from characterbench.protocol import Protocol
from characterbench.tasks.base import Cell, ScoredSample, Task, image_scores, timed_features

APOSE_DIR = "apose"


@dataclass(frozen=True)
class AposeTask(Task):
    """The A-pose task (see the module docstring)."""

    def cells(self, protocol: Protocol) -> list[Cell]:
        return [(v,) for v in protocol.apose_views]

    def grid_axes(self, protocol: Protocol) -> tuple[str, list[int], str, list[int]]:
        return "view", list(protocol.apose_views), "apose", [0]

    def cell_of(self, grid_axes, i: int, j: int) -> Cell:
        return (grid_axes[1][i],)

    def items_per_sample(self, protocol: Protocol, metric: str) -> int:
        return len(protocol.apose_views)

    def read_gt(self, sample: Any, cell: Cell) -> Any:
        return sample.apose(cell[0])

    def pred_path(self, root, key: str, cell: Cell, suffix: str = ".png") -> Path:
        return Path(root, key, APOSE_DIR, f"view{cell[0]:02d}{suffix}")

    def owns(self, first_part: str) -> bool:
        return first_part == APOSE_DIR

    def match(self, rel_parts: tuple[str, ...], gt) -> Cell | None:
        if len(rel_parts) != 2 or rel_parts[0] != APOSE_DIR:
            return None
        name = rel_parts[1]
        if not (name.startswith("view") and name[4:6].isdigit() and name[6:] in self.pred_suffixes()):
            return None
        v = int(name[4:6])
        return (v,) if v < gt.num_views else None

    def expected_size(self, gt) -> tuple[int, int]:
        return gt.apose_size

    def score_sample(self, pending, protocol: Protocol, suite, metric_names, batch_size: int, device, timer) -> ScoredSample:
        """Cell metrics per view; Inception features of every view for FID.

        Returns:
            ``grids[metric]`` ``[views, 1]``; ``features["fid"]`` ``(real, fake)`` ``[views, D]``.
        """
        import torch

        from characterbench import protocol as P

        cells = pending.cells
        grids = {m: np.empty(len(cells)) for m in suite.image}
        use_fid = "fid" in metric_names
        real, fake = [], []
        for start in range(0, len(cells), batch_size):
            stop = min(start + batch_size, len(cells))
            gt, pr = pending.batch(start, stop, protocol, device)
            for m, values in image_scores(suite.image, gt, pr, protocol, device).items():
                grids[m][start:stop] = values
            if use_fid:
                size, flt = protocol.image_resolution, protocol.resize_filter
                real.append(timed_features(suite.features["inception"], P.resize(gt, size, flt), batch_size, timer))
                fake.append(timed_features(suite.features["inception"], P.resize(pr, size, flt), batch_size, timer))
        features = {"fid": (torch.cat(real), torch.cat(fake))} if use_fid else {}
        return ScoredSample({m: g.reshape(-1, 1) for m, g in grids.items()}, features, {}, {})


APOSE = AposeTask(
    name="apose",
    version="1",
    description="21-view A-pose images of the character",
    metrics=("fid", "psnr", "ssim", "lpips"),
    main_metric="psnr",
    layout="<pred>/<sample_key>/apose/view{VV}.png (all 21 views)",
    subfolder=APOSE_DIR,
)
