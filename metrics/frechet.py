"""Frechet distance between Gaussians fitted to feature sets (the FVD / FID formula), its bootstrap and
the accumulating base metric. FVD (:mod:`metrics.fvd`), FID (:mod:`metrics.fid`) and the benchmark
(``characterbench``) all use this one module.

    d^2 = |mu_a - mu_b|^2 + tr(S_a) + tr(S_b) - 2 tr sqrt(S_a S_b),   S = covariance with N - 1.

Two forms of ``tr sqrt(S_a S_b)``, chosen by size; they agree to round-off (tests check N 2..500,
D 16..400):

- **full form** (``D x D``): with a Cholesky factor ``S_a = L L^T``, ``S_a S_b`` is similar to the
  symmetric PSD ``L^T S_b L``, so the trace is the sum of the square roots of its eigenvalues, and
  ``tr sqrt(S_a S_b) = tr sqrt(S_b S_a)`` lets either side be factored. One Cholesky costs about a
  tenth of the ``eigh`` with vectors that ``R = S_a^(1/2)`` needs, but is exact only for a positive
  definite factor: it is used when the factorisation succeeds with every pivot ``L_ii^2`` above
  ``100 D eps tr(S)`` (so the smallest eigenvalue clears the round-off level below), else the other
  side is tried. When neither side passes (at most D distinct feature vectors: duplicated
  samples, rank-deficient features) the route is ``R = S_a^(1/2)`` from ``eigh`` and the
  eigenvalues of ``R S_b R``. In both, eigenvalues below ``max_eig * D * eps`` are round-off of a
  zero and count as 0: clipping only negative ones keeps positive round-off whose square roots add
  up over the null space and bias the distance low when there are fewer clips than features.
  ``scipy.linalg.sqrtm`` is not used: several SciPy releases return wrong or complex results for
  singular covariances. The single-pair functions (:func:`trace_sqrt_product`) take the ``eigh``
  route; the batched ones (:func:`frechet_distance_batched`, the bootstrap) the Cholesky one.
- **small-N form** (``N_a x N_b``): with the centred, scaled feature matrices ``A = (X_a - mu_a) /
  sqrt(N_a - 1)`` (so ``S_a = A^T A``) and ``B`` likewise, the non-zero eigenvalues of ``S_a S_b =
  A^T A B^T B`` are those of ``(A B^T)(A B^T)^T``, so ``tr sqrt(S_a S_b) = ||A B^T||_*``, the nuclear
  norm (sum of singular values) of an ``N_a x N_b`` matrix. With fewer clips than features (4 board
  samples: 36 FVD-F clips against D = 400) this costs microseconds instead of two 400 x 400
  eigendecompositions, and singular values need no round-off threshold (they are >= 0 by
  construction, and a zero one comes out at ``eps`` size, not ``sqrt(eps)``).

The bootstrap (:func:`bootstrap_frechet_distance`) takes the resampling unit and the interval method
as arguments: ``unit="clips"`` resamples the two feature sets independently; ``unit="samples"``
resamples whole samples (all their clips, paired between the two sets), the right unit when a
sample's clips are not independent. Samples are sorted by key before drawing, so the interval does
not depend on the order they were stored in. Replicates that resample whole samples build their
covariances from per-sample sums of outer products (``sum_s draws_s X_s^T X_s``: one matrix product
over the samples instead of one over all clips). Replicates whose covariances are singular for certain
(at most D rows drawn, or a singular covariance of the whole set) take the ``eigh`` route without trying
a factorisation.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import numpy as np
import torch
from torchmetrics import Metric

__all__ = [
    "BOOTSTRAP_METHODS",
    "BOOTSTRAP_UNITS",
    "FrechetInterval",
    "FrechetMetric",
    "bootstrap_frechet_distance",
    "frechet_distance",
    "frechet_distance_batched",
    "frechet_distance_from_moments",
    "gaussian_moments",
    "trace_sqrt_product",
    "trace_sqrt_product_small",
    "weighted_frechet_distances",
]

BOOTSTRAP_UNITS = ("clips", "samples")
BOOTSTRAP_METHODS = ("percentile", "basic")


def _as_features(x, name: str) -> np.ndarray:
    if isinstance(x, torch.Tensor):
        x = x.detach().to("cpu", torch.float64).numpy()
    x = np.asarray(x, dtype=np.float64)
    if x.ndim != 2:
        raise ValueError(f"{name}: expected features [N, D], got shape {list(x.shape)}")
    if x.shape[0] < 2:
        raise ValueError(f"{name}: expected N >= 2 samples for a covariance, got N={x.shape[0]}")
    if not np.isfinite(x).all():
        raise ValueError(f"{name}: expected finite features, got NaN or inf")
    return x


def gaussian_moments(features) -> tuple[np.ndarray, np.ndarray]:
    """Mean and unbiased (N-1) covariance of per-sample features.

    Args:
        features: ``[N, D]`` (tensor or array), N >= 2.

    Returns:
        ``(mu [D], cov [D, D])`` float64.

    Raises:
        ValueError: wrong shape, N < 2 or non-finite values.
    """
    x = _as_features(features, "features")
    return x.mean(axis=0), np.cov(x, rowvar=False, ddof=1).reshape(x.shape[1], x.shape[1])


def _drop_round_off(eig):
    """Eigenvalues of PSD matrices (``[..., D]``, torch or numpy) with those below ``max_eig * D * eps`` of
    their matrix set to 0 (module docstring)."""
    d = eig.shape[-1]
    if isinstance(eig, torch.Tensor):
        top = eig.amax(dim=-1, keepdim=True).clamp(min=0)
        return torch.where(eig > top * d * torch.finfo(eig.dtype).eps, eig, torch.zeros_like(eig))
    top = np.clip(eig.max(axis=-1, keepdims=True), 0.0, None)
    return np.where(eig > top * d * np.finfo(np.float64).eps, eig, 0.0)


def trace_sqrt_product(cov_a: np.ndarray, cov_b: np.ndarray) -> float:
    """``tr sqrt(cov_a @ cov_b)`` for symmetric PSD matrices, from eigenvalues (the full form).

    Args:
        cov_a: ``[D, D]`` symmetric PSD.
        cov_b: ``[D, D]`` symmetric PSD.

    Returns:
        The trace (float64), also for singular covariances (round-off eigenvalues taken as 0).
    """
    return float(_trace_sqrt_eigh_numpy(np.asarray(cov_a)[None], np.asarray(cov_b)[None])[0])


def trace_sqrt_product_small(centred_a: np.ndarray, centred_b: np.ndarray) -> float:
    """``tr sqrt(S_a S_b)`` with ``S_a = A^T A``, ``S_b = B^T B``, as the nuclear norm of ``A B^T``.

    Args:
        centred_a: ``A [N_a, D]``, centred features divided by ``sqrt(N_a - 1)``.
        centred_b: ``B [N_b, D]``, likewise.

    Returns:
        ``||A B^T||_*`` (float64).
    """
    return float(np.linalg.svd(centred_a @ centred_b.T, compute_uv=False).sum())


def frechet_distance_from_moments(mu_a, cov_a, mu_b, cov_b) -> float:
    """Squared Frechet distance between ``N(mu_a, cov_a)`` and ``N(mu_b, cov_b)`` (full form).

    Args:
        mu_a: ``[D]``.
        cov_a: ``[D, D]`` symmetric PSD.
        mu_b: ``[D]``.
        cov_b: ``[D, D]`` symmetric PSD.

    Returns:
        ``|mu_a - mu_b|^2 + tr(cov_a) + tr(cov_b) - 2 tr sqrt(cov_a cov_b)`` (float64).

    Raises:
        ValueError: inconsistent shapes.
    """
    mu_a, mu_b = np.asarray(mu_a, np.float64), np.asarray(mu_b, np.float64)
    cov_a, cov_b = np.asarray(cov_a, np.float64), np.asarray(cov_b, np.float64)
    d = mu_a.shape[0]
    if mu_a.shape != (d,) or mu_b.shape != (d,) or cov_a.shape != (d, d) or cov_b.shape != (d, d):
        raise ValueError(
            f"moments: expected mu [D], cov [D, D] for both sets, got {mu_a.shape}, {cov_a.shape}, "
            f"{mu_b.shape}, {cov_b.shape}"
        )
    diff = mu_a - mu_b
    return float(diff @ diff + np.trace(cov_a) + np.trace(cov_b) - 2 * trace_sqrt_product(cov_a, cov_b))


def frechet_distance(feats_a, feats_b, form: str = "auto") -> float:
    """Squared Frechet distance between Gaussians fitted to two feature sets.

    Args:
        feats_a: ``[N_a, D]`` (tensor or array), N_a >= 2.
        feats_b: ``[N_b, D]``, N_b >= 2.
        form: ``"auto"`` (small-N form when ``max(N_a, N_b) <= D``, else full), ``"small"`` or ``"full"``.

    Returns:
        The distance (float64 Python float).

    Raises:
        ValueError: wrong shapes, different D, fewer than 2 samples, non-finite values, unknown form.
    """
    a, b = _as_features(feats_a, "feats_a"), _as_features(feats_b, "feats_b")
    if a.shape[1] != b.shape[1]:
        raise ValueError(f"feats_a, feats_b: expected the same feature size D, got {a.shape[1]} and {b.shape[1]}")
    if form not in ("auto", "small", "full"):
        raise ValueError(f"form: expected 'auto', 'small' or 'full', got {form!r}")
    if form == "full" or (form == "auto" and max(len(a), len(b)) > a.shape[1]):
        return frechet_distance_from_moments(*gaussian_moments(a), *gaussian_moments(b))
    mu_a, mu_b = a.mean(axis=0), b.mean(axis=0)
    ca, cb = (a - mu_a) / np.sqrt(len(a) - 1), (b - mu_b) / np.sqrt(len(b) - 1)
    diff = mu_a - mu_b
    return float(diff @ diff + (ca * ca).sum() + (cb * cb).sum() - 2 * trace_sqrt_product_small(ca, cb))


def frechet_distance_batched(
    mu_a: torch.Tensor, cov_a: torch.Tensor, mu_b: torch.Tensor, cov_b: torch.Tensor
) -> torch.Tensor:
    """:func:`frechet_distance_from_moments` for a batch of moment pairs, in torch (on their device).

    ``tr sqrt`` takes the Cholesky route where one side is positive definite, else the ``eigh`` route
    (module docstring).

    Args:
        mu_a: ``[B, D]``.
        cov_a: ``[B, D, D]`` symmetric PSD.
        mu_b: ``[B, D]``.
        cov_b: ``[B, D, D]`` symmetric PSD.

    Returns:
        ``[B]`` distances, in the inputs' dtype (use float64).

    Raises:
        ValueError: inconsistent shapes.
    """
    b, d = mu_a.shape[0], mu_a.shape[-1]
    if mu_a.shape != (b, d) or mu_b.shape != (b, d) or cov_a.shape != (b, d, d) or cov_b.shape != (b, d, d):
        raise ValueError(
            f"moments: expected mu [B, D], cov [B, D, D] for both sets, got {list(mu_a.shape)}, "
            f"{list(cov_a.shape)}, {list(mu_b.shape)}, {list(cov_b.shape)}"
        )
    return _distances_from_moments(mu_a, cov_a, mu_b, cov_b)


def _distances_from_moments(mu_a, cov_a, mu_b, cov_b, singular=None) -> torch.Tensor:
    """:func:`frechet_distance_batched` without the checks; ``singular`` as in :func:`_trace_sqrt_products`."""
    trace_sqrt, _ = _trace_sqrt_products(cov_a, cov_b, singular)
    diff = mu_a - mu_b
    traces = cov_a.diagonal(dim1=-2, dim2=-1).sum(-1) + cov_b.diagonal(dim1=-2, dim2=-1).sum(-1)
    return (diff * diff).sum(-1) + traces - 2 * trace_sqrt


def _trace_sqrt_products(
    cov_a: torch.Tensor, cov_b: torch.Tensor, singular: tuple[np.ndarray, np.ndarray] | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """``tr sqrt(cov_a @ cov_b)`` per pair of a ``[B, D, D]`` batch (full form, module docstring).

    Args:
        cov_a: ``[B, D, D]`` symmetric PSD.
        cov_b: ``[B, D, D]``.
        singular: ``([B], [B])`` bool, the covariances of a and of b known to be singular (fewer than
            D + 1 distinct rows), which are then not factored; default none known.

    Returns:
        ``([B] traces, [B] bool: the pair took the eigh route)``, on the inputs' device.
    """
    if singular is None:
        singular = (np.zeros(len(cov_a), bool),) * 2
    if cov_a.device.type == "cpu":
        # numpy's LAPACK: torch's batched CPU eigh, eigvalsh and cholesky run 5-10x slower at these sizes on
        # 2 shared cores, mostly its threads contending (400 x 400 float64 at load 5: eigvalsh 84 against
        # 7.8 ms each, cholesky 16 against 3 ms; single-threaded torch is within 20% of numpy).
        trace, eigh = _trace_sqrt_numpy(cov_a.detach().numpy(), cov_b.detach().numpy(), singular)
        return torch.from_numpy(trace), torch.from_numpy(eigh)
    return _trace_sqrt_torch(cov_a, cov_b, singular)


def _trace_sqrt_torch(cov_a: torch.Tensor, cov_b: torch.Tensor, singular) -> tuple[torch.Tensor, torch.Tensor]:
    """:func:`_trace_sqrt_products` in torch (the GPU route; batched ``cholesky_ex``)."""
    out = torch.empty(cov_a.shape[0], dtype=cov_a.dtype, device=cov_a.device)
    todo = torch.ones(cov_a.shape[0], dtype=torch.bool, device=cov_a.device)
    for first, second, known in ((cov_a, cov_b, singular[0]), (cov_b, cov_a, singular[1])):
        idx = (todo & ~torch.as_tensor(known, device=todo.device)).nonzero()[:, 0]
        if len(idx) == 0:
            continue
        candidates = first[idx]
        factor, info = torch.linalg.cholesky_ex(candidates)
        ok = (info == 0) & _well_pivoted(factor.diagonal(dim1=-2, dim2=-1), candidates.diagonal(dim1=-2, dim2=-1))
        idx, factor = idx[ok], factor[ok]
        if len(idx) == 0:
            continue
        m = factor.transpose(-1, -2) @ second[idx] @ factor
        out[idx] = _sum_sqrt_eig(torch.linalg.eigvalsh((m + m.transpose(-1, -2)) / 2))
        todo[idx] = False
    if todo.any():
        out[todo] = _trace_sqrt_eigh_torch(cov_a[todo], cov_b[todo])
    return out, todo


def _trace_sqrt_eigh_torch(cov_a: torch.Tensor, cov_b: torch.Tensor) -> torch.Tensor:
    """:func:`trace_sqrt_product` of each pair of a ``[B, D, D]`` batch (the eigh route, in torch)."""
    w, v = torch.linalg.eigh(cov_a)
    root_a = (v * _drop_round_off(w).sqrt().unsqueeze(-2)) @ v.transpose(-1, -2)
    m = root_a @ cov_b @ root_a
    return _sum_sqrt_eig(torch.linalg.eigvalsh((m + m.transpose(-1, -2)) / 2))


def _well_pivoted(chol_diag, cov_diag):
    """Whether each Cholesky factor is exact enough for the Cholesky route: every pivot ``L_ii^2`` above
    ``100 D eps tr(S)`` (``[B, D]`` diagonals of L and S, torch or numpy; ``[B]`` bool). The pivots bound the
    smallest eigenvalue from above, and collapse to round-off size for a singular S; ``tr(S) >= max_eig``
    keeps the bar above the round-off level ``max_eig * D * eps`` of the eigenvalues."""
    pivots = chol_diag * chol_diag
    smallest = pivots.amin(-1) if isinstance(pivots, torch.Tensor) else pivots.min(-1)
    return smallest > 100 * pivots.shape[-1] * np.finfo(np.float64).eps * cov_diag.sum(-1)


def _sum_sqrt_eig(eig):
    """``sum sqrt(eig)`` per batch item after :func:`_drop_round_off` (``[B, D]`` -> ``[B]``)."""
    return (_drop_round_off(eig) ** 0.5).sum(-1)


def _cholesky_numpy(s: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Lower Cholesky factors of a ``[B, D, D]`` batch and whether each one is usable (``[B]`` bool)."""
    try:
        factor, ok = np.linalg.cholesky(s), np.ones(len(s), bool)
    except np.linalg.LinAlgError:  # numpy raises for the whole batch: factor the items one by one
        factor, ok = np.zeros_like(s), np.zeros(len(s), bool)
        for i in range(len(s)):
            try:
                factor[i], ok[i] = np.linalg.cholesky(s[i]), True
            except np.linalg.LinAlgError:
                pass
    ok &= _well_pivoted(np.diagonal(factor, axis1=-2, axis2=-1), np.diagonal(s, axis1=-2, axis2=-1))
    return factor, ok


