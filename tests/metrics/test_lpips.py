"""metrics.lpips: published LPIPS v0.1 values on the LPIPS project's example triplet, formula checks."""

from __future__ import annotations

import pytest
import torch

from metrics.lpips import LPIPS, LPIPSNet, lpips

from .conftest import load_image

# LPIPS v0.1, AlexNet, spatial mean: ex_p0 and ex_p1 against ex_ref, as the LPIPS project's own `lpips`
# package computes them with these weights (../shared/assets/README.md; the project reports 0.722 / 0.138).
PUBLISHED_ALEX = (0.721881, 0.137566)


def test_layerwise_formula_written_out():
    # sum_l mean_hw sum_c w_l,c (f0 / (|f0| + eps) - f1 / (|f1| + eps))^2 on the scaled inputs, written
    # out per layer on a randomly initialised net with positive heads.
    net = LPIPSNet("alex").eval()
    g = torch.Generator().manual_seed(0)
    x0 = torch.rand(2, 3, 64, 64, generator=g) * 2 - 1
    x1 = torch.rand(2, 3, 64, 64, generator=g) * 2 - 1
    with torch.no_grad():
        for lin in net.lins:
            lin.weight.uniform_(0, 1, generator=g)
        feats = [net.trunk((x - net.shift) / net.scale) for x in (x0, x1)]
        expected = 0
        for f0, f1, lin in zip(*feats, net.lins):
            n0 = f0 / (f0.pow(2).sum(1, keepdim=True).sqrt() + 1e-10)
            n1 = f1 / (f1.pow(2).sum(1, keepdim=True).sqrt() + 1e-10)
            w = lin.weight.view(1, -1, 1, 1)
            expected = expected + ((n0 - n1) ** 2 * w).sum(1).mean(dim=(1, 2))
        torch.testing.assert_close(net(x0, x1), expected)
        assert torch.all(net(x0, x0) == 0)


def test_batches_split_into_passes_match_the_written_out_formula():
    # On the CPU lpips() runs a few pairs per trunk pass; 7 pairs take three passes.
    net = LPIPSNet("alex").eval()
    g = torch.Generator().manual_seed(1)
    x0 = torch.rand(7, 3, 48, 48, generator=g)
    x1 = torch.rand(7, 3, 48, 48, generator=g)
    with torch.no_grad():
        for lin in net.lins:
            lin.weight.uniform_(0, 1, generator=g)
        feats = [net.trunk((x * 2 - 1 - net.shift) / net.scale) for x in (x0, x1)]
        expected = 0
        for f0, f1, lin in zip(*feats, net.lins):
            n0 = f0 / (f0.pow(2).sum(1, keepdim=True).sqrt() + 1e-10)
            n1 = f1 / (f1.pow(2).sum(1, keepdim=True).sqrt() + 1e-10)
            expected = expected + ((n0 - n1) ** 2 * lin.weight.view(1, -1, 1, 1)).sum(1).mean(dim=(1, 2))
    torch.testing.assert_close(lpips(x0, x1, model=net), expected)


def test_inputs_are_checked():
    net = LPIPSNet("alex").eval()
    x = torch.rand(1, 3, 64, 64)
    with pytest.raises(ValueError, match=r"preds: expected values in \[0, 1\]"):
        lpips(x * 2 - 1, x, model=net)
    with pytest.raises(ValueError, match=r"\[N, 3, H, W\]"):
        lpips(x[:, :1], x[:, :1], model=net)
    with pytest.raises(ValueError, match="'vgg'"):
        LPIPSNet("vgg16")


@pytest.mark.weights
def test_published_alexnet_values(lpips_nets, assets):
    images = assets / "images"
    ref = load_image(images / "lpips_ex_ref.png")
    preds = torch.cat([load_image(images / "lpips_ex_p0.png"), load_image(images / "lpips_ex_p1.png")])
    got = lpips(preds, ref.expand(2, -1, -1, -1), model=lpips_nets("alex"))
    print("LPIPS alex (p0, p1):", got.tolist())
    assert got.tolist() == pytest.approx(PUBLISHED_ALEX, abs=1e-5)

    # The metric class accumulates per-image values over batches.
    metric = LPIPS(model=lpips_nets("alex"))
    metric.update(preds[:1], ref)
    metric.update(preds[1:], ref)
    assert metric.compute().item() == pytest.approx(sum(got.tolist()) / 2, rel=1e-6)


@pytest.mark.weights
def test_vgg_ranks_the_example_like_humans(lpips_nets, assets):
    # No published VGG number for this triplet; the 2AFC judgement (p1 is closer to ref) must hold,
    # identical images give 0 and the distance is symmetric.
    images = assets / "images"
    ref, p0, p1 = (load_image(images / f"lpips_ex_{n}.png") for n in ("ref", "p0", "p1"))
    net = lpips_nets("vgg")
    d0, d1 = lpips(p0, ref, model=net).item(), lpips(p1, ref, model=net).item()
    print(f"LPIPS vgg (p0, p1): {d0:.5f}, {d1:.5f}")
    assert d1 < d0
    assert lpips(ref, ref, model=net).item() == 0
    assert lpips(ref, p0, model=net).item() == pytest.approx(d0, rel=1e-5)
