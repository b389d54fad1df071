"""An orbit animation of a fitted model: the camera circles the character while the clip plays."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from PIL import Image

from character4d.cameras import RigConfig, rig_cameras


def orbit_frames(model, rig: RigConfig = RigConfig(), frames: int = 48, resolution: int = 256, backend: str = "auto") -> np.ndarray:
    """Renders ``[frames, R, R, 3]`` uint8 along a full orbit of the rig (its radius, height, fov),
    the clip's time sweeping from first to last frame and back.

    Args:
        model: a :class:`~reference_model.gs4d.model.Gaussians4D`.
        rig: the orbit (its ``num_views`` and ``resolution`` are replaced).
        frames: images in the animation.
        resolution: image side.
        backend: rasteriser.
    """
    from reference_model.gs4d.fitting import render

    cams = rig_cameras(RigConfig(num_views=frames, radius=rig.radius, height=rig.height, fov_deg=rig.fov_deg,
                                 elevation_deg=rig.elevation_deg, resolution=resolution, target=rig.target))
    out = []
    for i in range(frames):
        phase = i / max(frames - 1, 1)
        t = 1.0 - abs(2.0 * phase - 1.0)  # forth and back, so the loop is seamless
        r = render(model, t, torch.tensor(cams.viewmats[i:i + 1]), torch.tensor(cams.Ks[i:i + 1]),
                   resolution, resolution, backend=backend)
        out.append((r.colors[0].clamp(0, 1) * 255 + 0.5).to(torch.uint8).cpu().numpy())
    return np.stack(out)


def write_gif(path: str | Path, frames: np.ndarray, fps: float = 12.0) -> Path:
    """Write ``[T, H, W, 3]`` uint8 frames as a looping GIF."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    images = [Image.fromarray(f) for f in frames]
    images[0].save(path, save_all=True, append_images=images[1:], duration=int(1000 / fps), loop=0, optimize=False)
    return path


def comparison_sheet(fit_dir: str | Path, gt, key: str, frame: int | None = None, scale: int = 1) -> np.ndarray:
    """Held-out renders of a fit (bottom row) beside the ground truth (top row), one column per evaluation view.

    Args:
        fit_dir: a ``charactershot fit4d`` output directory.
        gt: the ground truth (anything ``character4d.format.open_samples`` reads, or a pack).
        key: the sample.
        frame: the frame shown (None: the middle evaluation frame).
        scale: integer nearest-neighbour magnification.

    Returns:
        uint8 ``[2 H, V W, 3]`` (times ``scale``).
    """
    import json

    from reference_model.gs4d.data import load_views

    fit_dir = Path(fit_dir)
    record = json.loads((fit_dir / "fit.json").read_text())
    views = record["split"]["eval_views"]
    frames = record["split"]["eval_frames"]
    frame = frames[len(frames) // 2] if frame is None else frame
    preds = [np.array(Image.open(fit_dir / "pred" / key / f"view{v:02d}" / f"frame{frame:03d}.png").convert("RGB"))
             for v in views]
    size = preds[0].shape[0]
    native = load_views(gt, views, [frame], key=key)
    factor = native.resolution // size
    from reference_model.gs4d.data import downsample

    truth = downsample(native.images[:, 0], factor) if factor > 1 else native.images[:, 0]
    alpha = truth[..., 3:4].astype(np.float64) / 255
    white = np.rint(truth[..., :3] * alpha + 255 * (1 - alpha)).astype(np.uint8)
    sheet = np.concatenate([np.concatenate(list(white), axis=1), np.concatenate(preds, axis=1)], axis=0)
    return sheet.repeat(scale, axis=0).repeat(scale, axis=1)
