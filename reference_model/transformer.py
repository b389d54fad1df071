"""Stage 1 of CharacterShot: the pose-conditioned CogVideoX-5B image-to-video transformer.

The model is diffusers' CogVideoX transformer with the image-to-video channel layout repurposed for pose
(DESIGN.md 8.1): its 32 input channels carry 16 latent channels (the clean reference-image latent as an
extra first frame, then the noisy target frames) and 16 pose-latent channels (the reference pose first,
then the target poses). The state-dict keys are those of ``diffusers.CogVideoXTransformer3DModel``, so the
published CogVideoX-5B-I2V weights load unchanged (``reference_model.checkpoints``).

Shapes (latent space, ``h = H / 8``, ``w = W / 8``, ``F`` target latent frames; 25 video frames -> 7):

- ``hidden_states`` ``(B, F, 16, h, w)``: noisy latents of the target frames.
- ``reference_latents`` ``(B, 1, 16, h, w)``: clean latent of the reference image.
- ``pose_latents`` ``(B, 1 + F, 16, h, w)``: latent of the reference image's pose, then the target poses.
- ``encoder_hidden_states`` ``(B, L, 4096)``: T5 text embeddings (``L`` = 226).
- output ``(B, F, 16, h, w)``: the model output (v-prediction) for the target frames only; the reference
  frame's output is dropped, so no loss or sampler step ever sees it.
"""

from __future__ import annotations

from typing import Any

import torch
from diffusers.configuration_utils import ConfigMixin, register_to_config
from diffusers.models.embeddings import CogVideoXPatchEmbed, TimestepEmbedding, Timesteps, get_3d_rotary_pos_embed
from diffusers.models.modeling_outputs import Transformer2DModelOutput
from diffusers.models.modeling_utils import ModelMixin
from diffusers.models.normalization import AdaLayerNorm
from diffusers.models.transformers.cogvideox_transformer_3d import CogVideoXBlock
from torch import nn

__all__ = [
    "COGVIDEOX_5B_I2V_CONFIG",
    "PoseTransformer3DModel",
    "check_latent_inputs",
    "Fp8Linear",
    "compile_blocks",
    "enable_fp8_linears",
    "fuse_qkv_projections",
    "rotary_embeddings",
]

# The transformer config of THUDM/CogVideoX-5b-I2V (transformer/config.json, as written by diffusers'
# scripts/convert_cogvideox_to_diffusers.py for version 1.0 with --i2v). Every default below equals it.
COGVIDEOX_5B_I2V_CONFIG: dict[str, Any] = {
    "activation_fn": "gelu-approximate",
    "attention_bias": True,
    "attention_head_dim": 64,
    "dropout": 0.0,
    "flip_sin_to_cos": True,
    "freq_shift": 0,
    "in_channels": 32,
    "max_text_seq_length": 226,
    "norm_elementwise_affine": True,
    "norm_eps": 1e-05,
    "num_attention_heads": 48,
    "num_layers": 42,
    "out_channels": 16,
    "patch_size": 2,
    "sample_frames": 49,
    "sample_height": 60,
    "sample_width": 90,
    "spatial_interpolation_scale": 1.875,
    "temporal_compression_ratio": 4,
    "temporal_interpolation_scale": 1.0,
    "text_embed_dim": 4096,
    "time_embed_dim": 512,
    "timestep_activation_fn": "silu",
    "use_learned_positional_embeddings": True,
    "use_rotary_positional_embeddings": True,
}


