"""Tiny synthetic Character4D samples for tests (import: ``from tests.character4d.fake_sample import ...``).

``make_fake_sample`` builds a valid :class:`character4d.format.Sample` from generated arrays, with a
real ``cameras.json`` from :func:`character4d.cameras.rig_cameras`. Two content modes:

- default: each RGBA frame is a random-noise "character" rectangle (alpha 255) on a transparent
  background; the rectangle moves with the frame, so metrics see real differences between frames.
- ``solid=True``: every image is one opaque colour, :func:`fake_colour` ``(v, f)`` (``f=None`` for
  the A-pose), so a test can find a given view/frame by its colour.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from character4d.cameras import RigConfig, rig_cameras
from character4d.format import Sample, build_sample, parse_key

# A few canonical joint names (a subset of character4d.skeleton.JOINT_NAMES); enough for format tests.
FAKE_JOINT_NAMES = ("hips", "spine", "head", "leftHand", "rightHand", "leftFoot", "rightFoot")


def fake_colour(v: int, f: int | None) -> tuple[int, int, int]:
    """Distinct opaque RGB colour of view ``v`` (< 25) and frame ``f`` (< 25; None = A-pose)."""
    return 10 + 10 * v, 10 if f is None else 19 + 9 * f, 200 if f is None else 128


def fake_pose_colour(v: int, f: int) -> tuple[int, int, int]:
    """Distinct RGB colour of the pose map of view ``v``, frame ``f`` in ``solid`` mode."""
    r, g, _ = fake_colour(v, f)
    return 255 - r, 255 - g, 64


def _solid(colour: tuple[int, ...], size: int) -> np.ndarray:
    return np.broadcast_to(np.asarray(colour, dtype=np.uint8), (size, size, len(colour))).copy()


def _noise_frame(rng: np.random.Generator, size: int, shift: int) -> np.ndarray:
    # A rectangle of noise covering the middle half, shifted horizontally by `shift` pixels.
    image = np.zeros((size, size, 4), dtype=np.uint8)
    lo, hi = size // 4, size - size // 4
    x0, x1 = max(lo + shift, 0), min(hi + shift, size)
    image[lo:hi, x0:x1, :3] = rng.integers(0, 256, (hi - lo, x1 - x0, 3), dtype=np.uint8)
    image[lo:hi, x0:x1, 3] = 255
    return image


def _images(rng: np.random.Generator, views: int, frames: int, size: int, solid: bool):
    if solid:
        apose = np.stack([_solid(fake_colour(v, None) + (255,), size) for v in range(views)])
        rgba = np.stack([[_solid(fake_colour(v, f) + (255,), size) for f in range(frames)] for v in range(views)])
        poses = np.stack([[_solid(fake_pose_colour(v, f), size) for f in range(frames)] for v in range(views)])
        return apose, rgba, poses
    apose = np.stack([_noise_frame(rng, size, 0) for _ in range(views)])
    rgba = np.stack([[_noise_frame(rng, size, f % 3 - 1) for f in range(frames)] for _ in range(views)])
    # Sparse coloured dots on black, like the limbs of a pose map.
    dots = rng.random((views, frames, size, size, 1)) < 0.1
    poses = (rng.integers(0, 256, (views, frames, size, size, 3), dtype=np.uint8) * dots).astype(np.uint8)
    return apose, rgba, poses


def make_fake_sample(
    key: str = "c0__m0",
    views: int = 3,
    frames: int = 3,
    size: int = 16,
    seed: int = 0,
    *,
    depth: bool = True,
    mask: bool = True,
    solid: bool = False,
    fps: float = 30.0,
    joint_names: Sequence[str] = FAKE_JOINT_NAMES,
) -> Sample:
    """Build a small valid sample from synthetic arrays.

    Args:
        key: sample key ``{character_id}__{motion_id}``.
        views: number of views V (e.g. 21 for the full rig; < 25 in ``solid`` mode).
        frames: number of frames F (e.g. 25).
        size: image side in pixels.
        seed: seed of the random content; the same arguments give byte-identical samples.
        depth: include depth maps (metres around 3.5 inside the alpha, NaN outside).
        mask: include masks (alpha > 0).
        solid: one opaque colour per image (see :func:`fake_colour`) instead of noise.
        fps: frame rate written to meta.json; ``source_times`` are ``f / fps``.
        joint_names: joint names; joints are random positions around the rig target.

    Returns:
        The sample (already validated by ``build_sample``).
    """
    character_id, motion_id = parse_key(key)
    rng = np.random.default_rng(seed)
    apose, rgba, poses = _images(rng, views, frames, size, solid)
    alpha = rgba[..., 3] > 0
    depths = np.where(alpha, 3.5 + rng.uniform(-0.3, 0.3, alpha.shape), np.nan) if depth else None
    num_joints = len(joint_names)
    centre = np.array([0.0, 0.0, 0.9])
    joints = (centre + rng.normal(0.0, 0.3, (frames, num_joints, 3))).astype(np.float32)
    apose_joints = (centre + rng.normal(0.0, 0.3, (num_joints, 3))).astype(np.float32)
    rig = RigConfig(num_views=views, resolution=size)
    meta = {
        "character_id": character_id,
        "motion_id": motion_id,
        "fps": fps,
        "joint_names": list(joint_names),
        "source_times": [f / fps for f in range(frames)],
        "sources": {"character": {"path": f"{character_id}.vrm", "sha256": "0" * 64}},
        "renderer": {"name": "fake", "seed": seed},
    }
    return build_sample(
        key,
        meta,
        rig_cameras(rig).to_json(),
        joints,
        apose_joints,
        apose,
        rgba,
        poses,
        depths=depths,
        masks=alpha if mask else None,
    )
