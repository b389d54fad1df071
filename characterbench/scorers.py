"""The bridge from the protocol to ``metrics``: builds, once per evaluation, the metric functions
through the builders of their specs (``characterbench.metric_specs``).

Everything heavy (torch models, weights) is loaded in :func:`build_suite`, before the first sample;
missing weights fail there with the metrics package's message saying how to get them. The suite
records the SHA-256 of every weight it loaded.
"""

from __future__ import annotations

import platform
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch

from characterbench import metric_specs
from characterbench.metric_specs import METRICS
from characterbench.protocol import Protocol

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


# Kept importable from here (their home is characterbench.metric_specs).
clip_source = metric_specs.clip_source
module_sha256 = metric_specs.module_sha256
_checked_weight_hash = metric_specs._checked_weight_hash


@dataclass
class MetricSuite:
    """The metric functions of one evaluation.

    Attributes:
        image: Per-cell metrics, ``fn(preds, target) -> [N] float64`` for ``[N, 3, H, W]`` in [0, 1].
        features: Feature extractors of the set-level metrics by feature group (``"i3d"`` for the FVD
            variants, ``"inception"`` for FID), ``fn(x, batch_size) -> [N, D] float64`` on the CPU.
        weights: SHA-256 of every weight loaded, by record name.
        official: Per weight, whether it is the official one the protocol pins.
    """

    image: dict[str, ImageFn] = field(default_factory=dict)
    features: dict[str, FeatureFn] = field(default_factory=dict)
    weights: dict[str, str] = field(default_factory=dict)
    official: dict[str, bool] = field(default_factory=dict)


def build_suite(metric_names: tuple[str, ...], protocol: Protocol, device: torch.device, home: Any = None) -> MetricSuite:
    """Load everything the selected metrics need, each through its spec's builder (once per feature group).

    Args:
        metric_names: Metrics of the evaluation (names in ``characterbench.metric_specs.METRICS``).
        protocol: Window, data range, PSNR cap, LPIPS net, CLIP model, resize filter, pinned hashes.
        device: Where the models run.
        home: Weights cache root (default ``$CHARACTERBENCH_HOME``).

    Returns:
        The :class:`MetricSuite` (``"sample"`` metrics need nothing: their task computes them).

    Raises:
        KeyError: An unknown metric.
        metrics.weights.WeightsNotFoundError: Weights absent (the message says how to get them).
        metrics.weights.WeightsIntegrityError: A weight file differs from its manifest.
        ValueError: The metrics package converts a checkpoint other than the one the protocol pins.
    """
    suite = MetricSuite()
    for name in metric_names:
        spec = METRICS.get(name)
        if spec.build is None or (spec.feature_group is not None and spec.feature_group in suite.features):
            continue
        built = spec.build(protocol, device, home)
        if built.cell is not None:
            suite.image[name] = built.cell
        if built.features is not None:
            suite.features[spec.feature_group or name] = built.features
        suite.weights.update(built.weights)
        suite.official.update(built.official)
    return suite
