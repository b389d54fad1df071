"""Fitting a 4D Gaussian character to multi-view video: the optimisation loop and rendering a fitted model."""

from __future__ import annotations

import copy
import math
import time
from dataclasses import dataclass, field
from typing import Callable

import numpy as np
import torch

from reference_model.gs4d.config import Gs4dConfig
from reference_model.gs4d.data import ViewSet
from reference_model.gs4d.deformation import DeformationField
from reference_model.gs4d.densify import Densifier
from reference_model.gs4d.hull import hull_gaussians
from reference_model.gs4d.losses import knn, neighbour_loss, photometric_loss, psnr, research_neighbour_weight
from reference_model.gs4d.model import Gaussians4D
from reference_model.gs4d.rasterize import RenderOutput, rasterize
from reference_model.gs4d.schedule import FrameSampler, Stage, build_schedule, neighbour_edge

AABB_PADDING = 0.3  # metres around the hull of the coarse frame that the HexPlane box covers (limbs move)


@dataclass
class FitResult:
    """What :func:`fit` returns.

    Attributes:
        model: the fitted model.
        stages: the schedule that ran.
        stage_seconds: wall time of each stage.
        wall_seconds: wall time of the whole fit (initialisation included, data loading excluded).
        init_seconds: wall time of the initialisation.
        steps: optimiser steps run.
        images: training images rendered.
        peak_memory_bytes: peak CUDA memory (None on CPU).
        initial_gaussians, final_gaussians: counts.
        history: per-step ``(stage, frame, loss, psnr)`` every ``log_every`` steps.
        fed_frames: per stage, the frames the loader fed (in order).
        backend: rasteriser used.
        initial_model: a copy of the model right after initialisation (for comparisons).
    """

    model: Gaussians4D
    stages: list[Stage]
    stage_seconds: dict[str, float]
    wall_seconds: float
    init_seconds: float
    steps: int
    images: int
    peak_memory_bytes: int | None
    initial_gaussians: int
    final_gaussians: int
    history: list[tuple[str, int, float, float]] = field(default_factory=list)
    fed_frames: dict[str, list[int]] = field(default_factory=dict)
    backend: str = "torch"
    initial_model: Gaussians4D | None = None


def _group_images(groups: list[tuple[int, np.ndarray]]) -> int:
    """Images rendered by one step's ``(frame, views)`` groups."""
    return sum(len(v) for _, v in groups)


def _step_groups(sampler: FrameSampler, stage: Stage, num_views: int, views_per_step: int,
                 frames_per_step: int) -> list[tuple[int, np.ndarray]]:
    """One step's ``(frame, training-view indices)`` groups: ``frames_per_step`` frames of the stage, the step's
    views shared out between them (each view at most once per step, so a step still sees ``views_per_step``
    distinct views, now at several times)."""
    n_frames = min(frames_per_step, len(stage.frames), views_per_step)
    if n_frames <= 1:
        return [(sampler.frame(stage), sampler.views(num_views, views_per_step))]
    vids = sampler.views(num_views, views_per_step)
    vids = vids[sampler.rng.permutation(len(vids))]
    frames = sampler.distinct_frames(stage, n_frames)
    return [(f, np.sort(part)) for f, part in zip(frames, np.array_split(vids, n_frames))]


