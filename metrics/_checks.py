"""Input validation shared by the metrics: errors name the argument, what was expected and what came."""

from __future__ import annotations

import torch

# Values a hair outside [0, 1] come from float rendering/resizing; anything beyond is a wrong range
# (e.g. [0, 255] or [-1, 1]), which we refuse rather than clip.
_RANGE_TOL = 1e-4


def check_tensor(x, name: str, ndim: int, layout: str, channels: int | None = None, max_value: float = 1.0) -> None:
    """Check that ``x`` is a floating point tensor of ``ndim`` dims with values in [0, max_value].

    Args:
        x: the input.
        name: argument name for the message.
        ndim: expected number of dimensions.
        layout: human-readable layout, e.g. ``"[N, 3, H, W]"``.
        channels: expected size of the channel dimension (``-3``), or None for any.
        max_value: upper end of the value range (the data range).

    Raises:
        TypeError: not a floating point tensor.
        ValueError: wrong number of dimensions, channels, empty, or values outside [0, 1].
    """
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{name}: expected a torch.Tensor {layout} in [0, {max_value:g}], got {type(x).__name__}")
    if not x.is_floating_point():
        raise TypeError(f"{name}: expected a floating point tensor in [0, {max_value:g}], got dtype {x.dtype}")
    if x.ndim != ndim or (channels is not None and x.shape[-3] != channels):
        raise ValueError(f"{name}: expected shape {layout}, got {list(x.shape)}")
    if x.numel() == 0:
        raise ValueError(f"{name}: expected a non-empty tensor {layout}, got shape {list(x.shape)}")
    lo, hi = x.min().item(), x.max().item()
    tol = _RANGE_TOL * max_value
    if lo < -tol or hi > max_value + tol:
        raise ValueError(f"{name}: expected values in [0, {max_value:g}], got range [{lo:.4g}, {hi:.4g}]")


def check_image_pair(preds, target, channels: int | None = None, max_value: float = 1.0) -> None:
    """Check two image batches ``[N, C, H, W]`` in [0, max_value] of identical shape.

    Raises:
        TypeError, ValueError: see :func:`check_tensor`; or the shapes differ.
    """
    layout = f"[N, {channels if channels else 'C'}, H, W]"
    check_tensor(preds, "preds", 4, layout, channels, max_value)
    check_tensor(target, "target", 4, layout, channels, max_value)
    if preds.shape != target.shape:
        raise ValueError(f"preds and target: expected equal shapes, got {list(preds.shape)} and {list(target.shape)}")
