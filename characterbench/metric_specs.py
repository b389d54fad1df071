"""Every metric the benchmark reports, as a :class:`MetricSpec` in the registry :data:`METRICS`.

A spec says how to build the metric (a builder called once per evaluation, which loads models and
weights), which weights it needs with their pinned SHA-256, its value range and direction, and its
level: ``"cell"`` (one value per image pair, averaged over cells and samples), ``"set"`` (a Frechet
distance of features pooled over the test set) or ``"sample"`` (computed per sample by its task, e.g.
the pose errors, then averaged over samples).

Adding a metric: write it in ``metrics/<name>.py`` (a function on tensors and a torchmetrics class),
then register one :class:`MetricSpec` here with a builder, and name it in a task's ``metrics``
(``characterbench/tasks/``). Nothing else branches on metric names.

Nothing heavy happens at import time: the builders import torch and ``metrics`` when called.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from characterbench.protocol import Protocol
from characterbench.registry import Registry

if TYPE_CHECKING:
    import torch

# SHA-256 of the converted safetensors files `characterbench weights fetch` writes from the pinned
# published checkpoints (the conversion is deterministic: the same bytes on every machine). A record
# whose weights differ was not computed with the protocol's networks.
CONVERTED_SHA256 = {
    "i3d_kinetics400": "52ee8197c5f15cbf1c985af655bf59f749906c528f7cea3ea0fe64aef01ced36",
    "lpips_alex": "77de26f60730deead094ef26a78ef057de2938fb5acf9858138c143a04429e66",
    "lpips_vgg": "b253d27e1c0424062e253d962639023f4bc27ccdb20d14d5b67377b6c3384caf",
}
# The official CLIP ViT-B/32 (openai/clip-vit-base-patch32) and FID Inception (inception-2015-12-05.pt)
# ship in no package registry, and no copy of them has been hashed for this project yet: their pins
# are empty, so CLIP-S and FID values are recorded with ``official: false`` and kept out of the
# protocol columns until a copy of the official files is hashed and pinned here.
OFFICIAL_SHA256: dict[str, str | None] = {"clip": None, "fid_inception": None}


@dataclass
class BuiltMetric:
    """A metric ready to score, returned by a spec's builder.

    Attributes:
        cell: For ``"cell"`` metrics: ``fn(preds, target) -> [N] float64`` on ``[N, 3, H, W]`` in [0, 1].
        features: For ``"set"`` metrics: ``fn(x, batch_size) -> [N, D] float64`` on the CPU.
        weights: SHA-256 of every weight loaded, by record name.
        official: For each weight, whether it is the official one the protocol pins.
    """

    cell: Callable[[Any, Any], Any] | None = None
    features: Callable[[Any, int], Any] | None = None
    weights: dict[str, str] = field(default_factory=dict)
    official: dict[str, bool] = field(default_factory=dict)


@dataclass(frozen=True)
class MetricSpec:
    """One metric as the benchmark reports it.

    Attributes:
        name: Key in results (``"ssim"``, ``"fvd_f"``, ...).
        label: Column header (``"SSIM"``, ``"FVD-F"``, ...).
        higher_is_better: Direction, for sorting and for "worst cell" reports.
        level: ``"cell"``, ``"set"`` or ``"sample"`` (module docstring).
        value_range: ``(low, high)`` a correct value lies in (None: unbounded on that side).
        description: One line for ``characterbench ls``.
        weights: ``protocol -> record names`` of the weight files the metric loads (the keys of a
            record's ``weights``).
        fetchable: Whether ``characterbench weights fetch`` can provide those weights.
        build: ``(protocol, device, home) -> BuiltMetric``; None for ``"sample"`` metrics, which
            their task computes.
        feature_group: Set metrics sharing one feature extractor (the FVD variants share I3D).
        unit: Unit shown after values (``"dB"``, ``"mm"``...), or ``""``.
    """

    name: str
    label: str
    higher_is_better: bool
    level: str
    value_range: tuple[float | None, float | None]
    description: str
    weights: Callable[[Protocol], tuple[str, ...]] = lambda protocol: ()
    fetchable: bool = True
    build: Callable[[Protocol, Any, Any], BuiltMetric] | None = None
    feature_group: str | None = None
    unit: str = ""

    def __post_init__(self) -> None:
        if self.level not in ("cell", "set", "sample"):
            raise ValueError(f"MetricSpec {self.name}: level must be 'cell', 'set' or 'sample', got {self.level!r}")
        if self.level != "sample" and self.build is None:
            raise ValueError(f"MetricSpec {self.name}: a {self.level!r} metric needs a builder")

    @property
    def kind(self) -> str:
        """The level under its former name (``"image"`` for ``"cell"``)."""
        return {"cell": "image", "set": "set", "sample": "sample"}[self.level]

    def in_range(self, value: float, tol: float = 1e-6) -> bool:
        """Whether ``value`` lies in :attr:`value_range` (with a small tolerance for round-off)."""
        lo, hi = self.value_range
        return (lo is None or value >= lo - tol) and (hi is None or value <= hi + tol)

    def protocol_weights(self, protocol: Protocol) -> dict[str, str | None]:
        """``{record name: pinned SHA-256}`` of the weights a protocol value of this metric must use
        (None: no official hash is pinned, so no value can be a protocol value)."""
        return {w: CONVERTED_SHA256.get(w, OFFICIAL_SHA256.get(w)) for w in self.weights(protocol)}


METRICS: Registry[MetricSpec] = Registry("metric")


def register_metric(spec: MetricSpec) -> MetricSpec:
    """Add a metric to :data:`METRICS` (one call per metric)."""
    return METRICS.register(spec.name, spec)


def get_metric(name: str) -> MetricSpec:
    """The spec registered under ``name``.

    Raises:
        KeyError: Unknown metric (with the known names and the closest match).
    """
    return METRICS.get(name)


# --------------------------------------------------------------------------- builders


def _checked_weight_hash(name: str, pinned_source: str, protocol: Protocol, home: Any) -> str:
    """SHA-256 of a converted weight file after checking it against the manifest and the protocol."""
    from metrics.weights import WeightsIntegrityError, WeightsNotFoundError, missing_weights_message, weights_status

    status = weights_status(home, names=[name])[name]
    if not status.present:
        raise WeightsNotFoundError(missing_weights_message(name, status.path))
    if not status.ok:
        raise WeightsIntegrityError(
            f"{status.path}: SHA-256 {status.sha256} differs from the manifest's {status.recorded_sha256}; "
            "run `characterbench weights fetch --force`"
        )
    if status.source_sha256 != pinned_source:
        raise ValueError(
            f"protocol {protocol.version} pins the {name} checkpoint SHA-256 {pinned_source}, "
            f"but the metrics package converts {status.source_sha256}"
        )
    return status.sha256


def _official(name: str, digest: str) -> dict[str, bool]:
    pinned = CONVERTED_SHA256.get(name, OFFICIAL_SHA256.get(name))
    return {name: pinned is not None and digest == pinned}


def _build_ssim(protocol: Protocol, device: Any, home: Any) -> BuiltMetric:
    from metrics.ssim import SSIMConfig, ssim

    cfg = SSIMConfig(kernel_size=protocol.ssim_kernel_size, sigma=protocol.ssim_sigma, data_range=protocol.data_range)
    return BuiltMetric(cell=lambda p, t: ssim(p, t, cfg).double())


def _build_psnr(protocol: Protocol, device: Any, home: Any) -> BuiltMetric:
    from metrics.psnr import psnr

    # Identical images have infinite PSNR; the protocol caps each image's value so that the
    # ground-truth ceiling is a finite, documented number (protocol.psnr_cap_db).
    return BuiltMetric(cell=lambda p, t: psnr(p, t, protocol.data_range).double().clamp(max=protocol.psnr_cap_db))


def _lpips_weights(protocol: Protocol) -> tuple[str, ...]:
    return (f"lpips_{protocol.lpips_net}",)


def _build_lpips(protocol: Protocol, device: Any, home: Any) -> BuiltMetric:
    from metrics.lpips import load_lpips, lpips

    name = _lpips_weights(protocol)[0]
    pinned = {"alex": protocol.lpips_alex_weights_sha256, "vgg": protocol.lpips_vgg_weights_sha256}[protocol.lpips_net]
    digest = _checked_weight_hash(name, pinned, protocol, home)
    model = load_lpips(protocol.lpips_net, device=device, home=home)
    return BuiltMetric(cell=lambda p, t: lpips(p, t, model=model).double(), weights={name: digest}, official=_official(name, digest))


def clip_source(protocol: Protocol) -> str:
    """Where CLIP-S loads its model: ``$CHARACTERBENCH_CLIP`` (a local copy) or the protocol's model id."""
    from metrics.clip_score import CLIP_ENV

    return os.environ.get(CLIP_ENV) or protocol.clip_model_id


def module_sha256(module: "torch.nn.Module") -> str:
    """SHA-256 over a module's state dict (names, dtypes, shapes, bytes), in name order."""
    import hashlib

    import torch

    digest = hashlib.sha256()
    for name, tensor in sorted(module.state_dict().items()):
        t = tensor.detach().cpu().contiguous()
        digest.update(f"{name}|{t.dtype}|{tuple(t.shape)}|".encode())
        if t.numel():
            digest.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


def _build_clip(protocol: Protocol, device: Any, home: Any) -> BuiltMetric:
    from metrics.clip_score import clip_score, load_clip

    model = load_clip(clip_source(protocol), device=device)
    digest = module_sha256(model.model)
    return BuiltMetric(cell=lambda p, t: clip_score(p, t, model=model).double(), weights={"clip": digest},
                       official=_official("clip", digest))


def _build_i3d(protocol: Protocol, device: Any, home: Any) -> BuiltMetric:
    from metrics.fvd import FVDConfig, i3d_features
    from metrics.i3d import load_i3d
    from metrics.resize import get_filter

    digest = _checked_weight_hash("i3d_kinetics400", protocol.i3d_weights_sha256, protocol, home)
    flt = get_filter(protocol.resize_filter)
    # Clips arrive already resized by the protocol; the config only matters if they did not.
    config = FVDConfig(size=protocol.fvd_resolution, resize_filter=flt.mode, antialias=flt.antialias)
    i3d = load_i3d(device=device, home=home)
    return BuiltMetric(
        features=lambda clips, bs: i3d_features(clips.to(device), i3d, config, bs).double().cpu(),
        weights={"i3d_kinetics400": digest}, official=_official("i3d_kinetics400", digest),
    )


def _build_inception(protocol: Protocol, device: Any, home: Any) -> BuiltMetric:
    from metrics import fid
    from metrics.weights import sha256_file

    inception = fid.load_inception(device=device, home=home)
    digest = sha256_file(fid.inception_path(home))
    return BuiltMetric(
        features=lambda images, bs: fid.inception_features(images.to(device), inception, bs).double().cpu(),
        weights={"fid_inception": digest}, official=_official("fid_inception", digest),
    )


# --------------------------------------------------------------------------- registrations

register_metric(MetricSpec("ssim", "SSIM", True, "cell", (0.0, 1.0),
                           "structural similarity, gaussian 11 / sigma 1.5, per channel then mean", build=_build_ssim))
register_metric(MetricSpec("psnr", "PSNR", True, "cell", (0.0, None),
                           "peak signal-to-noise ratio in dB, data range 1, capped (protocol.psnr_cap_db)",
                           build=_build_psnr, unit="dB"))
register_metric(MetricSpec("lpips", "LPIPS", False, "cell", (0.0, None),
                           "LPIPS v0.1 (AlexNet trunk by default), inputs mapped to [-1, 1]",
                           weights=_lpips_weights, build=_build_lpips))
register_metric(MetricSpec("clip_s", "CLIP-S", True, "cell", (-1.0, 1.0),
                           "cosine similarity of CLIP ViT-B/32 image embeddings (not x100)",
                           weights=lambda p: ("clip",), fetchable=False, build=_build_clip))
for _name, _label, _text in (
    ("fvd_f", "FVD-F", "FVD over each view's frames in time order (V clips per sample)"),
    ("fvd_v", "FVD-V", "FVD over each frame's views in view order (F clips per sample)"),
    ("fvd_d", "FVD-D", "FVD over the diagonal M[i, i] (1 clip per sample)"),
    ("fv4d", "FV4D", "FVD over all cells in boustrophedon order (1 clip per sample)"),
):
    register_metric(MetricSpec(_name, _label, False, "set", (0.0, None), _text, weights=lambda p: ("i3d_kinetics400",),
                               build=_build_i3d, feature_group="i3d"))
register_metric(MetricSpec("fid", "FID", False, "set", (0.0, None),
                           "Frechet Inception Distance over all A-pose views of all samples",
                           weights=lambda p: ("fid_inception",), fetchable=False, build=_build_inception,
                           feature_group="inception"))
# The pose task's metrics (characterbench/tasks/pose.py computes them per sample).
register_metric(MetricSpec("mpjpe", "MPJPE", False, "sample", (0.0, None),
                           "mean per-joint position error of the triangulated COCO-18 keypoints after root alignment (mm)",
                           unit="mm"))
register_metric(MetricSpec("mpjpe_raw", "MPJPE-raw", False, "sample", (0.0, None),
                           "mean per-joint position error in world coordinates, no alignment (mm)", unit="mm"))
register_metric(MetricSpec("pa_mpjpe", "PA-MPJPE", False, "sample", (0.0, None),
                           "MPJPE after a per-frame similarity (Procrustes) alignment (mm)", unit="mm"))
register_metric(MetricSpec("pck", "PCK", True, "sample", (0.0, 1.0),
                           "share of visible 2D keypoints within the PCK radius of the ground truth, over all views"))
