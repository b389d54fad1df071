"""GPU paths of the transformers: bf16 on CUDA against float32 on the CPU, and the FP8 option."""

from __future__ import annotations

import pytest
import torch

from reference_model.transformer import Fp8Linear, enable_fp8_linears, fuse_qkv_projections
from tests.reference_model.test_transformer_multiview import _inputs
from tests.reference_model.tiny_models import tiny_stage2

cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")


def _rel(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a.float() - b.float()).norm() / b.float().norm())


@pytest.mark.gpu
@cuda
def test_bf16_cuda_matches_float32_cpu():
    model = tiny_stage2(perturb_view_branch=True)
    x = _inputs()
    with torch.no_grad():
        expected = model(**x).sample
        gpu = model.to("cuda", torch.bfloat16)
        fuse_qkv_projections(gpu)
        got = gpu(**{k: v.to("cuda", torch.bfloat16) if v.is_floating_point() else v.cuda() for k, v in x.items()}).sample
    assert _rel(got.cpu(), expected) < 3e-2


@pytest.mark.gpu
@cuda
def test_fp8_linear_is_close_to_bf16():
    if torch.cuda.get_device_capability() < (8, 9):
        pytest.skip("FP8 matrix products need compute capability 8.9 or newer")
    torch.manual_seed(0)
    linear = torch.nn.Linear(256, 512).to("cuda", torch.bfloat16)
    x = torch.randn(3, 100, 256, device="cuda", dtype=torch.bfloat16)
    with torch.no_grad():
        assert _rel(Fp8Linear(linear)(x), linear(x)) < 5e-2
    model = tiny_stage2(perturb_view_branch=True).to("cuda", torch.bfloat16)
    x = {k: v.to("cuda", torch.bfloat16) if v.is_floating_point() else v.cuda() for k, v in _inputs().items()}
    with torch.no_grad():
        ref = model(**x).sample
        assert enable_fp8_linears(model) == 20
        got = model(**x).sample
    assert _rel(got, ref) < 1e-1
