"""The one registry of named resize filters, shared by FVD's preprocessing and the CharacterBench protocol.

A filter's name fixes everything that changes the resized pixels (interpolation, antialiasing, pixel
centres), so a config or a protocol names a filter instead of repeating ``F.interpolate`` arguments:

- ``bilinear`` / ``bicubic``: ``F.interpolate`` with half-pixel centres (``align_corners=False``, as TF2
  ``tf.image.resize``), no antialiasing (the TF FVD's resize);
- ``bilinear-antialias`` / ``bicubic-antialias``: the same with a low-pass before downsampling
  (``antialias=True``; PIL-like downsampling, plain interpolation when upsampling);
- ``nearest`` / ``area``: ``F.interpolate`` modes;
- ``bilinear_tf1``: TF1 ``tf.image.resize_bilinear`` with its defaults (output pixel i samples input
  position ``i * in / out``: no half-pixel offset), which the original TF FVD code calls.

Importing this module imports nothing heavy; torch loads in :func:`resize`.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch

__all__ = ["RESIZE_FILTERS", "ResizeFilter", "get_filter", "resize"]


@dataclass(frozen=True)
class ResizeFilter:
    """One named filter.

    Attributes:
        name: Registry name.
        mode: ``F.interpolate`` mode, or ``"tf1_bilinear"`` for the TF1 sampling.
        antialias: Low-pass before downsampling (bilinear/bicubic only).
    """

    name: str
    mode: str
    antialias: bool = False


RESIZE_FILTERS: dict[str, ResizeFilter] = {
    f.name: f
    for f in (
        ResizeFilter("bilinear", "bilinear"),
        ResizeFilter("bicubic", "bicubic"),
        ResizeFilter("nearest", "nearest"),
        ResizeFilter("area", "area"),
        ResizeFilter("bilinear_tf1", "tf1_bilinear"),
        ResizeFilter("bilinear-antialias", "bilinear", antialias=True),
        ResizeFilter("bicubic-antialias", "bicubic", antialias=True),
    )
}


def get_filter(name: str) -> ResizeFilter:
    """The filter registered under ``name``.

    Raises:
        ValueError: Unknown name (with the known names and the closest match).
    """
    if name not in RESIZE_FILTERS:
        match = difflib.get_close_matches(name, list(RESIZE_FILTERS), n=1)
        hint = f" (did you mean {match[0]!r}?)" if match else ""
        raise ValueError(f"unknown resize filter {name!r}{hint}; known: {sorted(RESIZE_FILTERS)}")
    return RESIZE_FILTERS[name]


def _resize_bilinear_tf1(frames: "torch.Tensor", size: int) -> "torch.Tensor":
    """TF1 ``resize_bilinear`` (align_corners and half_pixel_centers False): ``[M, C, H, W] -> [M, C, size, size]``."""
    import torch

    for dim in (2, 3):
        n_in = frames.shape[dim]
        pos = torch.arange(size, dtype=torch.float64, device=frames.device) * (n_in / size)
        i0 = pos.floor().long().clamp(max=n_in - 1)
        i1 = (i0 + 1).clamp(max=n_in - 1)
        shape = [1, 1, 1, 1]
        shape[dim] = size
        w = (pos - i0).to(frames.dtype).view(shape)
        frames = frames.index_select(dim, i0) * (1 - w) + frames.index_select(dim, i1) * w
    return frames


def resize(images: "torch.Tensor", size: int | tuple[int, int], name: str) -> "torch.Tensor":
    """Resize images with a named filter (identity when already at ``size``).

    Args:
        images: ``[N, C, H, W]`` float.
        size: Output side, or ``(H, W)``.
        name: A key of :data:`RESIZE_FILTERS`.

    Returns:
        ``[N, C, size, size]`` (not clamped: bicubic may overshoot the input range).

    Raises:
        ValueError: Unknown filter, or not ``[N, C, H, W]``.
    """
    import torch.nn.functional as F

    flt = get_filter(name)
    if images.ndim != 4:
        raise ValueError(f"images: expected [N, C, H, W], got shape {list(images.shape)}")
    hw = (size, size) if isinstance(size, int) else tuple(size)
    if tuple(images.shape[-2:]) == hw:
        return images
    if flt.mode == "tf1_bilinear":
        if hw[0] != hw[1]:
            raise ValueError(f"bilinear_tf1: expected a square output, got {hw}")
        return _resize_bilinear_tf1(images, hw[0])
    kwargs = {"antialias": flt.antialias, "align_corners": False} if flt.mode in ("bilinear", "bicubic") else {}
    return F.interpolate(images, size=hw, mode=flt.mode, **kwargs)
