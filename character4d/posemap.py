"""OpenPose/DWPose-style 2D pose maps drawn from 3D canonical joints (numpy only).

The layout, colours and drawing order are those of DESIGN.md Appendix A, i.e. of DWPose's
``draw_bodypose`` / ``draw_handpose`` as used by ControlNet: limbs are filled ellipses drawn in full colour
in order (later over earlier), the whole canvas is then scaled by 0.6 (so limbs end at 0.6 of their
colour), keypoints are filled discs in full colour on top, hands last. Shapes are rasterised here by
testing pixel centres (pixel (x, y) has its centre at (x + 0.5, y + 0.5), the convention of
``character4d.cameras.project``), without anti-aliasing, like OpenCV's default.
"""

from __future__ import annotations

import colorsys
import functools
from dataclasses import dataclass
from typing import Sequence

import numpy as np

from character4d.cameras import camera_centers, project
from character4d.skeleton import HAND_POINTS, JOINT_NAMES

__all__ = [
    "COCO18_NAMES",
    "HAND_EDGES",
    "HAND_EDGE_COLORS",
    "HAND_POINT_COLOR",
    "KEYPOINT_COLORS",
    "LIMBS",
    "LIMB_COLORS",
    "PoseStyle",
    "coco18_from_joints",
    "draw_keypoints",
    "draw_pose_map",
    "hand21_from_joints",
    "keypoint_visibility",
]

COCO18_NAMES: tuple[str, ...] = (
    "nose", "neck", "right_shoulder", "right_elbow", "right_wrist", "left_shoulder", "left_elbow", "left_wrist",
    "right_hip", "right_knee", "right_ankle", "left_hip", "left_knee", "left_ankle",
    "right_eye", "left_eye", "right_ear", "left_ear",
)  # fmt: skip

# Drawing order matters: a later limb covers an earlier one where they overlap.
LIMBS: tuple[tuple[int, int], ...] = (
    (1, 2), (1, 5), (2, 3), (3, 4), (5, 6), (6, 7), (1, 8), (8, 9), (9, 10), (1, 11), (11, 12), (12, 13),
    (1, 0), (0, 14), (14, 16), (0, 15), (15, 17),
)  # fmt: skip

LIMB_COLORS: tuple[tuple[int, int, int], ...] = (
    (255, 0, 0), (255, 85, 0), (255, 170, 0), (255, 255, 0), (170, 255, 0), (85, 255, 0), (0, 255, 0),
    (0, 255, 85), (0, 255, 170), (0, 255, 255), (0, 170, 255), (0, 85, 255), (0, 0, 255), (85, 0, 255),
    (170, 0, 255), (255, 0, 255), (255, 0, 170),
)  # fmt: skip

KEYPOINT_COLORS: tuple[tuple[int, int, int], ...] = LIMB_COLORS + ((255, 0, 85),)

# OpenPose hand: 0 wrist, then thumb, index, middle, ring, little, 4 points each, base to tip.
HAND_EDGES: tuple[tuple[int, int], ...] = tuple(
    (0 if i == 0 else 4 * finger + i, 4 * finger + i + 1) for finger in range(5) for i in range(4)
)
# Edge e has hue e / 20 at full saturation and value (matplotlib's hsv_to_rgb * 255, rounded as OpenCV does).
HAND_EDGE_COLORS: tuple[tuple[int, int, int], ...] = tuple(
    tuple(int(round(255 * c)) for c in colorsys.hsv_to_rgb(e / 20, 1.0, 1.0))  # type: ignore[misc]
    for e in range(20)
)
HAND_POINT_COLOR: tuple[int, int, int] = (0, 0, 255)

# COCO-18 keypoint -> canonical joints whose mean it is (DESIGN.md Appendix A: joints are bone heads,
# the neck is the mid-point of the shoulders as DWPose computes it, not the neck bone).
_COCO18_SOURCES: tuple[tuple[str, ...], ...] = (
    ("nose",), ("leftUpperArm", "rightUpperArm"), ("rightUpperArm",), ("rightLowerArm",), ("rightHand",),
    ("leftUpperArm",), ("leftLowerArm",), ("leftHand",), ("rightUpperLeg",), ("rightLowerLeg",), ("rightFoot",),
    ("leftUpperLeg",), ("leftLowerLeg",), ("leftFoot",), ("rightEye",), ("leftEye",), ("rightEar",), ("leftEar",),
)  # fmt: skip

