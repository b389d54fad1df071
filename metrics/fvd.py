"""Frechet Video Distance (Unterthiner et al. 2018) on Kinetics-400 I3D logits.

Protocol (as the TensorFlow FVD): clips resized to 224 x 224 with one named filter (bilinear, no
antialiasing, as ``tf.image.resize``), values mapped to [-1, 1], I3D logits averaged over time (400-d,
before softmax), Gaussian fit with the N-1 covariance, and

    d^2 = |mu_a - mu_b|^2 + tr(S_a) + tr(S_b) - 2 tr sqrt(S_a S_b).

The Frechet maths (moments, both forms of ``tr sqrt``, the bootstrap, the accumulating base class)
lives in :mod:`metrics.frechet`; its names are re-exported here.

The :class:`FVD` metric keeps float64 running sums (sum, sum of outer products, count) per set, so it
accumulates over batches and reduces across processes without keeping features; it keeps per-clip
features only when asked, for the bootstrap confidence interval.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import torch
from torch import nn

from metrics._checks import check_tensor
from metrics.frechet import (  # re-exported: the Frechet maths lives in metrics.frechet
    FrechetInterval,
    FrechetMetric,
    bootstrap_frechet_distance,
    frechet_distance,
    frechet_distance_batched,
    frechet_distance_from_moments,
    gaussian_moments,
    trace_sqrt_product,
)

__all__ = [
    "FVD",
    "FVDConfig",
    "FrechetInterval",
    "FrechetMetric",
    "bootstrap_frechet_distance",
    "frechet_distance",
    "frechet_distance_batched",
    "frechet_distance_from_moments",
    "fvd",
    "gaussian_moments",
    "i3d_features",
    "preprocess_videos",
    "trace_sqrt_product",
]

_FILTERS = ("bilinear", "bicubic", "nearest", "area", "bilinear_tf1")  # the metrics.resize names FVD accepts


@dataclasses.dataclass(frozen=True)
class FVDConfig:
    """Everything in the FVD preprocessing that changes the number.

    Attributes:
        size: clips are resized to ``size x size`` (the I3D input, 224).
        resize_filter: ``"bilinear"`` (default), ``"bicubic"``, ``"nearest"``, ``"area"``: ``F.interpolate``
            modes with half-pixel centres (``align_corners=False``, as TF2 ``tf.image.resize``);
            ``"bilinear_tf1"``: TF1 ``tf.image.resize_bilinear`` with its defaults, which the original TF
            FVD code calls: output pixel i samples input position ``i * in / out`` (no half-pixel
            offset, a sub-pixel shift towards the origin). Use it to compare with numbers computed by
            that code; the default follows the benchmark protocol.
        antialias: low-pass before downsampling (``F.interpolate(antialias=...)``; bilinear/bicubic only).
            Off by default, as in the TF FVD.
    """

    size: int = 224
    resize_filter: str = "bilinear"
    antialias: bool = False

    @property
    def filter_name(self) -> str:
        """The :data:`metrics.resize.RESIZE_FILTERS` name of this filter and antialiasing choice."""
        return f"{self.resize_filter}-antialias" if self.antialias else self.resize_filter

    def __post_init__(self):
        if self.resize_filter not in _FILTERS:
            raise ValueError(f"resize_filter: expected one of {_FILTERS}, got {self.resize_filter!r}")
        if self.antialias and self.resize_filter not in ("bilinear", "bicubic"):
            raise ValueError(f"antialias: only bilinear/bicubic support it, got filter {self.resize_filter!r}")
        if self.size < 1:
            raise ValueError(f"size: expected a positive int, got {self.size}")


# ------------------------------------------------------------------------------------------------
# Videos -> I3D features
# ------------------------------------------------------------------------------------------------


def check_videos(videos, name: str) -> None:
    """Validate ``[N, T, 3, H, W]`` in [0, 1].

    Raises:
        TypeError, ValueError: naming ``name``.
    """
    check_tensor(videos, name, 5, "[N, T, 3, H, W]", channels=3)


def preprocess_videos(videos: torch.Tensor, config: FVDConfig = FVDConfig()) -> torch.Tensor:
    """Resize clips and map them to the I3D input convention.

    Args:
        videos: ``[N, T, 3, H, W]`` in [0, 1].
        config: resize size and filter.

    Returns:
        ``[N, 3, T, size, size]`` in [-1, 1] (float32 at least).
    """
    from metrics.resize import resize

    n, t, c, h, w = videos.shape
    frames = videos.reshape(n * t, c, h, w).to(torch.promote_types(videos.dtype, torch.float32))
    frames = resize(frames, config.size, config.filter_name)
    frames = frames * 2 - 1
    # Contiguous: the 3D convolutions are about 30% slower on the permuted strides.
    return frames.reshape(n, t, c, config.size, config.size).permute(0, 2, 1, 3, 4).contiguous()


def i3d_features(
    videos: torch.Tensor,
    model: Callable[[torch.Tensor], torch.Tensor] | None = None,
    config: FVDConfig = FVDConfig(),
    batch_size: int = 8,
) -> torch.Tensor:
    """Per-clip features (time-averaged I3D logits by default).

    Args:
        videos: ``[N, T, 3, H, W]`` in [0, 1] (T >= 9 for I3D).
        model: feature extractor taking ``[n, 3, T, size, size]`` in [-1, 1] to ``[n, D]``; default
            :func:`metrics.i3d.load_i3d` on the videos' device.
        config: preprocessing.
        batch_size: clips per forward pass (memory bound: 9-frame clips need about 0.5 GB each in fp32).

    Returns:
        ``[N, D]`` features on the videos' device.

    Raises:
        TypeError, ValueError: bad videos; WeightsNotFoundError: I3D weights not fetched.
    """
    check_videos(videos, "videos")
    if batch_size < 1:
        raise ValueError(f"batch_size: expected >= 1, got {batch_size}")
    if model is None:
        from metrics.i3d import load_i3d

        model = load_i3d(device=videos.device)
    param = next(model.parameters(), None) if isinstance(model, nn.Module) else None
    out = []
    with torch.no_grad():
        for start in range(0, videos.shape[0], batch_size):
            clips = preprocess_videos(videos[start : start + batch_size], config)
            if param is not None:
                clips = clips.to(param.device, param.dtype)
            out.append(model(clips).to(videos.device))
    return torch.cat(out)


def fvd(
    preds: torch.Tensor,
    target: torch.Tensor,
    model: Callable[[torch.Tensor], torch.Tensor] | None = None,
    config: FVDConfig = FVDConfig(),
    batch_size: int = 8,
) -> float:
    """Frechet Video Distance between two sets of clips.

    Args:
        preds: ``[N_p, T, 3, H, W]`` in [0, 1], N_p >= 2, T >= 9.
        target: ``[N_t, T', 3, H', W']`` in [0, 1], N_t >= 2.
        model: feature extractor (default: the Kinetics-400 I3D, loaded on ``preds.device``).
        config: preprocessing.
        batch_size: clips per I3D forward pass.

    Returns:
        FVD (float64). Few clips bias it upwards: report N with it (see :func:`bootstrap_frechet_distance`).

    Raises:
        TypeError, ValueError: bad inputs; WeightsNotFoundError: I3D weights not fetched.
    """
    check_videos(preds, "preds")
    check_videos(target, "target")
    if model is None:
        from metrics.i3d import load_i3d

        model = load_i3d(device=preds.device)
    return frechet_distance(
        i3d_features(preds, model, config, batch_size), i3d_features(target, model, config, batch_size)
    )


# ------------------------------------------------------------------------------------------------
# Accumulating metric
# ------------------------------------------------------------------------------------------------


class FVD(FrechetMetric):
    """FVD accumulated over batches of clips, reduced across processes.

    Args:
        model: feature extractor (``[n, 3, T, 224, 224]`` in [-1, 1] -> ``[n, num_features]``); default the
            Kinetics-400 I3D (needs ``characterbench weights fetch``). Registered as a submodule, so it
            follows ``.to(device)``.
        num_features: D of the extractor (400 for I3D).
        config: preprocessing.
        batch_size: clips per forward pass.
        keep_features: keep per-clip features for :meth:`compute_interval`.
        **kwargs: passed to :class:`torchmetrics.Metric`.
    """

    def __init__(
        self,
        model: nn.Module | None = None,
        num_features: int = 400,
        config: FVDConfig = FVDConfig(),
        batch_size: int = 8,
        keep_features: bool = False,
        **kwargs,
    ):
        super().__init__(num_features, keep_features, **kwargs)
        if model is None:
            from metrics.i3d import load_i3d

            model = load_i3d()
        self.model = model
        self.config = config
        self.batch_size = batch_size

    def extract(self, inputs: torch.Tensor, name: str) -> torch.Tensor:
        """I3D features ``[N, D]`` of clips ``[N, T, 3, H, W]`` in [0, 1]."""
        check_videos(inputs, name)
        return i3d_features(inputs, self.model, self.config, self.batch_size)
