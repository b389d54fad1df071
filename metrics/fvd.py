"""Frechet Video Distance (Unterthiner et al. 2018) on Kinetics-400 I3D logits.

Protocol (as the TensorFlow FVD): clips resized to 224 x 224 with one named filter (bilinear, no
antialiasing, as ``tf.image.resize``), values mapped to [-1, 1], I3D logits averaged over time (400-d,
before softmax), Gaussian fit with the N-1 covariance, and

    d^2 = |mu_a - mu_b|^2 + tr(S_a) + tr(S_b) - 2 tr sqrt(S_a S_b).

``tr sqrt(S_a S_b)`` is computed from eigenvalues: with ``R = S_a^(1/2)`` (from ``eigh``),
``S_a S_b`` is similar to the symmetric PSD ``R S_b R``, so the trace is the sum of the square roots of
its eigenvalues. Eigenvalues (of ``S_a`` for its root, and of ``R S_b R``) below ``max_eig * D * eps``
are round-off of a zero and count as 0: clipping only negative ones would keep the positive round-off,
whose square roots add up over the null space and bias the distance low when there are fewer clips
than features. ``scipy.linalg.sqrtm`` is not used: several SciPy releases return wrong or complex
results for singular covariances, which are the rule when there are fewer clips than features.

The :class:`FVD` metric keeps float64 running sums (sum, sum of outer products, count) per set, so it
accumulates over batches and reduces across processes without keeping features; it keeps per-clip
features only when asked, for the bootstrap confidence interval.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torchmetrics import Metric

from metrics._checks import check_tensor

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

_FILTERS = ("bilinear", "bicubic", "nearest", "area", "bilinear_tf1")


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

    def __post_init__(self):
        if self.resize_filter not in _FILTERS:
            raise ValueError(f"resize_filter: expected one of {_FILTERS}, got {self.resize_filter!r}")
        if self.antialias and self.resize_filter not in ("bilinear", "bicubic"):
            raise ValueError(f"antialias: only bilinear/bicubic support it, got filter {self.resize_filter!r}")
        if self.size < 1:
            raise ValueError(f"size: expected a positive int, got {self.size}")


# ------------------------------------------------------------------------------------------------
# Frechet distance between Gaussians
# ------------------------------------------------------------------------------------------------


def _as_features(x, name: str) -> np.ndarray:
    if isinstance(x, torch.Tensor):
        x = x.detach().to("cpu", torch.float64).numpy()
    x = np.asarray(x, dtype=np.float64)
    if x.ndim != 2:
        raise ValueError(f"{name}: expected features [N, D], got shape {list(x.shape)}")
    if x.shape[0] < 2:
        raise ValueError(f"{name}: expected N >= 2 samples for a covariance, got N={x.shape[0]}")
    if not np.isfinite(x).all():
        raise ValueError(f"{name}: expected finite features, got NaN or inf")
    return x


def gaussian_moments(features) -> tuple[np.ndarray, np.ndarray]:
    """Mean and unbiased (N-1) covariance of per-sample features.

    Args:
        features: ``[N, D]`` (tensor or array), N >= 2.

    Returns:
        ``(mu [D], cov [D, D])`` float64.

    Raises:
        ValueError: wrong shape, N < 2 or non-finite values.
    """
    x = _as_features(features, "features")
    return x.mean(axis=0), np.cov(x, rowvar=False, ddof=1).reshape(x.shape[1], x.shape[1])


def trace_sqrt_product(cov_a: np.ndarray, cov_b: np.ndarray) -> float:
    """``tr sqrt(cov_a @ cov_b)`` for symmetric PSD matrices, from eigenvalues.

    Args:
        cov_a: ``[D, D]`` symmetric PSD.
        cov_b: ``[D, D]`` symmetric PSD.

    Returns:
        The trace (float64), also for singular covariances: eigenvalues below ``max_eig * D * eps``
        (of ``cov_a``, and of ``cov_a^(1/2) cov_b cov_a^(1/2)``) are taken as 0.
    """
    w, v = np.linalg.eigh(cov_a)
    root_a = (v * np.sqrt(_drop_round_off(w))) @ v.T
    m = root_a @ cov_b @ root_a
    # Symmetrise: round-off makes m slightly asymmetric and eigvalsh reads one triangle only.
    eig = np.linalg.eigvalsh((m + m.T) / 2)
    return float(np.sqrt(_drop_round_off(eig)).sum())


def _drop_round_off(eig: np.ndarray) -> np.ndarray:
    """Eigenvalues of a PSD matrix with those below ``max_eig * D * eps`` set to 0.

    The zero eigenvalues of a singular matrix come out of ``eigh`` as round-off of either sign and
    of size about ``eps * max_eig``. Clipping only the negative ones keeps the positive ones, and
    their square roots (``sqrt(eps * max_eig)`` each, 1e-8 relative) add up over the null space:
    with fewer clips than features that biased ``tr sqrt`` upwards and the distance downwards
    (a ceiling of about -1e-3 instead of 0).
    """
    top = max(float(eig.max(initial=0.0)), 0.0)
    return np.where(eig > top * eig.shape[-1] * np.finfo(np.float64).eps, eig, 0.0)


def frechet_distance_from_moments(mu_a, cov_a, mu_b, cov_b) -> float:
    """Squared Frechet distance between ``N(mu_a, cov_a)`` and ``N(mu_b, cov_b)``.

    Args:
        mu_a: ``[D]``.
        cov_a: ``[D, D]`` symmetric PSD.
        mu_b: ``[D]``.
        cov_b: ``[D, D]`` symmetric PSD.

    Returns:
        ``|mu_a - mu_b|^2 + tr(cov_a) + tr(cov_b) - 2 tr sqrt(cov_a cov_b)`` (float64).

    Raises:
        ValueError: inconsistent shapes.
    """
    mu_a, mu_b = np.asarray(mu_a, np.float64), np.asarray(mu_b, np.float64)
    cov_a, cov_b = np.asarray(cov_a, np.float64), np.asarray(cov_b, np.float64)
    d = mu_a.shape[0]
    if mu_a.shape != (d,) or mu_b.shape != (d,) or cov_a.shape != (d, d) or cov_b.shape != (d, d):
        raise ValueError(
            f"moments: expected mu [D], cov [D, D] for both sets, got {mu_a.shape}, {cov_a.shape}, "
            f"{mu_b.shape}, {cov_b.shape}"
        )
    diff = mu_a - mu_b
    return float(diff @ diff + np.trace(cov_a) + np.trace(cov_b) - 2 * trace_sqrt_product(cov_a, cov_b))


def frechet_distance(feats_a, feats_b) -> float:
    """Squared Frechet distance between Gaussians fitted to two feature sets (the FVD / FID formula).

    Args:
        feats_a: ``[N_a, D]`` (tensor or array), N_a >= 2.
        feats_b: ``[N_b, D]``, N_b >= 2.

    Returns:
        The distance (float64 Python float).

    Raises:
        ValueError: wrong shapes, different D, fewer than 2 samples, non-finite values.
    """
    a, b = _as_features(feats_a, "feats_a"), _as_features(feats_b, "feats_b")
    if a.shape[1] != b.shape[1]:
        raise ValueError(f"feats_a, feats_b: expected the same feature size D, got {a.shape[1]} and {b.shape[1]}")
    return frechet_distance_from_moments(*gaussian_moments(a), *gaussian_moments(b))


def frechet_distance_batched(
    mu_a: torch.Tensor, cov_a: torch.Tensor, mu_b: torch.Tensor, cov_b: torch.Tensor
) -> torch.Tensor:
    """:func:`frechet_distance_from_moments` for a batch of moment pairs, in torch (on their device).

    The same maths (``eigh`` of ``cov_a``, eigenvalues of ``R cov_b R``, the same round-off
    threshold), batched: bootstrap replicates run as one ``torch.linalg.eigh`` call on the GPU.

    Args:
        mu_a: ``[B, D]``.
        cov_a: ``[B, D, D]`` symmetric PSD.
        mu_b: ``[B, D]``.
        cov_b: ``[B, D, D]`` symmetric PSD.

    Returns:
        ``[B]`` distances, in the inputs' dtype (use float64).

    Raises:
        ValueError: inconsistent shapes.
    """
    b, d = mu_a.shape[0], mu_a.shape[-1]
    if mu_a.shape != (b, d) or mu_b.shape != (b, d) or cov_a.shape != (b, d, d) or cov_b.shape != (b, d, d):
        raise ValueError(
            f"moments: expected mu [B, D], cov [B, D, D] for both sets, got {list(mu_a.shape)}, "
            f"{list(cov_a.shape)}, {list(mu_b.shape)}, {list(cov_b.shape)}"
        )

    def drop_round_off(eig: torch.Tensor) -> torch.Tensor:  # as _drop_round_off, per batch item
        top = eig.amax(dim=-1, keepdim=True).clamp(min=0)
        return torch.where(eig > top * d * torch.finfo(eig.dtype).eps, eig, torch.zeros_like(eig))

    w, v = torch.linalg.eigh(cov_a)
    root_a = (v * drop_round_off(w).sqrt().unsqueeze(-2)) @ v.transpose(-1, -2)
    m = root_a @ cov_b @ root_a
    eig = torch.linalg.eigvalsh((m + m.transpose(-1, -2)) / 2)
    trace_sqrt = drop_round_off(eig).sqrt().sum(dim=-1)
    diff = mu_a - mu_b
    traces = cov_a.diagonal(dim1=-2, dim2=-1).sum(-1) + cov_b.diagonal(dim1=-2, dim2=-1).sum(-1)
    return (diff * diff).sum(-1) + traces - 2 * trace_sqrt


@dataclasses.dataclass(frozen=True)
class FrechetInterval:
    """A Frechet distance with a percentile bootstrap confidence interval.

    Attributes:
        value: the distance on the full sets.
        low: lower end of the interval.
        high: upper end of the interval.
        confidence: the interval's nominal coverage (e.g. 0.95).
        num_resamples: bootstrap replicates.
        num_a: samples in set a.
        num_b: samples in set b.
    """

    value: float
    low: float
    high: float
    confidence: float
    num_resamples: int
    num_a: int
    num_b: int


def bootstrap_frechet_distance(
    feats_a,
    feats_b,
    num_resamples: int = 1000,
    confidence: float = 0.95,
    seed: int = 0,
) -> FrechetInterval:
    """Percentile bootstrap interval of the Frechet distance.

    Each replicate resamples both sets with replacement (independently, keeping their sizes) and
    recomputes the distance. FVD is biased upwards on small sets; the interval shows the spread, the
    bias is shown by reporting N alongside. About 30 ms per replicate for D = 400 on 2 CPU cores.

    Args:
        feats_a: ``[N_a, D]`` per-sample features, N_a >= 2.
        feats_b: ``[N_b, D]``, N_b >= 2.
        num_resamples: number of replicates (>= 10).
        confidence: nominal coverage in (0, 1).
        seed: seed of the resampling (results are reproducible).

    Returns:
        A :class:`FrechetInterval`.

    Raises:
        ValueError: bad features, num_resamples or confidence.
    """
    if not 0 < confidence < 1:
        raise ValueError(f"confidence: expected a value in (0, 1), got {confidence}")
    if num_resamples < 10:
        raise ValueError(f"num_resamples: expected >= 10, got {num_resamples}")
    a, b = _as_features(feats_a, "feats_a"), _as_features(feats_b, "feats_b")
    value = frechet_distance(a, b)
    rng = np.random.default_rng(seed)
    samples = np.empty(num_resamples)
    for i in range(num_resamples):
        ra = a[rng.integers(0, len(a), len(a))]
        rb = b[rng.integers(0, len(b), len(b))]
        samples[i] = frechet_distance_from_moments(*gaussian_moments(ra), *gaussian_moments(rb))
    alpha = (1 - confidence) / 2
    low, high = np.quantile(samples, [alpha, 1 - alpha])
    return FrechetInterval(value, float(low), float(high), confidence, num_resamples, len(a), len(b))


# ------------------------------------------------------------------------------------------------
# Videos -> I3D features
# ------------------------------------------------------------------------------------------------


def check_videos(videos, name: str) -> None:
    """Validate ``[N, T, 3, H, W]`` in [0, 1].

    Raises:
        TypeError, ValueError: naming ``name``.
    """
    check_tensor(videos, name, 5, "[N, T, 3, H, W]", channels=3)


def _resize_bilinear_tf1(frames: torch.Tensor, size: int) -> torch.Tensor:
    """TF1 ``resize_bilinear`` (align_corners and half_pixel_centers False): ``[M, C, H, W] -> [M, C, size, size]``."""
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


def preprocess_videos(videos: torch.Tensor, config: FVDConfig = FVDConfig()) -> torch.Tensor:
    """Resize clips and map them to the I3D input convention.

    Args:
        videos: ``[N, T, 3, H, W]`` in [0, 1].
        config: resize size and filter.

    Returns:
        ``[N, 3, T, size, size]`` in [-1, 1] (float32 at least).
    """
    n, t, c, h, w = videos.shape
    frames = videos.reshape(n * t, c, h, w).to(torch.promote_types(videos.dtype, torch.float32))
    if (h, w) != (config.size, config.size) and config.resize_filter == "bilinear_tf1":
        frames = _resize_bilinear_tf1(frames, config.size)
    elif (h, w) != (config.size, config.size):
        kwargs = {"antialias": config.antialias} if config.resize_filter in ("bilinear", "bicubic") else {}
        if config.resize_filter in ("bilinear", "bicubic"):
            kwargs["align_corners"] = False
        frames = F.interpolate(frames, size=(config.size, config.size), mode=config.resize_filter, **kwargs)
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


class FrechetMetric(Metric):
    """Base of :class:`FVD` and :class:`metrics.fid.FID`: float64 running moments of two feature sets.

    Subclasses implement :meth:`extract` (inputs -> ``[N, D]`` features). States per set (``fake`` for
    predictions, ``real`` for targets): ``*_sum [D]``, ``*_outer [D, D]``, ``*_count``, all summed across
    processes; with ``keep_features`` also ``*_features`` (concatenated), for the bootstrap only.

    Args:
        num_features: feature size D.
        keep_features: keep per-sample features so that :meth:`compute_interval` works.
        **kwargs: passed to :class:`torchmetrics.Metric`.
    """

    is_differentiable = False
    higher_is_better = False
    full_state_update = False

    def __init__(self, num_features: int, keep_features: bool = False, **kwargs):
        super().__init__(**kwargs)
        if num_features < 1:
            raise ValueError(f"num_features: expected >= 1, got {num_features}")
        self.num_features = num_features
        self.keep_features = keep_features
        for side in ("fake", "real"):
            self.add_state(f"{side}_sum", torch.zeros(num_features, dtype=torch.float64), dist_reduce_fx="sum")
            self.add_state(
                f"{side}_outer", torch.zeros(num_features, num_features, dtype=torch.float64), dist_reduce_fx="sum"
            )
            self.add_state(f"{side}_count", torch.tensor(0, dtype=torch.long), dist_reduce_fx="sum")
            if keep_features:
                self.add_state(f"{side}_features", [], dist_reduce_fx="cat")

    def extract(self, inputs: torch.Tensor, name: str) -> torch.Tensor:
        """Features ``[N, D]`` of a batch of inputs (implemented by subclasses)."""
        raise NotImplementedError

    def _add(self, side: str, features: torch.Tensor) -> None:
        if features.ndim != 2 or features.shape[1] != self.num_features:
            raise ValueError(
                f"feature extractor: expected [N, {self.num_features}] features, got {list(features.shape)}"
            )
        f = features.detach().to(self.fake_sum.device, torch.float64)
        setattr(self, f"{side}_sum", getattr(self, f"{side}_sum") + f.sum(dim=0))
        setattr(self, f"{side}_outer", getattr(self, f"{side}_outer") + f.T @ f)
        setattr(self, f"{side}_count", getattr(self, f"{side}_count") + f.shape[0])
        if self.keep_features:
            getattr(self, f"{side}_features").append(f)

    def update(self, preds: torch.Tensor | None = None, target: torch.Tensor | None = None) -> None:
        """Add a batch of predictions and/or targets (either may be None, e.g. to add real data once).

        Raises:
            ValueError: both are None, or the extractor returns the wrong feature size.
        """
        if preds is None and target is None:
            raise ValueError("preds, target: expected at least one batch, got None for both")
        if preds is not None:
            self._add("fake", self.extract(preds, "preds"))
        if target is not None:
            self._add("real", self.extract(target, "target"))

    def _moments(self, side: str) -> tuple[np.ndarray, np.ndarray]:
        n = int(getattr(self, f"{side}_count"))
        if n < 2:
            name = "preds" if side == "fake" else "target"
            raise ValueError(f"{name}: expected >= 2 samples accumulated for a covariance, got {n}")
        s = getattr(self, f"{side}_sum").cpu().numpy()
        outer = getattr(self, f"{side}_outer").cpu().numpy()
        mu = s / n
        cov = (outer - n * np.outer(mu, mu)) / (n - 1)
        return mu, (cov + cov.T) / 2

    def compute(self) -> torch.Tensor:
        """The Frechet distance between predictions and targets (float64 scalar tensor)."""
        return torch.tensor(
            frechet_distance_from_moments(*self._moments("fake"), *self._moments("real")), dtype=torch.float64
        )

    def compute_interval(self, num_resamples: int = 1000, confidence: float = 0.95, seed: int = 0) -> FrechetInterval:
        """Bootstrap interval over the kept per-sample features (needs ``keep_features=True``).

        In distributed runs the features of all processes are gathered first (every process gets the
        same interval, the seed being the same).

        Raises:
            ValueError: the metric was built without ``keep_features``.
        """
        if not self.keep_features:
            raise ValueError("keep_features: compute_interval needs the metric built with keep_features=True")

        def cat(x):
            return torch.cat(x) if isinstance(x, list) else x

        with self.sync_context():
            fake, real = cat(self.fake_features), cat(self.real_features)
        return bootstrap_frechet_distance(fake, real, num_resamples, confidence, seed)


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