_NOSE, _R_EYE, _L_EYE, _R_EAR, _L_EAR = 0, 14, 15, 16, 17
# CharacterShot drew its pose maps on a canvas whose shorter side is 2160 px and resized it down, so
# its strokes are 2160 / 512 (about 4.2) times thinner than DWPose's at 512 px.
_CHARACTERSHOT_SCALE = 512.0 / 2160.0
_VARIANTS = ("openpose", "charactershot")


@dataclass(frozen=True)
class PoseStyle:
    """How a pose map is drawn.

    Sizes are given for a 512 px image and scale with the shorter image side. ``None`` means the variant's
    default: OpenPose/DWPose limbs 8 px wide (stickwidth 4), keypoint discs of radius 4, hand lines 2 px;
    the CharacterShot variant about 4.2 times thinner throughout, with red and blue swapped and colours
    scaled by keypoint confidence (its released data went through DWPose's drawing at 2160 px and a BGR/RGB
    mix-up; we draw the thin strokes directly instead of resizing, so edges are not blurred).

    Attributes:
        variant: ``"openpose"`` or ``"charactershot"``.
        hands: Draw the 21-point hands when the joints have them.
        limb_width_at_512: Full width of the limb ellipses, pixels at 512 px.
        keypoint_radius_at_512: Radius of the keypoint discs, pixels at 512 px.
        hand_line_width_at_512: Width of the hand edges, pixels at 512 px.
        limb_alpha: Factor applied to the limb layer (0.6 in OpenPose/DWPose).
        confidence_threshold: Keypoints with a confidence below this are not drawn (0.3 in DWPose).
    """

    variant: str = "openpose"
    hands: bool = False
    limb_width_at_512: float | None = None
    keypoint_radius_at_512: float | None = None
    hand_line_width_at_512: float | None = None
    limb_alpha: float = 0.6
    confidence_threshold: float = 0.3

    def __post_init__(self) -> None:
        if self.variant not in _VARIANTS:
            raise ValueError(f"PoseStyle.variant: expected one of {_VARIANTS}, got {self.variant!r}")
        for name in ("limb_width_at_512", "keypoint_radius_at_512", "hand_line_width_at_512"):
            value = getattr(self, name)
            if value is not None and not value > 0:
                raise ValueError(f"PoseStyle.{name}: expected a value > 0 or None, got {value!r}")
        if not 0.0 <= self.limb_alpha <= 1.0:
            raise ValueError(f"PoseStyle.limb_alpha: expected a value in [0, 1], got {self.limb_alpha!r}")

    def _default(self, value: float | None, openpose: float) -> float:
        if value is not None:
            return float(value)
        return openpose * (_CHARACTERSHOT_SCALE if self.variant == "charactershot" else 1.0)

    def sizes(self, width: int, height: int) -> tuple[float, float, float]:
        """``(limb_width, keypoint_radius, hand_line_width)`` in pixels for an image of this size."""
        scale = min(width, height) / 512.0
        return (
            self._default(self.limb_width_at_512, 8.0) * scale,
            self._default(self.keypoint_radius_at_512, 4.0) * scale,
            self._default(self.hand_line_width_at_512, 2.0) * scale,
        )


@functools.lru_cache(maxsize=16)
def _name_index(joint_names: tuple[str, ...]) -> dict[str, int]:
    return {name: i for i, name in enumerate(joint_names)}


def _check_joints(joints: np.ndarray, joint_names: Sequence[str]) -> tuple[np.ndarray, dict[str, int]]:
    joints = np.asarray(joints, dtype=np.float64)
    names = tuple(joint_names)
    if joints.ndim < 2 or joints.shape[-2:] != (len(names), 3):
        raise ValueError(f"joints: expected shape [..., {len(names)}, 3] to match joint_names, got {joints.shape}")
    return joints, _name_index(names)


def _gather(joints: np.ndarray, index: dict[str, int], sources: Sequence[tuple[str, ...]]) -> np.ndarray:
    out = np.full(joints.shape[:-2] + (len(sources), 3), np.nan)
    for k, names in enumerate(sources):
        if all(n in index for n in names):
            out[..., k, :] = np.mean([joints[..., index[n], :] for n in names], axis=0)
    return out


def coco18_from_joints(joints: np.ndarray, joint_names: Sequence[str] = JOINT_NAMES) -> np.ndarray:
    """The COCO-18 (OpenPose body) keypoints of canonical joints.

    Shoulders/elbows/wrists are the heads of upperArm/lowerArm/hand, hips/knees/ankles the heads of
    upperLeg/lowerLeg/foot, the neck the mid-point of the two shoulders, face points as named.

    Args:
        joints: ``[..., J, 3]`` joint positions in ``joint_names`` order (NaN = missing).
        joint_names: ``[J]`` canonical names (default ``JOINT_NAMES``, the order of ``joints.npy``).

    Returns:
        ``[..., 18, 3]`` float64 in ``COCO18_NAMES`` order; NaN where a source joint is NaN or not named.

    Raises:
        ValueError: if ``joints`` does not end in ``[len(joint_names), 3]``.
    """
    joints, index = _check_joints(joints, joint_names)
    return _gather(joints, index, _COCO18_SOURCES)


