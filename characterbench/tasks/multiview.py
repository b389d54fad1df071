"""Task ``multiview``: multi-view videos on the protocol's 9-view x 9-frame matrix ``M[v, f]``.

Predictions: ``<pred>/<key>/view{VV}/frame{FFF}.png`` (or ``.npy``) for the matrix cells, or for the
complete rig grid (21 views x 25 frames), from which the protocol picks. Cell metrics: SSIM, PSNR,
LPIPS, CLIP-S per cell; set metrics: the four FVD variants over I3D features of the clips of
``characterbench.protocol.fvd_clips``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from characterbench.protocol import Protocol, clips_per_sample
from characterbench.tasks.base import Cell, ScoredSample, Task, image_scores, timed_features, view_dir


@dataclass(frozen=True)
class MultiviewTask(Task):
    """The multiview task (see the module docstring)."""

    def cells(self, protocol: Protocol) -> list[Cell]:
        return protocol.cells()

    def grid_axes(self, protocol: Protocol) -> tuple[str, list[int], str, list[int]]:
        return "view", list(protocol.views), "frame", list(protocol.frames)

    def cell_of(self, grid_axes, i: int, j: int) -> Cell:
        return grid_axes[1][i], grid_axes[3][j]

    def items_per_sample(self, protocol: Protocol, metric: str) -> int:
        return clips_per_sample(protocol, metric)

    def read_gt(self, sample: Any, cell: Cell) -> Any:
        return sample.frame(*cell)

    def pred_path(self, root, key: str, cell: Cell, suffix: str = ".png") -> Path:
        return Path(root, key, f"view{cell[0]:02d}", f"frame{cell[1]:03d}{suffix}")

    def owns(self, first_part: str) -> bool:
        return view_dir(first_part) is not None

    def match(self, rel_parts: tuple[str, ...], gt) -> Cell | None:
        if len(rel_parts) != 2:
            return None
        v = view_dir(rel_parts[0])
        name = rel_parts[1]
        if v is None or not (name.startswith("frame") and name[5:8].isdigit() and name[8:] in self.pred_suffixes()):
            return None
        f = int(name[5:8])
        return (v, f) if v < gt.num_views and f < gt.num_frames else None

    def wanted(self, gt, protocol: Protocol, found: Mapping[Cell, Path]) -> tuple[list[Cell], str]:
        matrix = protocol.cells()
        # A file outside the matrix means the folder claims the full grid: then all of it must be there.
        if set(found) - set(matrix):
            return [(v, f) for v in range(gt.num_views) for f in range(gt.num_frames)], "full"
        return matrix, "matrix"

    def score_sample(self, pending, protocol: Protocol, suite, metric_names, batch_size: int, device, timer) -> ScoredSample:
        """Cell metrics per cell; I3D features of each FVD variant's clips.

        Returns:
            ``grids[metric]`` ``[V, F]``; ``features[variant]`` ``(real, fake)`` ``[clips, 400]`` float64.
        """
        import torch

        from characterbench import protocol as P

        variants = tuple(m for m in metric_names if m in protocol.fvd_variants)
        cells = self.cells(protocol)
        v, f = protocol.matrix_shape
        r = protocol.fvd_resolution
        grids = {m: np.empty(len(cells)) for m in suite.image}
        if variants:
            real_m = torch.empty(len(cells), 3, r, r, device=device)
            fake_m = torch.empty(len(cells), 3, r, r, device=device)
        for start in range(0, len(cells), batch_size):
            stop = min(start + batch_size, len(cells))
            gt, pr = pending.batch(start, stop, protocol, device)
            for m, values in image_scores(suite.image, gt, pr, protocol, device).items():
                grids[m][start:stop] = values
            if variants:
                real_m[start:stop] = P.resize(gt, r, protocol.resize_filter)
                fake_m[start:stop] = P.resize(pr, r, protocol.resize_filter)
        features: dict[str, tuple[Any, Any]] = {}
        if variants:
            real_m, fake_m = real_m.view(v, f, 3, r, r), fake_m.view(v, f, 3, r, r)
            for variant in variants:
                real_c, fake_c = P.fvd_clips(real_m, variant), P.fvd_clips(fake_m, variant)
                n = real_c.shape[0]
                # Long clips (FV4D: V*F frames) get proportionally smaller batches.
                per_batch = max(1, batch_size * 9 // real_c.shape[1])
                both = timed_features(suite.features["i3d"], torch.cat([real_c, fake_c]), per_batch, timer)
                features[variant] = (both[:n], both[n:])
        return ScoredSample({m: g.reshape(v, f) for m, g in grids.items()}, features, {}, {})


MULTIVIEW = MultiviewTask(
    name="multiview",
    version="1",
    description="multi-view videos on the 9-view x 9-frame matrix M[v, f]",
    metrics=("ssim", "psnr", "lpips", "clip_s", "fvd_f", "fvd_v", "fvd_d", "fv4d"),
    main_metric="fv4d",
    layout="<pred>/<sample_key>/view{VV}/frame{FFF}.png (the 9 x 9 matrix, or all 21 x 25)",
    subfolder=None,
)
