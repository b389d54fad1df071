"""Frechet Inception Distance (Heusel et al. 2017) on Inception-v3 pool features (2048-d).

The Frechet part is :func:`metrics.frechet.frechet_distance`. The Inception-v3 weights of the TF FID ship
in no registry package, so they cannot be fetched here: FID numbers require the real weights, provided
by the user as the TorchScript file used by StyleGAN2-ADA / StyleGAN3 and clean-fid
(``inception-2015-12-05.pt``, a port of the TF FID graph that takes uint8-valued ``[N, 3, H, W]`` images,
resizes them itself and returns the 2048-d pool features with ``return_features=True``). Put it at
``$CHARACTERBENCH_HOME/weights/inception-2015-12-05.pt`` or point ``$CHARACTERBENCH_INCEPTION`` at it.
Any other extractor can be passed explicitly (tests use a tiny stand-in), but then the numbers are not
FID.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Callable
from pathlib import Path

import torch
from torch import nn

from metrics._checks import check_tensor
from metrics.frechet import FrechetMetric, frechet_distance

__all__ = ["FID", "INCEPTION_ENV", "INCEPTION_FILENAME", "fid", "inception_features", "load_inception"]

INCEPTION_FILENAME = "inception-2015-12-05.pt"
INCEPTION_ENV = "CHARACTERBENCH_INCEPTION"
NUM_FEATURES = 2048


class TorchScriptInception(nn.Module):
    """Adapter: images ``[N, 3, H, W]`` in [0, 1] -> ``[N, 2048]`` pool features of the TorchScript FID net.

    Images are quantised to 8 bits (``round(255 x)``) first, as FID is defined on 8-bit images and the
    TorchScript net expects uint8 values.

    Args:
        module: the loaded TorchScript module.
    """

    def __init__(self, module: torch.jit.ScriptModule):
        super().__init__()
        self.module = module

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """``[N, 3, H, W]`` in [0, 1] -> ``[N, 2048]``."""
        x = (images.clamp(0, 1) * 255).round().to(torch.uint8)
        return self.module(x, return_features=True)


def inception_path(home=None) -> Path:
    """Where the TorchScript Inception is looked for: ``$CHARACTERBENCH_INCEPTION``, else the weights folder."""
    env = os.environ.get(INCEPTION_ENV)
    if env:
        return Path(env).expanduser()
    from metrics.weights import weights_dir

    return weights_dir(home) / INCEPTION_FILENAME


def load_inception(
    path: str | os.PathLike | None = None, device: torch.device | str | None = None, home=None
) -> nn.Module:
    """Load the FID Inception-v3 feature extractor from a TorchScript file.

    Args:
        path: the ``.pt`` file; default :func:`inception_path`.
        device: where to put it (default CPU).
        home: cache root used when path and ``$CHARACTERBENCH_INCEPTION`` are unset.

    Returns:
        A module mapping ``[N, 3, H, W]`` in [0, 1] to ``[N, 2048]``.

    Raises:
        metrics.weights.WeightsNotFoundError: the file is absent; the message says how to provide it.
    """
    from metrics.weights import WeightsNotFoundError

    path = Path(path).expanduser() if path is not None else inception_path(home)
    if not path.is_file():
        raise WeightsNotFoundError(
            f"FID Inception-v3 weights not found at {path}. They ship in no package registry, so "
            f"`characterbench weights fetch` cannot get them: on a machine with internet download the "
            f"TorchScript file {INCEPTION_FILENAME} used by StyleGAN2-ADA/StyleGAN3 and clean-fid, copy it "
            f"to {path} or set ${INCEPTION_ENV} to its path. FID numbers require these exact weights."
        )
    with warnings.catch_warnings():
        # torch >= 2.10 deprecates TorchScript, but the published FID network exists only in that format.
        warnings.simplefilter("ignore", DeprecationWarning)
        module = torch.jit.load(str(path), map_location="cpu")
    model = TorchScriptInception(module).eval().to(device if device is not None else "cpu")
    model.requires_grad_(False)
    return model


def inception_features(
    images: torch.Tensor,
    model: Callable[[torch.Tensor], torch.Tensor] | None = None,
    batch_size: int = 32,
) -> torch.Tensor:
    """Per-image features.

    Args:
        images: ``[N, 3, H, W]`` in [0, 1].
        model: extractor ``[n, 3, H, W]`` in [0, 1] -> ``[n, D]``; default :func:`load_inception`.
        batch_size: images per forward pass.

    Returns:
        ``[N, D]`` on the images' device.

    Raises:
        TypeError, ValueError: bad images; WeightsNotFoundError: no Inception file.
    """
    check_tensor(images, "images", 4, "[N, 3, H, W]", channels=3)
    if batch_size < 1:
        raise ValueError(f"batch_size: expected >= 1, got {batch_size}")
    if model is None:
        model = load_inception(device=images.device)
    param = next(model.parameters(), None) if isinstance(model, nn.Module) else None
    out = []
    with torch.no_grad():
        for start in range(0, images.shape[0], batch_size):
            batch = images[start : start + batch_size]
            if param is not None:
                batch = batch.to(param.device)
            out.append(model(batch).to(images.device))
    return torch.cat(out)


def fid(
    preds: torch.Tensor,
    target: torch.Tensor,
    model: Callable[[torch.Tensor], torch.Tensor] | None = None,
    batch_size: int = 32,
) -> float:
    """Frechet Inception Distance between two image sets.

    FID numbers require the real Inception weights (:func:`load_inception`); with another ``model`` this
    is the Frechet distance in that model's feature space.

    Args:
        preds: ``[N_p, 3, H, W]`` in [0, 1], N_p >= 2.
        target: ``[N_t, 3, H', W']`` in [0, 1], N_t >= 2.
        model: feature extractor; default the TorchScript Inception-v3.
        batch_size: images per forward pass.

    Returns:
        The distance (float64).

    Raises:
        TypeError, ValueError: bad inputs; WeightsNotFoundError: no Inception file.
    """
    check_tensor(preds, "preds", 4, "[N, 3, H, W]", channels=3)
    check_tensor(target, "target", 4, "[N, 3, H, W]", channels=3)
    if model is None:
        model = load_inception(device=preds.device)
    return frechet_distance(inception_features(preds, model, batch_size), inception_features(target, model, batch_size))


class FID(FrechetMetric):
    """FID accumulated over batches (float64 running moments), reduced across processes.

    FID numbers require the real Inception weights; see the module docstring.

    Args:
        model: extractor ``[n, 3, H, W]`` in [0, 1] -> ``[n, num_features]``; default :func:`load_inception`.
        num_features: D of the extractor (2048 for Inception-v3).
        batch_size: images per forward pass.
        keep_features: keep per-image features for :meth:`compute_interval`.
        **kwargs: passed to :class:`torchmetrics.Metric`.
    """

    def __init__(
        self,
        model: nn.Module | None = None,
        num_features: int = NUM_FEATURES,
        batch_size: int = 32,
        keep_features: bool = False,
        **kwargs,
    ):
        super().__init__(num_features, keep_features, **kwargs)
        self.model = model if model is not None else load_inception()
        self.batch_size = batch_size

    def extract(self, inputs: torch.Tensor, name: str) -> torch.Tensor:
        """Features ``[N, D]`` of images ``[N, 3, H, W]`` in [0, 1]."""
        check_tensor(inputs, name, 4, "[N, 3, H, W]", channels=3)
        return inception_features(inputs, self.model, self.batch_size)
