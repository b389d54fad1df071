"""Losses of the fit: L1 + SSIM photometric loss, and the neighbour constraint (DESIGN.md 8.3) with gradients.

The research code computed its neighbour loss and then returned ``loss.item()`` (DESIGN.md 8.4), so the
constraint never reached the optimiser; here it is a differentiable tensor.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F


def _gaussian_window(size: int = 11, sigma: float = 1.5, device=None, dtype=torch.float32) -> torch.Tensor:
    x = torch.arange(size, device=device, dtype=dtype) - (size - 1) / 2
    g = torch.exp(-(x**2) / (2 * sigma**2))
    return g / g.sum()


def ssim(pred: torch.Tensor, target: torch.Tensor, size: int = 11, sigma: float = 1.5) -> torch.Tensor:
    """Mean SSIM of ``[B, C, H, W]`` images in [0, 1] (gaussian window 11, sigma 1.5, valid region, as
    the 3DGS loss and DESIGN.md 7 use).

    Returns:
        Scalar tensor.
    """
    c = pred.shape[1]
    g = _gaussian_window(size, sigma, pred.device, pred.dtype)
    # The five local moments as 5C channels, blurred by one pair of depthwise (groups = channels) convolutions:
    # the sums of five grouped blurs in two calls (a fit's SSIM is a large share of its step time on a GPU).
    # Not as 5BC images of one channel: that conv is 14x slower on the CPU (12 x 3 x 64^2, with backward:
    # 110 against 8 ms), with the same result to the bit.
    k = 5 * c
    stack = torch.cat([pred, target, pred * pred, target * target, pred * target], dim=1)
    wx, wy = g.view(1, 1, 1, size).repeat(k, 1, 1, 1), g.view(1, 1, size, 1).repeat(k, 1, 1, 1)
    blurred = F.conv2d(F.conv2d(stack, wx, groups=k), wy, groups=k)
    mu_x, mu_y, exx, eyy, exy = blurred.split(c, dim=1)
    sxx = exx - mu_x**2
    syy = eyy - mu_y**2
    sxy = exy - mu_x * mu_y
    c1, c2 = 0.01**2, 0.03**2
    num = (2 * mu_x * mu_y + c1) * (2 * sxy + c2)
    den = (mu_x**2 + mu_y**2 + c1) * (sxx + syy + c2)
    return (num / den).mean()


def photometric_loss(pred: torch.Tensor, target: torch.Tensor, lambda_ssim: float) -> torch.Tensor:
    """``(1 - l) L1 + l (1 - SSIM)`` of ``[V, H, W, 3]`` images (3DGS's loss; l = 0 is the research code's)."""
    l1 = (pred - target).abs().mean()
    if lambda_ssim == 0:
        return l1
    p, t = pred.permute(0, 3, 1, 2), target.permute(0, 3, 1, 2)
    return (1 - lambda_ssim) * l1 + lambda_ssim * (1 - ssim(p, t))


def knn(points: torch.Tensor, k: int, chunk: int = 4096) -> torch.Tensor:
    """Indices ``[N, k]`` of each point's k nearest other points (exact; chunked distances on the points' device).

    Raises:
        ValueError: if there are not more than k points.
    """
    n = points.shape[0]
    if n <= k:
        raise ValueError(f"knn: need more than k={k} points, got {n}")
    out = []
    for start in range(0, n, chunk):
        d = torch.cdist(points[start:start + chunk], points)
        rows = torch.arange(start, min(start + chunk, n), device=points.device)
        d[rows - start, rows] = float("inf")
        out.append(torch.topk(d, k, dim=1, largest=False).indices)
    return torch.cat(out)


def neighbour_loss(
    curr: torch.Tensor,
    edge: torch.Tensor,
    neighbours: torch.Tensor,
    index: torch.Tensor | None = None,
    threshold: float = 0.01,
    gate: bool = True,
    gate_rule: str = "any",
    form: str = "norm",
) -> tuple[torch.Tensor, torch.Tensor]:
    """The neighbour constraint between the current time and the window edge (CharacterShot, DESIGN.md 8.3).

    For each point i with neighbours N(i), its offset from the neighbours' centre ``o_i = x_i - mean_j x_j``
    should stay what it was at the window edge. Per edge (i, j), weighted by the edge's length at the edge
    time (clamped at 1 mm, research), gated to edges whose ends moved more than ``threshold``
    (``gate_rule="any"``: either end; ``"both"``: both ends, as the research code), averaged over the edges
    that pass the gate.

    Args:
        curr: ``[N, 3]`` positions at the current time (differentiable).
        edge: ``[N, 3]`` positions at the window edge (the anchor; treated as constant).
        neighbours: ``[N, k]`` neighbour indices (from :func:`knn` on the canonical points).
        index: optional ``[M]`` subset of points i entering the loss.
        threshold: motion threshold of the gate, metres.
        gate: apply the gate (False: every edge counts).
        gate_rule: ``"any"`` or ``"both"``.
        form: ``"norm"``: ``(|o_i(t)| - |o_i(edge)|)^2`` (zero for any rigid motion); ``"vector"``:
            ``|o_i(t) - o_i(edge)|^2`` (the research code's; zero for translations).

    Returns:
        ``(loss, moved [N])``: the scalar loss and each point's displacement ``|x(t) - x(edge)|``.

    Raises:
        ValueError: for an unknown form or gate rule.
    """
    if form not in ("norm", "vector"):
        raise ValueError(f"form: expected 'norm' or 'vector', got {form!r}")
    if gate_rule not in ("any", "both"):
        raise ValueError(f"gate_rule: expected 'any' or 'both', got {gate_rule!r}")
    edge = edge.detach()
    moved = (curr - edge).norm(dim=-1)
    idx = torch.arange(curr.shape[0], device=curr.device) if index is None else index
    nbr = neighbours[idx]  # [M, k]
    off_c = curr[idx] - curr[nbr].mean(dim=1)
    off_e = edge[idx] - edge[nbr].mean(dim=1)
    if form == "vector":
        per_point = (off_c - off_e).square().sum(-1)
    else:
        per_point = (off_c.norm(dim=-1) - off_e.norm(dim=-1)).square()
    weight = (edge[idx][:, None, :] - edge[nbr]).norm(dim=-1).clamp_min(1e-3)  # [M, k]
    if gate:
        mi, mj = (moved[idx] > threshold)[:, None], moved[nbr] > threshold
        mask = (mi | mj) if gate_rule == "any" else (mi & mj)
        mask = mask.to(curr.dtype)
    else:
        mask = torch.ones_like(weight)
    loss = (per_point[:, None] * weight * mask).sum() / (mask.sum() + 1e-6)
    return loss, moved.detach()


def research_neighbour_weight(t_curr: float, t_edge: float, moved: torch.Tensor, base: float = 0.01) -> float:
    """The research code's dynamic weight ``base / (100 |t - t_edge| + 1) * mean(sigmoid(|dx|))``."""
    return float(base / (abs(t_curr - t_edge) * 100 + 1.0) * torch.sigmoid(moved).mean())


def psnr(pred: torch.Tensor, target: torch.Tensor) -> float:
    """PSNR in dB of images in [0, 1] (for progress reports; scoring uses ``metrics``)."""
    mse = float((pred.detach() - target).square().mean())
    return 100.0 if mse <= 1e-10 else -10.0 * math.log10(mse)