def _build_io(module: nn.Module, *, num_attention_heads: int, attention_head_dim: int, in_channels: int,
              out_channels: int, flip_sin_to_cos: bool, freq_shift: int, time_embed_dim: int,
              ofs_embed_dim: int | None, text_embed_dim: int, dropout: float, sample_width: int,
              sample_height: int, sample_frames: int, patch_size: int, patch_size_t: int | None,
              temporal_compression_ratio: int, max_text_seq_length: int, timestep_activation_fn: str,
              norm_elementwise_affine: bool, norm_eps: float, spatial_interpolation_scale: float,
              temporal_interpolation_scale: float, use_rotary_positional_embeddings: bool,
              use_learned_positional_embeddings: bool, apply_learned_positional_embeddings: bool,
              patch_bias: bool) -> int:
    """Create the input/output modules of a CogVideoX transformer on ``module`` (names as in diffusers).

    Returns:
        The model width ``num_attention_heads * attention_head_dim``.

    Raises:
        ValueError: on a config that no CogVideoX 1.0 checkpoint has.
    """
    if patch_size_t is not None:
        raise ValueError(
            f"patch_size_t: expected None (the CogVideoX 1.0 layout CharacterShot builds on), got {patch_size_t}"
        )
    if not use_rotary_positional_embeddings and use_learned_positional_embeddings:
        raise ValueError("use_learned_positional_embeddings=True needs use_rotary_positional_embeddings=True")
    if in_channels != 2 * out_channels:
        raise ValueError(
            f"in_channels: expected 2 * out_channels = {2 * out_channels} (latent + pose channels), got {in_channels}"
        )
    inner_dim = num_attention_heads * attention_head_dim
    module.patch_embed = CogVideoXPatchEmbed(
        patch_size=patch_size,
        patch_size_t=None,
        in_channels=in_channels,
        embed_dim=inner_dim,
        text_embed_dim=text_embed_dim,
        bias=patch_bias,
        sample_width=sample_width,
        sample_height=sample_height,
        sample_frames=sample_frames,
        temporal_compression_ratio=temporal_compression_ratio,
        max_text_seq_length=max_text_seq_length,
        spatial_interpolation_scale=spatial_interpolation_scale,
        temporal_interpolation_scale=temporal_interpolation_scale,
        use_positional_embeddings=not use_rotary_positional_embeddings,
        use_learned_positional_embeddings=use_learned_positional_embeddings,
    )
    if use_learned_positional_embeddings and not apply_learned_positional_embeddings:
        # The checkpoint's learned table stays (its key must load) but is not added: CharacterShot trains
        # and samples with it switched off (finetune/models/cogvideox_i2v/lora_trainer.py,
        # inference/cli_demo_4d.py), and for any frame count but 13 diffusers would add a sin-cos table
        # in its place, which the weights never saw.
        module.patch_embed.use_learned_positional_embeddings = False
    module.embedding_dropout = nn.Dropout(dropout)
    module.time_proj = Timesteps(inner_dim, flip_sin_to_cos, freq_shift)
    module.time_embedding = TimestepEmbedding(inner_dim, time_embed_dim, timestep_activation_fn)
    module.ofs_proj = None
    module.ofs_embedding = None
    if ofs_embed_dim:
        module.ofs_proj = Timesteps(ofs_embed_dim, flip_sin_to_cos, freq_shift)
        module.ofs_embedding = TimestepEmbedding(ofs_embed_dim, ofs_embed_dim, timestep_activation_fn)
    module.norm_final = nn.LayerNorm(inner_dim, norm_eps, norm_elementwise_affine)
    module.norm_out = AdaLayerNorm(
        embedding_dim=time_embed_dim,
        output_dim=2 * inner_dim,
        norm_elementwise_affine=norm_elementwise_affine,
        norm_eps=norm_eps,
        chunk_dim=1,
    )
    module.proj_out = nn.Linear(inner_dim, patch_size * patch_size * out_channels)
    return inner_dim


