"""metrics.frechet: small-N form against the full form and an SVD reference, weighted replicates against
explicit concatenation, bootstrap units, methods and order independence."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.linalg
import torch

from metrics.frechet import (
    FrechetMetric,
    bootstrap_frechet_distance,
    frechet_distance,
    gaussian_moments,
    weighted_frechet_distances,
)


def _features(n: int, d: int, seed: int, shift: float = 0.0, scale: float = 1.0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    mix = rng.standard_normal((d, d)) / np.sqrt(d)
    return (rng.standard_normal((n, d)) @ mix) * scale + shift


def _scipy_reference(a: np.ndarray, b: np.ndarray) -> float:
    """Textbook formula with scipy.linalg.sqrtm: trustworthy for well-conditioned, full-rank covariances."""
    s_a, s_b = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    d = a.mean(0) - b.mean(0)
    return float(d @ d + np.trace(s_a) + np.trace(s_b) - 2 * np.trace(scipy.linalg.sqrtm(s_a @ s_b).real))


@pytest.mark.parametrize("n", [2, 3, 9, 36, 100, 399, 400, 401, 500])
@pytest.mark.parametrize("d", [16, 64, 400])
def test_small_n_form_equals_full_form(n, d):
    # Logit-scale features (I3D logits are O(1..10)); unequal set sizes on purpose.
    a = _features(n, d, seed=n + d, scale=3.0)
    b = _features(max(2, n - n // 3), d, seed=n + 2 * d, shift=0.5, scale=3.0)
    small, full = frechet_distance(a, b, form="small"), frechet_distance(a, b, form="full")
    # Both are differences of O(trace) numbers: compare relative to the traces, which set the round-off.
    scale = np.trace(np.cov(a, rowvar=False)) + np.trace(np.cov(b, rowvar=False))
    assert abs(small - full) <= 1e-9 * scale
    if n >= 2 * d:  # full rank and well conditioned: scipy's sqrtm is a third, independent route
        assert small == pytest.approx(_scipy_reference(a, b), rel=1e-8)


def test_small_n_form_identical_sets_and_diagonal_closed_form():
    a = _features(20, 400, 0, scale=3.0)
    assert abs(frechet_distance(a, a, form="small")) < 1e-9
    # Two points per set along orthogonal axes: covariances are rank one, diag(2, 0) and diag(0, 8);
    # tr sqrt(S_a S_b) = 0, so d = |mu_a - mu_b|^2 + 2 + 8.
    a = np.array([[1.0, 0.0], [-1.0, 0.0]])
    b = np.array([[0.0, 2.0], [0.0, -2.0]]) + 1.0
    assert frechet_distance(a, b, form="small") == pytest.approx(2.0 + 2.0 + 8.0, rel=1e-12)
    with pytest.raises(ValueError, match="form"):
        frechet_distance(a, b, form="tiny")


@pytest.mark.parametrize("form", ["small", "full"])
def test_weighted_replicates_equal_concatenated_draws(form):
    a, b = _features(12, 32, 1), _features(12, 32, 2, shift=0.3)
    rng = np.random.default_rng(3)
    draws = [rng.integers(0, 12, 12) for _ in range(5)]
    w = torch.from_numpy(np.stack([np.bincount(d, minlength=12) for d in draws]).astype(np.float64))
    got = weighted_frechet_distances(torch.from_numpy(a), w, torch.from_numpy(b), w, form=form).numpy()
    expected = [frechet_distance(a[d], b[d], form="full") for d in draws]
    np.testing.assert_allclose(got, expected, rtol=1e-9, atol=1e-9)


def _grouped(n_samples: int, per: int, d: int):
    a = _features(n_samples * per, d, 10, scale=2.0)
    b = _features(n_samples * per, d, 11, shift=0.2, scale=2.0)
    keys = [f"s{i:02d}" for i in range(n_samples)]
    return a, b, keys


def test_bootstrap_over_samples_does_not_depend_on_storage_order():
    a, b, keys = _grouped(6, 3, 24)
    ci = bootstrap_frechet_distance(a, b, 300, unit="samples", method="basic", groups=[3] * 6, keys=keys, seed=4)
    perm = [4, 0, 5, 2, 1, 3]
    rows = np.concatenate([np.arange(3 * i, 3 * i + 3) for i in perm])
    shuffled = bootstrap_frechet_distance(
        a[rows], b[rows], 300, unit="samples", method="basic", groups=[3] * 6, keys=[keys[i] for i in perm], seed=4
    )
    assert shuffled.low == pytest.approx(ci.low, rel=1e-10) and shuffled.high == pytest.approx(ci.high, rel=1e-10)
    assert shuffled.std == pytest.approx(ci.std, rel=1e-10)
    # Without keys the order is the order given: a shuffle then changes the draws.
    unkeyed = bootstrap_frechet_distance(a[rows], b[rows], 300, unit="samples", method="basic", groups=[3] * 6, seed=4)
    assert unkeyed.low != pytest.approx(ci.low, rel=1e-6)


def test_bootstrap_methods_units_and_replicates_by_hand():
    a, b, keys = _grouped(5, 2, 8)
    value = frechet_distance(a, b)
    n_res = 50
    pct = bootstrap_frechet_distance(a, b, n_res, unit="samples", method="percentile", groups=[2] * 5, keys=keys, seed=7)
    basic = bootstrap_frechet_distance(a, b, n_res, unit="samples", method="basic", groups=[2] * 5, keys=keys, seed=7)
    # Replicates by hand: the same draws, the drawn samples concatenated.
    rng = np.random.default_rng(7)
    reps = []
    for _ in range(n_res):
        rows = np.concatenate([[2 * s, 2 * s + 1] for s in rng.integers(0, 5, 5)])
        reps.append(frechet_distance(a[rows], b[rows], form="full"))
    q_lo, q_hi = np.quantile(reps, [0.025, 0.975])
    assert (pct.low, pct.high) == pytest.approx((q_lo, q_hi), rel=1e-9)
    assert (basic.low, basic.high) == pytest.approx((2 * value - q_hi, 2 * value - q_lo), rel=1e-9)
    assert basic.std == pytest.approx(np.std(reps, ddof=1), rel=1e-9)
    assert (basic.unit, basic.method, pct.method) == ("samples", "basic", "percentile")
    clips = bootstrap_frechet_distance(a, b, n_res, seed=7)
    assert clips.unit == "clips" and clips.low < clips.high
    for kwargs, match in (({"unit": "views"}, "unit"), ({"method": "bca"}, "method"),
                          ({"unit": "samples", "groups": [3, 3]}, "groups"),
                          ({"unit": "samples", "groups": [2] * 5, "keys": ["a"] * 5}, "keys")):
        with pytest.raises(ValueError, match=match):
            bootstrap_frechet_distance(a, b, 10, **kwargs)


def test_frechet_metric_moments_match_numpy():
    class Identity(FrechetMetric):
        def extract(self, inputs, name):
            return inputs

    a, b = _features(30, 6, 5), _features(20, 6, 6, shift=1.0)
    metric = Identity(6)
    metric.update(torch.from_numpy(a[:10]), torch.from_numpy(b[:5]))
    metric.update(torch.from_numpy(a[10:]), torch.from_numpy(b[5:]))
    mu, cov = gaussian_moments(a)
    got_mu, got_cov = metric._moments("fake")
    np.testing.assert_allclose(got_mu, mu, rtol=1e-12)
    np.testing.assert_allclose(got_cov, cov, rtol=1e-9, atol=1e-12)
    assert metric.compute().item() == pytest.approx(frechet_distance(a, b), rel=1e-9)
