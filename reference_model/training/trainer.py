"""Training both CharacterShot stages with accelerate: models, the step, exact checkpoints, logging.

One code path serves one CPU process, one GPU, several GPUs and several nodes: ``accelerate launch`` with
one of the configs in ``reference_model/configs/accelerate/`` (DDP, DeepSpeed ZeRO-2/ZeRO-3, FSDP) picks
the strategy; this module only calls ``Accelerator``. The data stream is split across ranks by
``reference_model.data.TrainingStream`` itself (disjoint samples per epoch), so the DataLoader is not
handed to accelerate.

Exact resume: a checkpoint (``accelerator.save_state``) holds the model, the optimiser, the learning-rate
schedule, the RNG states and :class:`TrainState` (optimiser steps taken, the noise generator's state);
the data position follows from the step count (``start_batch = step * gradient_accumulation_steps``),
and every example is a pure function of its stream position. A resumed run therefore takes bit-identical
next steps (checked on CPU by ``tests/reference_model/test_train.py``).

Outputs under ``output_dir``: ``config.json``, ``log.jsonl`` (one line per logged step: loss, lr,
samples/s), ``logs/`` (TensorBoard: the same scalars and preview videos as image grids),
``checkpoints/step-NNNNNNN/`` and the final model in ``model/`` (``transformer/`` and, for stage 2,
``camera_encoder/``, each a diffusers ``save_pretrained`` folder).
"""

from __future__ import annotations

import json
import math
import shutil
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from reference_model.data import TrainingStream, to_model_range
from reference_model.training.config import TrainConfig
from reference_model.training.loss import diffusion_loss

__all__ = ["DiffusionModel", "TextConditioner", "TrainState", "Trainer", "build_model", "load_trained_model"]


# --------------------------------------------------------------------------------------------
# Models
# --------------------------------------------------------------------------------------------


