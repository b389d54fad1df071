"""``CharacterShotPipeline``: reference views + a 2D pose sequence + cameras -> multi-view video.

The sampler of CharacterShot's stage 2 (DESIGN.md 8.2), built on diffusers' ``DiffusionPipeline`` with a
stock CogVideoX scheduler (v-prediction) and an explicit denoising loop:

- the text, the camera tokens, the clean reference latents and the pose latents are computed once per
  generation, not per step;
- classifier-free guidance runs as one batch of two (negative prompt, prompt);
- every target latent frame starts from noise; the reference latent is a separate clean frame that the
  transformer prepends and drops again (the released code started the last latent frame from the clean
  reference instead of noise, DESIGN.md 8.4);
- views are generated in groups of ``group_size`` (5) sharing view 0, as the released inference does for
  the 21-view rig: ``[0, 1, 6, 11, 16], [0, 2, 7, 12, 17], ..., [0, 5, 10, 15, 20]``; view 0's frames
  come from the first group;
- with ``torch.distributed`` initialised, groups (and the two guidance halves) are spread over the
  processes (``reference_model.parallel``); the result is the same on every process.

Images and poses are ``[0, 1]`` RGB on the model's canvas (``H x W``, 480 x 720 for CharacterShot:
``to_canvas`` centres a square render on it, white behind images, black behind pose maps).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Callable, Sequence

import numpy as np
import torch
from diffusers.pipelines.pipeline_utils import DiffusionPipeline
from diffusers.schedulers import CogVideoXDDIMScheduler, CogVideoXDPMScheduler
from diffusers.utils import BaseOutput
from diffusers.utils.torch_utils import randn_tensor

__all__ = [
    "COGVIDEOX_SCHEDULER_CONFIG",
    "CharacterShotPipeline",
    "CharacterShotPipelineOutput",
    "to_canvas",
    "view_groups",
]

# The scheduler of THUDM/CogVideoX-5b-I2V (scheduler/scheduler_config.json): v-prediction, zero-terminal-SNR
# scaled-linear betas, trailing timesteps. Used when a model folder has no scheduler of its own.
COGVIDEOX_SCHEDULER_CONFIG: dict[str, Any] = {
    "beta_end": 0.012,
    "beta_schedule": "scaled_linear",
    "beta_start": 0.00085,
    "clip_sample": False,
    "clip_sample_range": 1.0,
    "num_train_timesteps": 1000,
    "prediction_type": "v_prediction",
    "rescale_betas_zero_snr": True,
    "sample_max_value": 1.0,
    "set_alpha_to_one": True,
    "snr_shift_scale": 1.0,
    "steps_offset": 0,
    "timestep_spacing": "trailing",
}

# The released inference's negative prompt (inference/cli_demo_4d.py).
DEFAULT_NEGATIVE_PROMPT = (
    "low quality, blurry, distorted face, deformed hands, extra fingers, missing limbs, cropped, bad anatomy, "
    "bad proportions, watermark"
)


def view_groups(num_views: int, group_size: int = 5) -> list[list[int]]:
    """Partition views ``0..num_views-1`` into groups that all start with view 0.

    The other views are dealt round-robin, so each group spans the orbit: for 21 views in groups of 5,
    ``[0, 1, 6, 11, 16], [0, 2, 7, 12, 17], [0, 3, 8, 13, 18], [0, 4, 9, 14, 19], [0, 5, 10, 15, 20]``
    (the released CharacterShot grouping).

    Args:
        num_views: Number of views (>= 1).
        group_size: Views per group, view 0 included (>= 2 unless there is a single view).

    Returns:
        The groups; one group ``[0, ..., num_views-1]`` when ``num_views <= group_size``.

    Raises:
        ValueError: on a non-positive count or a group size below 2 for several views.
    """
    if num_views < 1:
        raise ValueError(f"num_views: expected >= 1, got {num_views}")
    if num_views <= group_size:
        return [list(range(num_views))]
    if group_size < 2:
        raise ValueError(f"group_size: expected >= 2 (view 0 plus at least one more), got {group_size}")
    others = num_views - 1
    count = math.ceil(others / (group_size - 1))
    return [[0] + list(range(i, num_views, count)) for i in range(1, count + 1)]


def to_canvas(image: np.ndarray, height: int = 480, width: int = 720, background: float = 1.0) -> np.ndarray:
    """Resize a square image to ``height`` and centre it on a ``width x height`` canvas.

    This is how CharacterShot feeds 480 x 480 renders to a 720 x 480 model (white behind reference
    images, black behind pose maps). RGBA inputs are composited on ``background``.

    Args:
        image: ``[S, S, 3|4]`` uint8 or float in [0, 1].
        height: Canvas height (the side the image is resized to).
        width: Canvas width (>= height).
        background: Canvas and compositing value in [0, 1].

    Returns:
        ``[height, width, 3]`` float32 in [0, 1].

    Raises:
        ValueError: if the image is not square RGB(A) or the canvas is narrower than high.
    """
    from PIL import Image

    arr = np.asarray(image)
    if arr.ndim != 3 or arr.shape[2] not in (3, 4) or arr.shape[0] != arr.shape[1]:
        raise ValueError(f"image: expected a square [S, S, 3|4] array, got shape {arr.shape}")
    if width < height:
        raise ValueError(f"width: expected >= height ({height}), got {width}")
    arr = arr.astype(np.float32) / 255.0 if arr.dtype == np.uint8 else arr.astype(np.float32)
    if arr.shape[2] == 4:
        alpha = arr[..., 3:]
        arr = arr[..., :3] * alpha + background * (1.0 - alpha)
    if arr.shape[0] != height:
        pil = Image.fromarray(np.clip(arr * 255.0 + 0.5, 0, 255).astype(np.uint8))
        arr = np.asarray(pil.resize((height, height), Image.Resampling.BICUBIC), dtype=np.float32) / 255.0
    canvas = np.full((height, width, 3), background, dtype=np.float32)
    left = (width - height) // 2
    canvas[:, left : left + height] = arr
    return canvas


@dataclass
class CharacterShotPipelineOutput(BaseOutput):
    """Output of ``CharacterShotPipeline``.

    Attributes:
        frames: ``output_type="np"``: ``[V, T, H, W, 3]`` float32 in [0, 1]; ``"pt"``: ``[V, T, 3, H, W]``;
            ``"latent"``: ``[V, F, C, h, w]`` denoised latents. Views in input order.
        groups: The view groups that were denoised together.
    """

    frames: Any
    groups: list[list[int]]


def _images_tensor(name: str, value: Any, allowed: tuple[int, ...]) -> torch.Tensor:
    """[0, 1] images as a float tensor with channels before H, W.

    Accepts tensors, arrays (uint8 or float; channels last is moved), and lists of images (PIL or arrays).

    Raises:
        TypeError: for another type.
        ValueError: for a wrong number of dims, channels other than 3, or values outside [0, 1].
    """
    if isinstance(value, (list, tuple)):
        value = np.stack([np.asarray(v) for v in value])
    if isinstance(value, np.ndarray):
        arr = value.astype(np.float32) / 255.0 if value.dtype == np.uint8 else value.astype(np.float32)
        if arr.ndim >= 3 and arr.shape[-1] == 3 and arr.shape[-3] != 3:
            arr = np.moveaxis(arr, -1, -3)
        value = torch.from_numpy(np.ascontiguousarray(arr))
    if not isinstance(value, torch.Tensor):
        raise TypeError(f"{name}: expected a tensor, array or list of images, got {type(value).__name__}")
    if value.ndim not in allowed or value.shape[-3] != 3:
        dims = " or ".join(map(str, allowed))
        raise ValueError(f"{name}: expected {dims} dims with 3 channels before H, W, got shape {tuple(value.shape)}")
    value = value.float()
    if not torch.isfinite(value).all() or value.min() < 0 or value.max() > 1:
        raise ValueError(f"{name}: expected finite values in [0, 1]")
    return value


class CharacterShotPipeline(DiffusionPipeline):
    """Multi-view character video from reference views, a pose sequence and cameras.

    Components:
        tokenizer, text_encoder: T5 (``T5Tokenizer``, ``T5EncoderModel``); optional when prompt embeddings
            are given.
        vae: ``AutoencoderKLCogVideoX``.
        transformer: ``MultiViewTransformer3DModel`` (stage 2), or ``PoseTransformer3DModel`` (stage 1,
            every view generated on its own, no camera).
        scheduler: ``CogVideoXDDIMScheduler`` or ``CogVideoXDPMScheduler`` (v-prediction).
        camera_encoder: ``CameraEncoder``; optional (without it, no camera tokens).
    """

    model_cpu_offload_seq = "text_encoder->camera_encoder->transformer->vae"
    _optional_components = ["tokenizer", "text_encoder", "camera_encoder"]

    def __init__(self, tokenizer, text_encoder, vae, transformer, scheduler, camera_encoder=None):
        super().__init__()
        self.register_modules(
            tokenizer=tokenizer, text_encoder=text_encoder, vae=vae, transformer=transformer,
            scheduler=scheduler, camera_encoder=camera_encoder,
        )  # fmt: skip

    # -- helpers -------------------------------------------------------------------------------------------
    @property
    def vae_scale_factor_spatial(self) -> int:
        return 2 ** (len(self.vae.config.block_out_channels) - 1)

    @property
    def vae_scale_factor_temporal(self) -> int:
        return int(self.vae.config.temporal_compression_ratio)

    @property
    def multiview(self) -> bool:
        from reference_model.transformer_multiview import MultiViewTransformer3DModel

        return isinstance(self.transformer, MultiViewTransformer3DModel)

    def encode_prompt(self, prompt: str | Sequence[str], device: torch.device, dtype: torch.dtype,
                      max_sequence_length: int = 226) -> torch.Tensor:  # fmt: skip
        """T5 embeddings ``(N, max_sequence_length, D)`` of the prompts (padded to the maximum length).

        Raises:
            ValueError: if no tokenizer/text encoder is loaded.
        """
        if self.tokenizer is None or self.text_encoder is None:
            raise ValueError("prompt: this pipeline has no tokenizer/text_encoder; pass prompt_embeds instead")
        prompts = [prompt] if isinstance(prompt, str) else list(prompt)
        ids = self.tokenizer(prompts, padding="max_length", max_length=max_sequence_length, truncation=True,
                             add_special_tokens=True, return_tensors="pt").input_ids  # fmt: skip
        embeds = self.text_encoder(ids.to(self.text_encoder.device))[0]
        return embeds.to(device=device, dtype=dtype)

    def encode_video(self, video: torch.Tensor) -> torch.Tensor:
        """VAE latents (distribution mode, scaled) of ``[N, T, 3, H, W]`` [0, 1] videos -> ``[N, F, C, h, w]``.

        The mode rather than a sample: the conditions are then a function of the inputs alone, which makes
        a generation reproducible from its seed on any number of processes.
        """
        x = video.to(device=self.vae.device, dtype=self.vae.dtype).permute(0, 2, 1, 3, 4) * 2.0 - 1.0
        latents = self.vae.encode(x).latent_dist.mode() * self.vae.config.scaling_factor
        return latents.permute(0, 2, 1, 3, 4)

    def decode_latents(self, latents: torch.Tensor) -> torch.Tensor:
        """``[N, F, C, h, w]`` latents -> ``[N, T, 3, H, W]`` videos in [0, 1] (float32)."""
        x = latents.to(self.vae.dtype).permute(0, 2, 1, 3, 4) / self.vae.config.scaling_factor
        video = self.vae.decode(x).sample
        return ((video.float() + 1.0) / 2.0).clamp(0, 1).permute(0, 2, 1, 3, 4)

    def check_inputs(self, images: torch.Tensor, poses: torch.Tensor, reference_pose: torch.Tensor,
                     cameras: Any, num_inference_steps: int, guidance_scale: float, group_size: int,
                     prompt: Any, prompt_embeds: torch.Tensor | None) -> None:  # fmt: skip
        """Validate the inputs of ``__call__`` (after conversion to tensors).

        Raises:
            ValueError: naming the input that does not fit.
        """
        num_views, _, height, width = images.shape
        multiple = self.vae_scale_factor_spatial * self.transformer.config.patch_size
        if height % multiple or width % multiple:
            raise ValueError(f"images: expected H and W multiples of {multiple}, got {height} x {width}")
        if self.camera_encoder is not None and self.multiview and (height % 16 or width % 16):
            raise ValueError(f"images: the camera encoder needs H and W multiples of 16, got {height} x {width}")
        if poses.shape[-2:] != (height, width) or reference_pose.shape[-2:] != (height, width):
            raise ValueError(
                f"poses/reference_pose: expected the images' size {height} x {width}, got "
                f"{tuple(poses.shape[-2:])} and {tuple(reference_pose.shape[-2:])}"
            )
        if poses.ndim == 5 and poses.shape[0] != num_views:
            raise ValueError(f"poses: per-view poses need one sequence per image ({num_views}), got {poses.shape[0]}")
        if reference_pose.ndim == 4 and reference_pose.shape[0] != num_views:
            raise ValueError(f"reference_pose: expected one per image ({num_views}), got {reference_pose.shape[0]}")
        frames = poses.shape[-4]
        step = 2 * self.vae_scale_factor_temporal
        if (frames - 1) % step:
            # The CogVideoX VAE maps 1 + 4k frames to 1 + k latents, and decodes an odd latent count back to
            # 1 + 4k frames (an even count comes back as 4 (1 + k)): so 1 + 8m frames (9, 17, 25, 49).
            raise ValueError(f"poses: expected 1 + {step} m frames (9, 17, 25, ...), got {frames}")
        if cameras is not None and not all(hasattr(cameras, a) for a in ("Ks", "viewmats", "width", "height")):
            raise TypeError(f"cameras: expected a character4d.cameras.Cameras, got {type(cameras).__name__}")
        if self.multiview and self.camera_encoder is not None:
            if cameras is None:
                raise ValueError("cameras: required by the camera encoder (one camera per image)")
            if cameras.num_views != num_views:
                raise ValueError(f"cameras: expected {num_views} views (one per image), got {cameras.num_views}")
        if num_inference_steps < 1:
            raise ValueError(f"num_inference_steps: expected >= 1, got {num_inference_steps}")
        if not math.isfinite(guidance_scale) or guidance_scale < 0:
            raise ValueError(f"guidance_scale: expected a finite value >= 0, got {guidance_scale}")
        if group_size < 1:
            raise ValueError(f"group_size: expected >= 1, got {group_size}")
        if prompt is None and prompt_embeds is None:
            raise ValueError("prompt: pass a prompt or prompt_embeds")
        if not isinstance(self.scheduler, (CogVideoXDDIMScheduler, CogVideoXDPMScheduler)):
            raise ValueError(f"scheduler: expected a CogVideoX DDIM or DPM scheduler, got {type(self.scheduler).__name__}")
        if self.scheduler.config.prediction_type != "v_prediction":
            raise ValueError(f"scheduler: expected prediction_type 'v_prediction', got {self.scheduler.config.prediction_type!r}")

    def camera_tokens(self, cameras: Any, height: int, width: int) -> torch.Tensor | None:
        """Camera tokens ``[V, N, D]`` of the cameras on the ``width x height`` canvas (None without encoder).

        Square cameras (character4d renders) are placed on the canvas as ``to_canvas`` places their images.
        """
        from reference_model.camera import canvas_intrinsics, plucker_rays

        if self.camera_encoder is None or not self.multiview:
            return None
        Ks = np.asarray(cameras.Ks)
        if (cameras.width, cameras.height) != (width, height):
            if cameras.width != cameras.height:
                raise ValueError(
                    f"cameras: expected {width} x {height} or square cameras to place on the canvas, "
                    f"got {cameras.width} x {cameras.height}"
                )
            Ks = canvas_intrinsics(Ks, cameras.width, height, width)
        rays = plucker_rays(Ks, cameras.viewmats, height, width).to(self.camera_encoder.device)
        return self.camera_encoder(rays)

    # -- sampling --------------------------------------------------------------------------------------------
    def _predict(self, latents, prompt_embeds, t, reference, pose, camera, rope, view_rope, parallel):
        """Guided model output for one group's latents ``(1, Vg, F, C, h, w)``."""
        cfg = prompt_embeds.shape[0] == 2
        batch = torch.cat([latents, latents]) if cfg else latents
        batch = self.scheduler.scale_model_input(batch, t)
        n = batch.shape[0]
        kwargs = dict(encoder_hidden_states=prompt_embeds, timestep=t.expand(n), return_dict=False)
        half = parallel.guidance_half() if (parallel is not None and cfg) else None
        if half is not None:  # this process computes one half; its partner the other
            batch, kwargs["encoder_hidden_states"] = batch[half : half + 1], prompt_embeds[half : half + 1]
            kwargs["timestep"], n = t.expand(1), 1
        ref = reference.expand(n, *reference.shape[1:])
        pos = pose.expand(n, *pose.shape[1:])
        if self.multiview:
            cam = None if camera is None else camera.expand(n, *camera.shape[1:])
            out = self.transformer(batch, reference_latents=ref, pose_latents=pos, camera_tokens=cam,
                                   image_rotary_emb=rope, view_rotary_emb=view_rope, **kwargs)[0]  # fmt: skip
        else:
            out = self.transformer(batch[:, 0], reference_latents=ref[:, 0], pose_latents=pos[:, 0],
                                   image_rotary_emb=rope, **kwargs)[0].unsqueeze(1)  # fmt: skip
        out = out.float()
        if half is not None:
            out = parallel.exchange_guidance_halves(out, half)
        return out

    def _denoise_group(self, latents, prompt_embeds, reference, pose, camera, timesteps, guidance_scale,
                       use_dynamic_cfg, num_inference_steps, progress, parallel, callback, seed):  # fmt: skip
        # The DPM scheduler adds fresh noise every step: a generator per group, seeded from the caller's,
        # keeps a group's result independent of which process runs it.
        step_generator = torch.Generator().manual_seed(seed)
        frames, height, width = latents.shape[2], latents.shape[-2], latents.shape[-1]
        rope = self.transformer.rotary_embeddings(frames + 1, height, width, latents.device)
        view_rope = self.transformer.rotary_embeddings(latents.shape[1], height, width, latents.device) if self.multiview else None
        old_x0 = None
        for i, t in enumerate(timesteps):
            pred = self._predict(latents, prompt_embeds, t, reference, pose, camera, rope, view_rope, parallel)
            if prompt_embeds.shape[0] == 2:
                scale = guidance_scale
                if use_dynamic_cfg:
                    # CogVideoX's cosine ramp of the guidance scale over the steps (diffusers' CogVideoX pipelines).
                    scale = 1 + guidance_scale * (
                        (1 - math.cos(math.pi * ((num_inference_steps - t.item()) / num_inference_steps) ** 5.0)) / 2
                    )
                uncond, cond = pred.chunk(2)
                pred = uncond + scale * (cond - uncond)
            if isinstance(self.scheduler, CogVideoXDPMScheduler):
                latents, old_x0 = self.scheduler.step(
                    pred, old_x0, t, timesteps[i - 1] if i > 0 else None, latents, generator=step_generator,
                    return_dict=False,
                )
            else:
                latents = self.scheduler.step(pred, t, latents, return_dict=False)[0]
            latents = latents.to(prompt_embeds.dtype)
            if callback is not None:
                callback(i, t, latents)
            progress.update()
        return latents

    @torch.no_grad()
    def __call__(
        self,
        images: Any,
        poses: Any,
        cameras: Any = None,
        reference_pose: Any = None,
        prompt: str | None = "",
        negative_prompt: str | None = DEFAULT_NEGATIVE_PROMPT,
        prompt_embeds: torch.Tensor | None = None,
        negative_prompt_embeds: torch.Tensor | None = None,
        num_inference_steps: int = 50,
        guidance_scale: float = 6.0,
        use_dynamic_cfg: bool = False,
        group_size: int = 5,
        generator: torch.Generator | None = None,
        output_type: str = "np",
        return_dict: bool = True,
        max_sequence_length: int | None = None,
        parallel: Any = None,
        callback_on_step: Callable[[int, torch.Tensor, torch.Tensor], None] | None = None,
    ) -> CharacterShotPipelineOutput | tuple:
        """Generate the multi-view video.

        Args:
            images: ``[V, 3, H, W]`` (or ``[V, H, W, 3]``, or a list) reference image of every view, [0, 1];
                view 0 first (it joins every group).
            poses: ``[T, 3, H, W]`` pose maps shared by all views (CharacterShot conditions every view on
                the front view's poses) or ``[V, T, 3, H, W]`` per view; ``T = 1 + 8m`` (9, 17, 25).
            cameras: ``character4d.cameras.Cameras`` of the ``V`` views (square renders are placed on the
                canvas); needed with a camera encoder.
            reference_pose: ``[3, H, W]`` (or ``[V, 3, H, W]``) pose map of the reference image; default:
                the first pose frame (the reference image shows the first frame's pose).
            prompt, negative_prompt: Text and negative text (default negative: the released one).
            prompt_embeds, negative_prompt_embeds: ``(1, L, D)`` precomputed T5 embeddings instead.
            num_inference_steps: Denoising steps (50).
            guidance_scale: Classifier-free guidance weight (6, the released setting); <= 1 disables it.
            use_dynamic_cfg: Ramp the guidance scale over the steps (the released inference uses it with
                the DPM scheduler).
            group_size: Views per denoising pass, view 0 included (5).
            generator: Seeds the initial noise (drawn for all groups in order, whichever process runs them).
            output_type: ``"np"``, ``"pt"`` or ``"latent"``.
            return_dict: Return a ``CharacterShotPipelineOutput`` rather than a tuple.
            max_sequence_length: T5 tokens (default: the transformer's ``max_text_seq_length``, 226).
            parallel: A ``reference_model.parallel.ParallelContext`` (default: the current one when
                ``torch.distributed`` is initialised, else single process).
            callback_on_step: Called as ``f(step, t, latents)`` after each step of each group.

        Returns:
            ``CharacterShotPipelineOutput`` (``frames``, ``groups``).

        Raises:
            ValueError / TypeError: on inputs that do not fit (``check_inputs``).
        """
        from reference_model.parallel import ParallelContext

        if output_type not in ("np", "pt", "latent"):
            raise ValueError(f"output_type: expected 'np', 'pt' or 'latent', got {output_type!r}")
        images = _images_tensor("images", images, (4,))
        poses = _images_tensor("poses", poses, (4, 5))
        if reference_pose is None:
            reference_pose = poses[..., 0, :, :, :]
        reference_pose = _images_tensor("reference_pose", reference_pose, (3, 4))
        self.check_inputs(images, poses, reference_pose, cameras, num_inference_steps, guidance_scale,
                          group_size, prompt, prompt_embeds)  # fmt: skip
        if parallel is None:
            parallel = ParallelContext.current()
        device = self._execution_device
        dtype = self.transformer.dtype
        num_views, _, height, width = images.shape

        # Everything that does not change over the steps, once.
        max_sequence_length = max_sequence_length or self.transformer.config.max_text_seq_length
        cfg = guidance_scale > 1.0
        if prompt_embeds is None:
            prompt_embeds = self.encode_prompt(prompt, device, dtype, max_sequence_length)
        if cfg and negative_prompt_embeds is None:
            negative_prompt_embeds = self.encode_prompt(negative_prompt or "", device, dtype, max_sequence_length)
        text = torch.cat([negative_prompt_embeds, prompt_embeds]) if cfg else prompt_embeds
        text = text.to(device=device, dtype=dtype)
        reference_latents = self.encode_video(images.unsqueeze(1)).to(device, dtype)  # [V, 1, C, h, w]
        if poses.ndim == 4:
            pose_latents = torch.cat(
                [self.encode_video(reference_pose.reshape(1, 1, 3, height, width)), self.encode_video(poses[None])], dim=1
            ).expand(num_views, -1, -1, -1, -1)
        else:
            ref = reference_pose if reference_pose.ndim == 4 else reference_pose.expand(num_views, -1, -1, -1)
            pose_latents = torch.cat([self.encode_video(ref.unsqueeze(1)), self.encode_video(poses)], dim=1)
        pose_latents = pose_latents.to(device, dtype)  # [V, 1 + F, C, h, w]
        camera = self.camera_tokens(cameras, height, width) if cameras is not None else None
        if camera is not None:
            camera = camera.to(device, dtype)

        groups = view_groups(num_views, group_size) if self.multiview else [[v] for v in range(num_views)]
        frames = pose_latents.shape[1] - 1
        shape_of = lambda g: (1, len(g), frames, *reference_latents.shape[2:])  # noqa: E731
        # The initial noise of every group, in group order, so the result does not depend on who runs what.
        noise = [randn_tensor(shape_of(g), generator=generator, device=torch.device("cpu"), dtype=torch.float32)
                 for g in groups]  # fmt: skip
        seeds = torch.randint(0, 2**62, (len(groups),), generator=generator).tolist()
        self.scheduler.set_timesteps(num_inference_steps, device=device)
        timesteps = self.scheduler.timesteps
        mine = parallel.assign(len(groups))
        done: dict[int, torch.Tensor] = {}
        with self.progress_bar(total=len(mine) * len(timesteps)) as progress:
            for gi in mine:
                g = groups[gi]
                latents = (noise[gi] * self.scheduler.init_noise_sigma).to(device, dtype)
                done[gi] = self._denoise_group(
                    latents, text, reference_latents[g][None], pose_latents[g][None],
                    None if camera is None else camera[g][None], timesteps, guidance_scale, use_dynamic_cfg,
                    num_inference_steps, progress, parallel, callback_on_step, seeds[gi],
                )[0]  # fmt: skip
        done = parallel.gather(done, [shape_of(g)[1:] for g in groups], dtype, device)

        # Every view from the first group that holds it (view 0: the first group).
        per_view: list[torch.Tensor | None] = [None] * num_views
        for gi, g in enumerate(groups):
            for k, v in enumerate(g):
                if per_view[v] is None:
                    per_view[v] = done[gi][k]
        latents = torch.stack(per_view)  # [V, F, C, h, w]
        if output_type == "latent":
            result: Any = latents
        else:
            # All views in one call; ``vae.enable_slicing()`` makes the VAE decode them one by one on small GPUs.
            video = self.decode_latents(latents)
            result = video if output_type == "pt" else video.permute(0, 1, 3, 4, 2).cpu().numpy()
        self.maybe_free_model_hooks()
        if not return_dict:
            return (result, groups)
        return CharacterShotPipelineOutput(frames=result, groups=groups)
