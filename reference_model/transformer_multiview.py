"""Stage 2 of CharacterShot: the multi-view transformer with dual attention (DESIGN.md 8.2, 8.2.1).

Every block keeps CogVideoX's spatial-temporal attention (``norm1``/``attn1``: the tokens of one view, all
its frames) and adds a parallel spatial-view attention (``view_norm1``/``attn2``: the tokens of one latent
frame, all views). Both branches are gated by their own adaptive norm, their outputs are summed, and the
feed-forward (``norm2``/``ff``) is shared. Module names follow the released CharacterShot checkpoint, so
its ``transformer/`` folder loads into this class.

Text tokens: the temporal branch keeps one text stream per view (as stage 1 does per video); the view
branch keeps one text stream per latent frame. Both start from the text embedding of their *own* batch
element; the released code started every view stream from batch element 0, which under classifier-free
guidance gave the unconditional half the prompt's text (DESIGN.md 8.4).

Camera tokens (from ``reference_model.camera.CameraEncoder``, one per latent patch of a view) are added
once, before the first block, to every frame of their view.

At initialisation from stage 1 (``from_stage1``) ``attn2`` is a copy of ``attn1`` and ``view_norm1`` a
copy of ``norm1`` whose two gates are zero, so the model equals stage 1 applied to every view; training
opens the gates.

Shapes: ``hidden_states`` ``(B, V, F, 16, h, w)``, ``reference_latents`` ``(B, V, 1, 16, h, w)``,
``pose_latents`` ``(B, V, 1 + F, 16, h, w)``, ``encoder_hidden_states`` ``(B, L, 4096)``,
``camera_tokens`` ``(B, V, (h/2) * (w/2), 3072)``; output ``(B, V, F, 16, h, w)`` (target frames only).
"""

from __future__ import annotations

from typing import Any

import torch
from diffusers.configuration_utils import ConfigMixin, register_to_config
from diffusers.models.attention import Attention, FeedForward
from diffusers.models.attention_processor import CogVideoXAttnProcessor2_0
from diffusers.models.modeling_outputs import Transformer2DModelOutput
from diffusers.models.modeling_utils import ModelMixin
from diffusers.models.normalization import CogVideoXLayerNormZero
from diffusers.utils.torch_utils import maybe_allow_in_graph
from torch import nn

from reference_model.transformer import (
    PoseTransformer3DModel,
    _build_io,
    check_latent_inputs,
    rotary_embeddings,
    time_embedding,
    unpatchify,
)

__all__ = ["MultiViewBlock", "MultiViewTransformer3DModel"]


def _attention(dim: int, heads: int, head_dim: int, bias: bool, out_bias: bool, qk_norm: bool) -> Attention:
    # Exactly the attention CogVideoXBlock builds, so attn1 and attn2 hold the same keys and shapes.
    return Attention(
        query_dim=dim,
        dim_head=head_dim,
        heads=heads,
        qk_norm="layer_norm" if qk_norm else None,
        eps=1e-6,
        bias=bias,
        out_bias=out_bias,
        processor=CogVideoXAttnProcessor2_0(),
    )