def _step_loss(model: Gaussians4D, groups: list[tuple[int, np.ndarray]], stage: Stage, config: Gs4dConfig,
               images: torch.Tensor, frame_pos: dict[int, int], viewmats: torch.Tensor, Ks: torch.Tensor, width: int,
               height: int, bg: torch.Tensor, degree: int, backend: str, densifying: bool, knn_state: dict,
               step: int) -> tuple[torch.Tensor, list[RenderOutput], torch.Tensor, torch.Tensor]:
    """Loss of one step: every ``(frame, views)`` group rendered, one photometric loss over all the images,
    the plane regularisers once, the neighbour constraint per group whose frame lies outside the anchor window.

    The deformation field runs once for all the step's frames (and once, without gradients, for the anchor
    frames), because a fit is bound by kernel launches, not arithmetic.

    Args:
        images: uint8 ``[V, F', H, W, 4]`` training images; ``frame_pos`` maps a frame to its index in F'.
        knn_state: the neighbour graph and when it was built (rebuilt here when stale).

    Returns:
        ``(loss, renders per group, rendered colours [V', H, W, 3], targets [V', H, W, 3])``.
    """
    device = images.device
    times = [model.frame_time(f) for f, _ in groups]
    gausses = model.gaussians_at_times(times)
    outs, targets, alphas = [], [], []
    for (frame, vids_np), gauss in zip(groups, gausses):
        vids = torch.from_numpy(vids_np).to(device)
        out = rasterize(gauss, viewmats[vids], Ks[vids], width, height, bg, sh_degree=degree, backend=backend)
        if densifying:
            out.means2d.retain_grad()
        outs.append(out)
        img = images[vids, frame_pos[frame]].float() / 255.0
        alphas.append(img[..., 3:4])
        targets.append(img[..., :3] * alphas[-1] + (1.0 - alphas[-1]) * bg)
    colors = outs[0].colors if len(outs) == 1 else torch.cat([o.colors for o in outs])
    target = targets[0] if len(targets) == 1 else torch.cat(targets)
    loss = photometric_loss(colors, target, config.lambda_ssim)
    if config.lambda_alpha:
        rendered_alpha = outs[0].alphas if len(outs) == 1 else torch.cat([o.alphas for o in outs])
        loss = loss + config.lambda_alpha * (rendered_alpha - torch.cat(alphas)).abs().mean()
    if stage.deform and (config.plane_tv_weight or config.time_smoothness_weight or config.l1_time_planes):
        loss = loss + model.deformation.regularisation(
            config.plane_tv_weight, config.time_smoothness_weight, config.l1_time_planes
        )
    edges = [neighbour_edge(stage, f) if config.neighbour else None for f, _ in groups]
    todo = [(i, e) for i, e in enumerate(edges) if e is not None]
    if todo:
        num = model.num
        if knn_state["neighbours"] is None or knn_state["n"] != num or step - knn_state["built"] >= config.neighbour_every:
            knn_state.update(neighbours=knn(model.params["means"].detach(), config.neighbour_k), n=num, built=step)
        index = None
        if num > config.neighbour_points:
            index = torch.randperm(num, device=device)[: config.neighbour_points]
        with torch.no_grad():
            edge_means = model.deformed_means_at_times([model.frame_time(e) for _, e in todo])
        total_views = _group_images(groups)
        for (i, edge_frame), anchor in zip(todo, edge_means):
            nb_loss, moved = neighbour_loss(
                gausses[i].means, anchor, knn_state["neighbours"], index, config.neighbour_threshold,
                config.neighbour_gate, config.neighbour_gate_rule, config.neighbour_form,
            )
            weight = config.neighbour_weight
            if weight is None:
                weight = research_neighbour_weight(times[i], model.frame_time(edge_frame), moved)
            loss = loss + weight * nb_loss * (len(groups[i][1]) / total_views)
    return loss, outs, colors, target


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def scene_scale(viewmats: np.ndarray) -> float:
    """3DGS's scene extent: 1.1 x the largest distance of a camera centre from the cameras' mean."""
    centres = -np.einsum("vji,vj->vi", viewmats[:, :3, :3], viewmats[:, :3, 3])
    return 1.1 * float(np.linalg.norm(centres - centres.mean(0), axis=1).max() or 1.0)


def initial_model(train: ViewSet, config: Gs4dConfig, frame: int, device: torch.device) -> Gaussians4D:
    """Visual-hull Gaussians of ``frame`` plus an identity deformation field."""
    gen = torch.Generator().manual_seed(config.seed)
    params, lo, hi = hull_gaussians(
        train, frame, config.init_points, config.hull_resolution, config.hull_threshold, config.init_opacity,
        config.sh_degree, generator=gen, device=device,
    )
    aabb = tuple((lo - AABB_PADDING).tolist()) + tuple((hi + AABB_PADDING).tolist())
    torch.manual_seed(config.seed)
    deformation = DeformationField(
        aabb=aabb, plane_resolution=config.plane_resolution, time_resolution=config.time_resolution,
        multires=config.multires, plane_features=config.plane_features, mlp_width=config.mlp_width,
        mlp_depth=config.mlp_depth,
    )
    return Gaussians4D(params, deformation, train.num_frames).to(device)


