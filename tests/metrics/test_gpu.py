"""CUDA agrees with the CPU (the reference path, checked against published values elsewhere).

Marked `gpu`: skipped where CUDA is absent (CI); run on a GPU machine with `pytest -m gpu`.
"""

from __future__ import annotations

import pytest
import torch

pytestmark = [pytest.mark.gpu, pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")]


@pytest.fixture(autouse=True)
def no_tf32():
    from characterbench.evaluate import full_float32

    with full_float32():
        yield


@pytest.mark.weights
def test_i3d_cuda_matches_cpu():
    from metrics.i3d import load_i3d
    from tests.metrics.conftest import _require_weights

    _require_weights("i3d_kinetics400")
    x = torch.rand(2, 3, 9, 224, 224, generator=torch.Generator().manual_seed(0)) * 2 - 1
    with torch.inference_mode():
        cpu = load_i3d("cpu")(x)
        gpu = load_i3d("cuda")(x.cuda()).cpu()
    torch.testing.assert_close(gpu, cpu, rtol=1e-4, atol=1e-4)


@pytest.mark.weights
def test_lpips_cuda_matches_cpu():
    from metrics.lpips import load_lpips, lpips
    from tests.metrics.conftest import _require_weights

    _require_weights("lpips_alex")
    g = torch.Generator().manual_seed(1)
    a, b = torch.rand(4, 3, 128, 128, generator=g), torch.rand(4, 3, 128, 128, generator=g)
    cpu = lpips(a, b, model=load_lpips("alex", "cpu"))
    gpu = lpips(a.cuda(), b.cuda(), model=load_lpips("alex", "cuda")).cpu()
    torch.testing.assert_close(gpu, cpu, rtol=1e-4, atol=1e-6)


def test_ssim_cuda_matches_cpu():
    from metrics.ssim import ssim

    g = torch.Generator().manual_seed(2)
    a, b = torch.rand(3, 3, 64, 64, generator=g), torch.rand(3, 3, 64, 64, generator=g)
    torch.testing.assert_close(ssim(a.cuda(), b.cuda()).cpu(), ssim(a, b), rtol=0, atol=1e-12)
