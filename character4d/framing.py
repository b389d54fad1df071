"""Framing checks (numpy only): does the character leave the image?

Two signals per view and frame: a body joint projects outside the image (or behind the camera), and
the silhouette touches the image border (some of the character is cut off). The renderer records both
in meta.json (``framing``) and the run summary warns about samples that leave the frame.
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


def silhouette_at_edge(alpha: np.ndarray) -> bool:
    """Does any covered pixel (alpha > 0) lie on the image's border rows or columns?

    Args:
        alpha: [H, W] alpha channel.

    Returns:
        True when the silhouette is cut by the image border.
    """
    a = np.asarray(alpha)
    if a.ndim != 2:
        raise ValueError(f"alpha must be [H, W], got {a.shape}")
    return bool((a[0] > 0).any() or (a[-1] > 0).any() or (a[:, 0] > 0).any() or (a[:, -1] > 0).any())


def framing_record(joint_outside: np.ndarray, silhouette_edge: np.ndarray, apose_edge: np.ndarray) -> dict:
    """The meta.json ``framing`` entry.

    Args:
        joint_outside: [V, F] bool (`joints_outside`).
        silhouette_edge: [V, F] bool (`silhouette_at_edge` of each motion image).
        apose_edge: [V] bool, the same for the A-pose images.

    Returns:
        ``{"joint_outside": [[0|1] * F] * V, "silhouette_at_edge": ..., "apose_silhouette_at_edge": [0|1] * V,
        "clipped": number of motion images with either flag}``.
    """
    j = np.asarray(joint_outside, dtype=bool)
    s = np.asarray(silhouette_edge, dtype=bool)
    if j.shape != s.shape:
        raise ValueError(f"joint_outside {j.shape} and silhouette_edge {s.shape} differ")
    return {"joint_outside": j.astype(int).tolist(), "silhouette_at_edge": s.astype(int).tolist(),
            "apose_silhouette_at_edge": np.asarray(apose_edge, dtype=bool).astype(int).tolist(),
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
    s = np.asarray(framing["silhouette_at_edge"], dtype=bool)
    views = np.nonzero((j | s).any(axis=1))[0]
    key = key or f"{meta.get('character_id')}__{meta.get('motion_id')}"
    shown = ", ".join(str(v) for v in views[:8]) + (", ..." if len(views) > 8 else "")
    return f"{key}: {framing['clipped']} of {j.size} images leave the frame (views {shown})"