def _optimizer(model: Gaussians4D, config: Gs4dConfig, scale: float) -> tuple[torch.optim.Adam, dict[str, float]]:
    batch = math.sqrt(config.views_per_step) if config.lr_batch_scaling else 1.0
    base = {
        "means": config.lr_means * scale * batch,
        "log_scales": config.lr_scales * batch,
        "quats": config.lr_quats * batch,
        "opacity_logits": config.lr_opacities * batch,
        "sh0": config.lr_sh0 * batch,
        "shN": config.lr_shN * batch,
        "mlp": config.lr_deformation * batch,
        "grid": config.lr_grid * batch,
    }
    groups = [{"params": [model.params[k]], "lr": base[k], "name": k} for k in model.params.keys()]
    groups.append({"params": model.deformation.mlp_parameters(), "lr": base["mlp"], "name": "mlp"})
    groups.append({"params": model.deformation.grid_parameters(), "lr": base["grid"], "name": "grid"})
    # eps 1e-15: 3DGS's Adam setting (tiny gradients of far-away Gaussians still move them). Fused on CUDA:
    # one kernel for all parameters instead of a dozen per group (the same update).
    fused = model.params["means"].device.type == "cuda"
    return torch.optim.Adam(groups, lr=0.0, eps=1e-15, fused=fused), base


def _decay(start: float, end: float, progress: float) -> float:
    """Log-linear interpolation (3DGS's ``get_expon_lr_func`` without the delay)."""
    progress = min(max(progress, 0.0), 1.0)
    return math.exp(math.log(start) * (1 - progress) + math.log(end) * progress)


