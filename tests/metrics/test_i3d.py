"""metrics.i3d: TF "SAME" padding against hand computations, published logits of the Kinetics-400 I3D."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from metrics.i3d import I3D, conv3d_same, convert_flax_checkpoint, max_pool3d_same, same_padding

# Published first five logits of the TF-Hub / TF-FVD I3D for constant 9 x 224 x 224 clips.
LOGITS_MINUS_ONE = [1.52112, 1.87294, 2.42181, 1.83821, 1.31623]
LOGITS_PLUS_ONE = [3.35455, 0.56925, 1.58704, 0.70050, 1.53425]


@pytest.mark.parametrize(
    "size, kernel, stride, expected",
    [
        (224, 7, 2, (2, 3)),  # Conv3d_1a: total (112-1)*2+7-224 = 5, the odd pixel goes after
        (9, 7, 2, (3, 3)),  # the temporal axis of a 9-frame clip: total 4*2+7-9 = 6
        (112, 3, 2, (0, 1)),  # MaxPool3d_2a: total (56-1)*2+3-112 = 1
        (5, 3, 2, (1, 1)),
        (3, 2, 2, (0, 1)),  # MaxPool3d_5a on an odd length
        (14, 2, 2, (0, 0)),
        (28, 3, 1, (1, 1)),
        (7, 1, 1, (0, 0)),
    ],
)
def test_same_padding_matches_the_tf_rule(size, kernel, stride, expected):
    assert same_padding(size, kernel, stride) == expected


def _numpy_max_pool_same(x: np.ndarray, k: int, s: int) -> np.ndarray:
    """Brute-force TF max pool with "SAME" padding on one axis of length L (windows clipped to the input)."""
    n = x.shape[-1]
    out_len = math.ceil(n / s)
    before = max((out_len - 1) * s + k - n, 0) // 2
    out = []
    for i in range(out_len):
        lo = i * s - before
        out.append(x[..., max(lo, 0) : min(lo + k, n)].max(axis=-1))
    return np.stack(out, axis=-1)


def test_max_pool_same_pads_with_minus_infinity():
    # All-negative input: zero padding would wrongly win at the borders.
    rng = np.random.default_rng(0)
    x = -rng.random((1, 2, 5, 6, 7)).astype(np.float32) - 1
    got = max_pool3d_same(torch.from_numpy(x), (3, 3, 3), (2, 2, 2)).numpy()
    ref = x
    for axis in (2, 3, 4):
        ref = np.moveaxis(_numpy_max_pool_same(np.moveaxis(ref, axis, -1), 3, 2), -1, axis)
    assert got.shape == (1, 2, 3, 3, 4)
    np.testing.assert_array_equal(got, ref)


def test_conv_same_pads_asymmetrically():
    # 1-channel, 1-D along W: input length 6, kernel 3, stride 2 -> pads (0, 1); out[i] = sum_j w[j] x[2i + j].
    x = torch.arange(1.0, 7.0).view(1, 1, 1, 1, 6)
    w = torch.tensor([1.0, 10.0, 100.0]).view(1, 1, 1, 1, 3)
    got = conv3d_same(x, w, None, (1, 1, 2)).flatten().tolist()
    xp = [1, 2, 3, 4, 5, 6, 0]
    assert got == [sum(w.flatten()[j].item() * xp[2 * i + j] for j in range(3)) for i in range(3)]
    # Symmetric case goes through the convolution's own padding: same result as explicit zero padding.
    x = torch.randn(1, 2, 4, 5, 6)
    w = torch.randn(3, 2, 3, 3, 3)
    ref = torch.nn.functional.conv3d(torch.nn.functional.pad(x, [1] * 6), w)
    torch.testing.assert_close(conv3d_same(x, w, None, (1, 1, 1)), ref)


def test_random_i3d_shapes_and_input_checks():
    model = I3D().eval()
    with torch.no_grad():
        out = model(torch.zeros(1, 3, 9, 224, 224))
    assert out.shape == (1, 400)
    with pytest.raises(ValueError, match="T >= 9"):
        model(torch.zeros(1, 3, 8, 224, 224))
    with pytest.raises(ValueError, match=r"\[N, 3, T, 224, 224\]"):
        model(torch.zeros(1, 3, 9, 112, 112))
    with pytest.raises(TypeError, match="floating point"):
        model(torch.zeros(1, 3, 9, 224, 224, dtype=torch.uint8))


def test_convert_rejects_a_foreign_tree():
    with pytest.raises(ValueError, match="params"):
        convert_flax_checkpoint({"weights": {}})


@pytest.mark.weights
def test_published_logits_of_constant_clips(i3d_constant_logits):
    logits = i3d_constant_logits(9)
    print("I3D logits, constant -1:", logits[0, :5].tolist())
    print("I3D logits, constant +1:", logits[1, :5].tolist())
    # 1e-5 relative: as close as the references' five printed decimals allow.
    np.testing.assert_allclose(logits[0, :5].numpy(), LOGITS_MINUS_ONE, rtol=1e-5)
    np.testing.assert_allclose(logits[1, :5].numpy(), LOGITS_PLUS_ONE, rtol=1e-5)
