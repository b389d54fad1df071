"""Pose fidelity: decode OpenPose-colour pose maps, triangulate the keypoints across views, compare
with the ground-truth joints (numpy only).

The colour convention is DESIGN.md Appendix A (OpenPose body, COCO-18 order, as ControlNet and DWPose
draw it, and as ``character4d.posemap`` draws the ground truth's ``pose.v{VV}.f{FFF}.png``): keypoint
``k`` is a filled disc in full colour ``KEYPOINT_COLORS[k]``; limbs are drawn at 0.6 of their colour,
so no limb pixel has a keypoint's colour. A keypoint hidden in a view is not drawn there, and is
simply absent from that view's triangulation.

Public functions (also used outside the benchmark, e.g. to get 3D joints out of generated pose maps):

- :func:`decode_pose_map`: ``[H, W, 3]`` uint8 -> ``[18, 2]`` pixel keypoints (NaN = absent);
- :func:`triangulate_points`: DLT with reprojection-error outlier rejection, one point over views;
- :func:`triangulate_keypoints`: ``[F, V, 18, 2]`` -> ``[F, 18, 3]`` world keypoints;
- :func:`triangulate_pose_maps`: pose maps (a sample or arrays) + cameras -> ``[F, 18, 3]``;
- :func:`coco18_from_joints`: canonical joints (``joints.npy``) -> COCO-18 keypoints;
- :func:`pose_errors`, :func:`procrustes_align`, :func:`pck_hits`: the pose task's measures.

Coordinates: world metres (Z up), cameras as ``cameras.json`` stores them (OpenCV world-to-camera
``viewmats [V, 4, 4]`` and ``Ks [V, 3, 3]``); pixel coordinates with (0, 0) at the top-left pixel's
corner, pixel centres at +0.5 (as ``character4d.cameras.project``).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import numpy as np

# The pose-map convention (DESIGN.md Appendix A) has one owner, character4d.posemap (numpy only), which
# draws the ground truth; decoding uses its tables so the two cannot drift apart.
from character4d.cameras import project
from character4d.posemap import COCO18_NAMES, KEYPOINT_COLORS, coco18_from_joints
from character4d.posemap import _COCO18_SOURCES as COCO18_SOURCES

__all__ = [
    "COCO18_NAMES",
    "COCO18_SOURCES",
    "KEYPOINT_COLORS",
    "LEFT_RIGHT_PAIRS",
    "coco18_from_joints",
    "decode_pose_map",
    "keypoints_from_openpose_json",
    "keypoints_to_openpose_json",
    "pck_hits",
    "pose_errors",
    "procrustes_align",
    "project_points",
    "triangulate_keypoints",
    "triangulate_points",
    "triangulate_pose_maps",
]

# Right/left keypoint pairs (indices), for the swapped-pose check and per-side reports.
LEFT_RIGHT_PAIRS: tuple[tuple[int, int], ...] = ((2, 5), (3, 6), (4, 7), (8, 11), (9, 12), (10, 13), (14, 15), (16, 17))
ROOT = (8, 11)  # the root is the mid-point of the hips (COCO-18 has no pelvis keypoint)
# Half the smallest distance between two keypoint colours (85 in one channel): a pixel within this
# L-infinity distance of a colour cannot be closer to another keypoint colour or a dimmed limb colour.
COLOR_TOLERANCE = 42


# --------------------------------------------------------------------------- decoding


def decode_pose_map(image: np.ndarray, variant: str = "openpose", tolerance: int = COLOR_TOLERANCE,
                    min_pixels: int = 1) -> np.ndarray:
    """2D keypoints of one OpenPose-colour pose map.

    Each keypoint's pixels are those within ``tolerance`` (L-infinity) of its colour; the keypoint is
    the centroid of their largest 8-connected component (stray pixels of a generated map elsewhere
    do not move it). A disc partly covered by a later one (the eyes drawn over the nose) keeps
    its visible part, whose centroid is within a pixel or two of the centre.

    Args:
        image: ``[H, W, 3]`` (or ``[H, W, 4]``, alpha ignored) uint8 RGB.
        variant: ``"openpose"``, or ``"charactershot"`` (red and blue swapped, as in CharacterShot's
            released pose maps; their confidence-scaled colours are not decoded).
        tolerance: L-infinity colour tolerance (default: half the smallest gap between colours).
        min_pixels: Components smaller than this count as absent.

    Returns:
        ``[18, 2]`` float64 pixel coordinates in ``COCO18_NAMES`` order, NaN where absent.

    Raises:
        ValueError: wrong shape or dtype, unknown variant.
    """
    from scipy import ndimage

    image = np.asarray(image)
    if image.ndim != 3 or image.shape[2] not in (3, 4) or image.dtype != np.uint8:
        raise ValueError(f"image: expected a uint8 pose map [H, W, 3], got {image.dtype} {list(image.shape)}")
    if variant not in ("openpose", "charactershot"):
        raise ValueError(f"variant: expected 'openpose' or 'charactershot', got {variant!r}")
    rgb = image[..., :3].astype(np.int16)
    if variant == "charactershot":
        rgb = rgb[..., ::-1]
    out = np.full((18, 2), np.nan)
    # Only bright pixels can be keypoints (every keypoint colour has a 255 channel): skip the rest.
    bright = rgb.max(axis=-1) >= 255 - tolerance
    ys, xs = np.nonzero(bright)
    if ys.size == 0:
        return out
    values = rgb[ys, xs]
    for k, colour in enumerate(KEYPOINT_COLORS):
        hit = (np.abs(values - np.asarray(colour)) <= tolerance).all(axis=-1)
        if hit.sum() < min_pixels:
            continue
        ky, kx = ys[hit], xs[hit]
        mask = np.zeros(image.shape[:2], dtype=bool)
        mask[ky, kx] = True
        labels, count = ndimage.label(mask, structure=np.ones((3, 3), dtype=bool))
        if count > 1:
            sizes = np.bincount(labels[ky, kx])
            keep = labels[ky, kx] == int(np.argmax(sizes))
            ky, kx = ky[keep], kx[keep]
        if ky.size >= min_pixels:
            out[k] = kx.mean() + 0.5, ky.mean() + 0.5
    return out


def keypoints_from_openpose_json(data: str | bytes | dict) -> np.ndarray:
    """2D keypoints of an OpenPose JSON record (its ``--write_json`` format).

    Args:
        data: The JSON text or parsed dict: ``{"people": [{"pose_keypoints_2d": [x0, y0, c0, ...]}]}``
            with 18 COCO-18 points; a point with confidence 0 is absent. The first person is used.

    Returns:
        ``[18, 2]`` float64, NaN where absent (no person: all absent).

    Raises:
        ValueError: malformed JSON or a keypoint list that is not 18 x 3 numbers.
    """
    if isinstance(data, (str, bytes)):
        try:
            data = json.loads(data)
        except json.JSONDecodeError as exc:
            raise ValueError(f"not valid JSON: {exc}") from exc
    if not isinstance(data, dict) or not isinstance(data.get("people"), list):
        raise ValueError('expected an OpenPose record {"people": [{"pose_keypoints_2d": [...]}]}')
    out = np.full((18, 2), np.nan)
    if not data["people"]:
        return out
    flat = data["people"][0].get("pose_keypoints_2d") if isinstance(data["people"][0], dict) else None
    try:
        points = np.asarray(flat, dtype=np.float64).reshape(18, 3)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"pose_keypoints_2d: expected 18 x (x, y, confidence) = 54 numbers, got {flat!r:.80}") from exc
    if not np.isfinite(points).all():
        raise ValueError("pose_keypoints_2d: expected finite numbers")
    present = points[:, 2] > 0
    out[present] = points[present, :2]
    return out


def keypoints_to_openpose_json(uv: np.ndarray) -> str:
    """An OpenPose JSON record of ``[18, 2]`` keypoints (NaN -> confidence 0)."""
    uv = np.asarray(uv, dtype=np.float64)
    flat = []
    for x, y in uv:
        flat += [0.0, 0.0, 0.0] if not (np.isfinite(x) and np.isfinite(y)) else [round(float(x), 3), round(float(y), 3), 1.0]
    return json.dumps({"version": 1.3, "people": [{"pose_keypoints_2d": flat}]})


# --------------------------------------------------------------------------- geometry


def project_points(points: np.ndarray, viewmat: np.ndarray, K: np.ndarray) -> np.ndarray:
    """Pinhole projection ``[N, 3]`` world -> ``[N, 2]`` pixels, NaN at or behind the camera
    (:func:`character4d.cameras.project`, the rig's one projection)."""
    return project(points, viewmat, K)[0]


def triangulate_points(uv: np.ndarray, viewmats: np.ndarray, Ks: np.ndarray, threshold_px: float = 8.0,
                       min_views: int = 2) -> tuple[np.ndarray, np.ndarray]:
    """Triangulate one point seen in several views: linear DLT, then outlier rejection.

    The DLT solves ``x (P3 X) - P1 X = 0``, ``y (P3 X) - P2 X = 0`` in normalised image coordinates
    (``K^-1 [u, v, 1]``, better conditioned than pixels). While more than ``min_views`` views remain
    and the worst reprojection error exceeds ``threshold_px``, that view is dropped and the point
    solved again (a keypoint decoded at the wrong place in one view, or a left/right confusion in a
    profile view, does not drag the point away).

    Args:
        uv: ``[V, 2]`` pixel coordinates, NaN where the point is absent.
        viewmats: ``[V, 4, 4]`` OpenCV world-to-camera.
        Ks: ``[V, 3, 3]``.
        threshold_px: Reprojection error above which a view is an outlier.
        min_views: Views needed for a point.

    Returns:
        ``(X [3], inliers [V] bool)``; X is NaN when fewer than ``min_views`` views see the point.
    """
    uv = np.asarray(uv, dtype=np.float64)
    used = np.isfinite(uv).all(axis=1)
    point = np.full(3, np.nan)
    while used.sum() >= min_views:
        idx = np.flatnonzero(used)
        ones = np.ones((len(idx), 1))
        norm = np.einsum("vij,vj->vi", np.linalg.inv(Ks[idx]), np.hstack([uv[idx], ones]))
        norm = norm[:, :2] / norm[:, 2:3]
        P = viewmats[idx, :3, :]
        A = np.concatenate([norm[:, :1] * P[:, 2] - P[:, 0], norm[:, 1:2] * P[:, 2] - P[:, 1]])
        _, _, vt = np.linalg.svd(A)
        h = vt[-1]
        if abs(h[3]) < 1e-12:
            break
        point = h[:3] / h[3]
        errors = np.array([np.linalg.norm(project_points(point[None], viewmats[v], Ks[v])[0] - uv[v]) for v in idx])
        errors = np.where(np.isfinite(errors), errors, np.inf)  # behind a camera: an outlier
        worst = int(np.argmax(errors))
        if errors[worst] <= threshold_px or len(idx) <= min_views:
            if not np.isfinite(errors).all():
                point = np.full(3, np.nan)
            break
        used[idx[worst]] = False
    if used.sum() < min_views:
        point = np.full(3, np.nan)
    return point, used


def triangulate_keypoints(keypoints: np.ndarray, viewmats: np.ndarray, Ks: np.ndarray, threshold_px: float = 8.0,
                          min_views: int = 2) -> np.ndarray:
    """Triangulate 2D keypoints of several views and frames.

    Args:
        keypoints: ``[F, V, K, 2]`` pixels (NaN = absent).
        viewmats: ``[V, 4, 4]`` OpenCV world-to-camera of those views.
        Ks: ``[V, 3, 3]``.
        threshold_px: Outlier threshold of :func:`triangulate_points`.
        min_views: Views needed for a point.

    Returns:
        ``[F, K, 3]`` world positions (NaN where fewer than ``min_views`` consistent views).

    Raises:
        ValueError: inconsistent shapes.
    """
    kp = np.asarray(keypoints, dtype=np.float64)
    viewmats, Ks = np.asarray(viewmats, np.float64), np.asarray(Ks, np.float64)
    if kp.ndim != 4 or kp.shape[-1] != 2 or viewmats.shape != (kp.shape[1], 4, 4) or Ks.shape != (kp.shape[1], 3, 3):
        raise ValueError(
            f"keypoints [F, V, K, 2], viewmats [V, 4, 4], Ks [V, 3, 3]: got {list(kp.shape)}, "
            f"{list(viewmats.shape)}, {list(Ks.shape)}"
        )
    out = np.full(kp.shape[:1] + kp.shape[2:3] + (3,), np.nan)
    for f in range(kp.shape[0]):
        for k in range(kp.shape[2]):
            out[f, k] = triangulate_points(kp[f, :, k], viewmats, Ks, threshold_px, min_views)[0]
    return out


def triangulate_pose_maps(
    maps: Any,
    cameras: Any = None,
    views: Sequence[int] | None = None,
    frames: Sequence[int] | None = None,
    variant: str | None = None,
    threshold_px: float | None = None,
) -> np.ndarray:
    """3D COCO-18 keypoints from OpenPose-colour pose maps of several calibrated views.

    Args:
        maps: A ``character4d.format.Sample`` (its ``pose.v{VV}.f{FFF}.png``), or an array / nested
            sequence ``maps[v][f]`` of ``[H, W, 3]`` uint8 pose maps for ``views`` x ``frames``.
        cameras: ``character4d.cameras.Cameras``, a ``cameras.json`` dict, or ``(viewmats [V', 4, 4],
            Ks [V', 3, 3])`` of the whole rig; default the sample's own cameras.
        views: Rig view indices of the maps (default: all views of the sample, or ``range(len(maps))``).
        frames: Frame indices (default: all frames of the sample, or ``range(len(maps[0]))``).
        variant: Colour variant, see :func:`decode_pose_map` (default: the sample's own
            ``meta.json`` ``render_config.pose_variant``, else ``"openpose"``).
        threshold_px: Outlier threshold (default 1.5 % of the image side: 8 px at 512 px).

    Returns:
        ``[F, 18, 3]`` float64 world keypoints in ``COCO18_NAMES`` order (NaN: seen in fewer than 2
        consistent views).

    Raises:
        ValueError: no cameras, or maps and cameras that do not fit.
    """
    is_sample = hasattr(maps, "pose") and hasattr(maps, "num_views")
    if cameras is None:
        if not is_sample:
            raise ValueError("cameras: required when maps is not a character4d sample")
        cameras = maps.cameras
    viewmats, Ks = _camera_arrays(cameras)
    if variant is None:
        variant = sample_pose_variant(maps) if is_sample else "openpose"
    if is_sample:
        views = list(range(maps.num_views)) if views is None else list(views)
        frames = list(range(maps.num_frames)) if frames is None else list(frames)
        images = [[maps.pose(v, f) for f in frames] for v in views]
    else:
        images = maps
        views = list(range(len(images))) if views is None else list(views)
        frames = list(range(len(images[0]))) if frames is None else list(frames)
    if len(images) != len(views) or any(len(row) != len(frames) for row in images):
        raise ValueError(f"maps: expected {len(views)} views x {len(frames)} frames")
    side = min(np.asarray(images[0][0]).shape[:2])
    threshold = threshold_px if threshold_px is not None else 0.015 * side
    kp = np.stack([[decode_pose_map(np.asarray(images[i][j]), variant) for i in range(len(views))]
                   for j in range(len(frames))])  # [F, V, 18, 2]
    return triangulate_keypoints(kp, viewmats[views], Ks[views], threshold)


def sample_pose_variant(sample: Any) -> str:
    """The colour variant a sample's pose maps were drawn in (``meta.json`` ``render_config.pose_variant``)."""
    config = (sample.meta or {}).get("render_config") or {}
    return config.get("pose_variant", "openpose") if isinstance(config, dict) else "openpose"


def _camera_arrays(cameras: Any) -> tuple[np.ndarray, np.ndarray]:
    if isinstance(cameras, tuple) and len(cameras) == 2:
        return np.asarray(cameras[0], np.float64), np.asarray(cameras[1], np.float64)
    if isinstance(cameras, dict):  # the cameras.json document
        views = cameras.get("views") or []
        return (np.asarray([v["w2c_opencv"] for v in views], np.float64), np.asarray([v["K"] for v in views], np.float64))
    if hasattr(cameras, "viewmats") and hasattr(cameras, "Ks"):
        return np.asarray(cameras.viewmats, np.float64), np.asarray(cameras.Ks, np.float64)
    raise ValueError(f"cameras: expected Cameras, a cameras.json dict or (viewmats, Ks), got {type(cameras).__name__}")


# --------------------------------------------------------------------------- measures


def procrustes_align(pred: np.ndarray, gt: np.ndarray) -> np.ndarray:
    """``pred`` moved onto ``gt`` by the best similarity transform (Umeyama 1991: scale, rotation,
    translation, no reflection).

    Args:
        pred: ``[K, 3]`` finite points (K >= 3).
        gt: ``[K, 3]`` finite points.

    Returns:
        ``[K, 3]`` aligned ``pred``.
    """
    mu_p, mu_g = pred.mean(0), gt.mean(0)
    p, g = pred - mu_p, gt - mu_g
    u, s, vt = np.linalg.svd(g.T @ p)
    d = np.sign(np.linalg.det(u @ vt))
    fix = np.diag([1.0, 1.0, d])
    rot = u @ fix @ vt
    var = (p * p).sum()
    scale = (s * np.diag(fix)).sum() / var if var > 0 else 1.0
    return scale * p @ rot.T + mu_g


def pose_errors(pred: np.ndarray, gt: np.ndarray, missing_mm: float = 1000.0) -> dict[str, Any]:
    """Position errors of predicted 3D keypoints, in millimetres.

    Joints absent from the ground truth (NaN) do not count. A joint the prediction lacks (NaN: seen in
    fewer than 2 consistent views), or whose frame lacks the predicted root for the root-aligned
    error, counts as ``missing_mm``, so leaving joints out never lowers an error; ``coverage`` says
    how many were there.

    Args:
        pred: ``[F, K, 3]`` metres (NaN = not triangulated).
        gt: ``[F, K, 3]`` metres (COCO-18 order: the root is the mid-point of keypoints 8 and 11).
        missing_mm: Error charged for a missing joint.

    Returns:
        ``{"mpjpe_raw", "mpjpe" (root-aligned), "pa_mpjpe", "coverage"}`` floats (NaN when nothing
        could be measured) and ``"per_joint"``: ``[K]`` raw mean error of each keypoint.

    Raises:
        ValueError: different shapes.
    """
    pred, gt = np.asarray(pred, np.float64), np.asarray(gt, np.float64)
    if pred.shape != gt.shape or pred.ndim != 3 or pred.shape[-1] != 3:
        raise ValueError(f"pred, gt: expected equal shapes [F, K, 3], got {list(pred.shape)} and {list(gt.shape)}")
    valid_gt = np.isfinite(gt).all(-1)
    valid = valid_gt & np.isfinite(pred).all(-1)
    if not valid_gt.any():
        raise ValueError("gt: no finite ground-truth keypoint to measure against")
    raw = np.where(valid, np.linalg.norm(pred - gt, axis=-1) * 1000.0, missing_mm)
    root_p, root_g = pred[:, list(ROOT)].mean(1, keepdims=True), gt[:, list(ROOT)].mean(1, keepdims=True)
    aligned = np.linalg.norm((pred - root_p) - (gt - root_g), axis=-1) * 1000.0
    aligned = np.where(valid & np.isfinite(aligned), aligned, missing_mm)
    pa = np.full(raw.shape, missing_mm)
    for f in range(pred.shape[0]):
        if valid[f].sum() >= 3:
            pa[f, valid[f]] = np.linalg.norm(procrustes_align(pred[f, valid[f]], gt[f, valid[f]]) - gt[f, valid[f]], axis=-1) * 1000.0
    per_joint = np.array([raw[valid_gt[:, k], k].mean() if valid_gt[:, k].any() else np.nan for k in range(pred.shape[1])])
    return {
        "mpjpe_raw": float(raw[valid_gt].mean()),
        "mpjpe": float(aligned[valid_gt].mean()),
        "pa_mpjpe": float(pa[valid_gt].mean()),
        "coverage": float(valid.sum() / valid_gt.sum()),
        "per_joint": per_joint,
    }


def pck_hits(pred_uv: np.ndarray, gt_uv: np.ndarray, visible: np.ndarray, alpha: float = 0.05) -> tuple[int, int]:
    """PCK counts of one view: keypoints within ``alpha`` x the larger side of the ground truth's
    2D bounding box (of its visible keypoints) count as correct; an absent prediction is wrong.

    Args:
        pred_uv: ``[K, 2]`` predicted pixels (NaN = absent).
        gt_uv: ``[K, 2]`` ground-truth pixels (projections of the true joints).
        visible: ``[K]`` bool, the keypoints the ground-truth pose map shows.
        alpha: Radius as a fraction of the bounding box's larger side.

    Returns:
        ``(correct, visible)`` counts.
    """
    vis = np.asarray(visible, bool) & np.isfinite(gt_uv).all(-1)
    if not vis.any():
        return 0, 0
    box = gt_uv[vis].max(0) - gt_uv[vis].min(0)
    radius = alpha * max(float(box.max()), 1.0)
    dist = np.linalg.norm(np.asarray(pred_uv, np.float64) - gt_uv, axis=-1)
    return int((np.isfinite(dist) & (dist <= radius) & vis).sum()), int(vis.sum())
