"""The torch rasteriser against analytic Gaussians and finite differences."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from character4d.cameras import RigConfig, rig_cameras
from reference_model.gs4d.gaussians import SH_C0, Gaussians, eval_sh, quat_to_rotmat
from reference_model.gs4d.rasterize import EPS2D, rasterize, rasterize_torch


def _cams(size: int, views: int = 21, dtype=torch.float32):
    cams = rig_cameras(RigConfig(num_views=views, resolution=size))
    return torch.tensor(cams.viewmats, dtype=dtype), torch.tensor(cams.Ks, dtype=dtype), cams


def _one(mean, scale, opacity, rgb, dtype=torch.float64):
    sh0 = (torch.tensor(rgb, dtype=dtype) - 0.5) / SH_C0
    return Gaussians(
        means=torch.tensor([mean], dtype=dtype),
        quats=torch.tensor([[1.0, 0.0, 0.0, 0.0]], dtype=dtype),
        scales=torch.full((1, 3), scale, dtype=dtype),
        opacities=torch.tensor([opacity], dtype=dtype),
        sh=sh0.reshape(1, 1, 3),
    )


def test_isotropic_gaussian_footprint_colour_alpha_depth():
    size = 48
    viewmats, Ks, _ = _cams(size, dtype=torch.float64)
    g = _one((0.0, 0.0, 0.7), 0.05, 0.8, (0.9, 0.2, 0.1))
    out = rasterize_torch(g, viewmats[:1], Ks[:1], size, size, torch.ones(3, dtype=torch.float64))
    # Hand computation: the rig camera looks at (0, 0, 0.7) from 3.5 m, so the Gaussian projects onto the principal
    # point with a 2D variance (f s / z)^2 plus gsplat's 0.3 px^2 low-pass.
    f = float(Ks[0, 0, 0])
    var = (f * 0.05 / 3.5) ** 2 + EPS2D
    ys, xs = np.meshgrid(np.arange(size) + 0.5, np.arange(size) + 0.5, indexing="ij")
    alpha = 0.8 * np.exp(-0.5 * ((xs - size / 2) ** 2 + (ys - size / 2) ** 2) / var)
    alpha = np.where(alpha >= 1 / 255, np.minimum(alpha, 0.999), 0.0)
    expected = alpha[..., None] * np.array([0.9, 0.2, 0.1]) + (1 - alpha[..., None])
    np.testing.assert_allclose(out.alphas[0, ..., 0].numpy(), alpha, atol=1e-9)
    np.testing.assert_allclose(out.colors[0].numpy(), expected, atol=1e-9)
    covered = alpha > 0
    np.testing.assert_allclose(out.depths[0, ..., 0].numpy()[covered], 3.5, atol=1e-9)
    np.testing.assert_allclose(out.means2d[0, 0].numpy(), [size / 2, size / 2], atol=1e-9)


def test_two_gaussians_composite_front_to_back():
    size = 16
    viewmats, Ks, _ = _cams(size, dtype=torch.float64)
    front = _one((0.0, -0.5, 0.7), 0.2, 0.6, (1.0, 0.0, 0.0))  # nearer camera 0 (which sits at y = -3.5)
    back = _one((0.0, 0.5, 0.7), 0.2, 0.7, (0.0, 0.0, 1.0))
    both = Gaussians(*(torch.cat([getattr(back, n), getattr(front, n)]) for n in ("means", "quats", "scales", "opacities", "sh")))
    out = rasterize_torch(both, viewmats[:1], Ks[:1], size, size, None)
    a1 = rasterize_torch(front, viewmats[:1], Ks[:1], size, size, None).alphas[0, ..., 0]
    a2 = rasterize_torch(back, viewmats[:1], Ks[:1], size, size, None).alphas[0, ..., 0]
    red = out.colors[0, ..., 0]
    blue = out.colors[0, ..., 2]
    torch.testing.assert_close(red, a1)  # the front one is drawn first, unoccluded
    torch.testing.assert_close(blue, (1 - a1) * a2)
    torch.testing.assert_close(out.alphas[0, ..., 0], a1 + (1 - a1) * a2)
    acc = a1 + (1 - a1) * a2
    covered = acc > 0
    expected = (a1 * 3.0 + (1 - a1) * a2 * 4.0)[covered] / acc[covered]
    torch.testing.assert_close(out.depths[0, ..., 0][covered], expected)
    assert bool((out.depths[0, ..., 0][~covered] == 0).all())


def test_sh_degree_one_matches_hand_formula():
    sh = torch.zeros(1, 4, 3, dtype=torch.float64)
    sh[0, 2] = torch.tensor([0.3, 0.0, 0.0], dtype=torch.float64)  # the z basis function, red only
    d = torch.tensor([[0.0, 0.6, 0.8]], dtype=torch.float64)
    # 3DGS basis: Y_1,0 = +0.4886 z.
    np.testing.assert_allclose(eval_sh(1, sh, d)[0].numpy(), [0.5 + 0.4886025119029199 * 0.8 * 0.3, 0.5, 0.5])


def test_quaternion_rotation_matrix():
    q = torch.tensor([[math.cos(math.pi / 8), 0.0, 0.0, math.sin(math.pi / 8)]], dtype=torch.float64)  # 45 deg about z
    r = quat_to_rotmat(q)[0].numpy()
    c = math.sqrt(0.5)
    np.testing.assert_allclose(r, [[c, -c, 0], [c, c, 0], [0, 0, 1]], atol=1e-12)


def test_gradients_match_finite_differences():
    size, n = 10, 5
    viewmats, Ks, _ = _cams(size, views=21, dtype=torch.float64)
    viewmats, Ks = viewmats[[0, 5]], Ks[[0, 5]]
    gen = torch.Generator().manual_seed(3)
    params = {
        "means": torch.randn(n, 3, generator=gen, dtype=torch.float64) * 0.15 + torch.tensor([0, 0, 0.7], dtype=torch.float64),
        "quats": torch.randn(n, 4, generator=gen, dtype=torch.float64),
        "scales": torch.rand(n, 3, generator=gen, dtype=torch.float64) * 0.1 + 0.12,
        "opacities": torch.rand(n, generator=gen, dtype=torch.float64) * 0.5 + 0.3,
        "sh": torch.randn(n, 4, 3, generator=gen, dtype=torch.float64) * 0.3,
    }
    weights = torch.rand(2, size, size, 5, generator=gen, dtype=torch.float64)

    def loss(p):
        g = Gaussians(p["means"], torch.nn.functional.normalize(p["quats"], dim=-1), p["scales"], p["opacities"], p["sh"])
        out = rasterize_torch(g, viewmats, Ks, size, size, torch.ones(3, dtype=torch.float64))
        return (torch.cat([out.colors, out.alphas, out.depths * 0.1], -1) * weights).sum()

    leaves = {k: v.clone().requires_grad_(True) for k, v in params.items()}
    analytic = torch.autograd.grad(loss(leaves), list(leaves.values()))
    eps = 1e-6
    for (name, value), grad in zip(params.items(), analytic):
        flat = value.reshape(-1)
        for i in range(0, flat.numel(), max(flat.numel() // 6, 1)):
            plus, minus = dict(params), dict(params)
            bump = torch.zeros_like(flat)
            bump[i] = eps
            plus[name] = (flat + bump).reshape(value.shape)
            minus[name] = (flat - bump).reshape(value.shape)
            numeric = (loss(plus) - loss(minus)) / (2 * eps)
            assert abs(float(numeric) - float(grad.reshape(-1)[i])) < 1e-5 * max(1.0, abs(float(numeric))), (name, i)


def test_malformed_cameras_are_refused():
    g = _one((0.0, 0.0, 0.7), 0.05, 0.8, (0.5, 0.5, 0.5), dtype=torch.float32)
    with pytest.raises(ValueError, match="viewmats"):
        rasterize(g, torch.eye(4), torch.eye(3)[None], 8, 8)
    with pytest.raises(ValueError, match="backend"):
        rasterize(g, torch.eye(4)[None], torch.eye(3)[None], 8, 8, backend="cuda-magic")


def test_pixel_blocks_do_not_change_the_image():
    size, n = 40, 60
    viewmats, Ks, _ = _cams(size, dtype=torch.float64)
    gen = torch.Generator().manual_seed(1)
    g = Gaussians(
        torch.randn(n, 3, generator=gen, dtype=torch.float64) * 0.3 + torch.tensor([0, 0, 0.7], dtype=torch.float64),
        torch.nn.functional.normalize(torch.randn(n, 4, generator=gen, dtype=torch.float64), dim=-1),
        torch.rand(n, 3, generator=gen, dtype=torch.float64) * 0.06 + 0.005,
        torch.rand(n, generator=gen, dtype=torch.float64),
        torch.randn(n, 1, 3, generator=gen, dtype=torch.float64),
    )
    whole = rasterize_torch(g, viewmats[:3], Ks[:3], size, size, block=size)
    for block in (3, 8, 16):
        part = rasterize_torch(g, viewmats[:3], Ks[:3], size, size, block=block)
        torch.testing.assert_close(part.colors, whole.colors, rtol=0, atol=1e-12)
        torch.testing.assert_close(part.depths, whole.depths, rtol=0, atol=1e-12)
