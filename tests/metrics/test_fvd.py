"""metrics.fvd: Frechet distance against direct float64 formulas, accumulation, resizing, published FVD values."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.linalg
import torch
from PIL import Image

from metrics.fvd import (
    FVD,
    FVDConfig,
    bootstrap_frechet_distance,
    frechet_distance,
    frechet_distance_batched,
    frechet_distance_from_moments,
    fvd,
    preprocess_videos,
    trace_sqrt_product,
)

# Published FVD between constant -1 and constant +1 clips (zero covariances: the squared distance of
# the mean logits), per number of frames.
PUBLISHED_FVD = {9: 492.6288, 16: 152.9017, 30: 151.3924}


def _reference_sqrtm(a: np.ndarray, b: np.ndarray) -> float:
    """Textbook FID formula with scipy.linalg.sqrtm (fine for well-conditioned full-rank inputs)."""
    mu_a, mu_b = a.mean(0), b.mean(0)
    s_a, s_b = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    root = scipy.linalg.sqrtm(s_a @ s_b).real
    return float(((mu_a - mu_b) ** 2).sum() + np.trace(s_a) + np.trace(s_b) - 2 * np.trace(root))


def _reference_svd(a: np.ndarray, b: np.ndarray) -> float:
    """Independent route for any rank: with S_a = A^T A, S_b = B^T B (centred, / sqrt(N-1)),
    the eigenvalues of S_a S_b are the squared singular values of A B^T, so tr sqrt(S_a S_b) = ||A B^T||_*."""
    ca = (a - a.mean(0)) / np.sqrt(len(a) - 1)
    cb = (b - b.mean(0)) / np.sqrt(len(b) - 1)
    nuclear = np.linalg.svd(ca @ cb.T, compute_uv=False).sum()
    d = a.mean(0) - b.mean(0)
    return float(d @ d + (ca**2).sum() + (cb**2).sum() - 2 * nuclear)


def _features(n: int, d: int, seed: int, shift: float = 0.0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    mix = rng.standard_normal((d, d)) / np.sqrt(d)
    return rng.standard_normal((n, d)) @ mix + shift


def test_full_rank_matches_sqrtm_and_svd_references():
    a, b = _features(200, 16, 0), _features(150, 16, 1, shift=0.3)
    got = frechet_distance(a, b)
    np.testing.assert_allclose(got, _reference_sqrtm(a, b), rtol=1e-9)
    np.testing.assert_allclose(got, _reference_svd(a, b), rtol=1e-9)


@pytest.mark.parametrize("n_a, n_b, d", [(5, 7, 32), (3, 3, 400), (40, 6, 64)])
def test_rank_deficient_matches_svd_reference(n_a, n_b, d):
    a, b = _features(n_a, d, 2), _features(n_b, d, 3, shift=-0.5)
    # The zero eigenvalues come out as round-off of about 1e-16 |S|, below the threshold
    # (max_eig * D * eps) that takes them as 0; a wrong treatment of the null space would be far off.
    np.testing.assert_allclose(frechet_distance(a, b), _reference_svd(a, b), rtol=1e-6)


def test_diagonal_gaussians_closed_form():
    # Diagonal covariances: d = |mu_a - mu_b|^2 + sum (sqrt(s_a) - sqrt(s_b))^2.
    mu_a, mu_b = np.array([0.0, 1.0, 2.0]), np.array([1.0, 1.0, 0.0])
    var_a, var_b = np.array([1.0, 4.0, 0.0]), np.array([9.0, 1.0, 2.0])
    from metrics.fvd import frechet_distance_from_moments

    got = frechet_distance_from_moments(mu_a, np.diag(var_a), mu_b, np.diag(var_b))
    expected = ((mu_a - mu_b) ** 2).sum() + ((np.sqrt(var_a) - np.sqrt(var_b)) ** 2).sum()
    assert got == pytest.approx(expected, rel=1e-12)
    assert trace_sqrt_product(np.diag(var_a), np.diag(var_b)) == pytest.approx(np.sqrt(var_a * var_b).sum())


def test_identical_sets_give_zero_and_inputs_are_checked():
    a = _features(30, 8, 4)
    assert abs(frechet_distance(a, a)) < 1e-9
    assert abs(frechet_distance(torch.from_numpy(a).float(), torch.from_numpy(a).float())) < 1e-4
    with pytest.raises(ValueError, match="feats_a.*N >= 2"):
        frechet_distance(a[:1], a)
    with pytest.raises(ValueError, match="same feature size"):
        frechet_distance(a, a[:, :4])
    with pytest.raises(ValueError, match="finite"):
        frechet_distance(np.full((3, 2), np.nan), a[:, :2])


@pytest.mark.parametrize("n", [2, 20, 100])
def test_identical_sets_with_fewer_samples_than_features_give_zero(n):
    # Logit-scale features, N <= D: the covariance is singular. Positive round-off eigenvalues of its
    # null space used to survive clipping at 0 and their square roots added up to a distance of
    # about -1e-3 (the ground-truth ceiling of FVD-D/FV4D read negative).
    a = np.random.default_rng(n).standard_normal((n, 400)) * 3
    assert abs(frechet_distance(a, a)) < 1e-6
    assert abs(frechet_distance(a + 5.0, a + 5.0)) < 1e-6


def test_batched_torch_distance_matches_numpy():
    # Full-rank and rank-deficient pairs (N < D), one batch, float64 on the CPU.
    pairs = [(_features(40, 16, 7), _features(30, 16, 8, shift=0.2)), (_features(5, 16, 9), _features(4, 16, 10)),
             (_features(6, 16, 11),) * 2]
    moments = [[], [], [], []]
    for a, b in pairs:
        for i, x in enumerate((a.mean(0), np.cov(a, rowvar=False), b.mean(0), np.cov(b, rowvar=False))):
            moments[i].append(torch.from_numpy(x))
    got = frechet_distance_batched(*[torch.stack(m) for m in moments])
    assert got.dtype == torch.float64 and got.shape == (3,)
    expected = [frechet_distance_from_moments(*[m[k].numpy() for m in moments]) for k in range(3)]
    np.testing.assert_allclose(got.numpy(), expected, rtol=1e-9, atol=1e-9)
    assert abs(got[2].item()) < 1e-9
    with pytest.raises(ValueError, match="moments"):
        frechet_distance_batched(moments[0][0][None], moments[1][0][None], moments[2][0][None], moments[1][0])


class MeanColourExtractor(torch.nn.Module):
    """Tiny stand-in for I3D: per-clip channel means and stds, plus a fixed random projection."""

    def __init__(self, num_features: int = 6):
        super().__init__()
        self.proj = torch.nn.Linear(6, num_features)
        torch.nn.init.normal_(self.proj.weight, generator=torch.Generator().manual_seed(0))

    def forward(self, clips: torch.Tensor) -> torch.Tensor:  # [N, 3, T, H, W]
        flat = clips.flatten(2)
        return self.proj(torch.cat([flat.mean(-1), flat.std(-1)], dim=1))


def _videos(n: int, seed: int, t: int = 4) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.rand(n, t, 3, 8, 8, generator=g) ** (1 + seed % 3)


def test_metric_over_batches_equals_functional():
    model = MeanColourExtractor()
    preds, target = _videos(9, 1), _videos(7, 2)
    expected = fvd(preds, target, model=model, batch_size=4)
    metric = FVD(model=model, num_features=6)
    metric.update(preds[:2], target[:3])
    metric.update(preds[2:7], None)
    metric.update(preds[7:], target[3:])
    # Features are float32 (batching changes their last bits); the moments are float64.
    assert metric.compute().item() == pytest.approx(expected, rel=1e-6)
    # float64 running sums, no feature lists unless asked for.
    assert metric.fake_outer.dtype == torch.float64 and not hasattr(metric, "fake_features")
    metric.reset()
    assert int(metric.real_count) == 0


def test_bootstrap_interval():
    a, b = _features(60, 5, 5), _features(50, 5, 6, shift=0.4)
    ci = bootstrap_frechet_distance(a, b, num_resamples=200, seed=1)
    assert ci.value == pytest.approx(frechet_distance(a, b))
    assert ci.low < ci.value < ci.high and (ci.num_a, ci.num_b) == (60, 50)
    assert bootstrap_frechet_distance(a, b, num_resamples=200, seed=1) == ci  # reproducible
    with pytest.raises(ValueError, match="confidence"):
        bootstrap_frechet_distance(a, b, confidence=95)

    model = MeanColourExtractor()
    metric = FVD(model=model, num_features=6, keep_features=True)
    preds, target = _videos(12, 3), _videos(10, 4)
    metric.update(preds[:5], target[:5])
    metric.update(preds[5:], target[5:])
    ci = metric.compute_interval(num_resamples=50)
    assert ci.value == pytest.approx(metric.compute().item(), rel=1e-6)
    assert (ci.num_a, ci.num_b) == (12, 10)
    with pytest.raises(ValueError, match="keep_features"):
        FVD(model=model, num_features=6).compute_interval()


def test_resize_bilinear_half_pixel_no_antialias():
    # Exact 2x downsampling with half-pixel centres and no antialiasing averages 2 x 2 blocks.
    frames = torch.rand(1, 2, 3, 448, 448, dtype=torch.float64)
    out = preprocess_videos(frames)  # [1, 3, 2, 224, 224] in [-1, 1]
    blocks = torch.nn.functional.avg_pool2d(frames[0], 2) * 2 - 1  # [2, 3, 224, 224]
    torch.testing.assert_close(out[0].permute(1, 0, 2, 3), blocks)
    # Upsampling matches PIL's bilinear (same triangle filter, half-pixel centres).
    small = np.random.default_rng(0).random((56, 56)).astype(np.float32)
    ref = np.asarray(Image.fromarray(small, mode="F").resize((224, 224), Image.BILINEAR))
    clip = torch.from_numpy(small).expand(1, 1, 3, 56, 56)
    got = (preprocess_videos(clip)[0, 0, 0].numpy() + 1) / 2
    np.testing.assert_allclose(got, ref, atol=1e-5)


def test_resize_bilinear_tf1_samples_without_half_pixel_offset():
    # TF1 resize_bilinear: output i samples input i * in / out; exact 2x downsampling picks even pixels.
    frames = torch.rand(1, 2, 3, 448, 448, dtype=torch.float64)
    out = preprocess_videos(frames, FVDConfig(resize_filter="bilinear_tf1"))
    torch.testing.assert_close(out[0].permute(1, 0, 2, 3), frames[0, :, :, ::2, ::2] * 2 - 1)
    # Upsampling 2 -> 4 by hand: positions 0, 0.5, 1, 1.5 -> a, (a+b)/2, b, b (clamped at the edge).
    row = torch.tensor([0.2, 0.6], dtype=torch.float64)
    clip = row.view(1, 1, 1, 1, 2).expand(1, 1, 3, 2, 2)
    got = (preprocess_videos(clip, FVDConfig(size=4, resize_filter="bilinear_tf1"))[0, 0, 0, 0] + 1) / 2
    torch.testing.assert_close(got, torch.tensor([0.2, 0.4, 0.6, 0.6], dtype=torch.float64))


def test_video_inputs_are_checked():
    model = MeanColourExtractor()
    with pytest.raises(ValueError, match=r"preds: expected shape \[N, T, 3, H, W\]"):
        fvd(torch.rand(2, 3, 8, 8), _videos(2, 0), model=model)
    with pytest.raises(ValueError, match=r"target: expected values in \[0, 1\]"):
        fvd(_videos(2, 0), _videos(2, 0) * 255, model=model)
    with pytest.raises(ValueError, match="resize_filter"):
        FVDConfig(resize_filter="lanczos")


@pytest.mark.weights
def test_published_fvd_constant_clips_end_to_end(i3d):
    # Two constant 0 (-> -1) and two constant 1 (-> +1) clips of 9 frames at 16 x 16, resized to 224.
    zeros, ones = torch.zeros(2, 9, 3, 16, 16), torch.ones(2, 9, 3, 16, 16)
    got = fvd(ones, zeros, model=i3d)
    print(f"FVD T=9 (end to end): {got:.4f}")
    assert got == pytest.approx(PUBLISHED_FVD[9], rel=1e-5)


@pytest.mark.weights
@pytest.mark.parametrize("num_frames", [9, 16, 30])
def test_published_fvd_constant_clips(i3d_constant_logits, num_frames):
    logits = i3d_constant_logits(num_frames)
    # Sets of identical clips: zero covariances, the distance of the mean logits.
    got = frechet_distance(logits[[0, 0, 0]], logits[[1, 1]])
    print(f"FVD T={num_frames}: {got:.4f}")
    assert got == pytest.approx(PUBLISHED_FVD[num_frames], rel=1e-5)