class DiffusionModel(nn.Module):
    """The trainable part of a stage: the transformer, plus the camera encoder in stage 2.

    One module, so that DDP / DeepSpeed / FSDP wrap, shard and checkpoint both together.

    Args:
        transformer: a ``PoseTransformer3DModel`` (stage 1) or ``MultiViewTransformer3DModel`` (stage 2).
        camera_encoder: a ``CameraEncoder`` (stage 2) or None.
    """

    def __init__(self, transformer: nn.Module, camera_encoder: nn.Module | None = None) -> None:
        super().__init__()
        self.transformer = transformer
        self.camera_encoder = camera_encoder

    @property
    def multiview(self) -> bool:
        return self.camera_encoder is not None

    def forward(
        self,
        noisy: torch.Tensor,
        text: torch.Tensor,
        timesteps: torch.Tensor,
        reference_latents: torch.Tensor,
        pose_latents: torch.Tensor,
        rays: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """The v-prediction of the target frames.

        Args:
            noisy: ``[B, V, F, C, h, w]`` noisy target latents (V = 1 in stage 1).
            text: ``[B, L, D]`` text embeddings.
            timesteps: ``[B]``.
            reference_latents: ``[B, V, 1, C, h, w]``.
            pose_latents: ``[B, V, 1 + F, C, h, w]``.
            rays: ``[B, V, 6, H, W]`` Plücker maps (stage 2 only).

        Returns:
            ``[B, V, F, C, h, w]``.
        """
        if not self.multiview:
            out = self.transformer(noisy[:, 0], text, timesteps, reference_latents[:, 0], pose_latents[:, 0]).sample
            return out[:, None]
        if rays is None:
            raise ValueError("rays: stage 2 needs the Plücker maps of the views")
        tokens = self.camera_encoder(rays)  # [B, V, N, D]
        return self.transformer(noisy, text, timesteps, reference_latents, pose_latents, camera_tokens=tokens).sample


def _model_folder(path: str | Path) -> Path:
    """A model folder (``transformer/`` inside), also given as a training output dir (``model/`` inside)."""
    path = Path(path)
    for candidate in (path, path / "model"):
        if (candidate / "transformer" / "config.json").is_file():
            return candidate
    raise FileNotFoundError(
        f"no model at {path}: expected {path}/transformer/config.json (a save_pretrained folder), or a training "
        f"output directory holding model/transformer/"
    )


def _check_output_rank(config: TrainConfig) -> None:
    """Warn about a width below the values each token must predict (``patch^2 x latent channels``).

    ``proj_out`` maps the model width to ``patch^2 x C`` outputs per token; with fewer dimensions than
    outputs part of every token's prediction is out of reach, and that part of the noise is never removed
    by the sampler (a small model with width 512 over the 192-channel space-to-depth latents left visible
    noise in every generated frame). CogVideoX-5B: 3072 >= 2 * 2 * 16.
    """
    model = config.model
    if config.pretrained or config.init_from or not model:
        return
    width = model.get("num_attention_heads", 48) * model.get("attention_head_dim", 64)
    outputs = model.get("patch_size", 2) ** 2 * model.get("out_channels", 16)
    if width < outputs:
        warnings.warn(
            f"model: width num_attention_heads x attention_head_dim = {width} is below patch_size^2 x out_channels = "
            f"{outputs}: the output projection cannot reach every predicted value and samples keep part of their "
            f"noise; use a width of at least {outputs}",
            stacklevel=3,
        )


def _load_stage1(path: str | Path, device: torch.device | str) -> nn.Module:
    """Stage-1 weights from a CogVideoX-5B-I2V folder, a stage-1 folder or a stage-1 training output dir."""
    from reference_model.checkpoints import load_cogvideox_i2v_transformer

    path = Path(path)
    folder = path / "model" if (path / "model" / "transformer" / "config.json").is_file() else path
    return load_cogvideox_i2v_transformer(folder, device=device).train().requires_grad_(True)


def build_model(config: TrainConfig, device: torch.device | str = "cpu") -> DiffusionModel:
    """The model a config trains, initialised as the config says, built directly on ``device``.

    Stage 1: ``pretrained`` (a CogVideoX-5B-I2V folder, loaded by
    ``reference_model.checkpoints.load_cogvideox_i2v_transformer``, or a stage-1 folder) or a random init
    of ``model``. Stage 2: ``pretrained`` (a stage-2 folder), ``init_from`` (a stage-1 folder, a stage-1
    training output or the CogVideoX-5B-I2V folder itself: view branch copied) or a random stage 1 of
    ``model`` turned into stage 2 (so the view branch still starts as a copy).

    Raises:
        FileNotFoundError: a named model folder does not hold a model (``CheckpointNotFoundError`` says
            where to put the weights).
    """
    from reference_model.camera import CameraEncoder
    from reference_model.transformer import PoseTransformer3DModel
    from reference_model.transformer_multiview import MultiViewTransformer3DModel

    _check_output_rank(config)
    torch.manual_seed(config.seed)
    with torch.device(device):  # parameters are created where they will live (never 5B on the CPU first)
        if config.stage == "2d":
            if config.pretrained:
                transformer = _load_stage1(config.pretrained, device)
            else:
                transformer = PoseTransformer3DModel(**config.model)
            return DiffusionModel(transformer)
        if config.pretrained:
            folder = _model_folder(config.pretrained)
            transformer = MultiViewTransformer3DModel.from_pretrained(folder / "transformer").to(device)
            encoder = CameraEncoder.from_pretrained(folder / "camera_encoder").to(device)
            return DiffusionModel(transformer, encoder)
        if config.init_from:
            stage1 = _load_stage1(config.init_from, device)
        else:
            stage1 = PoseTransformer3DModel(**config.model)
        transformer = MultiViewTransformer3DModel.from_stage1(stage1)
        del stage1
        width = transformer.config.num_attention_heads * transformer.config.attention_head_dim
        encoder = CameraEncoder(**{"out_channels": width, **config.camera_encoder})
        return DiffusionModel(transformer, encoder)


def load_trained_model(path: str | Path, device: torch.device | str = "cpu") -> DiffusionModel:
    """A model saved by :meth:`Trainer.save_model` (``transformer/`` and optional ``camera_encoder/``).

    Raises:
        FileNotFoundError: no model there.
    """
    from reference_model.camera import CameraEncoder
    from reference_model.transformer import PoseTransformer3DModel
    from reference_model.transformer_multiview import MultiViewTransformer3DModel

    folder = _model_folder(path)
    if (folder / "camera_encoder" / "config.json").is_file():
        transformer = MultiViewTransformer3DModel.from_pretrained(folder / "transformer")
        return DiffusionModel(transformer, CameraEncoder.from_pretrained(folder / "camera_encoder")).to(device)
    return DiffusionModel(PoseTransformer3DModel.from_pretrained(folder / "transformer")).to(device)


class TextConditioner:
    """Prompts -> ``[B, L, D]`` text embeddings: T5 when its weights are given, zeros otherwise.

    Embeddings are computed once per distinct prompt and kept (the text encoder is frozen).

    Args:
        path: a folder with ``tokenizer/`` and ``text_encoder/`` (CogVideoX's T5-v1.1-XXL), or None.
        length: text tokens ``L`` (the transformer's ``max_text_seq_length``, 226 for CogVideoX).
        dim: embedding width ``D`` (the transformer's ``text_embed_dim``).
        device: where embeddings are returned.

    Raises:
        FileNotFoundError: ``path`` has no tokenizer/text_encoder folders.
    """

    def __init__(self, path: str | None, length: int, dim: int, device: torch.device | str = "cpu") -> None:
        self.length, self.dim, self.device = int(length), int(dim), torch.device(device)
        self._cache: dict[str, torch.Tensor] = {}
        self.tokenizer = self.encoder = None
        if path is not None:
            folder = Path(path)
            if not ((folder / "tokenizer").is_dir() and (folder / "text_encoder").is_dir()):
                raise FileNotFoundError(
                    f"text_encoder_path: expected {folder}/tokenizer and {folder}/text_encoder (the T5 folders of "
                    "THUDM/CogVideoX-5b-I2V); leave it unset to train without text"
                )
            from transformers import AutoTokenizer, T5EncoderModel

            self.tokenizer = AutoTokenizer.from_pretrained(folder / "tokenizer")
            self.encoder = T5EncoderModel.from_pretrained(folder / "text_encoder").to(self.device).eval()
            self.encoder.requires_grad_(False)

    @torch.no_grad()
    def __call__(self, prompts: list[str]) -> torch.Tensor:
        out = []
        for prompt in prompts:
            if prompt not in self._cache:
                if self.encoder is None:
                    self._cache[prompt] = torch.zeros(self.length, self.dim, device=self.device)
                else:
                    ids = self.tokenizer(prompt, padding="max_length", max_length=self.length, truncation=True,
                                         add_special_tokens=True, return_tensors="pt").input_ids.to(self.device)
                    self._cache[prompt] = self.encoder(ids)[0][0].float()
            out.append(self._cache[prompt])
        return torch.stack(out)


# --------------------------------------------------------------------------------------------
# State and the step
# --------------------------------------------------------------------------------------------


@dataclass
class TrainState:
    """What a checkpoint adds to accelerate's own state: the step count and the noise generator.

    Attributes:
        step: optimiser steps taken.
        generator: the generator of timesteps and noise.
    """

    step: int
    generator: torch.Generator

    def state_dict(self) -> dict[str, Any]:
        return {"step": self.step, "generator": self.generator.get_state()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.step = int(state["step"])
        self.generator.set_state(state["generator"].cpu() if hasattr(state["generator"], "cpu") else state["generator"])


def encode_batch(batch: dict[str, Any], codec: Any, device: torch.device, generator: torch.Generator,
                 reference_noise: tuple[float, float] | None, cache: Any = None) -> dict[str, torch.Tensor]:
    """Pixels of a batch -> latents ``[B, V, ...]`` on ``device`` (targets, poses, reference, its pose).

    The reference image gets CogVideoX-I2V's noise augmentation (``sigma = exp(N(mean, std))`` per example)
    before encoding, when ``reference_noise`` is set. With a :class:`LatentCache`, every deterministic
    encoding (clips, pose maps, the reference pose, and the reference itself when it is not augmented) is
    read from it when present and written to it otherwise.
    """
    b, v, f = batch["video"].shape[:3]

    def encode(images: torch.Tensor) -> torch.Tensor:  # [B, V, F, 3, H, W] uint8 -> [B, V, f, C, h, w]
        x = to_model_range(images.to(device, non_blocking=True))
        lat = codec.encode_video(x.flatten(0, 1))
        return lat.reshape(b, v, *lat.shape[1:])

    def cached(kind: str, frames: torch.Tensor, compute):  # frames [B, n]: the frames the images show
        if cache is None:
            return compute()
        paths = [cache.path(batch["key"][i], kind, int(batch["views"][i, j]), frames[i].tolist())
                 for i in range(b) for j in range(v)]
        flat = cache.get_or_encode(paths, lambda: compute().flatten(0, 1))
        return flat.to(device).reshape(b, v, *flat.shape[1:])

    ref_frames = batch["reference_frame"].reshape(b, 1)

    def reference_latents() -> torch.Tensor:
        reference = to_model_range(batch["reference"].to(device, non_blocking=True))  # [B, V, 3, H, W]
        if reference_noise is not None:
            mean, std = reference_noise
            sigma = torch.exp(mean + std * torch.randn(b, generator=generator, device=device))
            noise = torch.randn(reference.shape, generator=generator, device=device)
            reference = reference + sigma.reshape(b, 1, 1, 1, 1) * noise
        ref = codec.encode_video(reference.flatten(0, 1)[:, None])
        return ref.reshape(b, v, *ref.shape[1:])

    ref = reference_latents() if reference_noise is not None else cached("reference", ref_frames, reference_latents)
    ref_pose = cached("reference_pose", ref_frames, lambda: encode(batch["reference_pose"][:, :, None]))
    return {
        "clean": cached("video", batch["frames"], lambda: encode(batch["video"])),
        "poses": torch.cat([ref_pose, cached("poses", batch["frames"], lambda: encode(batch["poses"]))], dim=2),
        "reference": ref,
    }


_RAY_CACHE: dict[tuple[bytes, bytes, int, int], torch.Tensor] = {}


def batch_rays(batch: dict[str, Any], height: int, width: int) -> torch.Tensor:
    """Plücker maps ``[B, V, 6, H, W]`` of the batch's cameras on the canvas (float64 maths on CPU).

    A rig has few distinct cameras (21 for Character4D), so each camera's map is computed once and kept
    instead of on every step in the training process.
    """
    from reference_model.camera import plucker_rays

    maps = []
    for k, m in zip(batch["Ks"].reshape(-1, 3, 3), batch["viewmats"].reshape(-1, 4, 4)):
        key = (k.numpy().tobytes(), m.numpy().tobytes(), height, width)
        if key not in _RAY_CACHE:
            if len(_RAY_CACHE) > 4096:
                _RAY_CACHE.clear()
            _RAY_CACHE[key] = plucker_rays(k[None], m[None], height, width)[0]
        maps.append(_RAY_CACHE[key])
    return torch.stack(maps).reshape(*batch["Ks"].shape[:2], 6, height, width)


def training_loss(model: nn.Module, batch: dict[str, Any], codec: Any, text: TextConditioner, scheduler: Any,
                  config: TrainConfig, generator: torch.Generator, device: torch.device,
                  cache: Any = None) -> torch.Tensor:
    """The loss of one batch (v-prediction, CogVideoX weighting, target frames only).

    Random draws, in this order, from ``generator``: reference-noise sigmas and noise, timesteps (one per
    example, shared by its views), target noise.
    """
    lat = encode_batch(batch, codec, device, generator, config.reference_noise, cache)
    clean = lat["clean"]
    b = clean.shape[0]
    timesteps = torch.randint(0, scheduler.config.num_train_timesteps, (b,), generator=generator, device=device)
    noise = torch.randn(clean.shape, generator=generator, device=device)
    noisy = scheduler.add_noise(clean, noise, timesteps)
    rays = None
    if config.stage == "multiview":
        rays = batch_rays(batch, config.data.height, config.data.width).to(device, non_blocking=True)
    pred = model(noisy, text(batch["prompt"]), timesteps, lat["reference"], lat["poses"], rays)
    # Views share their example's timestep: fold them into the frame axis for the per-example weight.
    return diffusion_loss(pred.flatten(1, 2), noisy.flatten(1, 2), clean.flatten(1, 2), timesteps,
                          scheduler.alphas_cumprod)


# --------------------------------------------------------------------------------------------
# Trainer
# --------------------------------------------------------------------------------------------


def _latest_checkpoint(folder: Path) -> Path | None:
    found = sorted(p for p in (folder / "checkpoints").glob("step-*") if (p / "train_state.json").is_file())
    return found[-1] if found else None


class Trainer:
    """A training run: ``Trainer(config).train()``.

    Args:
        config: the training config.
        resume: ``None`` (fresh run; refuses an output dir that already holds checkpoints), ``"latest"`` or a
            checkpoint folder.
        cpu: force the CPU (tests; accelerate's ``cpu=True``).
        progress: show a progress bar on the main process.

    Raises:
        FileExistsError: a fresh run into an output dir with checkpoints.
        FileNotFoundError: ``resume`` names no checkpoint.
    """

    def __init__(self, config: TrainConfig, resume: str | None = None, cpu: bool = False, progress: bool = True) -> None:
        from accelerate import Accelerator
        from accelerate.utils import ProjectConfiguration
        from diffusers import CogVideoXDDIMScheduler
        from diffusers.optimization import get_scheduler

        from reference_model.codec import build_codec

        self.config = config
        self.output_dir = Path(config.output_dir)
        self.progress = progress
        self.resume_from = self._resume_path(resume)
        self.accelerator = Accelerator(
            mixed_precision=config.mixed_precision,
            gradient_accumulation_steps=config.gradient_accumulation_steps,
            log_with="tensorboard",
            project_config=ProjectConfiguration(project_dir=str(self.output_dir), logging_dir=str(self.output_dir / "logs")),
            cpu=cpu,
        )
        device = self.accelerator.device
        self.codec = build_codec(config.codec, config.codec_factor, config.vae_path)
        if hasattr(self.codec, "vae"):
            self.codec.vae.to(device).requires_grad_(False)
        self.scheduler = CogVideoXDDIMScheduler(**config.scheduler)
        self.latent_cache = None
        if config.latent_cache:
            from reference_model.training.latent_cache import LatentCache

            d = config.data
            self.latent_cache = LatentCache(config.latent_cache, {
                "codec": self.codec.config(), "height": d.height, "width": d.width, "stage": d.stage,
                "multiview_pose": d.multiview_pose, "root": str(Path(d.root).resolve()),
            })
        model = build_model(config, device)
        if config.gradient_checkpointing:
            model.transformer.enable_gradient_checkpointing()
        tcfg = model.transformer.config
        self.text = TextConditioner(config.text_encoder_path, tcfg.max_text_seq_length, tcfg.text_embed_dim, device)
        params = [p for p in model.parameters() if p.requires_grad]
        self.num_parameters = sum(p.numel() for p in params)
        optimizer = torch.optim.AdamW(params, lr=config.learning_rate, betas=config.adam_betas,
                                      weight_decay=config.weight_decay, eps=config.adam_eps)
        self.lr_schedule = get_scheduler(config.lr_scheduler, optimizer, num_warmup_steps=config.warmup_steps,
                                         num_training_steps=config.max_steps)
        self.model, self.optimizer = self.accelerator.prepare(model, optimizer)
        self.state = TrainState(0, torch.Generator(device).manual_seed(config.seed + 1000 * self.accelerator.process_index))
        # The schedule is stepped once per optimiser step here (not accelerate's per-process stepping).
        self.accelerator.register_for_checkpointing(self.lr_schedule, self.state)
        if self.resume_from is not None:
            self.accelerator.load_state(str(self.resume_from))

    def _resume_path(self, resume: str | None) -> Path | None:
        if resume is None:
            if _latest_checkpoint(self.output_dir) is not None:
                raise FileExistsError(
                    f"{self.output_dir} already holds checkpoints: pass --resume latest to continue, or choose a new output dir"
                )
            return None
        path = _latest_checkpoint(self.output_dir) if resume == "latest" else Path(resume)
        if path is None or not (path / "train_state.json").is_file():
            raise FileNotFoundError(f"resume: no checkpoint at {resume if path is None else path} (expected train_state.json)")
        return path

    # -- pieces ---------------------------------------------------------------------------------

    def stream(self) -> TrainingStream:
        """This rank's data stream, positioned after the batches already trained on."""
        acc = self.accelerator
        start = self.state.step * self.config.gradient_accumulation_steps
        return TrainingStream(self.config.data, acc.process_index, acc.num_processes, start_batch=start)

    def loader(self, stream: TrainingStream) -> torch.utils.data.DataLoader:
        workers = self.config.num_workers
        return torch.utils.data.DataLoader(
            stream, batch_size=None, num_workers=workers, pin_memory=self.accelerator.device.type == "cuda",
            prefetch_factor=4 if workers else None, persistent_workers=False,
        )

    def loss(self, batch: dict[str, Any]) -> torch.Tensor:
        """The loss of one batch (autocast as configured)."""
        with self.accelerator.autocast():
            return training_loss(self.model, batch, self.codec, self.text, self.scheduler, self.config,
                                 self.state.generator, self.accelerator.device, self.latent_cache)

    def save_checkpoint(self) -> Path:
        """Write ``checkpoints/step-NNNNNNN`` (all ranks take part) and drop old ones. Returns its path."""
        acc = self.accelerator
        path = self.output_dir / "checkpoints" / f"step-{self.state.step:07d}"
        acc.save_state(str(path))
        if acc.is_main_process:
            (path / "train_state.json").write_text(json.dumps({"step": self.state.step, "config": self.config.to_json()}, indent=1))
            old = sorted((self.output_dir / "checkpoints").glob("step-*"))[: -self.config.keep_checkpoints]
            for folder in old:
                shutil.rmtree(folder, ignore_errors=True)
        acc.wait_for_everyone()
        return path

    def save_model(self, folder: str | Path | None = None) -> Path:
        """The model as diffusers folders: ``transformer/`` (+ ``camera_encoder/``). Returns the folder.

        The weights come from ``accelerator.get_state_dict``, which gathers ZeRO-3 / FSDP shards (the
        unwrapped module holds only this rank's shard there), and are written in diffusers' layout
        (``config.json`` + ``diffusion_pytorch_model.safetensors``), so ``from_pretrained`` reads them.
        """
        from safetensors.torch import save_file

        acc = self.accelerator
        folder = Path(folder) if folder is not None else self.output_dir / "model"
        model = acc.unwrap_model(self.model)
        state = acc.get_state_dict(self.model)  # every rank takes part in the gather
        if acc.is_main_process:
            for name, module in (("transformer", model.transformer), ("camera_encoder", model.camera_encoder)):
                if module is None:
                    continue
                prefix = f"{name}."
                sub = {k[len(prefix):]: v.detach().contiguous().cpu() for k, v in state.items() if k.startswith(prefix)}
                (folder / name).mkdir(parents=True, exist_ok=True)
                module.save_config(folder / name)
                save_file(sub, str(folder / name / "diffusion_pytorch_model.safetensors"), metadata={"format": "pt"})
        acc.wait_for_everyone()
        return folder

    @torch.no_grad()
    def preview(self, batch: dict[str, Any]) -> np.ndarray:
        """A preview grid (uint8 [H', W', 3]): per view, generated frames over ground-truth frames."""
        from reference_model.training.sampling import sample_latents

        device = self.accelerator.device
        model = self.accelerator.unwrap_model(self.model)
        model.eval()
        first = {k: v[:1] for k, v in batch.items()}  # the first example (tensors and lists alike)
        gen = torch.Generator(device).manual_seed(self.config.seed)
        lat = encode_batch(first, self.codec, device, gen, None)
        rays = batch_rays(first, self.config.data.height, self.config.data.width).to(device) if model.multiview else None
        with self.accelerator.autocast():
            latents = sample_latents(model, self.scheduler, self.text(first["prompt"]), lat["reference"], lat["poses"],
                                     rays, self.config.sample_steps, gen)
        model.train()
        video = self.codec.decode_video(latents[0].float()).clamp(-1, 1)  # [V, F, 3, H, W]
        target = to_model_range(first["video"][0].to(device))
        rows = torch.cat([torch.cat(list(video.unbind(1)), dim=-1), torch.cat(list(target.unbind(1)), dim=-1)], dim=-2)
        grid = torch.cat(list(rows.unbind(0)), dim=-2)  # views stacked vertically
        return ((grid.permute(1, 2, 0) + 1) * 127.5).round().clamp(0, 255).byte().cpu().numpy()

    # -- the loop -------------------------------------------------------------------------------

    def train(self) -> dict[str, Any]:
        """Train until ``max_steps``; returns a summary (final loss, steps, seconds, samples/s)."""
        from tqdm import tqdm

        acc, cfg = self.accelerator, self.config
        if acc.is_main_process:
            self.output_dir.mkdir(parents=True, exist_ok=True)
            (self.output_dir / "config.json").write_text(json.dumps(cfg.to_json(), indent=1))
        acc.init_trackers("train", config={k: v for k, v in cfg.to_json().items() if isinstance(v, (int, float, str, bool))})
        log_file = self.output_dir / "log.jsonl"
        stream = self.stream()
        bar = tqdm(total=cfg.max_steps, initial=self.state.step, desc=f"train {cfg.stage}", unit="step",
                   disable=not (self.progress and acc.is_main_process))
        examples_per_step = cfg.data.batch_size * cfg.gradient_accumulation_steps * acc.num_processes
        self.model.train()
        losses: list[float] = []
        last_loss = math.nan
        started = tick = time.perf_counter()
        steps_since = 0
        for batch in self.loader(stream):
            if self.state.step >= cfg.max_steps:
                break
            with acc.accumulate(self.model):
                loss = self.loss(batch)
                acc.backward(loss)
                grad_norm = acc.clip_grad_norm_(self.model.parameters(), cfg.max_grad_norm) if acc.sync_gradients else None
                self.optimizer.step()
                self.optimizer.zero_grad(set_to_none=True)
            losses.append(loss.detach())
            if not acc.sync_gradients:
                continue
            self.lr_schedule.step()
            self.state.step += 1
            steps_since += 1
            bar.update(1)
            if self.state.step % cfg.log_every == 0 or self.state.step == cfg.max_steps:
                mean_loss = acc.reduce(torch.stack(losses).mean(), reduction="mean").item()
                losses.clear()
                now = time.perf_counter()
                record = {
                    "step": self.state.step, "loss": mean_loss, "lr": self.lr_schedule.get_last_lr()[0],
                    "samples_per_s": examples_per_step * steps_since / (now - tick),
                    "grad_norm": float(grad_norm) if grad_norm is not None else None, "stage": cfg.stage,
                }
                tick, steps_since, last_loss = now, 0, mean_loss
                acc.log({k: v for k, v in record.items() if isinstance(v, float)}, step=self.state.step)
                if acc.is_main_process:
                    with open(log_file, "a") as handle:
                        handle.write(json.dumps(record) + "\n")
                bar.set_postfix(loss=f"{mean_loss:.4f}")
            if cfg.sample_every and self.state.step % cfg.sample_every == 0 and acc.is_main_process:
                self._log_preview(batch)
            if cfg.checkpoint_every and self.state.step % cfg.checkpoint_every == 0:
                self.save_checkpoint()
            if cfg.time_limit_s and self._out_of_time(started):
                break
        bar.close()
        if not (cfg.checkpoint_every and self.state.step % cfg.checkpoint_every == 0):
            self.save_checkpoint()  # the final state, unless the loop just wrote it
        self.save_model()
        acc.end_training()
        seconds = time.perf_counter() - started
        return {"step": self.state.step, "loss": last_loss, "seconds": seconds, "parameters": self.num_parameters}

    def _out_of_time(self, started: float) -> bool:
        # Every rank must stop at the same step: the main process decides and broadcasts.
        flag = torch.tensor([float(time.perf_counter() - started > self.config.time_limit_s)], device=self.accelerator.device)
        return bool(self.accelerator.reduce(flag, reduction="sum").item() > 0)

    def _log_preview(self, batch: dict[str, Any]) -> None:
        grid = self.preview(batch)
        for tracker in self.accelerator.trackers:
            if tracker.name == "tensorboard":
                tracker.writer.add_image("preview", grid, self.state.step, dataformats="HWC")