def _trace_sqrt_numpy(cov_a: np.ndarray, cov_b: np.ndarray, singular) -> tuple[np.ndarray, np.ndarray]:
    """:func:`_trace_sqrt_products` in numpy (batched LAPACK calls)."""
    out, todo = np.empty(len(cov_a)), np.ones(len(cov_a), bool)
    for first, second, known in ((cov_a, cov_b, singular[0]), (cov_b, cov_a, singular[1])):
        idx = np.flatnonzero(todo & ~known)
        if len(idx) == 0:
            continue
        factor, ok = _cholesky_numpy(first if len(idx) == len(first) else first[idx])
        if not ok.all():
            idx, factor = idx[ok], factor[ok]
            if len(idx) == 0:
                continue
        # Whole-batch indexing would copy the batch: skip it in the usual case (every first side factored).
        m = factor.swapaxes(-1, -2) @ (second if len(idx) == len(second) else second[idx]) @ factor
        out[idx] = _sum_sqrt_eig(np.linalg.eigvalsh((m + m.swapaxes(-1, -2)) / 2))
        todo[idx] = False
    if todo.all():
        out = _trace_sqrt_eigh_numpy(cov_a, cov_b)
    elif todo.any():
        out[todo] = _trace_sqrt_eigh_numpy(cov_a[todo], cov_b[todo])
    return out, todo


