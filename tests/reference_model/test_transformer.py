"""Stage 1: the pose-conditioned CogVideoX transformer against diffusers' own CogVideoX transformer."""

from __future__ import annotations

import pytest
import torch
from diffusers import CogVideoXTransformer3DModel

from reference_model.transformer import COGVIDEOX_5B_I2V_CONFIG, PoseTransformer3DModel
from tests.reference_model.tiny_models import TINY_TRANSFORMER, tiny_stage1

B, F, H, W = 2, 2, 4, 6


def _inputs(seed: int = 0):
    gen = torch.Generator().manual_seed(seed)
    return dict(
        hidden_states=torch.randn(B, F, 4, H, W, generator=gen),
        encoder_hidden_states=torch.randn(B, 5, 12, generator=gen),
        timestep=torch.tensor([17, 640]),
        reference_latents=torch.randn(B, 1, 4, H, W, generator=gen),
        pose_latents=torch.randn(B, F + 1, 4, H, W, generator=gen),
    )


def test_default_config_is_the_published_cogvideox_5b_i2v_config():
    with torch.device("meta"):
        model = PoseTransformer3DModel()
        reference = CogVideoXTransformer3DModel(**COGVIDEOX_5B_I2V_CONFIG)
    for key, value in COGVIDEOX_5B_I2V_CONFIG.items():
        assert model.config[key] == value, key
    # Same parameter names and shapes as diffusers' class: the published weights load as they are.
    ours = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    theirs = {k: tuple(v.shape) for k, v in reference.state_dict().items()}
    assert ours == theirs
    assert ours["patch_embed.pos_embedding"] == (1, 226 + 13 * 30 * 45, 3072)
    assert ours["patch_embed.proj.weight"] == (3072, 32, 2, 2)
    assert sum(v.numel() for v in model.parameters()) == sum(v.numel() for v in reference.parameters())


def test_equals_diffusers_cogvideox_with_reference_frame_and_pose_channels():
    model = tiny_stage1()
    config = {k: v for k, v in model.config.items() if k in COGVIDEOX_5B_I2V_CONFIG or k in TINY_TRANSFORMER}
    reference = CogVideoXTransformer3DModel(**config).eval()
    reference.load_state_dict(model.state_dict(), strict=True)
    # CharacterShot samples and trains with the learned table switched off.
    reference.patch_embed.use_learned_positional_embeddings = False
    x = _inputs()
    with torch.no_grad():
        out = model(**x).sample
        packed = torch.cat(
            [torch.cat([x["reference_latents"], x["hidden_states"]], dim=1), x["pose_latents"]], dim=2
        )
        rope = model.rotary_embeddings(F + 1, H, W)
        expected = reference(packed, x["encoder_hidden_states"], x["timestep"], image_rotary_emb=rope).sample
    assert out.shape == (B, F, 4, H, W)
    torch.testing.assert_close(out, expected[:, 1:], rtol=0, atol=1e-6)


def test_batch_elements_are_independent_and_timestep_broadcasts():
    model = tiny_stage1()
    x = _inputs()
    x["timestep"] = torch.tensor([300, 300])
    with torch.no_grad():
        full = model(**x).sample
        single = model(**{k: (v[1:] if k != "timestep" else 300) for k, v in x.items()}).sample
    torch.testing.assert_close(full[1:], single, rtol=1e-5, atol=1e-6)


def test_gradient_checkpointing_gives_the_same_gradients():
    model = tiny_stage1().train()
    x = _inputs()
    grads = []
    for checkpointing in (False, True):
        model.zero_grad()
        if checkpointing:
            model.enable_gradient_checkpointing()
        model(**x).sample.square().mean().backward()
        grads.append(model.transformer_blocks[0].attn1.to_q.weight.grad.clone())
    torch.testing.assert_close(grads[0], grads[1])


@pytest.mark.parametrize(
    "name, shape, message",
    [
        ("reference_latents", (B, 2, 4, H, W), "reference_latents"),
        ("pose_latents", (B, F, 4, H, W), "pose_latents"),
        ("hidden_states", (B, F, 3, H, W), "channels"),
        ("hidden_states", (B, F, 4, H, 5), "multiples"),
        ("encoder_hidden_states", (1, 5, 12), "encoder_hidden_states"),
    ],
)
def test_bad_shapes_name_the_argument(name, shape, message):
    model = tiny_stage1()
    x = _inputs()
    x[name] = torch.zeros(shape)
    with pytest.raises(ValueError, match=message):
        model(**x)


def test_config_errors():
    with pytest.raises(ValueError, match="patch_size_t"):
        PoseTransformer3DModel(**{**TINY_TRANSFORMER, "patch_size_t": 2})
    with pytest.raises(ValueError, match="in_channels"):
        PoseTransformer3DModel(**{**TINY_TRANSFORMER, "in_channels": 4})