@maybe_allow_in_graph
class MultiViewBlock(nn.Module):
    """A CogVideoX block with a parallel spatial-view attention branch.

    Args:
        dim: Model width. num_attention_heads, attention_head_dim: heads and their size.
        time_embed_dim: Width of the timestep embedding. dropout, activation_fn, attention_bias,
        qk_norm, norm_elementwise_affine, norm_eps, final_dropout, ff_inner_dim, ff_bias,
        attention_out_bias: as in ``diffusers.models.transformers.cogvideox_transformer_3d.CogVideoXBlock``.
    """

    def __init__(self, dim: int, num_attention_heads: int, attention_head_dim: int, time_embed_dim: int,
                 dropout: float = 0.0, activation_fn: str = "gelu-approximate", attention_bias: bool = False,
                 qk_norm: bool = True, norm_elementwise_affine: bool = True, norm_eps: float = 1e-5,
                 final_dropout: bool = True, ff_inner_dim: int | None = None, ff_bias: bool = True,
                 attention_out_bias: bool = True):  # fmt: skip
        super().__init__()
        args = (dim, num_attention_heads, attention_head_dim, attention_bias, attention_out_bias, qk_norm)
        self.norm1 = CogVideoXLayerNormZero(time_embed_dim, dim, norm_elementwise_affine, norm_eps, bias=True)
        self.attn1 = _attention(*args)
        self.view_norm1 = CogVideoXLayerNormZero(time_embed_dim, dim, norm_elementwise_affine, norm_eps, bias=True)
        self.attn2 = _attention(*args)
        self.norm2 = CogVideoXLayerNormZero(time_embed_dim, dim, norm_elementwise_affine, norm_eps, bias=True)
        self.ff = FeedForward(dim, dropout=dropout, activation_fn=activation_fn, final_dropout=final_dropout,
                              inner_dim=ff_inner_dim, bias=ff_bias)  # fmt: skip

    def forward(
        self,
        hidden_states: torch.Tensor,
        text_per_view: torch.Tensor,
        text_per_frame: torch.Tensor,
        temb: torch.Tensor,
        image_rotary_emb: tuple[torch.Tensor, torch.Tensor] | None = None,
        view_rotary_emb: tuple[torch.Tensor, torch.Tensor] | None = None,
        attention_kwargs: dict[str, Any] | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """One block.

        Args:
            hidden_states: ``(B, V, F, N, D)`` visual tokens (``N`` tokens per latent frame).
            text_per_view: ``(B, V, L, D)`` text stream of the temporal branch, one per view.
            text_per_frame: ``(B, F, L, D)`` text stream of the view branch, one per latent frame.
            temb: ``(B, time_embed_dim)``.
            image_rotary_emb: RoPE over ``(F, h', w')`` for the temporal branch.
            view_rotary_emb: RoPE over ``(V, h', w')`` for the view branch.
            attention_kwargs: Passed to the attention processors.

        Returns:
            The updated ``hidden_states``, ``text_per_view``, ``text_per_frame`` (same shapes).
        """
        attention_kwargs = attention_kwargs or {}
        b, v, f, n, d = hidden_states.shape
        length = text_per_view.shape[2]

        # Spatial-temporal branch: each (batch, view) sequence is one stage-1 video.
        x_t = hidden_states.reshape(b * v, f * n, d)
        temb_t = temb.repeat_interleave(v, dim=0)
        norm_x, norm_text, gate, text_gate = self.norm1(x_t, text_per_view.reshape(b * v, length, d), temb_t)
        attn_x, attn_text = self.attn1(hidden_states=norm_x, encoder_hidden_states=norm_text,
                                       image_rotary_emb=image_rotary_emb, **attention_kwargs)  # fmt: skip
        res_t = (gate * attn_x).reshape(b, v, f, n, d)
        text_per_view = text_per_view + (text_gate * attn_text).reshape(b, v, length, d)

        # Spatial-view branch: each (batch, frame) sequence holds that frame of every view.
        x_v = hidden_states.transpose(1, 2).reshape(b * f, v * n, d)
        temb_v = temb.repeat_interleave(f, dim=0)
        norm_x, norm_text, gate, text_gate = self.view_norm1(x_v, text_per_frame.reshape(b * f, length, d), temb_v)
        attn_x, attn_text = self.attn2(hidden_states=norm_x, encoder_hidden_states=norm_text,
                                       image_rotary_emb=view_rotary_emb, **attention_kwargs)  # fmt: skip
        res_v = (gate * attn_x).reshape(b, f, v, n, d).transpose(1, 2)
        text_per_frame = text_per_frame + (text_gate * attn_text).reshape(b, f, length, d)

        hidden_states = hidden_states + res_t + res_v

        # Shared feed-forward over every visual and text token of the batch element (per-token ops, so one
        # call over the concatenation equals stage 1's per-video call).
        x = hidden_states.reshape(b, v * f * n, d)
        text = torch.cat([text_per_view, text_per_frame], dim=1).reshape(b, (v + f) * length, d)
        norm_x, norm_text, gate, text_gate = self.norm2(x, text, temb)
        out = self.ff(torch.cat([norm_text, norm_x], dim=1))
        text_len = text.shape[1]
        x = x + gate * out[:, text_len:]
        text = text + text_gate * out[:, :text_len]
        text = text.reshape(b, v + f, length, d)
        return x.reshape(b, v, f, n, d), text[:, :v], text[:, v:]


class MultiViewTransformer3DModel(ModelMixin, ConfigMixin):
    """The multi-view CharacterShot transformer (stage 2).

    Args (config): the same keys and defaults as ``PoseTransformer3DModel`` (the CogVideoX-5B-I2V
    transformer config), since stage 2 is initialised from stage 1 and the released checkpoint's
    ``transformer/config.json`` is that config.
    """

    _supports_gradient_checkpointing = True
    _no_split_modules = ["MultiViewBlock", "CogVideoXPatchEmbed"]
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
                MultiViewBlock(
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

    @classmethod
    def from_stage1(cls, stage1: PoseTransformer3DModel) -> "MultiViewTransformer3DModel":
        """Build stage 2 from a stage-1 model: shared weights copied, view branch initialised from them.

        ``attn2`` copies ``attn1``; ``view_norm1`` copies ``norm1`` with the rows of its two gates (visual
        and text) set to zero, so at initialisation the view branch adds nothing and the model equals
        stage 1 applied to each view.

        Args:
            stage1: The pose-conditioned stage-1 transformer.

        Returns:
            A new model on stage 1's device and dtype.

        Raises:
            TypeError: if ``stage1`` is not a ``PoseTransformer3DModel``.
        """
        if not isinstance(stage1, PoseTransformer3DModel):
            raise TypeError(f"stage1: expected a PoseTransformer3DModel, got {type(stage1).__name__}")
        param = next(stage1.parameters())
        config = {k: v for k, v in stage1.config.items() if not k.startswith("_")}
        # Built on the meta device (no 5B random init); every tensor comes from stage 1. Without RoPE the
        # patch embedding holds a non-persistent sin-cos buffer that no state dict carries: build it for real.
        with torch.device("meta" if stage1.config.use_rotary_positional_embeddings else param.device):
            model = cls(**config)
        state = stage1.state_dict()
        dim = stage1.config.num_attention_heads * stage1.config.attention_head_dim
        for key in list(state):
            if ".norm1." in key:
                value = state[key].clone()
                # CogVideoXLayerNormZero's linear emits (shift, scale, gate, enc_shift, enc_scale, enc_gate).
                value[2 * dim : 3 * dim] = 0
                value[5 * dim : 6 * dim] = 0
                state[key.replace(".norm1.", ".view_norm1.")] = value
            elif ".attn1." in key:
                state[key.replace(".attn1.", ".attn2.")] = state[key].clone()
        model.load_state_dict(state, strict=True, assign=True)
        if not stage1.config.use_rotary_positional_embeddings:
            model = model.to(dtype=param.dtype)
        return model

    def rotary_embeddings(self, num_frames: int, height: int, width: int, device: torch.device | None = None):
        """RoPE ``(cos, sin)`` over a ``num_frames x (height/p) x (width/p)`` grid (None without RoPE)."""
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
        camera_tokens: torch.Tensor | None = None,
        image_rotary_emb: tuple[torch.Tensor, torch.Tensor] | None = None,
        view_rotary_emb: tuple[torch.Tensor, torch.Tensor] | None = None,
        ofs: torch.Tensor | float | None = None,
        attention_kwargs: dict[str, Any] | None = None,
        return_dict: bool = True,
    ) -> Transformer2DModelOutput | tuple[torch.Tensor]:
        """Predict the v-target of the noisy target frames of every view.

        Args:
            hidden_states: ``(B, V, F, 16, h, w)`` noisy latents of the target frames.
            encoder_hidden_states: ``(B, L, text_embed_dim)`` text embeddings, one per batch element.
            timestep: scalar or ``(B,)``.
            reference_latents: ``(B, V, 1, 16, h, w)`` clean reference latent of every view.
            pose_latents: ``(B, V, 1 + F, 16, h, w)`` reference pose then target poses, per view.
            camera_tokens: ``(B, V, (h/p) * (w/p), D)`` camera-encoder output, or None (no camera).
            image_rotary_emb: RoPE over ``1 + F`` frames; built if None.
            view_rotary_emb: RoPE over ``V`` views; built if None.
            ofs: CogVideoX 1.5 only.
            attention_kwargs: Passed to the attention processors.
            return_dict: Return a ``Transformer2DModelOutput`` instead of a tuple.

        Returns:
            ``sample`` ``(B, V, F, 16, h, w)`` for the target frames (reference frame dropped).

        Raises:
            ValueError: on inputs whose shapes do not fit together.
        """
        if hidden_states.ndim != 6:
            raise ValueError(f"hidden_states: expected (B, V, F, C, h, w), got {tuple(hidden_states.shape)}")
        check_latent_inputs(hidden_states, reference_latents, pose_latents, self.config.out_channels,
                            self.config.patch_size)  # fmt: skip
        b, v, frames, _, height, width = hidden_states.shape
        f = frames + 1
        p = self.config.patch_size
        n = (height // p) * (width // p)
        if encoder_hidden_states.ndim != 3 or encoder_hidden_states.shape[0] != b:
            raise ValueError(f"encoder_hidden_states: expected (B={b}, L, D), got {tuple(encoder_hidden_states.shape)}")
        dim = self.config.num_attention_heads * self.config.attention_head_dim
        if camera_tokens is not None and tuple(camera_tokens.shape) != (b, v, n, dim):
            raise ValueError(f"camera_tokens: expected shape {(b, v, n, dim)}, got {tuple(camera_tokens.shape)}")

        x = torch.cat([torch.cat([reference_latents, hidden_states], dim=2), pose_latents], dim=3)
        temb = time_embedding(self, timestep, b, x.dtype, x.device, ofs)
        if image_rotary_emb is None:
            image_rotary_emb = self.rotary_embeddings(f, height, width, x.device)
        if view_rotary_emb is None:
            view_rotary_emb = self.rotary_embeddings(v, height, width, x.device)

        length = encoder_hidden_states.shape[1]
        text = encoder_hidden_states.repeat_interleave(v, dim=0)
        tokens = self.embedding_dropout(self.patch_embed(text, x.reshape(b * v, f, *x.shape[3:])))
        text = tokens[:, :length].reshape(b, v, length, dim)
        tokens = tokens[:, length:].reshape(b, v, f, n, dim)
        if camera_tokens is not None:
            tokens = tokens + camera_tokens.to(tokens.dtype).unsqueeze(2)
        # Every frame's view-branch text stream starts from its own batch element's text (view 0's copy).
        text_per_frame = text[:, :1].expand(b, f, length, dim).contiguous()
        text_per_view = text
        for block in self.transformer_blocks:
            args = (tokens, text_per_view, text_per_frame, temb, image_rotary_emb, view_rotary_emb, attention_kwargs)
            if torch.is_grad_enabled() and self.gradient_checkpointing:
                tokens, text_per_view, text_per_frame = self._gradient_checkpointing_func(block, *args)
            else:
                tokens, text_per_view, text_per_frame = block(*args)

        tokens = tokens.reshape(b, v * f * n, dim)
        tokens = self.proj_out(self.norm_out(self.norm_final(tokens), temb=temb))
        sample = unpatchify(tokens.reshape(b * v, f * n, -1), f, height, width, p)[:, 1:]
        sample = sample.reshape(b, v, frames, *sample.shape[2:])
        if not return_dict:
            return (sample,)
        return Transformer2DModelOutput(sample=sample)
