"""Inverse kinematics from 3D joints to a character's own skeleton (numpy only).

Input: joint positions [F, J, 3] in character4d's canonical order (`character4d.skeleton.JOINT_NAMES`),
e.g. a sample's ``joints.npy`` or joints triangulated from pose maps, and the character's skeleton in
its canonical A-pose (the sample's ``apose_joints.npy``: the character's own bone lengths). Output: per
bone a world rotation relative to that rest pose, and the hips position, per frame.

How each bone is solved (parents first, every bone starting from the forward-kinematics position of its
head, so errors do not accumulate):

- bones with two or more attached points (hips: spine and both legs; the chest bone that carries the
  neck and shoulders; the head: nose, eyes, ears; a hand: its finger bases) take the rotation that best
  maps their rest offsets onto the wanted ones (Kabsch), so twist comes from the hips and shoulders
  frames and the face;
- bones with one child take the smallest swing from their parent's rotation onto the wanted direction
  (the spine bones below the chest then share the chest's twist, so a turned torso twists smoothly);
  an upper arm or leg then turns about its own axis so that the elbow or knee bends about its rest
  hinge axis (blended out as the limb straightens, where the bend plane is undefined);
- legs are solved as two-bone chains that reach the ankle target exactly where reachable (the knee in
  the input's bend plane), so feet keep their contacts even when the input's proportions differ; near
  full extension, where that knee is ill-conditioned, the input knee's direction takes over; an ankle in
  contact with the floor (low and slow) can be held in place for the whole contact;
- bones without any attached point follow their parent.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from character4d.retarget import axis_angle, normalize, swing_rotation
from character4d.skeleton import BODY_BONES, FACE_POINTS, FINGER_BONES, JOINT_NAMES, PARENTS, REQUIRED_BONES

_EPS = 1e-9
_J = {name: i for i, name in enumerate(JOINT_NAMES)}
_SIDES = ("left", "right")

# Rest hinge axes in the character4d world (Z up, facing -Y, the character's left at +X): knees bend
# with the shin going backwards (+Y), elbows with the forearm coming forwards (-Y).
_HINGES: dict[str, tuple[str, np.ndarray]] = {
    "leftUpperLeg": ("leftLowerLeg", np.array([1.0, 0.0, 0.0])),
    "rightUpperLeg": ("rightLowerLeg", np.array([1.0, 0.0, 0.0])),
    "leftUpperArm": ("leftLowerArm", np.array([0.0, 0.0, -1.0])),
    "rightUpperArm": ("rightLowerArm", np.array([0.0, 0.0, 1.0])),
}


class IKError(ValueError):
    """The joints or the skeleton cannot be used; the message names the joints and frames."""


@dataclass(frozen=True)
class IKConfig:
    """Settings of `solve_ik`.

    Attributes:
        contact_height: an ankle within this height (m) of the clip's lowest ankle is low enough for a
            floor contact (2 cm: above the jitter of triangulated joints, below a lifted foot).
        contact_speed: ... and it moves horizontally slower than this (m/s; a planted foot of a walk
            moves < 0.1 m/s, a swinging one > 1 m/s).
        pin_contacts: hold an ankle in contact at its mean position over the contact (removes the sliding
            of noisy, e.g. triangulated, joints; off by default: exact input joints keep their own contacts,
            and near full leg extension a pinned ankle moves the knee a lot).
        hinge_full_deg: elbow/knee bend (degrees) from which the hinge fully decides the upper limb's
            twist; below it the twist blends towards the parent's frame.
        fps: frame rate of the joints (for the contact speed).
        scale_to_character: scale the input about the floor origin by the ratio of the character's leg
            length to the input's, so a smaller character takes smaller steps (as character4d's
            retargeting scales hips motion); off, the input's positions are kept.
    """

    contact_height: float = 0.02
    contact_speed: float = 0.25
    pin_contacts: bool = False
    hinge_full_deg: float = 25.0
    fps: float = 15.0
    scale_to_character: bool = True

    def __post_init__(self) -> None:
        for name in ("contact_height", "contact_speed", "hinge_full_deg", "fps"):
            if not getattr(self, name) > 0:
                raise ValueError(f"IKConfig.{name} must be > 0, got {getattr(self, name)}")


@dataclass(frozen=True)
class Skeleton:
    """A character's skeleton in its rest pose, on the canonical bones it has.

    Attributes:
        bones: canonical bone names, parents before children.
        parents: index of each bone's parent in ``bones`` (-1 for the hips).
        heads: [B, 3] rest head positions (world, metres).
        points: extra rest points fixed to a bone: name -> (bone index, [3] position); face points on the
            head, finger tips on the distal phalanges.
    """

    bones: tuple[str, ...]
    parents: tuple[int, ...]
    heads: np.ndarray
    points: Mapping[str, tuple[int, np.ndarray]]

    @classmethod
    def from_joints(cls, rest_joints: np.ndarray) -> "Skeleton":
        """The skeleton whose rest pose is given by joint positions in `JOINT_NAMES` order (NaN = absent).

        Args:
            rest_joints: [J, 3], e.g. a sample's ``apose_joints.npy``.

        Raises:
            IKError: wrong shape, or a required bone missing (named).
        """
        rest_joints = np.asarray(rest_joints, dtype=np.float64)
        if rest_joints.shape != (len(JOINT_NAMES), 3):
            raise IKError(f"rest joints must be [{len(JOINT_NAMES)}, 3] in JOINT_NAMES order, got {rest_joints.shape}")
        ok = np.isfinite(rest_joints).all(axis=1)
        missing = [b for b in REQUIRED_BONES if not ok[_J[b]]]
        if missing:
            raise IKError(f"rest skeleton lacks required bones: {', '.join(missing)}")
        present = [b for b in BODY_BONES + FINGER_BONES if ok[_J[b]]]
        index = {b: i for i, b in enumerate(present)}

        def parent(b: str) -> int:
            p = PARENTS[b]
            while p is not None and p not in index:
                p = PARENTS[p]
            return -1 if p is None else index[p]

        points: dict[str, tuple[int, np.ndarray]] = {}
        for name in FACE_POINTS:
            if ok[_J[name]]:
                points[name] = (index["head"], rest_joints[_J[name]])
        for name in JOINT_NAMES:
            if name.endswith("Tip") and ok[_J[name]] and name[:-3] + "Distal" in index:
                points[name] = (index[name[:-3] + "Distal"], rest_joints[_J[name]])
        return cls(tuple(present), tuple(parent(b) for b in present), rest_joints[[_J[b] for b in present]], points)

    def index(self, bone: str) -> int:
        return self.bones.index(bone)

    def children(self, i: int) -> list[int]:
        return [k for k, p in enumerate(self.parents) if p == i]

    def leg_length(self) -> float:
        """Mean upper-leg + lower-leg length."""
        h = {b: self.heads[i] for i, b in enumerate(self.bones)}
        return _leg_length(lambda b: h[b][None])[0]


def _leg_length(pos) -> np.ndarray:
    return 0.5 * sum(np.linalg.norm(pos(f"{s}UpperLeg") - pos(f"{s}LowerLeg"), axis=-1)
                     + np.linalg.norm(pos(f"{s}LowerLeg") - pos(f"{s}Foot"), axis=-1) for s in _SIDES)


@dataclass(frozen=True)
class Motion:
    """What `solve_ik` returns.

    Attributes:
        skeleton: the skeleton solved for.
        rotations: [F, B, 3, 3] world rotation of each bone relative to its rest pose
            (posed frame = rotation @ rest frame, posed offset of a child = rotation @ rest offset).
        hips: [F, 3] hips head positions.
        contacts: [F, 2] floor contact of the left and right ankle.
        scale: the factor the input was scaled by (character leg length / input leg length, or 1).
    """

    skeleton: Skeleton
    rotations: np.ndarray
    hips: np.ndarray
    contacts: np.ndarray
    scale: float

    def local_rotations(self) -> np.ndarray:
        """[F, B, 3, 3] rotation of each bone relative to its parent's (world axes; BVH channels)."""
        out = self.rotations.copy()
        for i, p in enumerate(self.skeleton.parents):
            if p >= 0:
                out[:, i] = np.swapaxes(self.rotations[:, p], -1, -2) @ self.rotations[:, i]
        return out


