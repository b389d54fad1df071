"""metrics: video/image metrics (FVD, LPIPS, SSIM, PSNR, CLIP-S, FID) as functions and torchmetrics classes.

One metric per module, each with a plain function on tensors and a ``torchmetrics.Metric`` class:

- :mod:`metrics.fvd`: ``frechet_distance``, ``fvd``, ``FVD``, ``bootstrap_frechet_distance``
- :mod:`metrics.i3d`: ``load_i3d`` (Kinetics-400 I3D of the TF FVD)
- :mod:`metrics.lpips`: ``lpips``, ``LPIPS``, ``load_lpips`` (v0.1, AlexNet / VGG16)
- :mod:`metrics.ssim`: ``ssim``, ``SSIM``;  :mod:`metrics.psnr`: ``psnr``, ``PSNR``
- :mod:`metrics.clip_score`: ``clip_score``, ``CLIPScore``, ``load_clip``
- :mod:`metrics.fid`: ``fid``, ``FID``, ``load_inception``
- :mod:`metrics.weights`: ``fetch_weights``, ``weights_status`` (``characterbench weights fetch``)

Importing this package imports nothing heavy (no torch, no weights, no network): the classes below
are resolved lazily on first access. The functions share their module's name (``metrics.fvd.fvd``), so
import them from the module.
"""

from __future__ import annotations

import importlib

# Lazily exported names -> defining module. Module-named functions (fvd, lpips, ssim, psnr, fid,
# clip_score) are deliberately absent: the submodule attribute would shadow them.
_LAZY = {
    "FVD": "metrics.fvd",
    "frechet_distance": "metrics.fvd",
    "bootstrap_frechet_distance": "metrics.fvd",
    "LPIPS": "metrics.lpips",
    "SSIM": "metrics.ssim",
    "PSNR": "metrics.psnr",
    "CLIPScore": "metrics.clip_score",
    "FID": "metrics.fid",
    "load_i3d": "metrics.i3d",
    "load_lpips": "metrics.lpips",
    "load_clip": "metrics.clip_score",
    "load_inception": "metrics.fid",
    "fetch_weights": "metrics.weights",
    "weights_status": "metrics.weights",
    "WeightsNotFoundError": "metrics.weights",
}

__all__ = sorted(_LAZY)


def __getattr__(name: str):
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'metrics' has no attribute {name!r}")


def __dir__():
    return sorted(list(globals()) + list(_LAZY))
