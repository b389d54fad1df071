"""The training config: one frozen dataclass, read from a JSON file (``reference_model/configs/*.json``).

A config file holds the fields of :class:`TrainConfig`; its ``data`` object holds those of
:class:`reference_model.data.DataConfig` (``root`` relative paths are taken from the working directory).
``charactershot train --set key=value`` overrides single fields (``data.batch_size=4``, ``max_steps=100``).
"""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from reference_model.data import STAGES, DataConfig

__all__ = ["COGVIDEOX_SCHEDULER", "TrainConfig", "load_config"]

# The scheduler of THUDM/CogVideoX-5b-I2V (scheduler/scheduler_config.json): v-prediction over a
# scaled-linear schedule rescaled to zero terminal SNR, trailing timestep spacing.
COGVIDEOX_SCHEDULER: dict[str, Any] = {
    "beta_start": 0.00085,
    "beta_end": 0.012,
    "beta_schedule": "scaled_linear",
    "clip_sample": False,
    "num_train_timesteps": 1000,
    "prediction_type": "v_prediction",
    "rescale_betas_zero_snr": True,
    "set_alpha_to_one": True,
    "snr_shift_scale": 1.0,
    "steps_offset": 0,
    "timestep_spacing": "trailing",
}


@dataclass(frozen=True)
class TrainConfig:
    """Everything a training run depends on (saved next to its checkpoints).

    Attributes:
        stage: ``"2d"`` (stage 1, the pose-conditioned transformer) or ``"multiview"`` (stage 2).
        data: the data config (its ``stage`` must equal ``stage``).
        model: transformer config overrides (empty: the CogVideoX-5B-I2V config); ignored when
            ``pretrained`` or ``init_from`` gives the model.
        camera_encoder: camera-encoder config overrides (stage 2; ``out_channels`` defaults to the model width).
        pretrained: a diffusers model folder to start from: stage 1 reads a CogVideoX(-I2V) or stage-1
            ``transformer/`` folder; stage 2 a stage-2 folder (``transformer/`` + ``camera_encoder/``).
        init_from: stage 2 only: a stage-1 folder (``transformer/``) whose weights start stage 2
            (view branch copied, ``MultiViewTransformer3DModel.from_stage1``).
        codec: ``"space_to_depth"`` (weight-free, exact) or ``"cogvideox_vae"`` (needs ``vae_path``).
        codec_factor: block size of the space-to-depth codec (8 = the VAE's spatial factor).
        vae_path: a CogVideoX-5b-I2V folder holding ``vae/``.
        latent_cache: a folder for encoded latents (``reference_model.training.latent_cache``; None: encode
            every step). Worth it with the VAE; the space-to-depth codec is cheaper than reading a file.
        text_encoder_path: a folder holding ``tokenizer/`` and ``text_encoder/`` (T5-v1.1-XXL, 226 tokens);
            None: no text encoder, every example gets zero text embeddings (the small model's setting).
        scheduler: ``CogVideoXDDIMScheduler`` config (default: CogVideoX-5b-I2V's, ``COGVIDEOX_SCHEDULER``).
        reference_noise: CogVideoX-I2V's noise augmentation of the reference image: sigma = exp(N(mean, std))
            as ``(mean, std)``; ``None`` switches it off. Default (-3.0, 0.5) as the released trainer.
        learning_rate: AdamW peak learning rate (2e-5 as the released CharacterShot scripts).
        adam_betas: (0.9, 0.95) as the released scripts. weight_decay: 1e-4 (same). adam_eps: 1e-8.
        max_grad_norm: gradient clipping (1.0 as the released scripts).
        lr_scheduler: a diffusers ``get_scheduler`` name ("constant_with_warmup", "cosine", ...).
        warmup_steps: learning-rate warm-up steps (100 as the released scripts).
        max_steps: optimiser steps to train.
        time_limit_s: stop (with a final checkpoint and model) once training has run this many seconds;
            0: no limit (for jobs with a wall-clock budget; a resumed run continues from that checkpoint).
        gradient_accumulation_steps: batches per optimiser step.
        mixed_precision: "no", "bf16" (CogVideoX-5B's dtype) or "fp16".
        gradient_checkpointing: recompute block activations in the backward pass.
        checkpoint_every: optimiser steps between checkpoints (0: only the final one).
        keep_checkpoints: newest checkpoints kept (older ones are deleted).
        log_every: optimiser steps between log lines.
        sample_every: optimiser steps between preview videos in TensorBoard (0: never).
        sample_steps: denoising steps of the preview sampler.
        num_workers: DataLoader worker processes per rank.
        seed: seeds model initialisation, noise and timesteps (the data has its own seed).
        output_dir: where checkpoints, logs and the final model go.
    """

    stage: str = "2d"
    data: DataConfig = field(default_factory=lambda: DataConfig(root="out/c4d"))
    model: Mapping[str, Any] = field(default_factory=dict)
    camera_encoder: Mapping[str, Any] = field(default_factory=dict)
    pretrained: str | None = None
    init_from: str | None = None
    codec: str = "space_to_depth"
    codec_factor: int = 8
    vae_path: str | None = None
    latent_cache: str | None = None
    text_encoder_path: str | None = None
    scheduler: Mapping[str, Any] = field(default_factory=lambda: dict(COGVIDEOX_SCHEDULER))
    reference_noise: tuple[float, float] | None = (-3.0, 0.5)
    learning_rate: float = 2e-5
    adam_betas: tuple[float, float] = (0.9, 0.95)
    weight_decay: float = 1e-4
    adam_eps: float = 1e-8
    max_grad_norm: float = 1.0
    lr_scheduler: str = "constant_with_warmup"
    warmup_steps: int = 100
    max_steps: int = 1000
    time_limit_s: float = 0.0
    gradient_accumulation_steps: int = 1
    mixed_precision: str = "bf16"
    gradient_checkpointing: bool = True
    checkpoint_every: int = 500
    keep_checkpoints: int = 2
    log_every: int = 10
    sample_every: int = 0
    sample_steps: int = 25
    num_workers: int = 2
    seed: int = 0
    output_dir: str = "out/train"

    def __post_init__(self) -> None:
        if self.stage not in STAGES:
            raise ValueError(f"TrainConfig.stage: expected one of {STAGES}, got {self.stage!r}")
        if not isinstance(self.data, DataConfig):
            raise TypeError(f"TrainConfig.data: expected a DataConfig, got {type(self.data).__name__}")
        if self.data.stage != self.stage:
            raise ValueError(f"TrainConfig.data.stage: expected {self.stage!r} like the config's stage, got {self.data.stage!r}")
        if self.init_from is not None and self.stage != "multiview":
            raise ValueError("TrainConfig.init_from: only stage 'multiview' starts from a stage-1 model")
        if self.codec not in ("space_to_depth", "cogvideox_vae"):
            raise ValueError(f"TrainConfig.codec: expected 'space_to_depth' or 'cogvideox_vae', got {self.codec!r}")
        if self.mixed_precision not in ("no", "bf16", "fp16"):
            raise ValueError(f"TrainConfig.mixed_precision: expected 'no', 'bf16' or 'fp16', got {self.mixed_precision!r}")
        for name in ("max_steps", "gradient_accumulation_steps", "keep_checkpoints", "log_every", "sample_steps"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"TrainConfig.{name}: expected a positive int, got {value!r}")
        for name in ("checkpoint_every", "sample_every", "num_workers", "warmup_steps"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise ValueError(f"TrainConfig.{name}: expected an int >= 0, got {value!r}")
        if not self.learning_rate > 0:
            raise ValueError(f"TrainConfig.learning_rate: expected > 0, got {self.learning_rate!r}")
        object.__setattr__(self, "model", dict(self.model))
        object.__setattr__(self, "camera_encoder", dict(self.camera_encoder))
        object.__setattr__(self, "scheduler", dict(self.scheduler))
        object.__setattr__(self, "adam_betas", tuple(float(b) for b in self.adam_betas))
        if self.reference_noise is not None:
            object.__setattr__(self, "reference_noise", tuple(float(x) for x in self.reference_noise))

    def to_json(self) -> dict[str, Any]:
        out = dataclasses.asdict(self)
        out["data"] = self.data.to_json()
        return out

    @classmethod
    def from_json(cls, obj: Mapping[str, Any]) -> TrainConfig:
        """Build from a JSON object; unknown fields are an error naming them.

        Raises:
            ValueError: unknown fields, or invalid values.
        """
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(obj) - known)
        if unknown:
            raise ValueError(f"training config: unknown fields {unknown}; known: {sorted(known)}")
        values = dict(obj)
        data = dict(values.get("data", {}))
        data_known = {f.name for f in dataclasses.fields(DataConfig)}
        unknown = sorted(set(data) - data_known)
        if unknown:
            raise ValueError(f"training config: unknown data fields {unknown}; known: {sorted(data_known)}")
        data.setdefault("stage", values.get("stage", "2d"))
        if "root" not in data:
            raise ValueError("training config: data.root is required (a character4d render output or shard folder)")
        values["data"] = DataConfig(**data)
        return cls(**values)