def hand21_from_joints(joints: np.ndarray, joint_names: Sequence[str] = JOINT_NAMES) -> np.ndarray:
    """The OpenPose 21-point hands (wrist, then thumb/index/middle/ring/little base to tip).

    Args:
        joints: ``[..., J, 3]`` joint positions in ``joint_names`` order (NaN = missing).
        joint_names: ``[J]`` canonical names.

    Returns:
        ``[..., 2, 21, 3]`` float64, left hand then right hand; NaN where missing.

    Raises:
        ValueError: if ``joints`` does not end in ``[len(joint_names), 3]``.
    """
    joints, index = _check_joints(joints, joint_names)
    hands = []
    for side in ("left", "right"):
        points = [f"{side}Hand"] + [p for p in HAND_POINTS if p.startswith(side)]
        hands.append(_gather(joints, index, [(p,) for p in points]))
    return np.stack(hands, axis=-3)


def _unit(v: np.ndarray) -> np.ndarray:
    norm = np.linalg.norm(v)
    return v / norm if norm > 0 else v


def keypoint_visibility(
    kp3d: np.ndarray, camera_center: np.ndarray, face_forward_threshold: float = 0.0, far_ear_threshold: float = -0.5
) -> np.ndarray:
    """Which COCO-18 keypoints a camera would see (what a DWPose detector would report).

    The head centre is the mid-point of the ears (else of the eyes). The nose and eyes are hidden when the
    head faces away: ``dot(unit(nose - head centre), unit(camera - head centre)) < face_forward_threshold``.
    An ear is hidden when it is on the far side in profile: ``dot(unit(ear - head centre),
    unit(camera - head centre)) < far_ear_threshold`` (needs both ears). NaN keypoints are hidden.
    Self-occlusion of the body is not modelled (OpenPose reports occluded limbs too).

    Args:
        kp3d: ``[18, 3]`` world keypoints in ``COCO18_NAMES`` order.
        camera_center: ``[3]`` world position of the camera.
        face_forward_threshold: Cosine below which the face counts as turned away.
        far_ear_threshold: Cosine below which an ear counts as hidden behind the head.

    Returns:
        ``[18]`` bool.

    Raises:
        ValueError: on wrong shapes.
    """
    kp = np.asarray(kp3d, dtype=np.float64)
    if kp.shape != (18, 3):
        raise ValueError(f"kp3d: expected shape [18, 3], got {kp.shape}")
    cam = np.asarray(camera_center, dtype=np.float64)
    if cam.shape != (3,):
        raise ValueError(f"camera_center: expected shape [3], got {cam.shape}")
    visible = np.isfinite(kp).all(axis=-1)
    ears = bool(visible[_R_EAR] and visible[_L_EAR])
    eyes = bool(visible[_R_EYE] and visible[_L_EYE])
    if not (ears or eyes):
        return visible
    centre = 0.5 * (kp[_R_EAR] + kp[_L_EAR]) if ears else 0.5 * (kp[_R_EYE] + kp[_L_EYE])
    to_camera = _unit(cam - centre)
    if visible[_NOSE] and float(_unit(kp[_NOSE] - centre) @ to_camera) < face_forward_threshold:
        visible[[_NOSE, _R_EYE, _L_EYE]] = False
    if ears:
        for ear in (_R_EAR, _L_EAR):
            if float(_unit(kp[ear] - centre) @ to_camera) < far_ear_threshold:
                visible[ear] = False
    return visible


# ----- rasterisation --------------------------------------------------------------------------------


def _window(
    centre: np.ndarray, extent: np.ndarray, width: int, height: int
) -> tuple[slice, slice, np.ndarray, np.ndarray] | None:
    """Pixel window around a shape and its pixel-centre coordinates relative to ``centre``."""
    x0, y0 = np.floor(centre - extent - 0.5).astype(int)
    x1, y1 = np.ceil(centre + extent + 0.5).astype(int)
    x0, y0, x1, y1 = max(x0, 0), max(y0, 0), min(x1, width), min(y1, height)
    if x0 >= x1 or y0 >= y1:
        return None
    xs = np.arange(x0, x1) + 0.5 - centre[0]
    ys = np.arange(y0, y1) + 0.5 - centre[1]
    return slice(y0, y1), slice(x0, x1), xs[None, :], ys[:, None]


