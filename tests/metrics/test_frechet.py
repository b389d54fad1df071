"""metrics.frechet: small-N form against the full form and an SVD reference, weighted replicates against
explicit concatenation, the batched Cholesky route against scipy's sqrtm and, where it falls back for singular
covariances, against the eigh route and the SVD form; bootstrap units, methods and order independence."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.linalg
import torch

from metrics.frechet import (
    FrechetMetric,
    _bootstrap_replicates,
    _GroupSums,
    _trace_sqrt_numpy,
    _trace_sqrt_torch,
    bootstrap_frechet_distance,
    frechet_distance,
    frechet_distance_batched,
    gaussian_moments,
    trace_sqrt_product,
    trace_sqrt_product_small,
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


def _centred(x: np.ndarray) -> np.ndarray:
    return (x - x.mean(0)) / np.sqrt(len(x) - 1)


# Both implementations of the batched full form: numpy (the CPU route) and torch (the GPU route, run here on CPU).
# Nothing known to be singular beforehand: the pivots alone decide.
TRACE_ROUTES = {
    "numpy": lambda a, b: _trace_sqrt_numpy(a, b, (np.zeros(len(a), bool),) * 2),
    "torch": lambda a, b: tuple(
        t.numpy() for t in _trace_sqrt_torch(torch.from_numpy(a), torch.from_numpy(b), (np.zeros(len(a), bool),) * 2)
    ),
}


@pytest.mark.parametrize("route", sorted(TRACE_ROUTES))
def test_cholesky_route_equals_scipy_sqrtm_on_well_conditioned_covariances(route):
    pairs = [(_features(300, 48, 20 + i, scale=3.0), _features(250, 48, 40 + i, shift=0.4, scale=2.0))
             for i in range(3)]
    cov_a = np.stack([np.cov(a, rowvar=False) for a, _ in pairs])
    cov_b = np.stack([np.cov(b, rowvar=False) for _, b in pairs])
    trace, eigh = TRACE_ROUTES[route](cov_a, cov_b)
    assert not eigh.any()  # full rank, well conditioned: no fallback
    expected = [np.trace(scipy.linalg.sqrtm(sa @ sb).real) for sa, sb in zip(cov_a, cov_b)]
    np.testing.assert_allclose(trace, expected, rtol=1e-9)
    mus = [torch.from_numpy(np.stack([x.mean(0) for x in side])) for side in zip(*pairs)]
    got = frechet_distance_batched(mus[0], torch.from_numpy(cov_a), mus[1], torch.from_numpy(cov_b)).numpy()
    np.testing.assert_allclose(got, [_scipy_reference(a, b) for a, b in pairs], rtol=1e-9)


@pytest.mark.parametrize("route", sorted(TRACE_ROUTES))
def test_cholesky_route_falls_back_for_singular_covariances(route):
    # D = 32; "singular": 12 distinct rows repeated 5 times (60 rows > D, rank 11). Each pair's positive definite
    # side is factored; with none, the eigh route. References: the single-pair eigh route and the SVD (small-N)
    # form of the same rows, which needs no factorisation.
    full = [_features(200, 32, 60 + i, scale=2.0) for i in range(3)]
    singular = [np.repeat(_features(12, 32, 70 + i, shift=0.2), 5, axis=0) for i in range(3)]
    pairs = [(full[0], full[1]), (singular[0], full[2]), (full[2], singular[1]), (singular[1], singular[2])]
    cov_a = np.stack([np.cov(a, rowvar=False) for a, _ in pairs])
    cov_b = np.stack([np.cov(b, rowvar=False) for _, b in pairs])
    trace, eigh = TRACE_ROUTES[route](cov_a, cov_b)
    assert eigh.tolist() == [False, False, False, True]
    scale = np.trace(cov_a, axis1=1, axis2=2) + np.trace(cov_b, axis1=1, axis2=2)
    eigh_route = np.array([trace_sqrt_product(sa, sb) for sa, sb in zip(cov_a, cov_b)])
    svd_form = np.array([trace_sqrt_product_small(_centred(a), _centred(b)) for a, b in pairs])
    assert np.abs(trace - eigh_route).max() <= 1e-10 * scale.max()
    assert np.abs(trace - svd_form).max() <= 1e-10 * scale.max()


@pytest.mark.parametrize("rank_a", [24, 10])
@pytest.mark.parametrize("grouped", [True, False])
def test_grouped_replicates_with_some_fallbacks_equal_concatenated_draws(rank_a, grouped):
    # 16 samples x 3 clips, D = 24: 48 rows > D, so the full form (from per-sample sums, or from weighted rows).
    # A replicate drawing k distinct samples has covariances of rank 3k - 1: singular on both sides for k <= 8
    # (the eigh route), well conditioned for k >= 12 (the Cholesky route). Features of rank 10 in a (an
    # orthonormal map, so no worse conditioned): every covariance of a singular, so b is factored.
    n, per, d, reps = 16, 3, 24, 120
    basis = np.linalg.qr(np.random.default_rng(1).standard_normal((d, d)))[0][:rank_a]
    a = _features(n * per, d, 80, scale=2.0)[:, :rank_a] @ basis
    b = _features(n * per, d, 81, shift=0.3, scale=2.0)
    rng = np.random.default_rng(5)
    draws = np.stack([np.bincount(rng.integers(0, n, n), minlength=n) for _ in range(reps)])
    weights = np.repeat(draws, per, axis=1)
    samples = ([per] * n, draws) if grouped else None
    got = _bootstrap_replicates(a, b, weights, weights, samples, "cpu", 2**20)  # batches of ~3
    expected = []
    for w in weights:
        rows = np.repeat(np.arange(n * per), w)
        expected.append(frechet_distance(a[rows], b[rows], form="small"))  # SVD of the draws' rows
    scale = np.trace(np.cov(a, rowvar=False)) + np.trace(np.cov(b, rowvar=False))
    assert np.abs(got - expected).max() <= 1e-9 * scale
    if rank_a < d or not grouped:
        return
    # The batch really mixes the two routes.
    sums_a, sums_b = (_GroupSums.of(torch.from_numpy(x), [per] * n) for x in (a, b))
    dt = torch.from_numpy(draws.astype(np.float64))
    _, eigh = TRACE_ROUTES["numpy"](sums_a.moments(dt)[1].numpy(), sums_b.moments(dt)[1].numpy())
    distinct = (draws > 0).sum(axis=1)
    assert eigh[distinct <= 8].all() and not eigh[distinct >= 12].any()
    assert (distinct <= 8).any() and (distinct >= 12).any()


def test_group_sums_moments_equal_weighted_moments():
    sizes = [2, 5, 1, 3, 4]
    x = _features(sum(sizes), 7, 90, shift=5.0)  # an offset mean: the sums are taken about the set's mean
    draws = np.array([[1, 0, 2, 1, 1], [0, 3, 0, 0, 2], [5, 0, 0, 0, 0]])
    mu, cov = _GroupSums.of(torch.from_numpy(x), sizes).moments(torch.from_numpy(draws.astype(np.float64)))
    for i, row in enumerate(np.repeat(draws, sizes, axis=1)):
        m, c = gaussian_moments(np.repeat(x, row, axis=0))
        np.testing.assert_allclose(mu[i].numpy(), m, rtol=1e-12, atol=1e-12)
        np.testing.assert_allclose(cov[i].numpy(), c, rtol=1e-10, atol=1e-12)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_bootstrap_on_cuda_equals_cpu():
    # 30 samples x 2 clips, D = 36: the full form from per-sample sums; a replicate of k distinct samples has
    # rank 2k - 1, about D, so the batches mix the Cholesky and the eigh route.
    a, b, keys = _grouped(30, 2, 36)
    kwargs = dict(unit="samples", method="basic", groups=[2] * 30, keys=keys, seed=3)
    cpu = bootstrap_frechet_distance(a, b, 200, **kwargs)
    gpu = bootstrap_frechet_distance(a, b, 200, device="cuda", **kwargs)
    assert (gpu.low, gpu.high, gpu.std) == pytest.approx((cpu.low, cpu.high, cpu.std), rel=1e-9)
