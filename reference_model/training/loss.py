"""The diffusion objective of CharacterShot (DESIGN.md 8.1), as CogVideoX trains it.

With ``x_t = sqrt(abar_t) x0 + sqrt(1 - abar_t) eps`` and the v-target ``v = sqrt(abar_t) eps -
sqrt(1 - abar_t) x0``, the model predicts ``v``; CogVideoX turns the prediction into an ``x0`` estimate
``x0_hat = sqrt(abar_t) x_t - sqrt(1 - abar_t) v_hat`` and weights its squared error by
``1 / (1 - abar_t)`` (``finetune/models/cogvideox_i2v/lora_trainer.py`` of the released code). Since
``x0_hat - x0 = -sqrt(1 - abar_t) (v_hat - v)``, that loss is exactly the plain v-prediction MSE; we compute
the CogVideoX form, and the tests check the identity.

The reference frame is conditioning, not a target: it is dropped before the loss (the transformers
already drop it from their output; ``reference_frames`` handles outputs that still carry it).
"""

from __future__ import annotations

import torch

__all__ = ["diffusion_loss", "per_example_weights"]


def _expand(values: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    return values.reshape(values.shape[0], *([1] * (like.ndim - 1)))


def per_example_weights(alphas_cumprod: torch.Tensor, timesteps: torch.Tensor) -> torch.Tensor:
    """CogVideoX's loss weight ``1 / (1 - abar_t)`` per example, ``[N]`` float32."""
    abar = alphas_cumprod.to(timesteps.device, torch.float32)[timesteps]
    return 1.0 / (1.0 - abar)


def diffusion_loss(
    model_output: torch.Tensor,
    noisy: torch.Tensor,
    clean: torch.Tensor,
    timesteps: torch.Tensor,
    alphas_cumprod: torch.Tensor,
    reference_frames: int = 0,
) -> torch.Tensor:
    """CogVideoX's weighted x0 loss from a v-prediction, over the target frames only.

    Args:
        model_output: ``[N, reference_frames + F, ...]`` predicted v (frames on axis 1; leading
            ``reference_frames`` frames are the reference and are ignored).
        noisy: ``[N, F, ...]`` the noisy target latents ``x_t`` the model saw.
        clean: ``[N, F, ...]`` the clean target latents ``x0``.
        timesteps: ``[N]`` int64 timesteps.
        alphas_cumprod: ``[T]`` the scheduler's ``abar``.
        reference_frames: leading frames of ``model_output`` to drop.

    Returns:
        Scalar float32: mean over examples of the per-example mean of ``(x0_hat - x0)^2 / (1 - abar_t)``.

    Raises:
        ValueError: if the shapes do not match after dropping the reference frames.
    """
    pred = model_output[:, reference_frames:]
    if pred.shape != clean.shape or noisy.shape != clean.shape:
        raise ValueError(
            f"model_output (after {reference_frames} reference frames), noisy, clean: expected equal shapes, got "
            f"{list(pred.shape)}, {list(noisy.shape)}, {list(clean.shape)}"
        )
    if timesteps.shape != (clean.shape[0],):
        raise ValueError(f"timesteps: expected shape [{clean.shape[0]}], got {list(timesteps.shape)}")
    abar = alphas_cumprod.to(clean.device, torch.float32)[timesteps]
    sqrt_abar = _expand(abar.sqrt(), clean)
    sqrt_one_minus = _expand((1.0 - abar).sqrt(), clean)
    x0_hat = sqrt_abar * noisy.float() - sqrt_one_minus * pred.float()
    weights = _expand(1.0 / (1.0 - abar), clean)
    per_example = (weights * (x0_hat - clean.float()) ** 2).flatten(1).mean(dim=1)
    return per_example.mean()
