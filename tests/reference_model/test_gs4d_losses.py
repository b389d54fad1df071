"""Neighbour loss properties, kNN against brute force, SSIM against scikit-image, plane regularisers."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from skimage.metrics import structural_similarity

from reference_model.gs4d.deformation import DeformationField
from reference_model.gs4d.losses import knn, neighbour_loss, research_neighbour_weight, ssim


def _cloud(n: int = 200, seed: int = 0) -> torch.Tensor:
    return torch.randn(n, 3, generator=torch.Generator().manual_seed(seed), dtype=torch.float64) * 0.2


def _rotation(angle: float) -> torch.Tensor:
    c, s = math.cos(angle), math.sin(angle)
    return torch.tensor([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]], dtype=torch.float64)


def test_knn_matches_brute_force():
    pts = _cloud(300)
    ours = knn(pts, 20, chunk=64)
    d = np.linalg.norm(pts.numpy()[:, None] - pts.numpy()[None], axis=-1)
    np.fill_diagonal(d, np.inf)
    ref = np.argsort(d, axis=1)[:, :20]
    assert (np.sort(ours.numpy(), 1) == np.sort(ref, 1)).all()
    with pytest.raises(ValueError, match="more than k"):
        knn(pts[:5], 20)


def test_neighbour_loss_is_zero_for_a_rigid_motion():
    edge = _cloud()
    nbrs = knn(edge, 20)
    moved = edge @ _rotation(0.7).T + torch.tensor([0.3, -0.2, 0.5], dtype=torch.float64)
    loss, displacement = neighbour_loss(moved, edge, nbrs, gate=False, form="norm")
    assert float(loss) < 1e-20
    assert float(displacement.min()) > 0.01  # every point did move
    # The research code's vector form only forgives translations.
    shifted = edge + torch.tensor([0.3, -0.2, 0.5], dtype=torch.float64)
    assert float(neighbour_loss(shifted, edge, nbrs, gate=False, form="vector")[0]) < 1e-20
    assert float(neighbour_loss(moved, edge, nbrs, gate=False, form="vector")[0]) > 1e-4


@pytest.mark.parametrize("form", ["norm", "vector"])
def test_neighbour_loss_pulls_a_straying_point_back(form):
    edge = _cloud()
    nbrs = knn(edge, 20)
    i = 17
    away = edge[i] - edge[nbrs[i]].mean(0)
    away = away / away.norm()
    curr = edge.clone()
    curr[i] += 0.1 * away  # the point leaves its neighbours; they stay
    curr.requires_grad_(True)
    loss, _ = neighbour_loss(curr, edge, nbrs, threshold=0.01, gate=True, gate_rule="any", form=form)
    assert float(loss.detach()) > 0
    (grad,) = torch.autograd.grad(loss, curr)
    assert float(grad[i].norm()) > 0
    assert float(grad[i] @ away) > 0  # descent moves it back towards its neighbours
    stepped = (curr - 0.05 * grad / grad.norm()).detach()
    assert float((stepped[i] - edge[i]).norm()) < 0.1
    assert float(neighbour_loss(stepped, edge, nbrs, gate=True, gate_rule="any", form=form)[0]) < float(loss.detach())


def test_gate_rules():
    edge = _cloud()
    nbrs = knn(edge, 20)
    curr = edge.clone()
    curr[3] += torch.tensor([0.2, 0.0, 0.0], dtype=torch.float64)
    # Only point 3 moved more than the threshold: the research rule (both ends moved) passes no edge at all.
    assert float(neighbour_loss(curr, edge, nbrs, gate=True, gate_rule="both")[0]) == 0.0
    assert float(neighbour_loss(curr, edge, nbrs, gate=True, gate_rule="any")[0]) > 0.0
    # Below the threshold nothing counts; without the gate everything does.
    tiny = edge.clone()
    tiny[3] += 0.001
    assert float(neighbour_loss(tiny, edge, nbrs, threshold=0.01, gate=True)[0]) == 0.0
    assert float(neighbour_loss(tiny, edge, nbrs, gate=False)[0]) > 0.0


def test_neighbour_loss_edge_weights_are_edge_lengths():
    edge = torch.tensor([[0.0, 0.0, 0.0], [1.0, 0.0, 0.0], [0.0, 2.0, 0.0]], dtype=torch.float64)
    nbrs = torch.tensor([[1, 2], [0, 2], [0, 1]])
    curr = edge.clone()
    curr[0, 2] = 0.5  # point 0 lifts by 0.5; its neighbours stay
    loss, _ = neighbour_loss(curr, edge, nbrs, index=torch.tensor([0]), gate=False, form="vector")
    # o_0 moves by exactly (0, 0, 0.5): per-point 0.25; edges of lengths 1 and 2, two edges in the mean.
    assert float(loss) == pytest.approx(0.25 * (1.0 + 2.0) / 2.0)


def test_research_weight_formula():
    moved = torch.zeros(10)
    assert research_neighbour_weight(0.5, 0.48, moved) == pytest.approx(0.01 / (2 + 1) * 0.5)


def test_ssim_matches_scikit_image():
    gen = torch.Generator().manual_seed(0)
    a = torch.rand(1, 3, 40, 40, generator=gen, dtype=torch.float64)
    b = (a + 0.1 * torch.randn(1, 3, 40, 40, generator=gen, dtype=torch.float64)).clamp(0, 1)
    ref = structural_similarity(a[0].permute(1, 2, 0).numpy(), b[0].permute(1, 2, 0).numpy(), channel_axis=2,
                                gaussian_weights=True, sigma=1.5, use_sample_covariance=False, data_range=1.0)
    # scikit-image averages over the region its window fully covers, as the valid convolution here does
    # (it crops (win - 1) / 2 = 5 pixels each side).
    assert float(ssim(a, b)) == pytest.approx(ref, abs=2e-3)


def test_plane_regularisers_by_hand():
    field = DeformationField(plane_resolution=4, time_resolution=5, multires=(1,), plane_features=2, mlp_width=8)
    assert float(field.regularisation(1.0, 1.0, 1.0)) == pytest.approx(
        sum(2 * ((p[..., 1:, :] - p[..., :-1, :]).square().mean() + (p[..., :, 1:] - p[..., :, :-1]).square().mean())
            for i, p in enumerate(field.planes) if i in (0, 1, 3)).item())
    # Time planes start at 1: no smoothness or L1 penalty; a linear ramp in time has zero second difference.
    with torch.no_grad():
        for i in (2, 4, 5):
            field.planes[i].copy_(torch.linspace(0, 1, 5).view(1, 1, 5, 1).expand_as(field.planes[i]))
    spatial = float(field.regularisation(1.0, 0.0, 0.0))
    assert float(field.regularisation(1.0, 1.0, 0.0)) == pytest.approx(spatial, abs=1e-7)
    assert float(field.regularisation(0.0, 0.0, 1.0)) == pytest.approx(3 * 0.5)
