"""metrics.ssim and metrics.psnr against the closed form for constant images and scikit-image."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

from metrics.psnr import PSNR, psnr
from metrics.ssim import SSIM, SSIMConfig, ssim


def _pair(n: int, c: int, h: int, w: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    target = torch.rand(n, c, h, w, generator=g, dtype=torch.float64)
    preds = (target + 0.15 * torch.randn(n, c, h, w, generator=g, dtype=torch.float64)).clamp(0, 1)
    return preds, target


def _skimage_ssim(a: np.ndarray, b: np.ndarray) -> float:
    """scikit-image SSIM of one [C, H, W] image pair with the benchmark's settings."""
    return structural_similarity(
        a, b, data_range=1.0, channel_axis=0, gaussian_weights=True, sigma=1.5, use_sample_covariance=False
    )


@pytest.mark.parametrize("a, b", [(0.2, 0.7), (0.5, 0.5), (0.0, 1.0), (0.9, 0.05)])
def test_ssim_of_constant_images(a, b):
    x, y = torch.full((1, 3, 16, 16), a), torch.full((1, 3, 16, 16), b)
    c1 = 1e-4
    assert ssim(x, y).item() == pytest.approx((2 * a * b + c1) / (a * a + b * b + c1), rel=1e-6)


@pytest.mark.parametrize("shape", [(3, 3, 32, 40), (2, 1, 11, 11), (1, 4, 23, 17)])
def test_ssim_matches_skimage(shape):
    preds, target = _pair(*shape, seed=sum(shape))
    got = ssim(preds, target)
    ref = [_skimage_ssim(p.numpy(), t.numpy()) for p, t in zip(preds, target)]
    np.testing.assert_allclose(got.numpy(), ref, rtol=1e-10, atol=1e-12)
    # float32 inputs are computed in float64 too: only their own rounding remains.
    np.testing.assert_allclose(ssim(preds.float(), target.float()).numpy(), ref, atol=1e-6)


def test_ssim_metric_over_batches_and_checks():
    preds, target = _pair(5, 3, 16, 16, seed=0)
    metric = SSIM()
    metric.update(preds[:2], target[:2])
    metric.update(preds[2:], target[2:])
    assert metric.compute().item() == pytest.approx(ssim(preds, target).mean().item(), rel=1e-12)
    with pytest.raises(ValueError, match="kernel_size 11"):
        ssim(preds[..., :8, :8], target[..., :8, :8])
    with pytest.raises(ValueError, match="equal shapes"):
        ssim(preds, target[:, :2])
    with pytest.raises(ValueError, match=r"values in \[0, 1\]"):
        ssim(preds * 255, target * 255)
    # A different data range is a config, not a silent rescale.
    scaled = ssim(preds * 255, target * 255, SSIMConfig(data_range=255.0))
    torch.testing.assert_close(scaled, ssim(preds, target))


def test_psnr_matches_skimage_and_hand_value():
    preds, target = _pair(4, 3, 20, 24, seed=1)
    ref = [peak_signal_noise_ratio(t.numpy(), p.numpy(), data_range=1.0) for p, t in zip(preds, target)]
    np.testing.assert_allclose(psnr(preds, target).numpy(), ref, rtol=1e-12)
    # MSE 0.01 -> 20 dB.
    x = torch.zeros(1, 3, 4, 4)
    assert psnr(x + 0.1, x).item() == pytest.approx(20.0, rel=1e-6)
    assert psnr(x, x).item() == float("inf")


def test_psnr_metric_averages_per_image_values():
    preds, target = _pair(6, 3, 8, 8, seed=2)
    metric = PSNR()
    for i in range(0, 6, 4):
        metric.update(preds[i : i + 4], target[i : i + 4])
    assert metric.compute().item() == pytest.approx(psnr(preds, target).mean().item(), rel=1e-12)
    with pytest.raises(TypeError, match="floating point"):
        psnr(torch.zeros(1, 3, 4, 4, dtype=torch.uint8), torch.zeros(1, 3, 4, 4, dtype=torch.uint8))


def test_ssim_cpu_fast_path_equals_torch_convolution():
    from metrics.ssim import _blur_valid_scipy, _blur_valid_torch, gaussian_kernel

    x = torch.rand(2, 5, 40, 33, dtype=torch.float64, generator=torch.Generator().manual_seed(3))
    g = gaussian_kernel(11, 1.5)
    fast, ref = _blur_valid_scipy(x, g), _blur_valid_torch(x, g)
    assert fast.shape == ref.shape == (2, 5, 30, 23)
    torch.testing.assert_close(fast, ref, rtol=0, atol=1e-13)
    # Gradients still flow when asked for (the torch path is taken).
    y = torch.rand(1, 3, 16, 16, dtype=torch.float64, requires_grad=True)
    ssim(y, torch.rand(1, 3, 16, 16, dtype=torch.float64)).sum().backward()
    assert y.grad is not None and torch.isfinite(y.grad).all()
