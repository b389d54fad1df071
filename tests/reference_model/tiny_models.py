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


TINY_VAE = dict(
    block_out_channels=(8, 8, 8, 8),  # four levels: 8x spatial compression like the real VAE
    latent_channels=TINY_TRANSFORMER["out_channels"],
    layers_per_block=1,
    norm_num_groups=4,
    sample_height=32,
    sample_width=32,
)
TINY_WORDS = ["<pad>", "</s>", "<unk>", "a", "character", "walks", "low", "quality", "blurry", "smooth", "motion"]


def tiny_tokenizer():
    """A word-level fast tokenizer (T5's pad/eos/unk ids 0/1/2), built offline with ``tokenizers``."""
    from tokenizers import Tokenizer, models, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    vocab = {w: i for i, w in enumerate(TINY_WORDS)}
    tok = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    tok.post_processor = processors.TemplateProcessing(single="$A </s>", special_tokens=[("</s>", 1)])
    return PreTrainedTokenizerFast(tokenizer_object=tok, pad_token="<pad>", eos_token="</s>", unk_token="<unk>")


def tiny_pipeline(seed: int = 0, stage: int = 2):
    """A ``CharacterShotPipeline`` of tiny random components (32 x 32 frames, 9-frame clips).

    Args:
        seed: Seed of all weights.
        stage: 2 (multi-view transformer + camera encoder) or 1 (pose transformer alone).
    """
    from diffusers import AutoencoderKLCogVideoX, CogVideoXDDIMScheduler
    from transformers import T5Config, T5EncoderModel

    from reference_model.pipeline import COGVIDEOX_SCHEDULER_CONFIG, CharacterShotPipeline

    torch.manual_seed(seed)
    text_encoder = T5EncoderModel(
        T5Config(vocab_size=len(TINY_WORDS), d_model=TINY_TRANSFORMER["text_embed_dim"], d_kv=4, d_ff=16,
                 num_layers=1, num_heads=2)  # fmt: skip
    ).eval()
    vae = AutoencoderKLCogVideoX(**TINY_VAE).eval()
    if stage == 2:
        transformer, camera = tiny_stage2(seed, perturb_view_branch=True), tiny_camera_encoder(seed)
    else:
        transformer, camera = tiny_stage1(seed), None
    return CharacterShotPipeline(
        tokenizer=tiny_tokenizer(), text_encoder=text_encoder, vae=vae, transformer=transformer,
        scheduler=CogVideoXDDIMScheduler(**COGVIDEOX_SCHEDULER_CONFIG), camera_encoder=camera,
    )  # fmt: skip


def tiny_inputs(num_views: int = 3, frames: int = 9, size: int = 32, seed: int = 0):
    """Random reference images, poses and rig cameras for ``tiny_pipeline`` (``[0, 1]`` float arrays)."""
    import numpy as np

    from character4d.cameras import RigConfig, rig_cameras

    rng = np.random.default_rng(seed)
    return dict(
        images=rng.random((num_views, 3, size, size), dtype=np.float32),
        poses=rng.random((frames, 3, size, size), dtype=np.float32),
        cameras=rig_cameras(RigConfig(num_views=21, resolution=size)).select(list(range(num_views))),
    )
