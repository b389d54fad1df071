"""Latent codecs: pixels <-> the latent space the transformers denoise.

Two codecs share one small interface (``encode_video``, ``encode_image``, ``decode_video``,
``latent_channels``, ``spatial_factor``, ``temporal_factor``, ``latent_frames``):

- :class:`SpaceToDepthCodec`: weight-free and exact. Each ``s x s`` pixel block becomes ``3 s^2``
  channels (``pixel_unshuffle``), so ``decode(encode(x)) == x`` bit for bit. It stands in for the VAE
  when no VAE weights can be had: a model trained in this space is a real diffusion model over pixels,
  only without the VAE's perceptual compression. It keeps every frame (temporal factor 1).
- :class:`CogVideoXVAECodec`: the CogVideoX VAE (``AutoencoderKLCogVideoX``, 16 channels, 8x spatial and
  4x temporal compression, latents multiplied by the config's ``scaling_factor`` as CogVideoX trains),
  when its weights are present.

Shapes: videos ``[B, F, 3, H, W]`` in [-1, 1] (the CogVideoX convention), latents ``[B, f, C, h, w]``
(frames before channels, the layout the CogVideoX transformer takes).
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

__all__ = ["CogVideoXVAECodec", "SpaceToDepthCodec", "build_codec"]


def _check_video(video: Any, arg: str = "video") -> torch.Tensor:
    if not isinstance(video, torch.Tensor):
        raise TypeError(f"{arg}: expected a torch.Tensor [B, F, 3, H, W], got {type(video).__name__}")
    if video.ndim != 5 or video.shape[2] != 3:
        raise ValueError(f"{arg}: expected [B, F, 3, H, W], got {list(video.shape)}")
    return video


class SpaceToDepthCodec:
    """Exact, weight-free latent codec: ``s x s`` pixel blocks -> ``3 s^2`` channels.

    Args:
        factor: spatial block size ``s`` (8 matches the CogVideoX VAE's spatial compression, so the
            transformer sees the same token grid as with the VAE).
        scale: latents are ``scale * pixels``; 1.0 keeps the [-1, 1] range (unit-scale data, as the
            VAE's ``scaling_factor`` aims for).

    Raises:
        ValueError: if ``factor`` is not a positive int or ``scale`` is not positive.
    """

    temporal_factor = 1

    def __init__(self, factor: int = 8, scale: float = 1.0) -> None:
        if isinstance(factor, bool) or not isinstance(factor, int) or factor < 1:
            raise ValueError(f"factor: expected a positive int, got {factor!r}")
        if not scale > 0:
            raise ValueError(f"scale: expected a positive number, got {scale!r}")
        self.factor = factor
        self.scale = float(scale)

    @property
    def spatial_factor(self) -> int:
        return self.factor

    @property
    def latent_channels(self) -> int:
        return 3 * self.factor**2

    def latent_frames(self, num_frames: int) -> int:
        """Latent frames for ``num_frames`` video frames (every frame is kept)."""
        return int(num_frames)

    def encode_video(self, video: torch.Tensor) -> torch.Tensor:
        """Pixels -> latents.

        Args:
            video: ``[B, F, 3, H, W]`` in [-1, 1]; H and W multiples of ``factor``.

        Returns:
            ``[B, F, 3 s^2, H / s, W / s]``, same dtype.

        Raises:
            ValueError: for another shape or a size that is not a multiple of ``factor``.
        """
        video = _check_video(video)
        b, f, c, h, w = video.shape
        if h % self.factor or w % self.factor:
            raise ValueError(f"video: H and W must be multiples of {self.factor}, got {h} x {w}")
        latents = F.pixel_unshuffle(video.reshape(b * f, c, h, w), self.factor)
        return (latents * self.scale).reshape(b, f, *latents.shape[1:])

    def encode_image(self, image: torch.Tensor) -> torch.Tensor:
        """One image -> one latent frame: ``[B, 3, H, W]`` -> ``[B, 1, 3 s^2, H / s, W / s]``."""
        if not isinstance(image, torch.Tensor) or image.ndim != 4:
            raise ValueError(f"image: expected a tensor [B, 3, H, W], got {getattr(image, 'shape', image)!r}")
        return self.encode_video(image[:, None])

    def decode_video(self, latents: torch.Tensor) -> torch.Tensor:
        """Latents -> pixels (the exact inverse of :meth:`encode_video`).

        Args:
            latents: ``[B, F, 3 s^2, h, w]``.

        Returns:
            ``[B, F, 3, h s, w s]``; values outside [-1, 1] are left for the caller to clamp.

        Raises:
            ValueError: if the channel count is not ``3 s^2``.
        """
        if not isinstance(latents, torch.Tensor) or latents.ndim != 5 or latents.shape[2] != self.latent_channels:
            raise ValueError(
                f"latents: expected [B, F, {self.latent_channels}, h, w], got {list(getattr(latents, 'shape', []))}"
            )
        b, f = latents.shape[:2]
        video = F.pixel_shuffle(latents.reshape(b * f, *latents.shape[2:]) / self.scale, self.factor)
        return video.reshape(b, f, *video.shape[1:])

    def config(self) -> dict[str, Any]:
        """What identifies this codec's latents (part of the latent-cache key)."""
        return {"kind": "space_to_depth", "factor": self.factor, "scale": self.scale}


class CogVideoXVAECodec:
    """The CogVideoX VAE as a codec (encode with the posterior mean or a sample, times ``scaling_factor``).

    Args:
        vae: an ``AutoencoderKLCogVideoX`` (its weights loaded by the caller, or see :meth:`from_pretrained`).
        sample: draw from the posterior (as CogVideoX training does) instead of taking its mean.

    Raises:
        TypeError: if ``vae`` has no ``encode``/``decode`` or no ``config.scaling_factor``.
    """

    def __init__(self, vae: Any, sample: bool = True) -> None:
        if not (hasattr(vae, "encode") and hasattr(vae, "decode") and hasattr(getattr(vae, "config", None), "scaling_factor")):
            raise TypeError(f"vae: expected an AutoencoderKLCogVideoX, got {type(vae).__name__}")
        self.vae = vae
        self.sample = sample

    @classmethod
    def from_pretrained(cls, path: str | os.PathLike, **kwargs: Any) -> CogVideoXVAECodec:
        """Load ``<path>/vae`` (a diffusers CogVideoX model folder) or ``<path>`` itself.

        Raises:
            FileNotFoundError: if no VAE folder (``config.json``) is there, naming where it should be.
        """
        from diffusers import AutoencoderKLCogVideoX

        path = Path(path)
        folder = path / "vae" if (path / "vae" / "config.json").is_file() else path
        if not (folder / "config.json").is_file():
            raise FileNotFoundError(
                f"no CogVideoX VAE at {path}: expected {path}/vae/config.json with its weights (the 'vae' folder of "
                "THUDM/CogVideoX-5b-I2V), or use the weight-free codec (codec: space_to_depth)"
            )
        return cls(AutoencoderKLCogVideoX.from_pretrained(folder, **kwargs))

    @property
    def spatial_factor(self) -> int:
        return 2 ** (len(self.vae.config.block_out_channels) - 1)

    @property
    def temporal_factor(self) -> int:
        # The encoder halves time in its first log2(ratio) down blocks, and only blocks that downsample at
        # all (every block but the last) can: a VAE with fewer blocks compresses time less than its config says.
        levels = int(math.log2(self.vae.config.temporal_compression_ratio))
        return 2 ** min(levels, len(self.vae.config.block_out_channels) - 1)

    @property
    def latent_channels(self) -> int:
        return int(self.vae.config.latent_channels)

    def latent_frames(self, num_frames: int) -> int:
        """Latent frames for ``num_frames`` (1 + 4k frames -> 1 + k latents)."""
        return (int(num_frames) - 1) // self.temporal_factor + 1

    @torch.no_grad()
    def encode_video(self, video: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """``[B, F, 3, H, W]`` in [-1, 1] -> ``[B, f, 16, H / 8, W / 8]`` (scaled)."""
        video = _check_video(video)
        dist = self.vae.encode(video.permute(0, 2, 1, 3, 4).to(self.vae.dtype)).latent_dist
        latents = dist.sample(generator) if self.sample else dist.mode()
        return (latents * self.vae.config.scaling_factor).permute(0, 2, 1, 3, 4)

    def encode_image(self, image: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """``[B, 3, H, W]`` -> ``[B, 1, 16, H / 8, W / 8]``: the image as a one-frame video, as CogVideoX-I2V does."""
        return self.encode_video(image[:, None], generator)

    @torch.no_grad()
    def decode_video(self, latents: torch.Tensor) -> torch.Tensor:
        """``[B, f, 16, h, w]`` (scaled) -> ``[B, F, 3, 8h, 8w]``."""
        frames = self.vae.decode(latents.permute(0, 2, 1, 3, 4).to(self.vae.dtype) / self.vae.config.scaling_factor).sample
        return frames.permute(0, 2, 1, 3, 4)

    def config(self) -> dict[str, Any]:
        return {"kind": "cogvideox_vae", "vae": dict(self.vae.config), "sample": self.sample}


def build_codec(kind: str, factor: int = 8, vae_path: str | os.PathLike | None = None) -> Any:
    """The codec named ``kind``: ``"space_to_depth"`` or ``"cogvideox_vae"`` (needs ``vae_path``).

    Raises:
        ValueError: unknown kind, or ``cogvideox_vae`` without a path.
        FileNotFoundError: no VAE weights at ``vae_path``.
    """
    if kind == "space_to_depth":
        return SpaceToDepthCodec(factor)
    if kind == "cogvideox_vae":
        if vae_path is None:
            raise ValueError("codec 'cogvideox_vae' needs vae_path (a CogVideoX-5b-I2V folder holding vae/)")
        return CogVideoXVAECodec.from_pretrained(vae_path)
    raise ValueError(f"codec: unknown kind {kind!r}; known: 'space_to_depth', 'cogvideox_vae'")
