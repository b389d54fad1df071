"""The bridge from the protocol to ``metrics``: builds, once per evaluation, the metric functions.

Everything heavy (torch models, weights) is loaded in :func:`build_suite`, before the first sample;
missing weights fail there with the metrics package's message saying how to get them. The suite
records the SHA-256 of every weight it loaded.
"""

from __future__ import annotations

import hashlib
import os
import platform
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch

from characterbench.protocol import RESIZE_FILTERS, Protocol
from characterbench.tasks import METRICS

ImageFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
FeatureFn = Callable[[torch.Tensor, int], torch.Tensor]


def resolve_device(name: str | None = "auto") -> torch.device:
    """The device to run on.

    Args:
        name: ``"auto"`` / None (CUDA if available, else CPU), or any ``torch.device`` string.

    Returns:
        A ``torch.device``.

    Raises:
        ValueError: A CUDA device was asked for but CUDA is not available, or the name is invalid.
    """
    if name in (None, "auto"):
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError as exc:
        raise ValueError(f"device: expected 'auto', 'cpu', 'cuda' or 'cuda:N', got {name!r}") from exc
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device: {name!r} was asked for but CUDA is not available (torch {torch.__version__})")
    return device


def describe_device(device: torch.device) -> str:
    """The device in words, for the result record (GPU name, or CPU and thread count)."""
    if device.type == "cuda":
        return f"{device} ({torch.cuda.get_device_name(device)}), torch {torch.__version__}"
    cpu = platform.processor() or platform.machine()
    return f"cpu ({cpu}, {torch.get_num_threads()} threads), torch {torch.__version__}"


def clip_source(protocol: Protocol) -> str:
    """Where CLIP-S loads its model: ``$CHARACTERBENCH_CLIP`` (a local copy) or the protocol's model id."""
    from metrics.clip_score import CLIP_ENV

    return os.environ.get(CLIP_ENV) or protocol.clip_model_id


def module_sha256(module: torch.nn.Module) -> str:
    """SHA-256 over a module's state dict (names, dtypes, shapes, bytes), in name order."""
    digest = hashlib.sha256()
    for name, tensor in sorted(module.state_dict().items()):
        t = tensor.detach().cpu().contiguous()
        digest.update(f"{name}|{t.dtype}|{tuple(t.shape)}|".encode())
        if t.numel():
            digest.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


@dataclass
class MetricSuite:
    """The metric functions of one evaluation.

    Attributes:
        image: Per-image metrics, ``fn(preds, target) -> [N] float64`` for ``[N, 3, H, W]`` in [0, 1].
        features: Feature extractor of the set-level metrics, ``fn(x, batch_size) -> [N, D] float64``
            on the CPU: I3D on clips ``[N, T, 3, H, W]`` (FVD) or Inception on images (FID); or None.
        weights: SHA-256 of every weight loaded, by name.
    """

    image: dict[str, ImageFn] = field(default_factory=dict)
    features: FeatureFn | None = None
    weights: dict[str, str] = field(default_factory=dict)


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


def build_suite(metric_names: tuple[str, ...], protocol: Protocol, device: torch.device, home: Any = None) -> MetricSuite:
    """Load everything the selected metrics need.

    Args:
        metric_names: Metrics of the evaluation (names of ``characterbench.tasks.METRICS``).
        protocol: Window, data range, PSNR cap, LPIPS net, CLIP model, resize filter, pinned hashes.
        device: Where the models run.
        home: Weights cache root (default ``$CHARACTERBENCH_HOME``).

    Returns:
        The :class:`MetricSuite`.

    Raises:
        KeyError: An unknown metric.
        metrics.weights.WeightsNotFoundError: Weights absent (the message says how to get them).
        metrics.weights.WeightsIntegrityError: A weight file differs from its manifest.
        ValueError: The metrics package converts a checkpoint other than the one the protocol pins.
    """
    suite = MetricSuite()
    kinds = {m: METRICS[m].kind for m in metric_names}
    if "ssim" in metric_names:
        from metrics.ssim import SSIMConfig, ssim

        cfg = SSIMConfig(kernel_size=protocol.ssim_kernel_size, sigma=protocol.ssim_sigma, data_range=protocol.data_range)
        suite.image["ssim"] = lambda p, t: ssim(p, t, cfg).double()
    if "psnr" in metric_names:
        from metrics.psnr import psnr

        # Identical images have infinite PSNR; the protocol caps each image's value so that the
        # ground-truth ceiling is a finite, documented number (protocol.psnr_cap_db).
        suite.image["psnr"] = lambda p, t: psnr(p, t, protocol.data_range).double().clamp(max=protocol.psnr_cap_db)
    if "lpips" in metric_names:
        from metrics.lpips import NETS, load_lpips, lpips

        name = NETS[protocol.lpips_net][2]
        pinned = {"alex": protocol.lpips_alex_weights_sha256, "vgg": protocol.lpips_vgg_weights_sha256}[protocol.lpips_net]
        suite.weights[name] = _checked_weight_hash(name, pinned, protocol, home)
        lpips_model = load_lpips(protocol.lpips_net, device=device, home=home)
        suite.image["lpips"] = lambda p, t: lpips(p, t, model=lpips_model).double()
    if "clip_s" in metric_names:
        from metrics.clip_score import clip_score, load_clip

        clip_model = load_clip(clip_source(protocol), device=device)
        suite.weights["clip"] = module_sha256(clip_model.model)
        suite.image["clip_s"] = lambda p, t: clip_score(p, t, model=clip_model).double()
    if any(k == "video" for k in kinds.values()):
        from metrics.fvd import FVDConfig, i3d_features
        from metrics.i3d import load_i3d

        suite.weights["i3d_kinetics400"] = _checked_weight_hash("i3d_kinetics400", protocol.i3d_weights_sha256, protocol, home)
        mode, antialias = RESIZE_FILTERS[protocol.resize_filter]
        # Clips arrive already resized by the protocol; the config only matters if they did not.
        config = FVDConfig(size=protocol.fvd_resolution, resize_filter=mode, antialias=antialias)
        i3d = load_i3d(device=device, home=home)
        suite.features = lambda clips, bs: i3d_features(clips.to(device), i3d, config, bs).double().cpu()
    elif "fid" in metric_names:
        from metrics import fid

        inception = fid.load_inception(device=device, home=home)
        from metrics.weights import sha256_file

        suite.weights["fid_inception"] = sha256_file(fid.inception_path(home))
        suite.features = lambda images, bs: fid.inception_features(images.to(device), inception, bs).double().cpu()
    return suite