def _trace_sqrt_eigh_numpy(cov_a: np.ndarray, cov_b: np.ndarray) -> np.ndarray:
    """:func:`trace_sqrt_product` of each pair of a ``[B, D, D]`` batch (the eigh route, batched LAPACK)."""
    w, v = np.linalg.eigh(cov_a)
    root_a = (v * np.sqrt(_drop_round_off(w))[..., None, :]) @ v.swapaxes(-1, -2)
    m = root_a @ cov_b @ root_a
    # Symmetrise: round-off makes m slightly asymmetric and eigvalsh reads one triangle only.
    return _sum_sqrt_eig(np.linalg.eigvalsh((m + m.swapaxes(-1, -2)) / 2))


def _singular(w_a, w_b, d: int) -> tuple[np.ndarray, np.ndarray]:
    """Which replicates' covariances are singular for certain: fewer than D + 1 rows with weight."""
    return tuple(((w > 0).sum(1) <= d).cpu().numpy() if isinstance(w, torch.Tensor) else (w > 0).sum(1) <= d
                 for w in (w_a, w_b))


def _weighted_centred(x: torch.Tensor, w: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Rows ``x [M, D]`` repeated ``w [B, M]`` times: means ``[B, D]`` and ``A [B, M, D]`` with ``A^T A`` the
    N-1 covariance of the repeats (row i scaled by ``sqrt(w_i / (W - 1))``)."""
    total = w.sum(dim=1, keepdim=True)
    mu = w @ x / total
    centred = (x[None] - mu[:, None]) * (w / (total - 1)).sqrt()[..., None]
    return mu, centred


def _weighted_moments(x: torch.Tensor, w: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Means ``[B, D]`` and N-1 covariances ``[B, D, D]`` of the rows ``x [M, D]`` repeated ``w [B, M]`` times."""
    mu, centred = _weighted_centred(x, w)
    cov = centred.transpose(1, 2) @ centred
    return mu, (cov + cov.transpose(1, 2)) / 2


@dataclasses.dataclass(frozen=True)
class _GroupSums:
    """Per-sample sums of one feature set, for covariances of replicates that resample whole samples.

    Attributes:
        shift: ``[D]`` the set's mean, subtracted first so that ``sum x x^T - W mu mu^T`` cancels little.
        counts: ``[n]`` rows per sample.
        first: ``[n, D]`` per-sample sums of the shifted rows.
        second: ``[n, D * D]`` per-sample sums of their outer products.
    """

    shift: torch.Tensor
    counts: torch.Tensor
    first: torch.Tensor
    second: torch.Tensor

    @staticmethod
    def of(x: torch.Tensor, sizes: Sequence[int]) -> _GroupSums:
        """Sums of ``x [M, D]`` over consecutive groups of ``sizes`` rows."""
        shift = x.mean(dim=0)
        n, longest, d = len(sizes), max(sizes), x.shape[1]
        if min(sizes) == longest:
            groups = (x - shift).view(n, longest, d)
        else:  # zero rows pad the samples to one length (they add nothing to the sums)
            starts = np.concatenate([[0], np.cumsum(sizes)[:-1]])
            sample = torch.from_numpy(np.repeat(np.arange(n), sizes)).to(x.device)
            position = torch.from_numpy(np.arange(len(x)) - np.repeat(starts, sizes)).to(x.device)
            groups = x.new_zeros(n, longest, d)
            groups[sample, position] = x - shift
        first, second = groups.sum(dim=1), groups.transpose(1, 2) @ groups
        counts = torch.tensor(sizes, dtype=x.dtype, device=x.device)
        # Symmetric to the bit, so that their combinations are too up to the order of a GEMM's sums (the
        # trace routes read one triangle or symmetrise their products, so no per-replicate pass is needed).
        return _GroupSums(shift, counts, first, ((second + second.transpose(1, 2)) / 2).flatten(1))

    def moments(self, draws: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Means ``[B, D]`` and N-1 covariances ``[B, D, D]`` of the rows repeated by their sample's
        ``draws [B, n]`` count (each row of draws covering at least 2 rows)."""
        d = self.first.shape[1]
        total = draws @ self.counts
        sums = draws @ self.first
        # (sum x x^T - s s^T / W) / (W - 1) with s = sum x, in place (the [B, D, D] passes dominate the cost).
        scaled = sums / total.sqrt()[:, None]
        cov = (draws @ self.second).view(-1, d, d).baddbmm_(scaled[:, :, None], scaled[:, None, :], alpha=-1)
        return sums / total[:, None] + self.shift, cov.div_((total - 1)[:, None, None])


def weighted_frechet_distances(
    x_a: torch.Tensor, w_a: torch.Tensor, x_b: torch.Tensor, w_b: torch.Tensor, form: str = "auto"
) -> torch.Tensor:
    """Frechet distances between weighted feature sets, one per weight row (bootstrap replicates).

    A replicate's weights count how often each row was drawn: the result equals
    :func:`frechet_distance` of the concatenated draws.

    Args:
        x_a: ``[M_a, D]`` float64 features.
        w_a: ``[B, M_a]`` non-negative weights, each row summing to at least 2.
        x_b: ``[M_b, D]``.
        w_b: ``[B, M_b]``.
        form: ``"auto"`` (small-N when ``max(M_a, M_b) <= D``), ``"small"`` or ``"full"``.

    Returns:
        ``[B]`` distances (float64, on the inputs' device).
    """
    if form == "full" or (form == "auto" and max(x_a.shape[0], x_b.shape[0]) > x_a.shape[1]):
        moments = (*_weighted_moments(x_a, w_a), *_weighted_moments(x_b, w_b))
        return _distances_from_moments(*moments, _singular(w_a, w_b, x_a.shape[1]))
    # Small-N form from Gram matrices, O(M^2) per replicate instead of O(M D): with p = w / W the
    # weighted means are p^T X, so every inner product of centred rows is a Gram entry minus
    # projections. Shifting both sets by their common mean first (the distance does not change)
    # keeps the Gram entries small and the cancellation harmless.
    shift = torch.cat([x_a, x_b]).mean(dim=0)
    xa, xb = x_a - shift, x_b - shift
    g_aa, g_bb, g_ab = xa @ xa.T, xb @ xb.T, xa @ xb.T
    total_a, total_b = w_a.sum(dim=1, keepdim=True), w_b.sum(dim=1, keepdim=True)
    p_a, p_b = w_a / total_a, w_b / total_b
    mu_a_dot_xb = p_a @ g_ab  # [B, M_b]: mu_a . xb_j
    xa_dot_mu_b = p_b @ g_ab.T  # [B, M_a]: xa_i . mu_b
    mu_ab = (mu_a_dot_xb * p_b).sum(dim=1)
    mu_aa = ((p_a @ g_aa) * p_a).sum(dim=1)
    mu_bb = ((p_b @ g_bb) * p_b).sum(dim=1)
    cross = g_ab[None] - xa_dot_mu_b[:, :, None] - mu_a_dot_xb[:, None, :] + mu_ab[:, None, None]
    scale_a, scale_b = (w_a / (total_a - 1)).sqrt(), (w_b / (total_b - 1)).sqrt()
    nuclear = _nuclear_norms((scale_a[:, :, None] * cross * scale_b[:, None, :]).contiguous())
    trace_a = ((w_a * g_aa.diagonal()).sum(dim=1) - total_a[:, 0] * mu_aa) / (total_a[:, 0] - 1)
    trace_b = ((w_b * g_bb.diagonal()).sum(dim=1) - total_b[:, 0] * mu_bb) / (total_b[:, 0] - 1)
    return mu_aa + mu_bb - 2 * mu_ab + trace_a + trace_b - 2 * nuclear


def _nuclear_norms(m: torch.Tensor) -> torch.Tensor:
    """Sum of singular values of each ``[B, n, m]`` matrix. On the CPU through numpy's LAPACK: torch's
    batched CPU ``svdvals`` is about 100 times slower for these small matrices (10 s for 1000 of 36 x 36)."""
    if m.device.type == "cpu":
        return torch.from_numpy(np.linalg.svd(m.numpy(), compute_uv=False).sum(axis=-1))
    return torch.linalg.svdvals(m).sum(dim=-1)


@dataclasses.dataclass(frozen=True)
class FrechetInterval:
    """A Frechet distance with a bootstrap confidence interval.

    Attributes:
        value: The distance on the full sets.
        low: Lower end of the interval.
        high: Upper end of the interval.
        confidence: Nominal coverage (e.g. 0.95).
        num_resamples: Bootstrap replicates.
        num_a: Feature vectors in set a.
        num_b: Feature vectors in set b.
        unit: ``"clips"`` or ``"samples"`` (what was resampled).
        method: ``"percentile"`` (``[q_lo, q_hi]``) or ``"basic"`` (``[2 value - q_hi, 2 value - q_lo]``).
        std: Standard deviation of the replicates.
        seed: Seed of the resampling.
    """

    value: float
    low: float
    high: float
    confidence: float
    num_resamples: int
    num_a: int
    num_b: int
    unit: str = "clips"
    method: str = "percentile"
    std: float = 0.0
    seed: int = 0


def _group_sizes(groups, n_rows: int) -> list[int]:
    sizes = [int(s) for s in groups]
    if any(s < 1 for s in sizes) or sum(sizes) != n_rows:
        raise ValueError(f"groups: expected positive sizes summing to the {n_rows} feature rows, got {sizes}")
    return sizes


# Largest per-sample sums (both sets) the bootstrap builds: 2 x 100 samples x 400^2 float64 is 256 MiB.
_GROUP_SUMS_BYTES = 2**30


def _bootstrap_replicates(
    a: np.ndarray,
    b: np.ndarray,
    w_a: np.ndarray,
    w_b: np.ndarray,
    samples: tuple[list[int], np.ndarray] | None,
    device: torch.device | str,
    memory_bytes: int,
) -> np.ndarray:
    """Distances of the bootstrap replicates, in batches of about ``memory_bytes``.

    Args:
        a: ``[N_a, D]`` features.
        b: ``[N_b, D]``.
        w_a: ``[R, N_a]`` integer row weights (draw counts), one row per replicate.
        w_b: ``[R, N_b]``.
        samples: ``(sizes, draws [R, n])`` when whole samples of ``sizes`` consecutive rows were drawn
            (``w = repeat(draws, sizes)`` for both sets); the full form then builds the covariances
            from per-sample sums (``n D^2`` instead of ``N D^2`` per replicate).
        device: Where the batches are computed.
        memory_bytes: Rough size of one batch's working tensors.

    Returns:
        ``[R]`` float64 distances.
    """
    d, r = a.shape[1], len(w_a)
    small = max(len(a), len(b)) <= d
    grouped = (
        not small and samples is not None and len(samples[0]) < len(a)
        and 2 * len(samples[0]) * d * d * 8 <= _GROUP_SUMS_BYTES
    )  # fmt: skip
    xa, xb = (torch.from_numpy(x).to(device) for x in (a, b))
    if small:
        per_replicate = 8 * 3 * len(a) * len(b)
    else:  # covariances, factors, products and second moments: about 10 D x D per replicate
        per_replicate = 8 * (10 * d * d + (0 if grouped else (len(a) + len(b)) * d))
    batch = max(1, min(r, memory_bytes // per_replicate))
    if grouped:
        sums_a, sums_b = _GroupSums.of(xa, samples[0]), _GroupSums.of(xb, samples[0])
    if not small:
        # A replicate's rows span no more than all rows: if the whole set's covariance is singular (rank-deficient
        # features), so is every replicate's, and factorising it would only fail.
        deficient = [not _cholesky_numpy(np.cov(x, rowvar=False)[None])[1][0] for x in (a, b)]
    values = np.empty(r)
    for start in range(0, r, batch):
        stop = min(start + batch, r)
        if grouped:
            draws = torch.from_numpy(samples[1][start:stop].astype(np.float64)).to(device)
            moments = (*sums_a.moments(draws), *sums_b.moments(draws))
        else:
            wa = torch.from_numpy(w_a[start:stop].astype(np.float64)).to(device)
            wb = torch.from_numpy(w_b[start:stop].astype(np.float64)).to(device)
            if small:
                values[start:stop] = weighted_frechet_distances(xa, wa, xb, wb).cpu().numpy()
                continue
            moments = (*_weighted_moments(xa, wa), *_weighted_moments(xb, wb))
        singular = [m | known for m, known in zip(_singular(w_a[start:stop], w_b[start:stop], d), deficient)]
        values[start:stop] = _distances_from_moments(*moments, singular).cpu().numpy()
    return values


def bootstrap_frechet_distance(
    feats_a,
    feats_b,
    num_resamples: int = 1000,
    confidence: float = 0.95,
    seed: int = 0,
    unit: str = "clips",
    method: str = "percentile",
    groups: Sequence[int] | None = None,
    keys: Sequence[str] | None = None,
    value: float | None = None,
    device: torch.device | str = "cpu",
    memory_bytes: int = 512 * 2**20,
) -> FrechetInterval:
    """Bootstrap interval of the Frechet distance.

    ``unit="clips"``: each replicate draws ``N_a`` rows of a and ``N_b`` rows of b with replacement,
    independently. ``unit="samples"``: the rows of a and b are paired (same count), grouped into
    consecutive samples of ``groups[i]`` rows; each replicate draws ``n`` samples with replacement
    (``default_rng(seed).integers(0, n, n)``) and weights every row by its sample's draw count, on
    the samples sorted by ``keys``, so the interval does not depend on their stored order.

    The plug-in distance is biased upwards and a resample with replacement (duplicated samples)
    inflates it further, so replicates sit above the point value; the ``"basic"`` interval
    ``[2 value - q_hi, 2 value - q_lo]`` reflects them about it (taking the shift as the estimator's
    bias); ``"percentile"`` is ``[q_lo, q_hi]``.

    Args:
        feats_a: ``[N_a, D]`` features (predictions), N_a >= 2.
        feats_b: ``[N_b, D]`` features (reference), N_b >= 2.
        num_resamples: Replicates (>= 1).
        confidence: Nominal coverage in (0, 1).
        seed: Seed of the resampling.
        unit: ``"clips"`` or ``"samples"``.
        method: ``"percentile"`` or ``"basic"``.
        groups: Rows per sample, in row order (``unit="samples"``; default one row per sample).
        keys: Sample keys, one per group (default: the row order is the key order).
        value: The point value if already known (e.g. from accumulated moments); computed otherwise.
        device: Where the replicates run (float64 batches: ``svdvals`` for the small-N form; ``cholesky``
            and ``eigvalsh``, ``eigh`` where neither covariance is positive definite, for the full form).
        memory_bytes: Rough size of one batch's working tensors (default 512 MiB: about 40 full-form
            replicates at D = 400, so the per-sample sums are read once per 40 replicates).

    Returns:
        A :class:`FrechetInterval`.

    Raises:
        ValueError: bad features, unit, method, groups, keys, num_resamples or confidence.
    """
    if not 0 < confidence < 1:
        raise ValueError(f"confidence: expected a value in (0, 1), got {confidence}")
    if num_resamples < 1:
        raise ValueError(f"num_resamples: expected >= 1, got {num_resamples}")
    if unit not in BOOTSTRAP_UNITS:
        raise ValueError(f"unit: expected one of {BOOTSTRAP_UNITS}, got {unit!r}")
    if method not in BOOTSTRAP_METHODS:
        raise ValueError(f"method: expected one of {BOOTSTRAP_METHODS}, got {method!r}")
    a, b = _as_features(feats_a, "feats_a"), _as_features(feats_b, "feats_b")
    if a.shape[1] != b.shape[1]:
        raise ValueError(f"feats_a, feats_b: expected the same feature size D, got {a.shape[1]} and {b.shape[1]}")
    rng = np.random.default_rng(seed)
    if unit == "clips":
        # Per replicate a's draw, then b's (the order of the earlier per-replicate loop: same seeds, same draws).
        w_a, w_b = np.empty((num_resamples, len(a)), np.int64), np.empty((num_resamples, len(b)), np.int64)
        for i in range(num_resamples):
            w_a[i] = np.bincount(rng.integers(0, len(a), len(a)), minlength=len(a))
            w_b[i] = np.bincount(rng.integers(0, len(b), len(b)), minlength=len(b))
    else:
        if len(a) != len(b):
            raise ValueError(f"unit='samples' pairs the rows of both sets: expected equal N, got {len(a)} and {len(b)}")
        sizes = _group_sizes(groups if groups is not None else [1] * len(a), len(a))
        n = len(sizes)
        if n < 2:
            raise ValueError(f"unit='samples' needs at least 2 samples, got {n}")
        if keys is not None:
            if len(keys) != n or len(set(keys)) != n:
                raise ValueError(f"keys: expected {n} distinct sample keys, got {len(keys)} ({len(set(keys))} distinct)")
            starts = np.concatenate([[0], np.cumsum(sizes)[:-1]])
            order = sorted(range(n), key=lambda i: keys[i])
            rows = np.concatenate([np.arange(starts[i], starts[i] + sizes[i]) for i in order])
            a, b, sizes = a[rows], b[rows], [sizes[i] for i in order]
        draws = np.stack([np.bincount(rng.integers(0, n, n), minlength=n) for _ in range(num_resamples)])
        w_a = w_b = np.repeat(draws, sizes, axis=1)
    if value is None:
        value = frechet_distance(a, b)
    samples = (sizes, draws) if unit == "samples" else None
    values = _bootstrap_replicates(a, b, w_a, w_b, samples, device, memory_bytes)
    alpha = (1.0 - confidence) / 2.0
    q_lo, q_hi = np.quantile(values, [alpha, 1.0 - alpha])
    low, high = (q_lo, q_hi) if method == "percentile" else (2 * value - q_hi, 2 * value - q_lo)
    return FrechetInterval(
        float(value), float(low), float(high), confidence, num_resamples, len(a), len(b), unit, method,
        float(values.std(ddof=1)) if num_resamples > 1 else 0.0, seed,
    )


# ------------------------------------------------------------------------------------------------
# Accumulating metric
# ------------------------------------------------------------------------------------------------


class FrechetMetric(Metric):
    """Base of :class:`metrics.fvd.FVD` and :class:`metrics.fid.FID`: float64 running moments of two
    feature sets.

    Subclasses implement :meth:`extract` (inputs -> ``[N, D]`` features). States per set (``fake`` for
    predictions, ``real`` for targets): ``*_sum [D]``, ``*_outer [D, D]``, ``*_count``, all summed across
    processes; with ``keep_features`` also ``*_features`` (concatenated), for the bootstrap only.

    Args:
        num_features: feature size D.
        keep_features: keep per-sample features so that :meth:`compute_interval` works.
        **kwargs: passed to :class:`torchmetrics.Metric`.
    """

    is_differentiable = False
    higher_is_better = False
    full_state_update = False

    def __init__(self, num_features: int, keep_features: bool = False, **kwargs):
        super().__init__(**kwargs)
        if num_features < 1:
            raise ValueError(f"num_features: expected >= 1, got {num_features}")
        self.num_features = num_features
        self.keep_features = keep_features
        for side in ("fake", "real"):
            self.add_state(f"{side}_sum", torch.zeros(num_features, dtype=torch.float64), dist_reduce_fx="sum")
            self.add_state(
                f"{side}_outer", torch.zeros(num_features, num_features, dtype=torch.float64), dist_reduce_fx="sum"
            )
            self.add_state(f"{side}_count", torch.tensor(0, dtype=torch.long), dist_reduce_fx="sum")
            if keep_features:
                self.add_state(f"{side}_features", [], dist_reduce_fx="cat")

    def extract(self, inputs: torch.Tensor, name: str) -> torch.Tensor:
        """Features ``[N, D]`` of a batch of inputs (implemented by subclasses)."""
        raise NotImplementedError(f"{type(self).__name__} must implement extract(inputs, name)")

    def _add(self, side: str, features: torch.Tensor) -> None:
        if features.ndim != 2 or features.shape[1] != self.num_features:
            raise ValueError(
                f"feature extractor: expected [N, {self.num_features}] features, got {list(features.shape)}"
            )
        f = features.detach().to(self.fake_sum.device, torch.float64)
        setattr(self, f"{side}_sum", getattr(self, f"{side}_sum") + f.sum(dim=0))
        setattr(self, f"{side}_outer", getattr(self, f"{side}_outer") + f.T @ f)
        setattr(self, f"{side}_count", getattr(self, f"{side}_count") + f.shape[0])
        if self.keep_features:
            getattr(self, f"{side}_features").append(f)

    def update(self, preds: torch.Tensor | None = None, target: torch.Tensor | None = None) -> None:
        """Add a batch of predictions and/or targets (either may be None, e.g. to add real data once).

        Raises:
            ValueError: both are None, or the extractor returns the wrong feature size.
        """
        if preds is None and target is None:
            raise ValueError("preds, target: expected at least one batch, got None for both")
        if preds is not None:
            self._add("fake", self.extract(preds, "preds"))
        if target is not None:
            self._add("real", self.extract(target, "target"))

    def _moments(self, side: str) -> tuple[np.ndarray, np.ndarray]:
        n = int(getattr(self, f"{side}_count"))
        if n < 2:
            name = "preds" if side == "fake" else "target"
            raise ValueError(f"{name}: expected >= 2 samples accumulated for a covariance, got {n}")
        s = getattr(self, f"{side}_sum").cpu().numpy()
        outer = getattr(self, f"{side}_outer").cpu().numpy()
        mu = s / n
        cov = (outer - n * np.outer(mu, mu)) / (n - 1)
        return mu, (cov + cov.T) / 2

    def compute(self) -> torch.Tensor:
        """The Frechet distance between predictions and targets (float64 scalar tensor)."""
        return torch.tensor(
            frechet_distance_from_moments(*self._moments("fake"), *self._moments("real")), dtype=torch.float64
        )

    def compute_interval(
        self, num_resamples: int = 1000, confidence: float = 0.95, seed: int = 0, method: str = "percentile"
    ) -> FrechetInterval:
        """Bootstrap interval over the kept features, resampling clips (needs ``keep_features=True``).

        In distributed runs the features of all processes are gathered first (every process gets the
        same interval, the seed being the same).

        Raises:
            ValueError: the metric was built without ``keep_features``.
        """
        if not self.keep_features:
            raise ValueError("keep_features: compute_interval needs the metric built with keep_features=True")

        def cat(x):
            return torch.cat(x) if isinstance(x, list) else x

        with self.sync_context():
            fake, real = cat(self.fake_features), cat(self.real_features)
        return bootstrap_frechet_distance(fake, real, num_resamples, confidence, seed, unit="clips", method=method)
