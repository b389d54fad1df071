"""Neighbour-constrained 4D Gaussian Splatting: multi-view videos of a character -> a 4D character.

Public API (stable; see docs/contracts.md, section reference_model.gs4d). Names are imported lazily, so
``import reference_model.gs4d`` loads no torch, no CUDA code and no weights:

- configuration: :class:`Gs4dConfig`, :class:`SplitConfig`, :func:`preset` (``default``, ``research``,
  ``no_neighbour``, ``no_gate``, ``no_progressive``)
- fitting: :func:`fit_sample` (everything ``charactershot fit4d`` writes), :func:`fit`, :func:`load_views`
- a fit directory: :func:`save_fit`, :func:`load_fit` -> ``(Gaussians4D, Gs4dConfig)``
- rendering: :func:`render` (``model, t, viewmats [V,4,4], Ks [V,3,3], width, height`` -> colours,
  alphas, depths), :meth:`Gaussians4D.gaussians_at` (the parameters at time ``t``)
- ``.ply`` (standard 3DGS layout): :func:`write_ply`, :func:`read_ply`, :class:`Gaussians`
"""

from __future__ import annotations

import importlib

_LAZY = {
    "Gs4dConfig": "reference_model.gs4d.config",
    "SplitConfig": "reference_model.gs4d.config",
    "preset": "reference_model.gs4d.config",
    "PRESETS": "reference_model.gs4d.config",
    "PROTOCOL_VIEWS": "reference_model.gs4d.config",
    "Gaussians": "reference_model.gs4d.gaussians",
    "write_ply": "reference_model.gs4d.gaussians",
    "read_ply": "reference_model.gs4d.gaussians",
    "Gaussians4D": "reference_model.gs4d.model",
    "save_fit": "reference_model.gs4d.model",
    "load_fit": "reference_model.gs4d.model",
    "render": "reference_model.gs4d.fitting",
    "fit": "reference_model.gs4d.fitting",
    "FitResult": "reference_model.gs4d.fitting",
    "RenderOutput": "reference_model.gs4d.rasterize",
    "rasterize": "reference_model.gs4d.rasterize",
    "load_views": "reference_model.gs4d.data",
    "ViewSet": "reference_model.gs4d.data",
    "fit_sample": "reference_model.gs4d.runner",
}

__all__ = sorted(_LAZY)


def __getattr__(name: str):
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'reference_model.gs4d' has no attribute {name!r}")
