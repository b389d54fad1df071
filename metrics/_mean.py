"""The one accumulating base class of the per-image metrics (SSIM, PSNR, LPIPS, CLIP-S)."""

from __future__ import annotations

import torch
from torchmetrics import Metric


class PerImageMean(Metric):
    """Mean of a per-image score over all image pairs seen, as float64 sum and count states (summed
    across processes, so the mean reduces exactly in distributed runs).

    Subclasses implement :meth:`score` (``preds, target [N, C, H, W] -> [N]``).

    Args:
        **kwargs: passed to :class:`torchmetrics.Metric`.
    """

    full_state_update = False

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.add_state("total", torch.tensor(0.0, dtype=torch.float64), dist_reduce_fx="sum")
        self.add_state("count", torch.tensor(0, dtype=torch.long), dist_reduce_fx="sum")

    def score(self, preds: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """Per-image values ``[N]`` of a batch (implemented by subclasses)."""
        raise NotImplementedError(f"{type(self).__name__} must implement score(preds, target)")

    def update(self, preds: torch.Tensor, target: torch.Tensor) -> None:
        """Add a batch of image pairs (see the subclass for shapes and ranges)."""
        values = self.score(preds, target)
        self.total += values.double().sum().to(self.total.device)
        self.count += values.numel()

    def compute(self) -> torch.Tensor:
        """The mean (float64 scalar).

        Raises:
            ValueError: nothing was accumulated.
        """
        if int(self.count) == 0:
            raise ValueError(f"{type(self).__name__}: expected at least one update() before compute()")
        return self.total / self.count
