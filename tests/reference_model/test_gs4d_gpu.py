"""gsplat against the torch rasteriser (images and gradients), and a default fit on the GPU."""

from __future__ import annotations

import pytest
import torch

from character4d.cameras import RigConfig, rig_cameras
from reference_model.gs4d.gaussians import Gaussians
from reference_model.gs4d.rasterize import rasterize_gsplat, rasterize_torch

pytestmark = pytest.mark.gpu

if not torch.cuda.is_available():
    pytest.skip("needs CUDA", allow_module_level=True)


def _scene(n: int = 300, degree: int = 2, seed: int = 0):
    gen = torch.Generator().manual_seed(seed)
    means = torch.randn(n, 3, generator=gen) * torch.tensor([0.25, 0.25, 0.45]) + torch.tensor([0.0, 0.0, 0.8])
    params = {
        "means": means,
        "quats": torch.randn(n, 4, generator=gen),
        "scales": torch.rand(n, 3, generator=gen) * 0.05 + 0.01,
        "opacities": torch.rand(n, generator=gen) * 0.8 + 0.1,
        "sh": torch.randn(n, (degree + 1) ** 2, 3, generator=gen) * 0.3,
    }
    return {k: v.cuda().requires_grad_(True) for k, v in params.items()}


def _render(fn, p, cams, size):
    g = Gaussians(p["means"], torch.nn.functional.normalize(p["quats"], dim=-1), p["scales"], p["opacities"], p["sh"])
    return fn(g, torch.from_numpy(cams.viewmats).float().cuda(), torch.from_numpy(cams.Ks).float().cuda(), size, size,
              torch.ones(3, device="cuda"))


def test_gsplat_matches_torch_images_and_gradients():
    size = 64
    cams = rig_cameras(RigConfig(num_views=4, resolution=size))
    p = _scene()
    a = _render(rasterize_gsplat, p, cams, size)
    b = _render(rasterize_torch, p, cams, size)
    assert (a.colors - b.colors).abs().mean() < 2e-4
    assert (a.colors - b.colors).abs().max() < 2e-2
    assert (a.alphas - b.alphas).abs().max() < 2e-2
    covered = (a.alphas > 0.5) & (b.alphas > 0.5)
    assert ((a.depths - b.depths).abs()[covered]).max() < 1e-2
    weights = torch.rand_like(a.colors)  # a generic loss, so every gradient path is exercised
    grads = []
    for out in (a, b):
        loss = (out.colors * weights).sum() + out.alphas.sum()
        grads.append(torch.autograd.grad(loss, list(p.values())))
    for name, ga, gb in zip(p, *grads):
        rel = (ga - gb).norm() / gb.norm().clamp_min(1e-12)
        assert rel < 2e-2, (name, float(rel))


def test_default_fit_on_gpu(gs4d_sample_128):
    from reference_model.gs4d import load_views, preset
    from reference_model.gs4d.fitting import fit
    from reference_model.gs4d.runner import render_views, score

    config = preset("default", init_points=3000, coarse_steps=100, window_steps=40, final_steps=300, densify_until=300)
    train_views, eval_views = config.split.views(21)
    train = load_views(gs4d_sample_128, train_views)
    evals = load_views(gs4d_sample_128, eval_views)
    result = fit(train, config, "cuda", progress=False)
    assert result.backend == "gsplat"
    before = score(render_views(result.initial_model, evals, config.background), evals, config.background)["psnr"]
    after = score(render_views(result.model, evals, config.background), evals, config.background)["psnr"]
    assert after > 28.0 and after > before + 5.0, (before, after)