def check_latent_inputs(hidden_states: torch.Tensor, reference_latents: torch.Tensor, pose_latents: torch.Tensor,
                        channels: int, patch_size: int) -> None:
    """Validate the latent inputs of either stage (leading dims ``(B,)`` or ``(B, V)``).

    Raises:
        ValueError: naming the argument whose shape does not fit.
    """
    if hidden_states.ndim not in (5, 6):
        raise ValueError(f"hidden_states: expected (B, F, C, h, w) or (B, V, F, C, h, w), got {tuple(hidden_states.shape)}")
    *lead, frames, c, h, w = hidden_states.shape
    if c != channels:
        raise ValueError(f"hidden_states: expected {channels} channels, got {c} (shape {tuple(hidden_states.shape)})")
    if h % patch_size or w % patch_size:
        raise ValueError(f"hidden_states: latent height and width must be multiples of {patch_size}, got {h} x {w}")
    ref_shape = (*lead, 1, channels, h, w)
    if tuple(reference_latents.shape) != ref_shape:
        raise ValueError(f"reference_latents: expected shape {ref_shape}, got {tuple(reference_latents.shape)}")
    pose_shape = (*lead, frames + 1, channels, h, w)
    if tuple(pose_latents.shape) != pose_shape:
        raise ValueError(
            f"pose_latents: expected shape {pose_shape} (reference pose first, then one per target frame), "
            f"got {tuple(pose_latents.shape)}"
        )