def forward_kinematics(skeleton: Skeleton, rotations: np.ndarray, hips: np.ndarray) -> np.ndarray:
    """Joint positions of a posed skeleton, in `JOINT_NAMES` order (NaN for joints it lacks).

    Args:
        skeleton: the skeleton.
        rotations: [F, B, 3, 3] world rotations relative to the rest pose.
        hips: [F, 3] hips head positions.

    Returns:
        [F, J, 3] float64.
    """
    frames = len(hips)
    heads = np.zeros((frames, len(skeleton.bones), 3))
    for i, p in enumerate(skeleton.parents):
        if p < 0:
            heads[:, i] = hips
        else:
            heads[:, i] = heads[:, p] + rotations[:, p] @ (skeleton.heads[i] - skeleton.heads[p])
    out = np.full((frames, len(JOINT_NAMES), 3), np.nan)
    for i, b in enumerate(skeleton.bones):
        out[:, _J[b]] = heads[:, i]
    for name, (i, rest) in skeleton.points.items():
        out[:, _J[name]] = heads[:, i] + rotations[:, i] @ (rest - skeleton.heads[i])
    return out


def _fill_gaps(joints: np.ndarray) -> np.ndarray:
    """Linear interpolation over time of NaN joints (held at the ends); all-NaN joints stay NaN."""
    out = joints.copy()
    t = np.arange(len(joints))
    for j in range(joints.shape[1]):
        ok = np.isfinite(joints[:, j]).all(axis=1)
        if ok.any() and not ok.all():
            for c in range(3):
                out[:, j, c] = np.interp(t, t[ok], joints[ok, j, c])
    return out


