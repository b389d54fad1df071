"""``charactershot generate``: multi-view videos of characters, written as a CharacterBench prediction folder.

Inputs are either character4d samples (``--sample``: a shard, shard folder or folder export) or explicit
files (``--images``, ``--poses``, ``--cameras``). From a sample, the reference image of each view is its
first motion frame (on white), the pose sequence is the front view's pose maps (CharacterShot conditions
every view on them), the reference pose is the first pose map, and the cameras are the sample's rig.

Output: ``<out>/<key>/view{VV}/frame{FFF}.png`` for every generated view and frame (the complete rig
grid when all 21 views and 25 frames are generated), cropped from the model's 720 x 480 canvas back to
the square render and resized to the ground truth's size, so ``characterbench validate/eval`` read it
directly. A finished sample folder is skipped when the command runs again.

Under ``torchrun --nproc-per-node N`` the view groups and guidance halves are spread over the processes
(``reference_model.parallel``); the first process writes the images.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import sys
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

import numpy as np

DEFAULT_PROMPT = "smooth motion or in the wind"  # the released inference's default prompt (cli_demo_4d.py)


@dataclass(frozen=True)
class GenerateConfig:
    """Settings of ``charactershot generate`` (defaults: the released CharacterShot inference).

    Attributes:
        model: Pipeline folder (``save_pretrained`` / converted) or the released CharacterShot folder.
        out: Prediction folder to write.
        sample: character4d samples to generate for (shard, shard folder or folder export).
        keys: Only these sample keys (default: all).
        images: Reference image per view (files in view order, or one folder of ``*view<k>*`` images).
        poses: Pose maps (files in frame order, or one folder sorted by the integer in the file names).
        cameras: ``cameras.json`` (character4d layout) of the ``--images`` views.
        reference_pose: Pose map of the reference image (default: the first pose map).
        key: Output folder name for ``--images`` input.
        prompt: Text prompt (the released default).
        negative_prompt: Negative prompt (default: the released one).
        steps: Denoising steps (50, the paper's).
        guidance: Classifier-free guidance scale (6, the released inference's).
        dynamic_cfg: Ramp the guidance over the steps (the released inference does, with the DPM scheduler).
        scheduler: ``keep`` (the folder's), ``ddim`` or ``dpm`` (the released inference switches to DPM,
            trailing spacing).
        seed: Seed of the initial noise (42, the released default).
        group_size: Views per denoising pass, view 0 included (5).
        frames: Frames to generate (1 + 8m; default: the most a sample holds up to 25).
        height: Canvas height (480).
        width: Canvas width (720).
        size: Side of the written images (default: the cameras' render size).
        dtype: ``bf16``, ``fp16`` or ``fp32`` (default: bf16 on CUDA, fp32 on CPU).
        device: ``auto``, ``cpu``, ``cuda``, ``cuda:1``...
        compile: ``torch.compile`` the transformer blocks.
        cpu_offload: Keep only the running model on the GPU (diffusers' model offload), for small GPUs.
        quiet: No progress bars.
    """

    model: str
    out: str
    sample: str | None = None
    keys: tuple[str, ...] = ()
    images: tuple[str, ...] = ()
    poses: tuple[str, ...] = ()
    cameras: str | None = None
    reference_pose: str | None = None
    key: str = "sample"
    prompt: str = DEFAULT_PROMPT
    negative_prompt: str | None = None
    steps: int = 50
    guidance: float = 6.0
    dynamic_cfg: bool = False
    scheduler: str = "keep"
    seed: int = 42
    group_size: int = 5
    frames: int | None = None
    height: int = 480
    width: int = 720
    size: int | None = None
    dtype: str | None = None
    device: str = "auto"
    compile: bool = False
    cpu_offload: bool = False
    quiet: bool = False


def _field_docs() -> dict[str, str]:
    doc = GenerateConfig.__doc__ or ""
    found = dict(re.findall(r"^\s{8}(\w+): (.+?)(?=^\s{8}\w+: |\Z)", doc, flags=re.M | re.S))
    return {k: " ".join(v.split()) for k, v in found.items()}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the ``generate`` options (help from ``GenerateConfig``'s field docs)."""
    docs = _field_docs()
    d = GenerateConfig(model="", out="")
    parser.add_argument("--model", required=True, help=docs.get("model"))
    parser.add_argument("--out", required=True, help=docs.get("out"))
    src = parser.add_argument_group("inputs (either --sample, or --images/--poses[/--cameras])")
    src.add_argument("--sample", help=docs.get("sample"))
    src.add_argument("--keys", nargs="+", default=(), help=docs.get("keys"))
    src.add_argument("--images", nargs="+", default=(), help=docs.get("images"))
    src.add_argument("--poses", nargs="+", default=(), help=docs.get("poses"))
    src.add_argument("--cameras", help=docs.get("cameras"))
    src.add_argument("--reference-pose", help=docs.get("reference_pose"))
    src.add_argument("--key", default=d.key, help=docs.get("key"))
    parser.add_argument("--prompt", default=d.prompt, help=docs.get("prompt"))
    parser.add_argument("--negative-prompt", default=None, help=docs.get("negative_prompt"))
    parser.add_argument("--steps", type=int, default=d.steps, help=docs.get("steps"))
    parser.add_argument("--guidance", type=float, default=d.guidance, help=docs.get("guidance"))
    parser.add_argument("--dynamic-cfg", action="store_true", help=docs.get("dynamic_cfg"))
    parser.add_argument("--scheduler", choices=("keep", "ddim", "dpm"), default=d.scheduler, help=docs.get("scheduler"))
    parser.add_argument("--seed", type=int, default=d.seed, help=docs.get("seed"))
    parser.add_argument("--group-size", type=int, default=d.group_size, help=docs.get("group_size"))
    parser.add_argument("--frames", type=int, default=None, help=docs.get("frames"))
    parser.add_argument("--height", type=int, default=d.height, help=docs.get("height"))
    parser.add_argument("--width", type=int, default=d.width, help=docs.get("width"))
    parser.add_argument("--size", type=int, default=None, help=docs.get("size"))
    parser.add_argument("--dtype", choices=("bf16", "fp16", "fp32"), default=None, help=docs.get("dtype"))
    parser.add_argument("--device", default=d.device, help=docs.get("device"))
    parser.add_argument("--compile", action="store_true", help=docs.get("compile"))
    parser.add_argument("--cpu-offload", action="store_true", help=docs.get("cpu_offload"))
    parser.add_argument("--quiet", action="store_true", help=docs.get("quiet"))


@dataclass
class Job:
    """One generation: the pipeline's inputs and where the images go."""

    key: str
    images: np.ndarray  # [V, H, W, 3] canvas, [0, 1]
    poses: np.ndarray  # [T, H, W, 3]
    reference_pose: np.ndarray  # [H, W, 3]
    cameras: Any
    view_indices: list[int]
    size: int


def _read_rgb(path: Path) -> np.ndarray:
    from PIL import Image

    with Image.open(path) as img:
        return np.asarray(img.convert("RGBA"))


def _on_canvas(image: np.ndarray, cfg: GenerateConfig, background: float) -> np.ndarray:
    from reference_model.pipeline import to_canvas

    if image.shape[0] == image.shape[1]:
        return to_canvas(image, cfg.height, cfg.width, background)
    if image.shape[:2] == (cfg.height, cfg.width):  # already on the canvas (the released examples are)
        arr = image.astype(np.float32) / 255.0
        if arr.shape[2] == 4:
            arr = arr[..., :3] * arr[..., 3:] + background * (1 - arr[..., 3:])
        return arr[..., :3]
    raise ValueError(f"image: expected a square render or a {cfg.width} x {cfg.height} canvas, got {image.shape[1]} x {image.shape[0]}")


def _frame_count(cfg: GenerateConfig, available: int) -> int:
    if cfg.frames is not None:
        if cfg.frames > available:
            raise ValueError(f"--frames: {cfg.frames} requested, only {available} pose maps given")
        return cfg.frames
    count = 1 + 8 * ((min(available, 25) - 1) // 8)
    if count < 9:
        raise ValueError(f"poses: at least 9 pose maps are needed (1 + 8m frames), got {available}")
    return count


def _sample_jobs(cfg: GenerateConfig):
    from character4d.format import open_samples

    for sample in open_samples(cfg.sample, keys=list(cfg.keys) or None):
        frames = _frame_count(cfg, sample.num_frames)
        views = range(sample.num_views)
        poses = [sample.pose(0, f) for f in range(frames)]
        yield Job(
            key=sample.key,
            images=np.stack([_on_canvas(sample.frame(v, 0), cfg, 1.0) for v in views]),
            poses=np.stack([_on_canvas(p, cfg, 0.0) for p in poses]),
            reference_pose=_on_canvas(poses[0], cfg, 0.0),
            cameras=sample.cameras,
            view_indices=[int(i) for i in sample.cameras.view_indices],
            size=cfg.size or sample.cameras.width,
        )


def _sorted_files(paths: tuple[str, ...], what: str, pattern: str | None = None) -> list[Path]:
    if len(paths) == 1 and Path(paths[0]).is_dir():
        folder = Path(paths[0])
        files = [p for p in folder.iterdir() if p.suffix.lower() in (".png", ".jpg", ".jpeg")]
        def number(p: Path) -> int:
            m = re.search(pattern, p.stem) if pattern else re.search(r"(\d+)$", p.stem)
            if not m:
                raise ValueError(f"--{what}: cannot read a number from {p.name} (expected {pattern or '<int>.png'})")
            return int(m.group(1))
        files = sorted(files, key=number)
    else:
        files = [Path(p) for p in paths]
    missing = [str(p) for p in files if not p.is_file()]
    if missing:
        raise ValueError(f"--{what}: files not found: {missing}")
    if not files:
        raise ValueError(f"--{what}: no images found in {paths}")
    return files


def _file_jobs(cfg: GenerateConfig):
    import json

    from character4d.cameras import Cameras

    images = _sorted_files(cfg.images, "images", r"view(\d+)")
    poses = _sorted_files(cfg.poses, "poses")
    cameras = None
    if cfg.cameras:
        try:
            cameras = Cameras.from_json(json.loads(Path(cfg.cameras).read_text()))
        except (OSError, ValueError) as exc:
            raise ValueError(f"--cameras: {exc}") from exc
        if cameras.num_views != len(images):
            raise ValueError(f"--cameras: {cameras.num_views} views for {len(images)} images")
    frames = _frame_count(cfg, len(poses))
    pose_maps = [_on_canvas(_read_rgb(p), cfg, 0.0) for p in poses[:frames]]
    ref = _on_canvas(_read_rgb(Path(cfg.reference_pose)), cfg, 0.0) if cfg.reference_pose else pose_maps[0]
    first = _read_rgb(images[0])
    size = cfg.size or (cameras.width if cameras is not None else (first.shape[0] if first.shape[0] == first.shape[1] else cfg.height))
    yield Job(
        key=cfg.key,
        images=np.stack([_on_canvas(_read_rgb(p), cfg, 1.0) for p in images]),
        poses=np.stack(pose_maps),
        reference_pose=ref,
        cameras=cameras,
        view_indices=[int(i) for i in cameras.view_indices] if cameras is not None else list(range(len(images))),
        size=size,
    )


def write_prediction(frames: np.ndarray, out: Path, key: str, view_indices: list[int], size: int,
                     height: int, width: int) -> Path:  # fmt: skip
    """Write ``[V, T, H, W, 3]`` canvas frames as ``out/key/view{VV}/frame{FFF}.png`` (atomically).

    Each frame is cropped to the centred square (the render ``to_canvas`` placed there) and resized to
    ``size``.

    Returns:
        The sample folder.
    """
    from PIL import Image

    from characterbench.predictions import cell_path

    final = out / key
    tmp = out / f".{key}.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    left = (width - height) // 2
    for v, view in enumerate(view_indices):
        for f in range(frames.shape[1]):
            square = np.clip(frames[v, f, :, left : left + height] * 255.0 + 0.5, 0, 255).astype(np.uint8)
            img = Image.fromarray(square)
            if size != height:
                img = img.resize((size, size), Image.Resampling.BICUBIC)
            path = cell_path(tmp.parent, tmp.name, (view, f))
            path.parent.mkdir(parents=True, exist_ok=True)
            img.save(path)
    if final.exists():
        shutil.rmtree(final)
    tmp.rename(final)
    return final


def _config(args: argparse.Namespace) -> GenerateConfig:
    names = {f.name for f in fields(GenerateConfig)}
    values = {k: v for k, v in vars(args).items() if k in names}
    for k in ("keys", "images", "poses"):
        values[k] = tuple(values.get(k) or ())
    return GenerateConfig(**values)


def run(args: argparse.Namespace) -> int:
    """Run ``charactershot generate``. Returns 0 on success, 1 on bad input, 2 on a usage error."""
    cfg = _config(args)
    if bool(cfg.sample) == bool(cfg.images):
        print("charactershot generate: give either --sample or --images (with --poses)", file=sys.stderr)
        return 2
    if cfg.images and not cfg.poses:
        print("charactershot generate: --images needs --poses", file=sys.stderr)
        return 2
    import torch

    from reference_model.checkpoints import CheckpointError, CheckpointNotFoundError, load_pipeline
    from reference_model.parallel import ParallelContext, init_from_environment
    from reference_model.pipeline import DEFAULT_NEGATIVE_PROMPT

    init_from_environment()
    parallel = ParallelContext.current()
    device = cfg.device
    if device == "auto":
        device = f"cuda:{int(os.environ.get('LOCAL_RANK', 0))}" if torch.cuda.is_available() else "cpu"
    dtype_name = cfg.dtype or ("bf16" if device.startswith("cuda") else "fp32")
    dtype = {"bf16": torch.bfloat16, "fp16": torch.float16, "fp32": torch.float32}[dtype_name]
    out = Path(cfg.out)
    try:
        pipe = load_pipeline(cfg.model, dtype=dtype)
    except (CheckpointNotFoundError, CheckpointError) as exc:
        print(f"charactershot generate: {exc}", file=sys.stderr)
        return 1
    if cfg.scheduler != "keep":
        from diffusers import CogVideoXDDIMScheduler, CogVideoXDPMScheduler

        cls = CogVideoXDPMScheduler if cfg.scheduler == "dpm" else CogVideoXDDIMScheduler
        pipe.scheduler = cls.from_config(pipe.scheduler.config, timestep_spacing="trailing")
    if cfg.cpu_offload:
        pipe.enable_model_cpu_offload(device=device)
    else:
        pipe.to(device)
    if device.startswith("cuda"):
        pipe.vae.enable_slicing()
        pipe.vae.enable_tiling()
    if cfg.compile:
        from reference_model.transformer import compile_blocks

        compile_blocks(pipe.transformer)
    pipe.set_progress_bar_config(disable=cfg.quiet or parallel.rank != 0)

    written = 0
    try:
        jobs = _sample_jobs(cfg) if cfg.sample else _file_jobs(cfg)
        for job in jobs:
            if (out / job.key).is_dir():
                if parallel.rank == 0 and not cfg.quiet:
                    print(f"{job.key}: already written, skipped")
                continue
            result = pipe(
                images=job.images, poses=job.poses, cameras=job.cameras, reference_pose=job.reference_pose,
                prompt=cfg.prompt,
                negative_prompt=DEFAULT_NEGATIVE_PROMPT if cfg.negative_prompt is None else cfg.negative_prompt,
                num_inference_steps=cfg.steps, guidance_scale=cfg.guidance, use_dynamic_cfg=cfg.dynamic_cfg,
                group_size=cfg.group_size, generator=torch.Generator().manual_seed(cfg.seed), parallel=parallel,
            )  # fmt: skip
            if parallel.rank == 0:
                out.mkdir(parents=True, exist_ok=True)
                folder = write_prediction(result.frames, out, job.key, job.view_indices, job.size, cfg.height, cfg.width)
                written += 1
                if not cfg.quiet:
                    print(f"{job.key}: {len(job.view_indices)} views x {result.frames.shape[1]} frames -> {folder}")
    except (ValueError, TypeError, FileNotFoundError) as exc:
        print(f"charactershot generate: {exc}", file=sys.stderr)
        return 1
    if parallel.rank == 0 and not cfg.quiet:
        print(f"{written} samples written to {out}")
    return 0
