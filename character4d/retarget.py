"""Retargeting maths (numpy only): rest-pose alignment, world-space rotation transfer, hips scaling.

The Blender layer reads bone matrices out of the source and target armatures, calls these functions and
writes the resulting local ("basis") rotations back as keyframes. Everything here works on plain arrays
so it can be tested on hand-built chains without Blender.

Conventions: rotations are 3x3 matrices acting on column vectors; "world" means a common, Z-up frame in
which both characters face -Y (the Blender layer brings the source into it with `facing_rotation`).
A bone's "rest matrix" is its armature-space rest frame (Blender's ``bone.matrix_local``), already
multiplied by the armature object's world rotation.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from character4d.skeleton import PARENTS, SkeletonMap

_EPS = 1e-9


def normalize(v: np.ndarray) -> np.ndarray:
    """Unit vectors along the last axis.

    Args:
        v: [..., 3] vectors.

    Returns:
        [..., 3] unit vectors (zero vectors stay zero).
    """
    n = np.linalg.norm(v, axis=-1, keepdims=True)
    return np.where(n > _EPS, v / np.maximum(n, _EPS), 0.0)


def axis_angle(axis: np.ndarray, angle: float) -> np.ndarray:
    """Rotation matrix about ``axis`` by ``angle`` radians (Rodrigues).

    Args:
        axis: [3] rotation axis (need not be unit length).
        angle: angle in radians, counter-clockwise looking down the axis.

    Returns:
        [3, 3] rotation matrix.
    """
    k = normalize(np.asarray(axis, dtype=np.float64))
    kx = np.array([[0.0, -k[2], k[1]], [k[2], 0.0, -k[0]], [-k[1], k[0], 0.0]])
    return np.eye(3) + np.sin(angle) * kx + (1.0 - np.cos(angle)) * kx @ kx


def swing_rotation(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """The smallest rotation taking direction ``a`` onto direction ``b`` (no twist about them).

    Args:
        a: [3] source direction.
        b: [3] target direction.

    Returns:
        [3, 3] rotation R with R @ unit(a) == unit(b).

    Raises:
        ValueError: if either vector has zero length.
    """
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    if np.linalg.norm(a) < _EPS or np.linalg.norm(b) < _EPS:
        raise ValueError(f"swing_rotation needs non-zero directions, got a={a}, b={b}")
    a, b = normalize(a), normalize(b)
    cross = np.cross(a, b)
    s, c = np.linalg.norm(cross), float(np.dot(a, b))
    if s < 1e-12:
        if c > 0:
            return np.eye(3)
        # Opposite directions: any axis perpendicular to a works; pick the most stable one.
        helper = np.eye(3)[np.argmin(np.abs(a))]
        return axis_angle(np.cross(a, helper), np.pi)
    return axis_angle(cross, np.arctan2(s, c))


def facing_rotation(left_dir: np.ndarray) -> np.ndarray:
    """Rotation about +Z that turns a character whose left side points along ``left_dir`` to face -Y.

    A character facing -Y (DESIGN.md section 4) has its own left side towards +X, so the rotation maps
    the horizontal part of ``left_dir`` onto +X.

    Args:
        left_dir: [3] vector from the character's right shoulder/hip to its left one, in world axes.

    Returns:
        [3, 3] rotation about the Z axis.

    Raises:
        ValueError: if ``left_dir`` is (nearly) vertical, so no facing can be read from it.
    """
    h = np.array([left_dir[0], left_dir[1], 0.0], dtype=np.float64)
    if np.linalg.norm(h) < 1e-6:
        raise ValueError(f"cannot tell which way the character faces: left direction {left_dir} is vertical")
    angle = np.arctan2(h[1], h[0])
    return axis_angle(np.array([0.0, 0.0, 1.0]), -angle)


def rest_alignment(
    src_dirs: Mapping[str, np.ndarray],
    tgt_dirs: Mapping[str, np.ndarray],
    parents: Mapping[str, str | None],
    bones: Sequence[str],
) -> dict[str, np.ndarray]:
    """World rotations that put each target bone into the source's rest pose (T-pose vs A-pose fix).

    For a bone whose direction (head to canonical child head) is known on both skeletons, the alignment
    is the swing taking the target rest direction onto the source rest direction. A bone without a
    usable direction (e.g. a hand with no fingers) inherits its parent's alignment, so a hand keeps
    following its forearm.

    Args:
        src_dirs: canonical bone -> [3] rest direction on the source, world axes.
        tgt_dirs: canonical bone -> [3] rest direction on the target, world axes.
        parents: canonical bone -> canonical parent (None for the root).
        bones: canonical bones to align, parents before children.

    Returns:
        canonical bone -> [3, 3] world rotation A (identity where nothing is known).
    """
    align: dict[str, np.ndarray] = {}
    for bone in bones:
        if bone in src_dirs and bone in tgt_dirs:
            align[bone] = swing_rotation(tgt_dirs[bone], src_dirs[bone])
        else:
            parent = parents.get(bone)
            align[bone] = align.get(parent, np.eye(3)) if parent else np.eye(3)
    return align


def transfer_rotations(
    src_rest: np.ndarray, src_posed: np.ndarray, align: np.ndarray, tgt_rest: np.ndarray
) -> np.ndarray:
    """Target world rotations that reproduce the source's rotation relative to its rest pose.

    World delta of the source bone, D(t) = R_src(t) R_src_rest^-1, is applied to the target bone after
    it has been brought into the source's rest pose: R_tgt(t) = D(t) A R_tgt_rest.

    Args:
        src_rest: [B, 3, 3] source rest rotations (world).
        src_posed: [T, B, 3, 3] source posed rotations (world).
        align: [B, 3, 3] rest alignments from `rest_alignment`.
        tgt_rest: [B, 3, 3] target rest rotations (world).

    Returns:
        [T, B, 3, 3] target posed world rotations.
    """
    delta = src_posed @ np.swapaxes(src_rest, -1, -2)[None]
    return delta @ (align @ tgt_rest)[None]


def world_to_basis(
    world: Mapping[str, np.ndarray],
    rest: Mapping[str, np.ndarray],
    parents: Mapping[str, str | None],
    order: Sequence[str],
) -> dict[str, np.ndarray]:
    """Local (Blender "basis") rotations of every bone of a hierarchy from wanted world rotations.

    Bones present in ``world`` get exactly that world rotation; the others keep their rest pose
    relative to their parent (identity basis), so twist and helper bones follow along.
    Blender composes posed frames as P_b = P_parent R_parent_rest^-1 R_b_rest B_b, hence
    B_b = R_b_rest^-1 R_parent_rest P_parent^-1 P_b.

    Args:
        world: bone -> [T, 3, 3] wanted world rotations (a subset of the bones).
        rest: bone -> [3, 3] rest rotation (world) for every bone in ``order``.
        parents: bone -> parent bone (None for roots).
        order: all bones, parents before children.

    Returns:
        bone -> [T, 3, 3] basis rotations for every bone in ``order``.
    """
    frames = next(iter(world.values())).shape[0] if world else 1
    posed: dict[str, np.ndarray] = {}
    basis: dict[str, np.ndarray] = {}
    for bone in order:
        parent = parents.get(bone)
        r_rest = rest[bone]
        if parent is None:
            parent_posed = np.broadcast_to(np.eye(3), (frames, 3, 3))
            parent_rest = np.eye(3)
        else:
            parent_posed, parent_rest = posed[parent], rest[parent]
        if bone in world:
            posed[bone] = world[bone]
            basis[bone] = r_rest.T @ parent_rest @ np.swapaxes(parent_posed, -1, -2) @ world[bone]
        else:
            posed[bone] = parent_posed @ parent_rest.T @ r_rest
            basis[bone] = np.broadcast_to(np.eye(3), (frames, 3, 3)).copy()
    return basis


def hips_offsets(
    src_hips: np.ndarray, src_rest_height: float, scale: float, root_motion: str = "center"
) -> np.ndarray:
    """World displacement of the target hips from their rest position, frame by frame.

    Horizontal and vertical motion of the source hips are scaled by the leg-length ratio
    (``scale`` = target leg length / source leg length) so that a short character takes short steps and
    its feet stay on the ground. Vertical motion is measured from the source's rest hip height.

    Args:
        src_hips: [T, 3] source hips positions (world, source facing -Y).
        src_rest_height: source hips height in its rest pose (world z).
        scale: target leg length / source leg length.
        root_motion: "keep" (horizontal motion relative to the first frame), "center" (relative to the
            clip's mean, so the character stays in view), or "in_place" (no horizontal motion).

    Returns:
        [T, 3] displacement to add to the target's rest hips position.

    Raises:
        ValueError: for an unknown ``root_motion``.
    """
    src_hips = np.asarray(src_hips, dtype=np.float64)
    if root_motion == "keep":
        ref = src_hips[0, :2]
    elif root_motion == "center":
        ref = src_hips[:, :2].mean(axis=0)
    elif root_motion == "in_place":
        ref = None
    else:
        raise ValueError(f"root_motion must be 'keep', 'center' or 'in_place', got {root_motion!r}")
    out = np.zeros_like(src_hips)
    if ref is not None:
        out[:, :2] = (src_hips[:, :2] - ref) * scale
    out[:, 2] = (src_hips[:, 2] - src_rest_height) * scale
    return out


def resample_times(
    num_frames: int, fps: float, start: float, duration: float | None = None
) -> np.ndarray:
    """Source times (seconds since the first keyframe) of each output frame.

    Args:
        num_frames: output clip length F.
        fps: output frame rate.
        start: start offset in seconds.
        duration: length of the source action in seconds; times past its end are clamped to it (the
            last pose is held), since a short motion must still give a full clip.

    Returns:
        [F] float64 times.

    Raises:
        ValueError: for a non-positive frame count or frame rate, or a negative start.
    """
    if num_frames < 1:
        raise ValueError(f"num_frames must be >= 1, got {num_frames}")
    if fps <= 0:
        raise ValueError(f"fps must be > 0, got {fps}")
    if start < 0:
        raise ValueError(f"start offset must be >= 0 seconds, got {start}")
    times = start + np.arange(num_frames, dtype=np.float64) / fps
    if duration is not None:
        times = np.minimum(times, max(duration, 0.0))
    return times


# --------------------------------------------------------------------------------------------------
# Rest-pose measurements of a mapped skeleton (shared by the motion and the character side)


def canonical_order(mapping: SkeletonMap) -> tuple[str, ...]:
    """Mapped canonical bones, parents before children (ties by name).

    Args:
        mapping: a skeleton map.

    Returns:
        The canonical names of ``mapping.bones``, sorted by depth in `PARENTS`, then by name.
    """

    def depth(b: str) -> int:
        d, p = 0, PARENTS.get(b)
        while p is not None:
            d, p = d + 1, PARENTS.get(p)
        return d

    return tuple(sorted(mapping.bones, key=lambda b: (depth(b), b)))


# Child used for a bone's direction; the first that is mapped wins.
_DIRECTION_CHILD = {
    "hips": ("spine",), "spine": ("chest", "upperChest", "neck"), "chest": ("upperChest", "neck"),
    "upperChest": ("neck",), "neck": ("head",),
    **{f"{s}Shoulder": (f"{s}UpperArm",) for s in ("left", "right")},
    **{f"{s}UpperArm": (f"{s}LowerArm",) for s in ("left", "right")},
    **{f"{s}LowerArm": (f"{s}Hand",) for s in ("left", "right")},
    **{f"{s}Hand": (f"{s}MiddleProximal",) for s in ("left", "right")},
    **{f"{s}UpperLeg": (f"{s}LowerLeg",) for s in ("left", "right")},
    **{f"{s}LowerLeg": (f"{s}Foot",) for s in ("left", "right")},
    **{f"{s}Foot": (f"{s}Toes",) for s in ("left", "right")},
}


def rest_directions(heads: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Rest direction of each bone: from its head to the head of its mapped canonical child.

    Args:
        heads: canonical bone -> [3] rest head (world).

    Returns:
        canonical bone -> [3] unit direction, for bones with a mapped child.
    """
    out = {}
    for bone, kids in _DIRECTION_CHILD.items():
        if bone not in heads:
            continue
        for kid in kids:
            if kid in heads:
                d = heads[kid] - heads[bone]
                if np.linalg.norm(d) > 1e-6:
                    out[bone] = d / np.linalg.norm(d)
                    break
    return out


def leg_length(heads: dict[str, np.ndarray]) -> float:
    """Mean upper-leg + lower-leg length of a skeleton (canonical bone -> [3] rest head)."""
    return float(0.5 * sum(np.linalg.norm(heads[f"{s}UpperLeg"] - heads[f"{s}LowerLeg"])
                           + np.linalg.norm(heads[f"{s}LowerLeg"] - heads[f"{s}Foot"]) for s in ("left", "right")))
