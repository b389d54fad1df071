"""Stage 2: the dual-attention multi-view transformer."""

from __future__ import annotations

import pytest
import torch

from reference_model.transformer_multiview import MultiViewTransformer3DModel
from tests.reference_model.tiny_models import TINY_TRANSFORMER, TINY_WIDTH, tiny_stage1, tiny_stage2

B, V, F, H, W = 2, 3, 2, 4, 6
N = (H // 2) * (W // 2)


def _inputs(seed: int = 0, batch: int = B):
    gen = torch.Generator().manual_seed(seed)
    return dict(
        hidden_states=torch.randn(batch, V, F, 4, H, W, generator=gen),
        encoder_hidden_states=torch.randn(batch, 5, 12, generator=gen),
        timestep=torch.tensor([25, 700][:batch]),
        reference_latents=torch.randn(batch, V, 1, 4, H, W, generator=gen),
        pose_latents=torch.randn(batch, V, F + 1, 4, H, W, generator=gen),
    )


def _zero_gates(norm: torch.nn.Module) -> None:
    # CogVideoXLayerNormZero emits (shift, scale, gate, enc_shift, enc_scale, enc_gate).
    with torch.no_grad():
        for part in (norm.linear.weight, norm.linear.bias):
            part[2 * TINY_WIDTH : 3 * TINY_WIDTH] = 0
            part[5 * TINY_WIDTH :] = 0


def test_at_initialisation_equals_stage1_applied_to_each_view():
    stage1 = tiny_stage1()
    model = MultiViewTransformer3DModel.from_stage1(stage1).eval()
    x = _inputs()
    with torch.no_grad():
        out = model(**x).sample
        per_view = torch.stack(
            [
                stage1(
                    x["hidden_states"][:, k], x["encoder_hidden_states"], x["timestep"],
                    x["reference_latents"][:, k], x["pose_latents"][:, k],
                ).sample
                for k in range(V)
            ],
            dim=1,
        )  # fmt: skip
    assert out.shape == (B, V, F, 4, H, W)
    torch.testing.assert_close(out, per_view, rtol=1e-5, atol=1e-5)
    # The branch is a copy of the first one, apart from its gates.
    block = model.transformer_blocks[0]
    torch.testing.assert_close(block.attn2.to_q.weight, block.attn1.to_q.weight)
    assert set(model.state_dict()) - set(stage1.state_dict()) == {
        k.replace("attn1", "attn2") for k in stage1.state_dict() if ".attn1." in k
    } | {k.replace("norm1", "view_norm1") for k in stage1.state_dict() if ".norm1." in k}


def _moved(model, x, view, frame, channel=0):
    """Outputs (per view, per target frame) that change when one input token of (view, frame) changes."""
    with torch.no_grad():
        base = model(**x).sample
        y = {k: v.clone() for k, v in x.items()}
        y["hidden_states"][:, view, frame, channel, 0, 0] += 1.0
        diff = (model(**y).sample - base).abs().amax(dim=(0, 3, 4, 5))  # [V, F]
    return diff > 0


def test_view_branch_sees_every_view_of_its_frame_and_nothing_else():
    model = tiny_stage2(perturb_view_branch=True)
    for block in model.transformer_blocks:
        _zero_gates(block.norm1)  # temporal branch off: only the view branch mixes tokens
    moved = _moved(model, _inputs(), view=1, frame=1)
    expected = torch.zeros(V, F, dtype=torch.bool)
    expected[:, 1] = True
    assert torch.equal(moved, expected)


def test_temporal_branch_sees_every_frame_of_its_view_and_nothing_else():
    model = tiny_stage2()  # view branch gated off, as at initialisation
    moved = _moved(model, _inputs(), view=2, frame=0)
    expected = torch.zeros(V, F, dtype=torch.bool)
    expected[2, :] = True
    assert torch.equal(moved, expected)


def test_view_branch_reads_the_text_of_its_own_batch_element():
    # The released code gave every batch element batch element 0's text in the view branch; under
    # classifier-free guidance that leaks the prompt into the unconditional half.
    model = tiny_stage2(perturb_view_branch=True)
    x = _inputs()
    with torch.no_grad():
        both = model(**x).sample
        alone = model(**{k: v[1:] for k, v in x.items()}).sample
        x["encoder_hidden_states"][0] += 1.0  # another text for element 0 changes nothing of element 1
        changed = model(**x).sample
    torch.testing.assert_close(both[1:], alone, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(changed[1:], both[1:], rtol=0, atol=0)


def test_camera_tokens_are_added_to_every_frame_of_their_view():
    # A camera token that is the same vector c everywhere equals adding c to the patch-embedding bias
    # (which reaches every visual token, reference frame included, and no text token).
    model = tiny_stage2(perturb_view_branch=True)
    x = _inputs()
    c = torch.randn(TINY_WIDTH, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        out = model(**x, camera_tokens=c.expand(B, V, N, TINY_WIDTH)).sample
        model.patch_embed.proj.bias += c
        expected = model(**x).sample
    torch.testing.assert_close(out, expected, rtol=1e-5, atol=1e-5)


def test_gradient_checkpointing_and_bad_inputs():
    model = tiny_stage2(perturb_view_branch=True).train()
    x = _inputs()
    grads = []
    for checkpointing in (False, True):
        model.zero_grad()
        if checkpointing:
            model.enable_gradient_checkpointing()
        model(**x).sample.square().mean().backward()
        grads.append(model.transformer_blocks[0].view_norm1.linear.weight.grad.clone())
    torch.testing.assert_close(grads[0], grads[1])
    with pytest.raises(ValueError, match="camera_tokens"):
        model(**x, camera_tokens=torch.zeros(B, V, N + 1, TINY_WIDTH))
    with pytest.raises(ValueError, match="hidden_states"):
        model(**{**x, "hidden_states": x["hidden_states"][:, 0]})
    with pytest.raises(TypeError, match="PoseTransformer3DModel"):
        MultiViewTransformer3DModel.from_stage1(model)


def test_stage1_without_rope_converts_too():
    from reference_model.transformer import PoseTransformer3DModel

    config = {**TINY_TRANSFORMER, "use_rotary_positional_embeddings": False, "use_learned_positional_embeddings": False}
    torch.manual_seed(0)
    stage1 = PoseTransformer3DModel(**config).eval()
    model = MultiViewTransformer3DModel.from_stage1(stage1).eval()
    x = _inputs(batch=1)
    with torch.no_grad():
        out = model(**x).sample
        ref = stage1(x["hidden_states"][:, 0], x["encoder_hidden_states"], x["timestep"],
                     x["reference_latents"][:, 0], x["pose_latents"][:, 0]).sample  # fmt: skip
    torch.testing.assert_close(out[:, 0], ref, rtol=1e-5, atol=1e-5)
