"""Fixtures of the gs4d tests: a tiny 3D-consistent character4d sample, ray-cast analytically.

The "character" is a body sphere and a smaller "hand" sphere that circles it over the clip, shaded by a fixed
world light (so every view agrees), rendered by exact ray-sphere intersection in numpy: an image source that
shares no code with the rasterisers under test.
"""

from __future__ import annotations

import numpy as np
import pytest

from character4d.cameras import RigConfig, rig_cameras
from character4d.format import build_sample

BODY = (np.array([0.0, 0.0, 0.75]), 0.32, np.array([0.85, 0.35, 0.25]))
HAND_RADIUS, HAND_COLOUR = 0.13, np.array([0.2, 0.45, 0.9])
LIGHT = np.array([0.3, -0.8, 0.5]) / np.linalg.norm([0.3, -0.8, 0.5])


def hand_centre(f: int, frames: int) -> np.ndarray:
    phase = 2 * np.pi * f / max(frames, 1) * 0.5
    return np.array([0.45 * np.cos(phase), 0.45 * np.sin(phase), 0.95])


def raycast(cameras, v: int, spheres) -> np.ndarray:
    """uint8 [H, W, 4] image of view v: nearest sphere hit per pixel centre, Lambert + ambient shading."""
    w, h = cameras.width, cameras.height
    K, w2c = cameras.Ks[v], cameras.viewmats[v]
    c2w = np.linalg.inv(w2c)
    xs, ys = np.meshgrid(np.arange(w) + 0.5, np.arange(h) + 0.5)
    dirs_cam = np.stack([(xs - K[0, 2]) / K[0, 0], (ys - K[1, 2]) / K[1, 1], np.ones_like(xs)], -1)
    dirs = dirs_cam @ c2w[:3, :3].T
    dirs /= np.linalg.norm(dirs, axis=-1, keepdims=True)
    origin = c2w[:3, 3]
    best = np.full((h, w), np.inf)
    rgb = np.zeros((h, w, 3))
    for centre, radius, colour in spheres:
        oc = origin - centre
        b = dirs @ oc
        disc = b * b - (oc @ oc - radius * radius)
        t = np.where(disc > 0, -b - np.sqrt(np.maximum(disc, 0)), np.inf)
        hit = (t > 0) & (t < best)
        pts = origin + dirs * np.where(np.isfinite(t), t, 0.0)[..., None]
        normal = (pts - centre) / radius
        shade = 0.35 + 0.65 * np.clip(normal @ LIGHT, 0, 1)
        rgb = np.where(hit[..., None], colour * shade[..., None], rgb)
        best = np.where(hit, t, best)
    alpha = np.isfinite(best)
    image = np.zeros((h, w, 4), dtype=np.uint8)
    image[..., :3] = np.clip(np.rint(rgb * 255), 0, 255)
    image[..., 3] = alpha * 255
    return image


def make_scene_sample(size: int = 32, frames: int = 3, views: int = 21, key: str = "spheres__wave"):
    """A valid character4d sample of the sphere scene."""
    rig = RigConfig(num_views=views, resolution=size)
    cams = rig_cameras(rig)
    per_frame = [[BODY, (hand_centre(f, frames), HAND_RADIUS, HAND_COLOUR)] for f in range(frames)]
    rgba = np.stack([[raycast(cams, v, per_frame[f]) for f in range(frames)] for v in range(views)])
    apose = rgba[:, 0]
    poses = np.zeros(rgba.shape[:4] + (3,), dtype=np.uint8)
    names = ["hips", "head", "leftHand"]
    joints = np.stack([[BODY[0], BODY[0] + [0, 0, 0.3], hand_centre(f, frames)] for f in range(frames)]).astype(np.float32)
    meta = {"fps": 15.0, "joint_names": names, "source_times": [f / 15.0 for f in range(frames)],
            "renderer": {"name": "raycast-spheres"}}
    return build_sample(key, meta, cams.to_json(), joints, joints[0], apose, rgba, poses)


@pytest.fixture(scope="session")
def gs4d_sample():
    """32 px, 21 views x 3 frames of the sphere scene."""
    return make_scene_sample(32, 3, 21)


@pytest.fixture(scope="session")
def gs4d_sample_128():
    """128 px, 21 views x 5 frames of the sphere scene (GPU tests)."""
    return make_scene_sample(128, 5, 21)