def _fill_ellipse(canvas: np.ndarray, p0: np.ndarray, p1: np.ndarray, half_width: float, color: np.ndarray) -> None:
    """OpenPose limb: an ellipse centred on the segment, major semi-axis half its length along it."""
    centre = 0.5 * (p0 + p1)
    delta = p1 - p0
    length = float(np.hypot(*delta))
    semi_major = max(0.5 * length, 1e-6)
    direction = delta / length if length > 0 else np.array([1.0, 0.0])
    extent = np.sqrt((semi_major * direction) ** 2 + (half_width * direction[::-1]) ** 2)
    win = _window(centre, extent, canvas.shape[1], canvas.shape[0])
    if win is None:
        return
    rows, cols, xs, ys = win
    along = xs * direction[0] + ys * direction[1]
    across = -xs * direction[1] + ys * direction[0]
    inside = (along / semi_major) ** 2 + (across / half_width) ** 2 <= 1.0
    canvas[rows, cols][inside] = color


def _fill_disc(canvas: np.ndarray, centre: np.ndarray, radius: float, color: np.ndarray) -> None:
    win = _window(centre, np.array([radius, radius]), canvas.shape[1], canvas.shape[0])
    if win is None:
        return
    rows, cols, xs, ys = win
    canvas[rows, cols][xs**2 + ys**2 <= radius**2] = color


def _fill_segment(canvas: np.ndarray, p0: np.ndarray, p1: np.ndarray, half_width: float, color: np.ndarray) -> None:
    """A thick line (capsule): pixels whose centre is within ``half_width`` of the segment."""
    centre = 0.5 * (p0 + p1)
    extent = 0.5 * np.abs(p1 - p0) + half_width
    win = _window(centre, extent, canvas.shape[1], canvas.shape[0])
    if win is None:
        return
    rows, cols, xs, ys = win
    a, b = p0 - centre, p1 - centre
    d = b - a
    denom = float(d @ d)
    t = np.zeros_like(xs * ys) if denom == 0 else np.clip(((xs - a[0]) * d[0] + (ys - a[1]) * d[1]) / denom, 0.0, 1.0)
    dist2 = (xs - a[0] - t * d[0]) ** 2 + (ys - a[1] - t * d[1]) ** 2
    canvas[rows, cols][dist2 <= half_width**2] = color


def _in_image(uv: np.ndarray, width: int, height: int) -> np.ndarray:
    with np.errstate(invalid="ignore"):
        u, v = uv[..., 0], uv[..., 1]
        return np.isfinite(uv).all(axis=-1) & (u >= 0) & (u < width) & (v >= 0) & (v < height)


def _scaled(color: Sequence[int], factor: float) -> np.ndarray:
    # int() truncation, as DWPose's alpha_blend_color does.
    return np.array([int(c * factor) for c in color], dtype=np.uint8)


