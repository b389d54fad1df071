"""One fit end to end: read the sample, fit, score the held-out views, write the fit directory.

Outputs under ``out``: ``fit.json``, ``config.json`` + ``model/`` (see :mod:`reference_model.gs4d.model`),
``ply/frame{FFF}.ply`` (one per clip frame, standard 3DGS layout), ``pred/<key>/view{VV}/frame{FFF}.png``
(the evaluation views at the protocol frames, composited on white: a characterbench prediction folder) and
``orbit.gif``.
"""

from __future__ import annotations

import json
import platform
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

from reference_model.gs4d.config import PROTOCOL_FRAMES, Gs4dConfig
from reference_model.gs4d.data import ViewSet, load_views, read_sample, PACK_SUFFIX
from reference_model.gs4d.fitting import FitResult, fit, render
from reference_model.gs4d.gaussians import write_ply
from reference_model.gs4d.model import Gaussians4D, save_fit


def _to_uint8(colors: torch.Tensor) -> np.ndarray:
    return (colors.clamp(0, 1) * 255 + 0.5).to(torch.uint8).cpu().numpy()


def render_views(model: Gaussians4D, views: ViewSet, background, backend: str = "auto") -> np.ndarray:
    """uint8 ``[V, F', H, W, 3]`` renders of every (view, frame) cell of ``views``."""
    out = np.zeros(views.images.shape[:4] + (3,), dtype=np.uint8)
    for j, f in enumerate(views.frames):
        r = render(model, model.frame_time(f), torch.from_numpy(views.viewmats), torch.from_numpy(views.Ks),
                   views.resolution, views.resolution, tuple(background), backend=backend)
        out[:, j] = _to_uint8(r.colors)
    return out


def score(pred: np.ndarray, views: ViewSet, background, device: str = "cpu") -> dict[str, Any]:
    """PSNR / SSIM / LPIPS (``metrics``; LPIPS None with the reason when its weights are absent) of uint8
    renders ``[V, F', H, W, 3]`` against the views composited on ``background``, averaged over cells."""
    from metrics.psnr import psnr
    from metrics.ssim import ssim

    imgs = views.images.astype(np.float64) / 255.0
    alpha = imgs[..., 3:4]
    gt = imgs[..., :3] * alpha + (1 - alpha) * np.asarray(background)
    gt = np.round(gt * 255) / 255  # the protocol composites and quantises the same way
    # On the fit's device: 81-108 SSIMs at 512 px take seconds on a CPU and milliseconds on a GPU.
    p = torch.from_numpy(pred.reshape((-1,) + pred.shape[2:])).to(device).permute(0, 3, 1, 2).float() / 255.0
    g = torch.from_numpy(gt.reshape((-1,) + gt.shape[2:])).to(device).permute(0, 3, 1, 2).float()
    result: dict[str, Any] = {"cells": int(p.shape[0]), "psnr": float(psnr(p, g).clamp(max=100).mean()),
                              "ssim": float(ssim(p, g).mean())}
    try:
        from metrics.lpips import load_lpips, lpips

        model = load_lpips("alex", device=device)
        vals = torch.cat([lpips(p[i:i + 16], g[i:i + 16], model=model).cpu()
                          for i in range(0, p.shape[0], 16)])
        result["lpips"] = float(vals.mean())
    except Exception as exc:  # weights not fetched on this machine: say so in the record
        result["lpips"] = None
        result["lpips_error"] = f"{type(exc).__name__}: {exc}"
    return result


def write_predictions(pred: np.ndarray, views: ViewSet, root: Path) -> Path:
    """``root/<key>/view{VV}/frame{FFF}.png`` for every cell (characterbench's layout)."""
    for i, v in enumerate(views.views):
        folder = root / views.key / f"view{v:02d}"
        folder.mkdir(parents=True, exist_ok=True)
        for j, f in enumerate(views.frames):
            Image.fromarray(pred[i, j]).save(folder / f"frame{f:03d}.png")
    return root


def device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"cpu ({platform.machine()}, {torch.get_num_threads()} threads)"