def _parse_value(text: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text  # a bare string, e.g. a path


def load_config(path: str | os.PathLike, overrides: Sequence[str] = (), stage: str | None = None) -> TrainConfig:
    """Read a JSON training config, apply ``key=value`` overrides (values parsed as JSON when they parse).

    Args:
        path: the JSON file.
        overrides: ``"max_steps=10"``, ``"data.batch_size=2"``, ``"data.root=out/c4d"``...
        stage: if given, the config's stage must be it (``charactershot train --stage``); a config
            without a stage takes it.

    Returns:
        The config.

    Raises:
        FileNotFoundError: no such file.
        ValueError: invalid JSON, a malformed override, unknown fields, or a stage mismatch.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"config: no such file {path}")
    try:
        obj = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise ValueError(f"config: {path} is not valid JSON ({exc})") from exc
    if not isinstance(obj, dict):
        raise ValueError(f"config: {path} must hold a JSON object")
    for item in overrides:
        if "=" not in item:
            raise ValueError(f"--set: expected KEY=VALUE, got {item!r}")
        key, value = item.split("=", 1)
        target = obj
        *parents, leaf = key.split(".")
        for part in parents:
            target = target.setdefault(part, {})
            if not isinstance(target, dict):
                raise ValueError(f"--set {key}: {part} is not an object")
        target[leaf] = _parse_value(value)
    if stage is not None:
        if obj.get("stage", stage) != stage:
            raise ValueError(f"config {path} is for stage {obj['stage']!r}, but --stage {stage} was given")
        obj["stage"] = stage
        obj.setdefault("data", {})["stage"] = stage
    return TrainConfig.from_json(obj)