def rotary_embeddings(config: Any, num_frames: int, grid_height: int, grid_width: int,
                      device: torch.device | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """3D rotary embeddings of a CogVideoX 1.0 transformer, as diffusers' CogVideoX pipelines build them.

    Args:
        config: The transformer config (``attention_head_dim``, ``patch_size``, ``sample_height/width``).
        num_frames: Size of the first axis of the token grid (latent frames, or views in the view branch).
        grid_height: Token rows (``h / patch_size``).
        grid_width: Token columns (``w / patch_size``).
        device: Where to build them.

    Returns:
        ``(cos, sin)``, each ``(num_frames * grid_height * grid_width, attention_head_dim)`` float32.
    """
    from diffusers.pipelines.cogvideo.pipeline_cogvideox_image2video import get_resize_crop_region_for_grid

    base_width = config.sample_width // config.patch_size
    base_height = config.sample_height // config.patch_size
    crops = get_resize_crop_region_for_grid((grid_height, grid_width), base_width, base_height)
    return get_3d_rotary_pos_embed(
        embed_dim=config.attention_head_dim,
        crops_coords=crops,
        grid_size=(grid_height, grid_width),
        temporal_size=num_frames,
        device=device,
    )


def time_embedding(model: nn.Module, timestep: torch.Tensor | float | int, batch_size: int, dtype: torch.dtype,
                   device: torch.device, ofs: torch.Tensor | float | None = None) -> torch.Tensor:
    """The timestep (+ ofs) embedding ``(B, time_embed_dim)`` of a CogVideoX transformer.

    Raises:
        ValueError: if ``timestep`` holds neither one value nor one per batch element.
    """
    t = torch.as_tensor(timestep, device=device)
    if t.ndim == 0:
        t = t.expand(batch_size)
    if t.shape != (batch_size,):
        raise ValueError(f"timestep: expected a scalar or shape ({batch_size},), got {tuple(t.shape)}")
    emb = model.time_embedding(model.time_proj(t).to(dtype))
    if model.ofs_embedding is not None:
        if ofs is None:
            raise ValueError("ofs: this config has an ofs embedding (CogVideoX 1.5), so ofs is required")
        o = torch.as_tensor(ofs, device=device, dtype=torch.float32).reshape(-1)
        emb = emb + model.ofs_embedding(model.ofs_proj(o).to(dtype))
    return emb


def unpatchify(tokens: torch.Tensor, frames: int, height: int, width: int, patch_size: int) -> torch.Tensor:
    """``(N, frames * (height/p) * (width/p), p * p * C)`` tokens -> ``(N, frames, C, height, width)``."""
    n = tokens.shape[0]
    p = patch_size
    out = tokens.reshape(n, frames, height // p, width // p, -1, p, p)
    return out.permute(0, 1, 4, 2, 5, 3, 6).flatten(5, 6).flatten(3, 4)


def compile_blocks(model: nn.Module, **compile_kwargs: Any) -> nn.Module:
    """Compile every transformer block in place with ``torch.compile`` (the rest stays eager).

    Blocks are compiled one by one rather than the whole model: all blocks share one graph (same shapes),
    so compilation costs one block, and graph breaks outside the blocks cost nothing.

    Args:
        model: A model with ``transformer_blocks``.
        compile_kwargs: Passed to ``nn.Module.compile`` (e.g. ``mode="max-autotune-no-cudagraphs"``).

    Returns:
        The same model.
    """
    for block in model.transformer_blocks:
        block.compile(**compile_kwargs)
    return model


@torch.no_grad()
def fuse_qkv_projections(model: nn.Module) -> int:
    """Compute q, k and v of every attention with one matrix product (exact; diffusers' fused processor).

    Returns:
        The number of attention layers fused.
    """
    from diffusers.models.attention_processor import Attention, FusedCogVideoXAttnProcessor2_0

    count = 0
    for module in model.modules():
        if isinstance(module, Attention) and not getattr(module, "fused_projections", False):
            module.fuse_projections(fuse=True)
            module.fused_projections = True
            module.set_processor(FusedCogVideoXAttnProcessor2_0())
            count += 1
    return count


class Fp8Linear(nn.Module):
    """An ``nn.Linear`` computed as an FP8 (e4m3) matrix product with row-wise scales (approximate).

    The weight is quantised once, one scale per output row; the input is quantised on the fly, one scale
    per token; ``torch._scaled_mm`` multiplies and returns the input dtype. This is an *option* of the
    sampler (off by default): results differ from bf16 by the e4m3 rounding (3 mantissa bits).
    Needs a GPU with FP8 tensor cores (Hopper or newer) and in/out features that are multiples of 16.

    Args:
        linear: The layer to replace (its bias is kept in its own dtype).
    """

    E4M3_MAX = 448.0

    def __init__(self, linear: nn.Linear):
        super().__init__()
        weight = linear.weight.detach().float()
        scale = weight.abs().amax(dim=1, keepdim=True).clamp(min=1e-12) / self.E4M3_MAX
        self.register_buffer("weight_fp8", (weight / scale).to(torch.float8_e4m3fn))  # [N, K]
        self.register_buffer("weight_scale", scale.reshape(1, -1))  # [1, N]
        self.bias = linear.bias
        self.in_features, self.out_features = linear.in_features, linear.out_features

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shape = x.shape
        flat = x.reshape(-1, shape[-1])
        scale = flat.abs().amax(dim=1, keepdim=True).float().clamp(min=1e-12) / self.E4M3_MAX
        q = (flat.float() / scale).to(torch.float8_e4m3fn)
        out = torch._scaled_mm(q, self.weight_fp8.t(), scale_a=scale, scale_b=self.weight_scale, out_dtype=x.dtype)
        if self.bias is not None:
            out = out + self.bias
        return out.reshape(*shape[:-1], self.out_features)


def enable_fp8_linears(model: nn.Module) -> int:
    """Replace the attention and feed-forward linears of every block by ``Fp8Linear`` (in place).

    Embeddings, adaptive norms and the output projection stay in their dtype (they are small and
    sensitive). This is an approximate speed option, off by default.

    Returns:
        The number of layers replaced.
    """
    count = 0
    for block in model.transformer_blocks:
        for name, module in list(block.named_modules()):
            for child_name, child in list(module.named_children()):
                if isinstance(child, nn.Linear) and ("attn" in name or name.startswith("ff")):
                    setattr(module, child_name, Fp8Linear(child))
                    count += 1
    return count


class PoseTransformer3DModel(ModelMixin, ConfigMixin):
    """The pose-conditioned CogVideoX image-to-video transformer (CharacterShot stage 1).

    Args (config; every default is the published CogVideoX-5B-I2V transformer config,
    ``COGVIDEOX_5B_I2V_CONFIG``, except the two keys that checkpoint does not have):
        num_attention_heads: 48. attention_head_dim: 64 (width 3072).
        in_channels: 32 = 16 latent + 16 pose-latent channels. out_channels: 16.
        flip_sin_to_cos, freq_shift: timestep sinusoid layout (True, 0).
        time_embed_dim: 512. ofs_embed_dim: None (CogVideoX 1.5 only).
        text_embed_dim: 4096 (T5-v1.1-XXL). num_layers: 42. dropout: 0.0. attention_bias: True.
        sample_width, sample_height, sample_frames: 90, 60, 49 (the size the learned table was made for).
        patch_size: 2. patch_size_t: None (CogVideoX 1.0). temporal_compression_ratio: 4.
        max_text_seq_length: 226. activation_fn: "gelu-approximate". timestep_activation_fn: "silu".
        norm_elementwise_affine: True. norm_eps: 1e-5.
        spatial_interpolation_scale, temporal_interpolation_scale: 1.875, 1.0.
        use_rotary_positional_embeddings: True. use_learned_positional_embeddings: True (the checkpoint
            holds a learned table ``patch_embed.pos_embedding``).
        apply_learned_positional_embeddings: False (not in the checkpoint): whether that table is added
            to the tokens; CharacterShot switches it off for training and sampling.
        patch_bias: True.
    """

    _supports_gradient_checkpointing = True
    _no_split_modules = ["CogVideoXBlock", "CogVideoXPatchEmbed"]
    _skip_layerwise_casting_patterns = ["patch_embed", "norm"]

    @register_to_config
    def __init__(
        self,
        num_attention_heads: int = 48,
        attention_head_dim: int = 64,
        in_channels: int = 32,
        out_channels: int = 16,
        flip_sin_to_cos: bool = True,
        freq_shift: int = 0,
        time_embed_dim: int = 512,
        ofs_embed_dim: int | None = None,
        text_embed_dim: int = 4096,
        num_layers: int = 42,
        dropout: float = 0.0,
        attention_bias: bool = True,
        sample_width: int = 90,
        sample_height: int = 60,
        sample_frames: int = 49,
        patch_size: int = 2,
        patch_size_t: int | None = None,
        temporal_compression_ratio: int = 4,
        max_text_seq_length: int = 226,
        activation_fn: str = "gelu-approximate",
        timestep_activation_fn: str = "silu",
        norm_elementwise_affine: bool = True,
        norm_eps: float = 1e-5,
        spatial_interpolation_scale: float = 1.875,
        temporal_interpolation_scale: float = 1.0,
        use_rotary_positional_embeddings: bool = True,
        use_learned_positional_embeddings: bool = True,
        apply_learned_positional_embeddings: bool = False,
        patch_bias: bool = True,
    ):
        super().__init__()
        inner_dim = _build_io(
            self, num_attention_heads=num_attention_heads, attention_head_dim=attention_head_dim,
            in_channels=in_channels, out_channels=out_channels, flip_sin_to_cos=flip_sin_to_cos,
            freq_shift=freq_shift, time_embed_dim=time_embed_dim, ofs_embed_dim=ofs_embed_dim,
            text_embed_dim=text_embed_dim, dropout=dropout, sample_width=sample_width,
            sample_height=sample_height, sample_frames=sample_frames, patch_size=patch_size,
            patch_size_t=patch_size_t, temporal_compression_ratio=temporal_compression_ratio,
            max_text_seq_length=max_text_seq_length, timestep_activation_fn=timestep_activation_fn,
            norm_elementwise_affine=norm_elementwise_affine, norm_eps=norm_eps,
            spatial_interpolation_scale=spatial_interpolation_scale,
            temporal_interpolation_scale=temporal_interpolation_scale,
            use_rotary_positional_embeddings=use_rotary_positional_embeddings,
            use_learned_positional_embeddings=use_learned_positional_embeddings,
            apply_learned_positional_embeddings=apply_learned_positional_embeddings, patch_bias=patch_bias,
        )  # fmt: skip
        self.transformer_blocks = nn.ModuleList(
            [
                CogVideoXBlock(
                    dim=inner_dim,
                    num_attention_heads=num_attention_heads,
                    attention_head_dim=attention_head_dim,
                    time_embed_dim=time_embed_dim,
                    dropout=dropout,
                    activation_fn=activation_fn,
                    attention_bias=attention_bias,
                    norm_elementwise_affine=norm_elementwise_affine,
                    norm_eps=norm_eps,
                )
                for _ in range(num_layers)
            ]
        )
        self.gradient_checkpointing = False

    def rotary_embeddings(self, num_frames: int, height: int, width: int, device: torch.device | None = None):
        """RoPE ``(cos, sin)`` for ``num_frames`` latent frames of ``height x width`` latents (None without RoPE)."""
        if not self.config.use_rotary_positional_embeddings:
            return None
        p = self.config.patch_size
        return rotary_embeddings(self.config, num_frames, height // p, width // p, device)

    def forward(
        self,
        hidden_states: torch.Tensor,
        encoder_hidden_states: torch.Tensor,
        timestep: torch.Tensor | float | int,
        reference_latents: torch.Tensor,
        pose_latents: torch.Tensor,
        image_rotary_emb: tuple[torch.Tensor, torch.Tensor] | None = None,
        ofs: torch.Tensor | float | None = None,
        attention_kwargs: dict[str, Any] | None = None,
        return_dict: bool = True,
    ) -> Transformer2DModelOutput | tuple[torch.Tensor]:
        """Predict the v-target of the noisy target frames.

        Args:
            hidden_states: ``(B, F, 16, h, w)`` noisy latents of the ``F`` target frames.
            encoder_hidden_states: ``(B, L, text_embed_dim)`` text embeddings.
            timestep: scalar or ``(B,)`` diffusion timesteps.
            reference_latents: ``(B, 1, 16, h, w)`` clean reference-image latent (prepended as frame 0).
            pose_latents: ``(B, 1 + F, 16, h, w)`` pose latents: the reference pose, then the target poses.
            image_rotary_emb: RoPE for ``1 + F`` frames (``self.rotary_embeddings``); built if None.
            ofs: CogVideoX 1.5 only.
            attention_kwargs: Passed to the attention processors.
            return_dict: Return a ``Transformer2DModelOutput`` instead of a tuple.

        Returns:
            ``sample`` ``(B, F, 16, h, w)``: the output for the target frames (reference frame dropped).

        Raises:
            ValueError: on inputs whose shapes do not fit together.
        """
        check_latent_inputs(hidden_states, reference_latents, pose_latents, self.config.out_channels,
                            self.config.patch_size)  # fmt: skip
        batch, frames, _, height, width = hidden_states.shape
        if encoder_hidden_states.ndim != 3 or encoder_hidden_states.shape[0] != batch:
            raise ValueError(
                f"encoder_hidden_states: expected (B={batch}, L, D), got {tuple(encoder_hidden_states.shape)}"
            )
        x = torch.cat([torch.cat([reference_latents, hidden_states], dim=1), pose_latents], dim=2)
        temb = time_embedding(self, timestep, batch, x.dtype, x.device, ofs)
        if image_rotary_emb is None:
            image_rotary_emb = self.rotary_embeddings(frames + 1, height, width, x.device)

        tokens = self.embedding_dropout(self.patch_embed(encoder_hidden_states, x))
        text_len = encoder_hidden_states.shape[1]
        text, tokens = tokens[:, :text_len], tokens[:, text_len:]
        for block in self.transformer_blocks:
            if torch.is_grad_enabled() and self.gradient_checkpointing:
                tokens, text = self._gradient_checkpointing_func(
                    block, tokens, text, temb, image_rotary_emb, attention_kwargs
                )
            else:
                tokens, text = block(tokens, text, temb, image_rotary_emb, attention_kwargs)

        tokens = self.proj_out(self.norm_out(self.norm_final(tokens), temb=temb))
        sample = unpatchify(tokens, frames + 1, height, width, self.config.patch_size)[:, 1:]
        if not return_dict:
            return (sample,)
        return Transformer2DModelOutput(sample=sample)