def kabsch(rest: np.ndarray, posed: np.ndarray, weights: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Rotations R minimising sum_i w_i |R rest_i - posed_i|^2, frame by frame.

    Args:
        rest: [K, 3] rest offsets.
        posed: [F, K, 3] wanted offsets.
        weights: [F, K] (0 for unknown points).

    Returns:
        ([F, 3, 3] rotations, [F] bool: the points span at least a plane, so the rotation is determined).
    """
    h = np.einsum("fk,ki,fkj->fij", weights, rest, posed)
    u, s, vt = np.linalg.svd(h)
    d = np.sign(np.linalg.det(np.swapaxes(vt, -1, -2) @ np.swapaxes(u, -1, -2)))
    fix = np.broadcast_to(np.eye(3), h.shape).copy()
    fix[:, 2, 2] = np.where(d == 0, 1.0, d)
    r = np.swapaxes(vt, -1, -2) @ fix @ np.swapaxes(u, -1, -2)
    ok = s[:, 1] > 1e-3 * np.maximum(s[:, 0], _EPS)
    return r, ok


def _swing(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """[F, 3, 3] smallest rotations taking a[f] onto b[f] (identity where either is zero)."""
    out = np.empty((len(a), 3, 3))
    for f in range(len(a)):
        if np.linalg.norm(a[f]) < _EPS or np.linalg.norm(b[f]) < _EPS:
            out[f] = np.eye(3)
        else:
            out[f] = swing_rotation(a[f], b[f])
    return out


def two_bone(hip: np.ndarray, target: np.ndarray, pole: np.ndarray, l1: float, l2: float,
             fallback_bend: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Analytic two-bone IK: knee and reached end positions.

    Args:
        hip: [F, 3] root of the chain.
        target: [F, 3] wanted end (ankle).
        pole: [F, 3] a point the knee should bend towards (the input knee).
        l1: upper bone length; l2: lower bone length.
        fallback_bend: [F, 3] bend direction where hip, pole and target are collinear.

    Returns:
        ([F, 3] knee, [F, 3] end: the target, or the nearest reachable point on the hip-target line).
    """
    d = target - hip
    dist = np.linalg.norm(d, axis=-1)
    u = normalize(d)
    reach = np.clip(dist, abs(l1 - l2), l1 + l2)
    w = pole - hip
    w = w - (w * u).sum(-1, keepdims=True) * u
    fb = fallback_bend - (fallback_bend * u).sum(-1, keepdims=True) * u
    w = np.where((np.linalg.norm(w, axis=-1) > 1e-4)[:, None], w, fb)
    w = normalize(w)
    cos_a = np.clip((l1**2 + reach**2 - l2**2) / (2 * l1 * reach), -1.0, 1.0)
    knee = hip + l1 * (cos_a[:, None] * u + np.sqrt(1 - cos_a**2)[:, None] * w)
    return knee, hip + reach[:, None] * u


def foot_contacts(joints: np.ndarray, cfg: IKConfig) -> np.ndarray:
    """[F, 2] floor contacts of the left and right ankle (low: near the clip's lowest ankle; slow)."""
    ankles = joints[:, [_J["leftFoot"], _J["rightFoot"]]]  # [F, 2, 3]
    low = ankles[..., 2] <= np.nanmin(ankles[..., 2]) + cfg.contact_height
    step = np.linalg.norm(np.diff(ankles[..., :2], axis=0), axis=-1) * cfg.fps  # [F-1, 2]
    if len(step) == 0:
        return low
    # a frame's speed: the faster of its two steps (so lift-off and touch-down frames are not contacts)
    padded = np.concatenate([step[:1], step, step[-1:]])
    speed = np.maximum(padded[:-1], padded[1:])
    return low & (speed < cfg.contact_speed)


def _pin(ankle: np.ndarray, contact: np.ndarray) -> np.ndarray:
    """Hold an ankle at its mean position over each contact run."""
    out = ankle.copy()
    f = 0
    while f < len(contact):
        if contact[f]:
            g = f
            while g < len(contact) and contact[g]:
                g += 1
            out[f:g] = ankle[f:g].mean(axis=0)
            f = g
        else:
            f += 1
    return out


def solve_ik(joints: np.ndarray, skeleton: Skeleton, cfg: IKConfig = IKConfig()) -> Motion:
    """Rotations of the skeleton's bones that reproduce the joints (see the module docstring).

    Args:
        joints: [F, J, 3] positions in `JOINT_NAMES` order (NaN where unknown; gaps in time are
            interpolated).
        skeleton: the character's skeleton (`Skeleton.from_joints` of its A-pose joints).
        cfg: settings.

    Returns:
        The motion.

    Raises:
        IKError: wrong shape, or a required joint unknown in every frame (named).
    """
    joints = np.asarray(joints, dtype=np.float64)
    if joints.ndim != 3 or joints.shape[1:] != (len(JOINT_NAMES), 3) or len(joints) == 0:
        raise IKError(f"joints must be [F, {len(JOINT_NAMES)}, 3] in JOINT_NAMES order, got {joints.shape}")
    # Bone heads are interpolated over gaps (the chain needs them); face points and finger tips are not:
    # the bones they orient fit whichever of them each frame shows.
    bone_cols = [_J[b] for b in BODY_BONES + FINGER_BONES]
    joints[:, bone_cols] = _fill_gaps(joints[:, bone_cols])
    missing = [b for b in REQUIRED_BONES if not np.isfinite(joints[:, _J[b]]).all()]
    if missing:
        raise IKError(f"joints: required joints unknown in every frame: {', '.join(missing)}")
    scale = 1.0
    if cfg.scale_to_character:
        scale = float(skeleton.leg_length() / np.median(_leg_length(lambda b: joints[:, _J[b]])))
    target = joints * scale
    contacts = foot_contacts(target, cfg)
    frames, sk = len(target), skeleton
    if cfg.pin_contacts:
        for k, side in enumerate(_SIDES):
            j = _J[f"{side}Foot"]
            target[:, j] = _pin(target[:, j], contacts[:, k])

    rot = np.zeros((frames, len(sk.bones), 3, 3))
    heads = np.zeros((frames, len(sk.bones), 3))
    # Where each bone's attached points are wanted: children heads (overridden for the legs) and points.
    wanted: dict[str, np.ndarray] = {b: target[:, _J[b]] for b in sk.bones}
    wanted.update({p: target[:, _J[p]] for p in sk.points})
    attached = {i: [sk.bones[c] for c in sk.children(i)] for i in range(len(sk.bones))}
    for name, (i, _) in sk.points.items():
        attached[i].append(name)
    rest_of = {b: sk.heads[i] for i, b in enumerate(sk.bones)} | {p: r for p, (_, r) in sk.points.items()}

    for i, bone in enumerate(sk.bones):
        p = sk.parents[i]
        if p < 0:
            heads[:, i] = target[:, _J[bone]]  # refined below, once the hips rotation is known
            parent_rot = np.broadcast_to(np.eye(3), (frames, 3, 3))
        else:
            heads[:, i] = heads[:, p] + rot[:, p] @ (sk.heads[i] - sk.heads[p])
            parent_rot = rot[:, p]
        if bone.endswith("UpperLeg"):
            side = bone[: -len("UpperLeg")]
            lower, foot = sk.index(f"{side}LowerLeg"), sk.index(f"{side}Foot")
            l1 = float(np.linalg.norm(sk.heads[lower] - sk.heads[i]))
            l2 = float(np.linalg.norm(sk.heads[foot] - sk.heads[lower]))
            bend = parent_rot @ np.array([0.0, -1.0, 0.0])  # knees point forwards (-Y) at rest
            hip, ankle, knee_in = heads[:, i], wanted[f"{side}Foot"], wanted[f"{side}LowerLeg"]
            knee, _ = two_bone(hip, ankle, knee_in, l1, l2, bend)
            # Near full extension the two-bone knee swings far for a millimetre of ankle noise; there the
            # input knee's direction decides (blended in from 92 % to 99 % of the leg's reach).
            ratio = np.linalg.norm(ankle - hip, axis=-1) / (l1 + l2)
            w = np.clip((ratio - 0.92) / 0.07, 0.0, 1.0)[:, None]
            direct = hip + l1 * normalize(knee_in - hip)
            knee = hip + l1 * normalize((1 - w) * (knee - hip) + w * (direct - hip))
            wanted[f"{side}LowerLeg"] = knee
        names = attached[i]
        if not names:
            rot[:, i] = parent_rot
            continue
        rest_off = np.array([rest_of[n] - sk.heads[i] for n in names])  # [K, 3]
        posed_off = np.stack([wanted[n] for n in names], axis=1) - heads[:, i, None]  # [F, K, 3]
        known = np.isfinite(posed_off).all(axis=-1).astype(np.float64)
        posed_off = np.nan_to_num(posed_off)
        full, ok = kabsch(rest_off, posed_off, known) if len(names) >= 2 else (None, np.zeros(frames, bool))
        # One direction: swing from the parent's rotation (no twist of its own).
        first = int(np.argmax(np.linalg.norm(rest_off, axis=1)))
        swing = _swing(parent_rot @ rest_off[first], posed_off[:, first]) @ parent_rot
        has = known[:, first] > 0
        swing[~has] = parent_rot[~has]
        if bone in _HINGES:
            swing = _hinge_twist(swing, sk, i, bone, heads, wanted, cfg)
        rot[:, i] = np.where(ok[:, None, None], full, swing) if full is not None else swing
        if p < 0:
            # The root goes where the hip joints (the legs' roots) land best: a hips head estimated from
            # other joints (e.g. COCO-18 keypoints, which have no pelvis) must not shift the legs.
            legs = [n for n in ("leftUpperLeg", "rightUpperLeg") if n in rest_of]
            if len(legs) == 2:  # ... and the hip line exactly (a swing about the hips' forward-up plane)
                lat_rest = rest_of["leftUpperLeg"] - rest_of["rightUpperLeg"]
                lat_want = wanted["leftUpperLeg"] - wanted["rightUpperLeg"]
                fix = _swing(rot[:, i] @ lat_rest, np.nan_to_num(lat_want))
                rot[:, i] = fix @ rot[:, i]
            if legs:
                miss = [wanted[n] - (heads[:, i] + rot[:, i] @ (rest_of[n] - sk.heads[i])) for n in legs]
                heads[:, i] += np.nan_to_num(np.mean(miss, axis=0))
    _spread_torso_twist(sk, rot, heads)
    return Motion(sk, rot, heads[:, 0].copy(), contacts, scale)


def _twist_angle(q: np.ndarray, axis: np.ndarray) -> np.ndarray:
    """[F] signed angle of rotations ``q`` [F, 3, 3] about unit ``axis`` [F, 3] (their twist part)."""
    helper = np.where(np.abs(axis[:, :1]) < 0.9, np.array([[1.0, 0, 0]]), np.array([[0, 1.0, 0]]))
    u = normalize(np.cross(axis, helper))
    v = np.einsum("fij,fj->fi", q, u)
    v = v - (v * axis).sum(-1, keepdims=True) * axis
    return np.arctan2((np.cross(u, v) * axis).sum(-1), (u * v).sum(-1))


def _spread_torso_twist(sk: Skeleton, rot: np.ndarray, heads: np.ndarray) -> None:
    """Share the chest's twist (from the shoulders) over the spine bones below it, in place.

    The chest bone carrying the shoulders turns with them (its Kabsch fit), the bones between it and the
    hips only swing; without this, a turned torso would twist at one joint. Joint positions do not change:
    a bone's twist about its own axis leaves its child's head where it is.
    """
    top = next((b for b in ("upperChest", "chest") if b in sk.bones), None)
    if top is None:
        return
    t = sk.index(top)
    chain = []
    p = sk.parents[t]
    while p > 0:
        chain.append(p)
        p = sk.parents[p]
    if not chain:
        return
    chain = chain[::-1]  # spine, chest (parents first)
    kids = [c for c in sk.children(t) if sk.bones[c] == "neck"] or sk.children(t)
    if not kids:
        return
    parent = rot[:, sk.parents[t]]
    rest_dir = sk.heads[kids[0]] - sk.heads[t]
    axis = normalize(np.einsum("fij,j->fi", rot[:, t], rest_dir))
    swing_only = _swing(np.einsum("fij,j->fi", parent, rest_dir), axis) @ parent
    theta = _twist_angle(rot[:, t] @ np.swapaxes(swing_only, -1, -2), axis)
    for k, i in enumerate(chain):
        child = next((c for c in sk.children(i) if c in chain or c == t), None)
        d = normalize(heads[:, child] - heads[:, i]) if child is not None else axis
        share = (k + 1) / (len(chain) + 1)
        for f in range(len(rot)):
            rot[f, i] = axis_angle(d[f], share * theta[f]) @ rot[f, i]


def _hinge_twist(r0: np.ndarray, sk: Skeleton, i: int, bone: str, heads: np.ndarray,
                 wanted: Mapping[str, np.ndarray], cfg: IKConfig) -> np.ndarray:
    """Turn an upper limb about its own axis so its rest hinge axis lines up with the bend's normal."""
    lower_name, hinge_rest = _HINGES[bone]
    lower = sk.index(lower_name)
    kids = sk.children(lower)
    if not kids:
        return r0
    end = sk.bones[kids[0]]
    up = normalize(wanted[lower_name] - heads[:, i])
    down = normalize(wanted[end] - wanted[lower_name])
    normal = np.cross(up, down)
    sin_bend = np.linalg.norm(normal, axis=-1)
    weight = np.clip(sin_bend / np.sin(np.radians(cfg.hinge_full_deg)), 0.0, 1.0)
    current = r0 @ hinge_rest
    current = current - (current * up).sum(-1, keepdims=True) * up
    want = normalize(normal)
    angle = np.arctan2((np.cross(normalize(current), want) * up).sum(-1), (normalize(current) * want).sum(-1))
    out = r0.copy()
    for f in range(len(r0)):
        if weight[f] > 0 and np.linalg.norm(current[f]) > 1e-6:
            out[f] = axis_angle(up[f], weight[f] * angle[f]) @ r0[f]
    return out


def bvh_skeleton(skeleton: Skeleton):
    """The skeleton as a `character4d.bvh.BvhSkeleton` (canonical names, world axes, rest offsets).

    Leaves get their end site towards their attached point (finger tip, nose) where they have one.
    """
    from character4d.bvh import BvhSkeleton

    offsets = np.array([skeleton.heads[i] - (skeleton.heads[p] if p >= 0 else 0.0)
                        for i, p in enumerate(skeleton.parents)])
    ends = {}
    for i in range(len(skeleton.bones)):
        if not skeleton.children(i):
            pts = [r for name, (b, r) in skeleton.points.items() if b == i]
            if pts:
                ends[i] = pts[0] - skeleton.heads[i]
    return BvhSkeleton(skeleton.bones, skeleton.parents, offsets, ends)


def write_motion_bvh(path, motion: Motion, fps: float):
    """Write the motion as BVH (through `character4d.bvh.write_bvh`); joints are the canonical bone names.

    Returns:
        The path written.
    """
    from character4d.bvh import write_bvh

    return write_bvh(path, bvh_skeleton(motion.skeleton), motion.local_rotations(), motion.hips, fps=fps)


# COCO-18 keypoints (DESIGN.md Appendix A order) as canonical joints; the neck keypoint is the mid-point
# of the shoulders, not a bone.
COCO18_JOINTS: tuple[str | None, ...] = (
    "nose", None, "rightUpperArm", "rightLowerArm", "rightHand", "leftUpperArm", "leftLowerArm", "leftHand",
    "rightUpperLeg", "rightLowerLeg", "rightFoot", "leftUpperLeg", "leftLowerLeg", "leftFoot",
    "rightEye", "leftEye", "rightEar", "leftEar",
)  # fmt: skip


def _frame(lateral: np.ndarray, up: np.ndarray) -> np.ndarray:
    """[F, 3, 3] right-handed frames with columns (lateral, forward, up), up kept, lateral orthogonalised."""
    z = normalize(up)
    x = normalize(lateral - (lateral * z).sum(-1, keepdims=True) * z)
    return np.stack([x, np.cross(z, x), z], axis=-1)


def joints_from_coco18(keypoints: np.ndarray, rest_joints: np.ndarray) -> np.ndarray:
    """Canonical joints for `solve_ik` from COCO-18 world keypoints (e.g. triangulated pose maps).

    The keypoints give shoulders, elbows, wrists, hips, knees, ankles and the face. The joints they do not
    show are placed rigidly from the rest skeleton: the hips bone in the pelvis frame (hip line, and up
    towards the shoulders' mid-point), the chest, neck and clavicles in the shoulder frame, spine and
    chest in between (by their rest heights), the head bone and the face with the face's own fit, the
    toes with the shin. Fingers stay unknown (the hands then follow the forearms).

    Args:
        keypoints: [F, 18, 3] in COCO-18 order (NaN = not seen).
        rest_joints: [J, 3] the character's A-pose joints (``apose_joints.npy``).

    Returns:
        [F, J, 3] in `JOINT_NAMES` order.

    Raises:
        IKError: wrong shapes.
    """
    kp = np.asarray(keypoints, dtype=np.float64)
    rest = np.asarray(rest_joints, dtype=np.float64)
    if kp.ndim != 3 or kp.shape[1:] != (18, 3):
        raise IKError(f"keypoints must be [F, 18, 3] in COCO-18 order, got {kp.shape}")
    if rest.shape != (len(JOINT_NAMES), 3):
        raise IKError(f"rest joints must be [{len(JOINT_NAMES)}, 3], got {rest.shape}")
    # No interpolation here: the face is fitted to the points each frame shows, and `solve_ik` fills
    # the remaining gaps over time.
    frames = len(kp)
    out = np.full((frames, len(JOINT_NAMES), 3), np.nan)
    for k, name in enumerate(COCO18_JOINTS):
        if name is not None:
            out[:, _J[name]] = kp[:, k]

    def at(name):
        return out[:, _J[name]]

    def r(name):
        return rest[_J[name]]

    hip_mid, sh_mid = 0.5 * (at("leftUpperLeg") + at("rightUpperLeg")), 0.5 * (at("leftUpperArm") + at("rightUpperArm"))
    rest_hip_mid, rest_sh_mid = 0.5 * (r("leftUpperLeg") + r("rightUpperLeg")), 0.5 * (r("leftUpperArm") + r("rightUpperArm"))
    rest_pelvis = _frame((r("leftUpperLeg") - r("rightUpperLeg"))[None], (rest_sh_mid - rest_hip_mid)[None])[0]
    rest_chest = _frame((r("leftUpperArm") - r("rightUpperArm"))[None], (rest_sh_mid - rest_hip_mid)[None])[0]
    pelvis = _frame(at("leftUpperLeg") - at("rightUpperLeg"), sh_mid - hip_mid) @ rest_pelvis.T
    chest = _frame(at("leftUpperArm") - at("rightUpperArm"), sh_mid - hip_mid) @ rest_chest.T

    def place(name, rot, origin, rest_origin):
        if np.isfinite(r(name)).all():
            out[:, _J[name]] = origin + rot @ (r(name) - rest_origin)

    place("hips", pelvis, hip_mid, rest_hip_mid)
    for name in ("upperChest", "neck", "leftShoulder", "rightShoulder"):
        place(name, chest, sh_mid, rest_sh_mid)
    lo_z, hi_z = r("hips")[2], (r("upperChest") if np.isfinite(r("upperChest")).all() else rest_sh_mid)[2]
    for name in ("spine", "chest"):
        if np.isfinite(r(name)).all():
            a = float(np.clip((r(name)[2] - lo_z) / max(hi_z - lo_z, 1e-6), 0, 1))
            low = hip_mid + pelvis @ (r(name) - rest_hip_mid)
            high = sh_mid + chest @ (r(name) - rest_sh_mid)
            out[:, _J[name]] = (1 - a) * low + a * high
    # Head bone: rigid with the face points seen in each frame (the chest frame where fewer than 3 are).
    face = [n for n in FACE_POINTS if np.isfinite(r(n)).all()]
    rest_face = np.array([r(n) for n in face])
    posed_face = np.stack([at(n) for n in face], axis=1)
    known = np.isfinite(posed_face).all(-1)
    for f in range(frames):
        if known[f].sum() >= 3:
            pr, pp = rest_face[known[f]], posed_face[f, known[f]]
            rot, _ = kabsch(pr - pr.mean(0), (pp - pp.mean(0))[None], np.ones((1, len(pr))))
            out[f, _J["head"]] = pp.mean(0) + rot[0] @ (r("head") - pr.mean(0))
        else:
            out[f, _J["head"]] = sh_mid[f] + chest[f] @ (r("head") - rest_sh_mid)
            for k, n in enumerate(face):
                if not known[f, k]:
                    out[f, _J[n]] = sh_mid[f] + chest[f] @ (r(n) - rest_sh_mid)
    for side in _SIDES:
        toes = f"{side}Toes"
        if np.isfinite(r(toes)).all():
            # the shin's smallest swing from the pelvis frame, so the foot turns with the body
            shin = _swing(pelvis @ (r(f"{side}Foot") - r(f"{side}LowerLeg")),
                          at(f"{side}Foot") - at(f"{side}LowerLeg")) @ pelvis
            out[:, _J[toes]] = at(f"{side}Foot") + shin @ (r(toes) - r(f"{side}Foot"))
    return out


def coco18_of(joints: np.ndarray) -> np.ndarray:
    """[F, 18, 3] COCO-18 keypoints of canonical joints [F, J, 3] (neck = the shoulders' mid-point)."""
    joints = np.asarray(joints, dtype=np.float64)
    out = np.stack([joints[:, _J[n]] if n else 0.5 * (joints[:, _J["leftUpperArm"]] + joints[:, _J["rightUpperArm"]])
                    for n in COCO18_JOINTS], axis=1)
    return out


def joint_errors(pred: np.ndarray, truth: np.ndarray, names: Sequence[str] = BODY_BONES) -> dict[str, float]:
    """Mean and max distance (mm) over frames and the named joints known in both."""
    idx = [_J[n] for n in names]
    d = np.linalg.norm(pred[:, idx] - truth[:, idx], axis=-1)
    d = d[np.isfinite(d)]
    return {"mean_mm": float(d.mean() * 1000), "max_mm": float(d.max() * 1000), "count": int(d.size)}
