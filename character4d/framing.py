"""Framing checks (numpy only): does the character leave the image?

Two signals per view and frame: a joint projects outside the image (or behind the camera), and part of
the silhouette lies outside it (a mesh vertex projects outside: the image is convex, so the silhouette
is inside exactly when every vertex is). The renderer records both in meta.json (``framing``) and the
run summary warns about samples that leave the frame. The vertex test costs nothing (the renderer
projects the vertices anyway for its render border), where decoding every PNG's alpha would add ~20 ms
per image.
"""

from __future__ import annotations

import numpy as np

from character4d.cameras import Cameras, project


def joints_outside(joints: np.ndarray, cameras: Cameras) -> np.ndarray:
    """Per view and frame: does any (finite) joint project outside the image or behind the camera?

    Args:
        joints: [F, J, 3] world positions (NaN for joints a skeleton lacks; they are ignored).
        cameras: the rig (V views).

    Returns:
        [V, F] bool.
    """
    joints = np.asarray(joints, dtype=np.float64)
    if joints.ndim != 3 or joints.shape[-1] != 3:
        raise ValueError(f"joints must be [F, J, 3], got {joints.shape}")
    frames, count = joints.shape[:2]
    flat = joints.reshape(-1, 3)
    ok = np.isfinite(flat).all(axis=1)
    out = np.zeros((cameras.num_views, frames), dtype=bool)
    for v in range(cameras.num_views):
        uv, depth = project(np.where(ok[:, None], flat, 0.0), cameras.viewmats[v], cameras.Ks[v])
        bad = (depth <= 0) | (uv[:, 0] < 0) | (uv[:, 0] >= cameras.width) | (uv[:, 1] < 0) | (uv[:, 1] >= cameras.height)
        out[v] = (bad & ok).reshape(frames, count).any(axis=1)
    return out


def silhouette_outside(uv: np.ndarray, depth: np.ndarray, width: int, height: int) -> bool:
    """Does any part of the surface leave the image?

    Args:
        uv: [N, 2] projected mesh vertices (pixels; `character4d.cameras.project`).
        depth: [N] their depth along the optical axis.
        width, height: image size.

    Returns:
        True when a vertex lies behind the camera or outside [0, width) x [0, height).
    """
    uv, depth = np.asarray(uv, dtype=np.float64), np.asarray(depth, dtype=np.float64)
    if uv.ndim != 2 or uv.shape[1] != 2 or depth.shape != uv.shape[:1]:
        raise ValueError(f"uv must be [N, 2] and depth [N], got {uv.shape} and {depth.shape}")
    if (depth <= 0).any():
        return True
    return bool(((uv[:, 0] < 0) | (uv[:, 0] >= width) | (uv[:, 1] < 0) | (uv[:, 1] >= height)).any())


def framing_record(joint_outside: np.ndarray, silhouette_out: np.ndarray, apose_out: np.ndarray) -> dict:
    """The meta.json ``framing`` entry.

    Args:
        joint_outside: [V, F] bool (`joints_outside`).
        silhouette_out: [V, F] bool (`silhouette_outside` of each motion image).
        apose_out: [V] bool, the same for the A-pose images.

    Returns:
        ``{"joint_outside": [[0|1] * F] * V, "silhouette_outside": ..., "apose_silhouette_outside": [0|1] * V,
        "clipped": number of motion images with either flag}``.
    """
    j = np.asarray(joint_outside, dtype=bool)
    s = np.asarray(silhouette_out, dtype=bool)
    if j.shape != s.shape:
        raise ValueError(f"joint_outside {j.shape} and silhouette_out {s.shape} differ")
    return {"joint_outside": j.astype(int).tolist(), "silhouette_outside": s.astype(int).tolist(),
            "apose_silhouette_outside": np.asarray(apose_out, dtype=bool).astype(int).tolist(),
            "clipped": int((j | s).sum())}


def framing_warning(meta: dict, key: str | None = None) -> str | None:
    """The run summary's warning for a sample that leaves the frame, or None when it stays in.

    Args:
        meta: a sample's meta.json (samples written before framing was recorded give None).
        key: the sample key for the message (default: from the meta's ids).

    Returns:
        e.g. ``"bram__jump: 12 of 525 images leave the frame (views 0, 1, 20)"``, or None.
    """
    framing = meta.get("framing")
    if not framing or not framing.get("clipped"):
        return None
    j = np.asarray(framing["joint_outside"], dtype=bool)
    s = np.asarray(framing["silhouette_outside"], dtype=bool)
    views = np.nonzero((j | s).any(axis=1))[0]
    key = key or f"{meta.get('character_id')}__{meta.get('motion_id')}"
    shown = ", ".join(str(v) for v in views[:8]) + (", ..." if len(views) > 8 else "")
    return f"{key}: {framing['clipped']} of {j.size} images leave the frame (views {shown})"
