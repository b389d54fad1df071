"""PSNR per image: ``10 log10(data_range^2 / MSE)`` with the MSE over all channels and pixels.

The benchmark averages per-image PSNR values (not the PSNR of the pooled MSE); identical images give
``inf``, which the caller must decide how to report rather than have it silently clipped here.
"""

from __future__ import annotations

import torch

from metrics._checks import check_image_pair
from metrics._mean import PerImageMean

__all__ = ["PSNR", "psnr"]


def psnr(preds: torch.Tensor, target: torch.Tensor, data_range: float = 1.0) -> torch.Tensor:
    """Per-image peak signal-to-noise ratio in dB.

    Args:
        preds: ``[N, C, H, W]`` in [0, data_range].
        target: ``[N, C, H, W]``, same shape.
        data_range: value range (1 for [0, 1] images).

    Returns:
        ``[N]`` float64 PSNR values (``inf`` where the images are identical).

    Raises:
        TypeError, ValueError: bad inputs or non-positive data_range.
    """
    if not data_range > 0:
        raise ValueError(f"data_range: expected > 0, got {data_range}")
    check_image_pair(preds, target, max_value=data_range)
    # float64: the MSE of near-identical 8-bit images is tiny and its log is what we report.
    mse = (preds.double() - target.double()).pow(2).flatten(1).mean(dim=1)
    return 10 * torch.log10(data_range**2 / mse)


class PSNR(PerImageMean):
    """Mean per-image PSNR over all images seen, accumulated over batches and reduced across processes.

    Args:
        data_range: value range (1 for [0, 1] images).
        **kwargs: passed to :class:`torchmetrics.Metric`.
    """

    is_differentiable = True
    higher_is_better = True

    def __init__(self, data_range: float = 1.0, **kwargs):
        super().__init__(**kwargs)
        self.data_range = data_range

    def score(self, preds: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """Per-image values of a batch: ``preds``, ``target`` ``[N, C, H, W]`` in [0, data_range]."""
        return psnr(preds, target, self.data_range)