def fit(
    train: ViewSet,
    config: Gs4dConfig = Gs4dConfig(),
    device: str | torch.device = "cpu",
    backend: str = "auto",
    progress: bool = True,
    log_every: int = 50,
    callback: Callable[[int, Stage, float], None] | None = None,
) -> FitResult:
    """Fit a 4D Gaussian model to the training views.

    Args:
        train: the training views and all their training frames (the split's), see :func:`load_views`.
        config: the configuration.
        device: ``"cpu"``, ``"cuda"``, ...
        backend: rasteriser (``"auto"``: gsplat on CUDA, torch otherwise).
        progress: show a progress bar with loss and PSNR.
        log_every: steps between history entries.
        callback: called as ``callback(step, stage, loss)`` after every step.

    Returns:
        :class:`FitResult`.

    Raises:
        ValueError: if the views hold no frames or the hull is empty.
    """
    device = torch.device(device)
    if not train.frames:
        raise ValueError("train: no frames to fit")
    torch.manual_seed(config.seed)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    _sync(device)
    t_start = time.perf_counter()
    stages = build_schedule(config, train.num_frames, train.frames)
    coarse = stages[0].frames[0]
    model = initial_model(train, config, coarse, device)
    initial = copy.deepcopy(model).requires_grad_(False)
    images = torch.from_numpy(train.images).to(device)  # uint8 [V, F', H, W, 4]
    frame_pos = {f: i for i, f in enumerate(train.frames)}
    bg = torch.tensor(config.background, dtype=torch.float32, device=device)
    viewmats = torch.from_numpy(train.viewmats).to(device)
    Ks = torch.from_numpy(train.Ks).to(device)
    width = height = train.resolution
    scale = scene_scale(train.viewmats)
    optimizer, base_lr = _optimizer(model, config, scale)
    densifier = Densifier(config.grow_grad2d, config.grow_scale3d, config.prune_opacity, config.prune_scale3d,
                          config.max_gaussians, scale)
    sampler = FrameSampler(config.seed)
    _sync(device)
    init_seconds = time.perf_counter() - t_start
    total = sum(s.steps for s in stages)
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=total, desc=f"fit4d {train.key}", unit="step", dynamic_ncols=True)
    result = FitResult(model, stages, {}, 0.0, init_seconds, 0, 0, None, model.num, 0, backend=backend,
                       initial_model=initial)
    step = 0
    knn_state = {"neighbours": None, "n": -1, "built": -10**9}
    ema_loss, ema_psnr = None, None
    for stage in stages:
        _sync(device)
        t_stage = time.perf_counter()
        model.deform_enabled = stage.deform
        fed = result.fed_frames.setdefault(stage.name, [])
        for local in range(stage.steps):
            counter = local if config.restart_per_stage else step
            horizon = config.lr_horizon or (stage.steps if config.restart_per_stage else total)
            progress_frac = counter / max(horizon - 1, 1)
            for group in optimizer.param_groups:
                name = group["name"]
                if name == "means":
                    group["lr"] = _decay(base_lr["means"], base_lr["means"] * config.lr_means_final / config.lr_means, progress_frac)
                elif name == "mlp":
                    group["lr"] = _decay(base_lr["mlp"], base_lr["mlp"] * config.lr_deformation_final / config.lr_deformation, progress_frac)
                elif name == "grid":
                    group["lr"] = _decay(base_lr["grid"], base_lr["grid"] * config.lr_grid_final / config.lr_grid, progress_frac)
            groups = _step_groups(sampler, stage, len(train.views), config.views_per_step, config.frames_per_step)
            densifying = config.densify_from <= counter < config.densify_until
            degree = min(config.sh_degree, step // config.sh_increase_every)
            loss, outs, colors, target = _step_loss(model, groups, stage, config, images, frame_pos, viewmats, Ks,
                                                    width, height, bg, degree, backend, densifying, knn_state, step)
            fed.extend(f for f, _ in groups)
            result.backend = outs[0].backend
            loss.backward()
            if densifying:
                for out in outs:
                    densifier.accumulate(out.means2d, out.visible, width, height)
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            if densifying and counter > 0 and counter % config.densify_every == 0:
                prune_large = config.opacity_reset_every > 0 and counter > config.opacity_reset_every
                densifier.step(model.params, optimizer, prune_large)
            if config.opacity_reset_every and counter > 0 and counter % config.opacity_reset_every == 0 \
                    and counter < config.densify_until:
                densifier.reset_opacity(model.params, optimizer)
            step += 1
            result.images += _group_images(groups)
            if step % 10 == 0 or step == total:  # a host sync: only every 10 steps
                value = float(loss.detach())
                p = psnr(colors.clamp(0, 1), target)
                ema_loss = value if ema_loss is None else 0.8 * ema_loss + 0.2 * value
                ema_psnr = p if ema_psnr is None else 0.8 * ema_psnr + 0.2 * p
                if step % log_every == 0 or step == total:
                    result.history.append((stage.name, groups[0][0], value, p))
                if bar is not None:
                    bar.set_postfix(stage=stage.name, loss=f"{ema_loss:.4f}", psnr=f"{ema_psnr:.2f}", n=model.num)
            if bar is not None:
                bar.update(1)
            if callback is not None:
                callback(step, stage, float(loss.detach()))
        _sync(device)
        result.stage_seconds[stage.name] = time.perf_counter() - t_stage
    if bar is not None:
        bar.close()
    _sync(device)
    model.deform_enabled = True
    model.eval().requires_grad_(False)
    result.wall_seconds = time.perf_counter() - t_start
    result.steps = step
    result.final_gaussians = model.num
    if device.type == "cuda":
        result.peak_memory_bytes = int(torch.cuda.max_memory_allocated(device))
    return result


@torch.no_grad()
def render(
    model: Gaussians4D,
    t: float,
    viewmats: torch.Tensor,
    Ks: torch.Tensor,
    width: int,
    height: int,
    background: tuple[float, float, float] | None = (1.0, 1.0, 1.0),
    backend: str = "auto",
    batch: int = 12,
) -> RenderOutput:
    """Render a fitted model at normalised time ``t`` (frame ``f`` is ``f / (num_frames - 1)``).

    Args:
        model: the model (see :func:`~reference_model.gs4d.model.load_fit`).
        t: time in [0, 1].
        viewmats: ``[V, 4, 4]`` world-to-camera (OpenCV), any float dtype/device (moved to the model's).
        Ks: ``[V, 3, 3]`` intrinsics.
        width, height: image size.
        background: colour composited behind (None: none, i.e. black premultiplied colour).
        backend: ``"auto"``, ``"gsplat"`` or ``"torch"``.
        batch: views rasterised together.

    Returns:
        :class:`RenderOutput` with ``colors [V, H, W, 3]``, ``alphas [V, H, W, 1]``, ``depths [V, H, W, 1]``.

    Raises:
        ValueError: on malformed cameras or backend.
    """
    device = model.params["means"].device
    viewmats = torch.as_tensor(viewmats, dtype=torch.float32).to(device)
    Ks = torch.as_tensor(Ks, dtype=torch.float32).to(device)
    bg = None if background is None else torch.tensor(background, dtype=torch.float32, device=device)
    gauss = model.gaussians_at(t)
    outs = [rasterize(gauss, viewmats[i:i + batch], Ks[i:i + batch], width, height, bg, backend=backend)
            for i in range(0, viewmats.shape[0], batch)]
    if not outs:
        raise ValueError("viewmats: expected at least one view, got 0")
    cat = lambda name: torch.cat([getattr(o, name) for o in outs])  # noqa: E731
    return RenderOutput(cat("colors"), cat("alphas"), cat("depths"), cat("means2d"), cat("visible"), outs[0].backend)
