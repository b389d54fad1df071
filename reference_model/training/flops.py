"""Analytic FLOP counts of the transformers, for MFU figures (``scripts/bench/train_step.py``)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

__all__ = ["multiview_forward_flops"]


def multiview_forward_flops(config: Mapping[str, Any], views: int, latent_frames: int, grid_h: int, grid_w: int) -> float:
    """Matmul FLOPs of one forward of ``MultiViewTransformer3DModel`` for one example.

    Counted: q/k/v/out projections and attention (``Q K^T`` and ``A V``) of both branches with their text
    tokens, the shared feed-forward over the visual tokens and both text streams, the patch embedding
    (a ``p x p`` convolution), the text projection and the output projection. Not counted (below 0.1% at
    full size): the adaptive norms' linears, the timestep embedding, the camera encoder.

    Args:
        config: the transformer config (``num_attention_heads``, ``attention_head_dim``, ``num_layers``,
            ``max_text_seq_length``, ``patch_size``, ``in_channels``, ``out_channels``, ``text_embed_dim``).
        views: views per example.
        latent_frames: latent frames per view, the reference frame included.
        grid_h: token rows per frame (latent height / patch size).
        grid_w: token columns per frame.

    Returns:
        FLOPs (a multiply-add counts 2).
    """
    d = config["num_attention_heads"] * config["attention_head_dim"]
    layers = config["num_layers"]
    text = config["max_text_seq_length"]
    n = grid_h * grid_w
    ff_inner = 4 * d  # diffusers FeedForward(mult=4)
    seq_t = text + latent_frames * n  # one view's video + its text
    seq_v = text + views * n  # one frame of every view + its text
    per_block = 0.0
    # temporal branch: q, k, v, out projections over every token of each view's sequence, then attention
    per_block += 2 * 4 * d * d * views * seq_t + views * 4 * seq_t**2 * d
    # view branch: the same per frame
    per_block += 2 * 4 * d * d * latent_frames * seq_v + latent_frames * 4 * seq_v**2 * d
    # shared feed-forward over all visual tokens and both text streams
    ff_tokens = views * latent_frames * n + (views + latent_frames) * text
    per_block += 2 * 2 * d * ff_inner * ff_tokens
    total = layers * per_block
    p = config["patch_size"]
    c_in, c_out = config["in_channels"], config["out_channels"]
    total += 2 * views * latent_frames * n * (c_in * p * p * d + d * c_out * p * p)  # patch embed + proj_out
    total += 2 * views * text * config["text_embed_dim"] * d  # text projection
    return float(total)