def fit_sample(
    data: str | Path,
    out: str | Path,
    key: str | None = None,
    config: Gs4dConfig = Gs4dConfig(),
    device: str = "auto",
    resolution: int | None = None,
    backend: str = "auto",
    ply: bool = True,
    orbit: bool = True,
    progress: bool = True,
    eval_frames: tuple[int, ...] | None = None,
) -> dict[str, Any]:
    """Fit one sample and write everything (see the module docstring).

    Args:
        data: a character4d source (shard, shard folder, sample folder, render output) or a gs4d pack.
        out: output directory (created).
        key: the sample (None: the only one in ``data``).
        config: the configuration.
        device: ``"auto"`` (CUDA when available), ``"cpu"``, ``"cuda"``.
        resolution: fit and render at this side (a divisor of the sample's; None: native).
        backend: rasteriser.
        ply, orbit: write the ``.ply`` sequence / the orbit GIF.
        progress: progress bar.
        eval_frames: frames rendered for scoring (None: the protocol's nine, or all when the clip is shorter).

    Returns:
        The ``fit.json`` record.

    Raises:
        FileNotFoundError, character4d.format.SampleFormatError, ValueError: bad input.
    """
    dev = torch.device("cuda" if device == "auto" and torch.cuda.is_available() else ("cpu" if device == "auto" else device))
    out = Path(out)
    t0 = time.perf_counter()
    source = data if str(data).endswith(PACK_SUFFIX) else read_sample(data, key)
    if not str(data).endswith(PACK_SUFFIX):
        num_views, num_frames = source.num_views, source.num_frames
    else:
        with np.load(data) as pack:
            meta = json.loads(pack["meta_json"].tobytes())
            cams = json.loads(pack["cameras_json"].tobytes())
        num_views, num_frames = len(cams["views"]), meta["num_frames"]
    train_views, eval_views = config.split.views(num_views)
    train_frames = config.split.train_frames(num_frames)
    if eval_frames is None:
        eval_frames = PROTOCOL_FRAMES if num_frames > max(PROTOCOL_FRAMES) else tuple(range(num_frames))
    train = load_views(source, train_views, train_frames, resolution, key)
    evals = load_views(source, eval_views, eval_frames, resolution, key)
    load_seconds = time.perf_counter() - t0
    result: FitResult = fit(train, config, dev, backend=backend, progress=progress)
    model = result.model
    t1 = time.perf_counter()
    bg = config.background
    init_pred = render_views(result.initial_model, evals, bg, backend)
    pred = render_views(model, evals, bg, backend)
    train_eval = load_views(source, train_views, [f for f in eval_frames if f in train_frames] or train_frames[:1],
                            resolution, key)
    train_pred = render_views(model, train_eval, bg, backend)
    score_device = "cuda" if dev.type == "cuda" else "cpu"
    record: dict[str, Any] = {
        "schema": "gs4d-fit/1",
        "sample": train.key,
        "preset": config.preset,
        "config": config.to_json(),
        "split": {"name": config.split.name, "label": config.split.label, "train_views": list(train_views),
                  "eval_views": list(eval_views), "train_frames": list(train_frames), "eval_frames": list(eval_frames)},
        "resolution": train.resolution,
        "iterations": {"total": result.steps, "images": result.images,
                       "stages": {s.name: {"steps": s.steps, "frames": [min(s.frames), max(s.frames)]} for s in result.stages}},
        "wall_seconds": {"fit": result.wall_seconds, "init": result.init_seconds, "stages": result.stage_seconds,
                         "load": load_seconds},
        "it_per_s": result.steps / max(result.wall_seconds, 1e-9),
        "peak_gpu_memory_bytes": result.peak_memory_bytes,
        "device": device_name(dev),
        "backend": result.backend,
        "torch": torch.__version__,
        "gaussians": {"initial": result.initial_gaussians, "final": result.final_gaussians},
        "metrics": {
            "heldout": score(pred, evals, bg, score_device),
            "train": score(train_pred, train_eval, bg, score_device),
            "initial_heldout": score(init_pred, evals, bg, score_device),
        },
        "history": [list(h) for h in result.history],
    }
    save_fit(out, model, config)
    write_predictions(pred, evals, out / "pred")
    if ply:
        for f in range(model.num_frames):
            write_ply(out / "ply" / f"frame{f:03d}.ply", model.gaussians_at(model.frame_time(f)).detach())
    if orbit:
        from reference_model.gs4d.video import orbit_frames, write_gif

        write_gif(out / "orbit.gif", orbit_frames(model, resolution=min(256, train.resolution * 2), backend=backend))
    record["wall_seconds"]["outputs"] = time.perf_counter() - t1
    (out / "fit.json").write_text(json.dumps(record, indent=2) + "\n")
    return record
