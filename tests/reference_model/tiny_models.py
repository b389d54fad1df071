"""Tiny random configs of the reference model, shared by the reference_model tests.

The real models are the CogVideoX-5B-I2V-sized transformers (weights cannot be had here); these configs
keep every code path (RoPE, text streams, both attention branches, camera tokens) at a size that runs in
milliseconds on a CPU. Import them from tests (``from tests.reference_model.tiny_models import ...``).
"""

from __future__ import annotations

import torch

# Head size 16: the smallest for which CogVideoX's 3D RoPE split (t: D/4, h and w: 3D/8) is even.
TINY_TRANSFORMER = dict(
    num_attention_heads=2,
    attention_head_dim=16,
    in_channels=8,
    out_channels=4,
    time_embed_dim=8,
    text_embed_dim=12,
    num_layers=2,
    sample_width=8,
    sample_height=8,
    sample_frames=9,
    max_text_seq_length=5,
)
TINY_WIDTH = TINY_TRANSFORMER["num_attention_heads"] * TINY_TRANSFORMER["attention_head_dim"]
TINY_CAMERA_ENCODER = dict(hidden_channels=4, out_channels=TINY_WIDTH)


def tiny_stage1(seed: int = 0):
    """A randomly initialised tiny ``PoseTransformer3DModel`` in eval mode."""
    from reference_model.transformer import PoseTransformer3DModel

    torch.manual_seed(seed)
    return PoseTransformer3DModel(**TINY_TRANSFORMER).eval()


def tiny_stage2(seed: int = 0, perturb_view_branch: bool = False):
    """A tiny ``MultiViewTransformer3DModel`` built from ``tiny_stage1(seed)``.

    Args:
        seed: Seed of the stage-1 weights.
        perturb_view_branch: Give the view branch random gates and weights, as a trained model has
            (at initialisation the branch is switched off and invisible to tests of its wiring).
    """
    from reference_model.transformer_multiview import MultiViewTransformer3DModel

    model = MultiViewTransformer3DModel.from_stage1(tiny_stage1(seed)).eval()
    if perturb_view_branch:
        gen = torch.Generator().manual_seed(seed + 1)
        with torch.no_grad():
            for name, param in model.named_parameters():
                if ".view_norm1." in name or ".attn2." in name:
                    param.add_(0.3 * torch.randn(param.shape, generator=gen))
    return model


def tiny_camera_encoder(seed: int = 0):
    """A tiny ``CameraEncoder`` (width of the tiny transformer) with a random, non-zero output layer."""
    from reference_model.camera import CameraEncoder

    torch.manual_seed(seed)
    return CameraEncoder(**TINY_CAMERA_ENCODER, zero_init_output=False).eval()
