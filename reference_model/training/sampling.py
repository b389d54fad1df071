"""A short DDIM sampler over the training models (preview videos, the small model's predictions).

It runs the model exactly as training does (same latent layout, reference latent clean, every target
frame starting from noise) with a stock ``CogVideoXDDIMScheduler`` and no guidance (the small models are
trained without text). The full pipeline with guidance, the VAE and T5 is ``CharacterShotPipeline``.
"""

from __future__ import annotations

from typing import Any

import torch

__all__ = ["sample_latents"]


@torch.no_grad()
def sample_latents(
    model: torch.nn.Module,
    scheduler: Any,
    text: torch.Tensor,
    reference_latents: torch.Tensor,
    pose_latents: torch.Tensor,
    rays: torch.Tensor | None = None,
    num_steps: int = 25,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Denoise target latents from pure noise.

    Args:
        model: a :class:`reference_model.training.trainer.DiffusionModel` (unwrapped).
        scheduler: a ``CogVideoXDDIMScheduler`` (its config is used; timesteps are set here).
        text: ``[B, L, D]`` text embeddings.
        reference_latents: ``[B, V, 1, C, h, w]`` clean reference latents.
        pose_latents: ``[B, V, 1 + F, C, h, w]`` reference pose, then the target poses.
        rays: ``[B, V, 6, H, W]`` Plücker maps (stage 2) or None (stage 1, V = 1).
        num_steps: denoising steps.
        generator: seeds the initial noise.

    Returns:
        ``[B, V, F, C, h, w]`` latents (float32).
    """
    b, v, frames_plus_one = pose_latents.shape[:3]
    shape = (b, v, frames_plus_one - 1, *pose_latents.shape[3:])
    device = reference_latents.device
    latents = torch.randn(shape, generator=generator, device=device, dtype=torch.float32)
    scheduler.set_timesteps(num_steps, device=device)
    for t in scheduler.timesteps:
        timesteps = t.expand(b).to(device)
        out = model(latents, text, timesteps, reference_latents, pose_latents, rays).float()
        latents = scheduler.step(out, t, latents, return_dict=False)[0]
    return latents