def draw_keypoints(
    uv: np.ndarray,
    width: int,
    height: int,
    style: PoseStyle = PoseStyle(),
    visible: np.ndarray | None = None,
    confidences: np.ndarray | None = None,
    hands_uv: np.ndarray | None = None,
) -> np.ndarray:
    """Draw a pose map from 2D keypoints.

    Args:
        uv: ``[18, 2]`` COCO-18 pixel coordinates ((0, 0) = top-left pixel corner; NaN = missing).
        width: Image width in pixels.
        height: Image height in pixels.
        style: The drawing style.
        visible: ``[18]`` bool; hidden keypoints, and limbs touching them, are not drawn.
        confidences: ``[18]`` in [0, 1] (default 1): points below ``style.confidence_threshold`` are not
            drawn; the CharacterShot variant also scales limb colours by the product of their two
            confidences and keypoint colours by their own.
        hands_uv: ``[n, 21, 2]`` OpenPose hand points (NaN = missing), drawn when ``style.hands``.

    Returns:
        ``[H, W, 3]`` uint8 RGB image on black.

    Raises:
        ValueError: on wrong shapes.
    """
    uv = np.asarray(uv, dtype=np.float64)
    if uv.shape != (18, 2):
        raise ValueError(f"uv: expected shape [18, 2], got {uv.shape}")
    conf = np.ones(18) if confidences is None else np.asarray(confidences, dtype=np.float64)
    if conf.shape != (18,):
        raise ValueError(f"confidences: expected shape [18], got {conf.shape}")
    shown = _in_image(uv, width, height) & (conf >= style.confidence_threshold)
    if visible is not None:
        visible = np.asarray(visible, dtype=bool)
        if visible.shape != (18,):
            raise ValueError(f"visible: expected shape [18], got {visible.shape}")
        shown &= visible
    scale_colors = style.variant == "charactershot"
    limb_width, radius, hand_width = style.sizes(width, height)

    canvas = np.zeros((height, width, 3), dtype=np.uint8)
    for (a, b), color in zip(LIMBS, LIMB_COLORS):
        if shown[a] and shown[b]:
            factor = conf[a] * conf[b] if scale_colors else 1.0
            _fill_ellipse(canvas, uv[a], uv[b], 0.5 * limb_width, _scaled(color, factor))
    # DWPose dims the whole limb layer at once (truncating), not each limb as it is drawn.
    canvas = (canvas * style.limb_alpha).astype(np.uint8)
    for k in np.flatnonzero(shown):
        _fill_disc(canvas, uv[k], radius, _scaled(KEYPOINT_COLORS[k], conf[k] if scale_colors else 1.0))

    if style.hands and hands_uv is not None:
        hands = np.asarray(hands_uv, dtype=np.float64)
        if hands.ndim != 3 or hands.shape[1:] != (21, 2):
            raise ValueError(f"hands_uv: expected shape [n, 21, 2], got {hands.shape}")
        for hand in hands:
            ok = _in_image(hand, width, height)
            for (a, b), color in zip(HAND_EDGES, HAND_EDGE_COLORS):
                if ok[a] and ok[b]:
                    # At least 1 px wide, so that thin variants still draw connected lines.
                    _fill_segment(canvas, hand[a], hand[b], max(0.5 * hand_width, 0.5), np.array(color, dtype=np.uint8))
            for k in np.flatnonzero(ok):
                _fill_disc(canvas, hand[k], radius, np.array(HAND_POINT_COLOR, dtype=np.uint8))

    if scale_colors:
        # CharacterShot's maps passed through an extra BGR<->RGB conversion: red and blue are swapped.
        canvas = np.ascontiguousarray(canvas[..., ::-1])
    return canvas


def draw_pose_map(
    joints: np.ndarray,
    viewmat: np.ndarray,
    K: np.ndarray,
    width: int,
    height: int,
    style: PoseStyle = PoseStyle(),
    joint_names: Sequence[str] = JOINT_NAMES,
    confidences: np.ndarray | None = None,
) -> np.ndarray:
    """Draw the OpenPose/DWPose-style pose map of canonical joints seen by one camera.

    Keypoints that are NaN, behind the camera, outside the image or hidden by :func:`keypoint_visibility`
    (nose/eyes of a head facing away, the far ear in profile) are not drawn, nor are limbs touching them.

    Args:
        joints: ``[J, 3]`` world positions in ``joint_names`` order (one frame of ``joints.npy``).
        viewmat: ``[4, 4]`` OpenCV world-to-camera.
        K: ``[3, 3]`` OpenCV intrinsics.
        width: Image width in pixels.
        height: Image height in pixels.
        style: The drawing style (variant, hands, sizes).
        joint_names: ``[J]`` canonical names of ``joints``.
        confidences: Optional ``[18]`` keypoint confidences (see :func:`draw_keypoints`).

    Returns:
        ``[H, W, 3]`` uint8 RGB pose map on black.

    Raises:
        ValueError: on wrong shapes or sizes.
    """
    for name, size in (("width", width), ("height", height)):
        if isinstance(size, bool) or not isinstance(size, (int, np.integer)) or size < 1:
            raise ValueError(f"{name}: expected a positive int, got {size!r}")
    joints = np.asarray(joints, dtype=np.float64)
    if joints.ndim != 2:
        raise ValueError(f"joints: expected shape [J, 3], got {joints.shape}")
    kp3d = coco18_from_joints(joints, joint_names)
    uv, _ = project(kp3d, viewmat, K)  # NaN behind the camera
    visible = keypoint_visibility(kp3d, camera_centers(np.asarray(viewmat, dtype=np.float64)))
    hands_uv = None
    if style.hands:
        hands3d = hand21_from_joints(joints, joint_names)
        # A hand is "available" when it has any finger point; the wrist alone is part of the body.
        available = [hand for hand in hands3d if np.isfinite(hand[1:]).all(axis=-1).any()]
        if available:
            hands_uv = np.stack([project(hand, viewmat, K)[0] for hand in available])
    return draw_keypoints(uv, width, height, style, visible=visible, confidences=confidences, hands_uv=hands_uv)
