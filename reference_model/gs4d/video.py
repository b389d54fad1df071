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
