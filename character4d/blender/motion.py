"""Read a motion file in Blender and sample it into plain arrays for retargeting."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from character4d.blender.character import AssetError, armature_bones, import_file, map_armature
from character4d.bvh import bvh_fps
from character4d.clip import choose_start
from character4d.retarget import canonical_order, facing_rotation, leg_length, resample_times, rest_directions
from character4d.skeleton import SkeletonMap


@dataclass(frozen=True)
class SampledMotion:
    """A source motion sampled at the output times, in a world where its rest pose faces -Y.

    Attributes:
        mapping: canonical -> source bone.
        bones: canonical bones present, parents before children.
        rest: [B, 3, 3] rest rotations (world).
        posed: [T, B, 3, 3] posed rotations (world), turned so the clip faces -Y on average when asked.
        rest_dirs: canonical bone -> [3] rest direction (head to canonical child head).
        hips: [T, 3] hips positions (world, same turn as ``posed``), heights measured from the clip's floor
            (the lowest ankle over the clip).
        rest_hips_height: hips height above the ankles in the rest pose.
        leg_length: upper-leg head to foot head distance in the rest pose (for hips scaling).
        times: [T] seconds since the first keyframe.
        fps: the source's frame rate.
        duration: the action's length in seconds.
        start: the start that was used (seconds since the first keyframe; chosen when asked for "auto").
        lead_in: seconds of calibration/still lead-in that "auto" skipped (0 otherwise).
    """

    mapping: SkeletonMap
    bones: tuple[str, ...]
    rest: np.ndarray
    posed: np.ndarray
    rest_dirs: dict[str, np.ndarray]
    hips: np.ndarray
    rest_hips_height: float
    leg_length: float
    times: np.ndarray
    fps: float
    duration: float
    start: float = 0.0
    lead_in: float = 0.0


def bone_rotations_world(armature, names, posed: bool) -> np.ndarray:
    """World rotation (3x3, scale removed) of each named bone, rest or current pose."""
    mw = np.array(armature.matrix_world, dtype=np.float64)[:3, :3]
    mw = mw / np.cbrt(abs(np.linalg.det(mw)))
    out = []
    for n in names:
        m = armature.pose.bones[n].matrix if posed else armature.data.bones[n].matrix_local
        r = mw @ np.array(m, dtype=np.float64)[:3, :3]
        u, _, vt = np.linalg.svd(r)  # strip any residual scale/shear
        out.append(u @ vt)
    return np.array(out)


def _action_range(armature, path: Path) -> tuple[float, float]:
    anim = armature.animation_data
    action = anim.action if anim else None
    if action is None:
        raise AssetError(f"{path}: the motion file has no animation (no action on {armature.name!r})")
    start, end = action.frame_range
    if end - start < 1:
        raise AssetError(f"{path}: the motion file has no animation (a single frame, {start:g})")
    return float(start), float(end)


def _scan_joints(armature, mapping: SkeletonMap, first: float, src_fps: float, duration: float
                 ) -> tuple[dict[str, np.ndarray], float]:
    """World positions of every mapped bone's head over the whole action, on a regular grid.

    Returns:
        (canonical bone -> [T, 3], grid step in seconds).
    """
    import bpy

    scene = bpy.context.scene
    # The source's own frames, or at most ~600 samples for very long takes.
    dt = max(1.0 / src_fps, duration / 600.0)
    times = np.arange(0.0, duration + 1e-9, dt)
    names = {b: n for b, n in mapping.bones.items()}
    out = {b: [] for b in names}
    for t in times:
        frame = first + t * src_fps
        scene.frame_set(int(np.floor(frame)), subframe=float(frame - np.floor(frame)))
        mw = np.array(armature.matrix_world)
        for b, n in names.items():
            out[b].append(mw[:3, :3] @ np.array(armature.pose.bones[n].head) + mw[:3, 3])
    return {b: np.array(v) for b, v in out.items()}, dt


def sample_motion(path: str | Path, num_frames: int, fps: float, start: float | str = 0.0,
                  face_front: bool = True) -> SampledMotion:
    """Import a motion file into the current (empty) scene and sample it at the output times.

    Args:
        path: .fbx or .bvh motion file.
        num_frames: output clip length.
        fps: output frame rate.
        start: start offset in seconds from the first keyframe, or "auto": skip a calibration lead-in
            (T-pose or still frames) and take the window with the most motion (`character4d.clip`).
        face_front: turn the motion about Z so the character faces -Y on average over the clip.

    Returns:
        The sampled motion.

    Raises:
        AssetError: no skeleton, no animation, unmappable skeleton, start past the end.
    """
    import bpy

    path = Path(path)
    objects = import_file(path)
    armatures = [o for o in objects if o.type == "ARMATURE"]
    if not armatures:
        raise AssetError(f"{path}: the motion file has no skeleton")
    armature = max(armatures, key=lambda a: len(a.data.bones))
    mapping = map_armature(armature, path)
    first, last = _action_range(armature, path)
    scene = bpy.context.scene
    src_fps = scene.render.fps / scene.render.fps_base
    if path.suffix.lower() == ".bvh":
        # The BVH importer keeps the file's frame time on the action's keys but not on the scene.
        src_fps = bvh_fps(path) or src_fps
    duration = (last - first) / src_fps
    lead_in = 0.0
    if isinstance(start, str):
        if start != "auto":
            raise ValueError(f"start: expected seconds >= 0 or 'auto', got {start!r}")
        armature.data.pose_position = "POSE"
        scanned, dt = _scan_joints(armature, mapping, first, src_fps, duration)
        choice = choose_start(scanned, dt, num_frames, fps)
        start, lead_in = choice.start, choice.lead_in
    if start >= duration:
        raise AssetError(f"{path}: start offset {start:g} s is past the end of the motion ({duration:.3f} s)")
    times = resample_times(num_frames, fps, start, duration)

    bones = canonical_order(mapping)
    src_names = [mapping.bones[b] for b in bones]
    armature.data.pose_position = "REST"
    bpy.context.view_layer.update()
    rest = bone_rotations_world(armature, src_names, posed=False)
    mw = np.array(armature.matrix_world)
    rest_heads = {b: mw[:3, :3] @ np.array(armature.data.bones[mapping.bones[b]].head_local) + mw[:3, 3]
                  for b in bones}
    armature.data.pose_position = "POSE"

    posed, hips, ankles = [], [], []
    feet = [mapping.bones["leftFoot"], mapping.bones["rightFoot"]]
    for t in times:
        frame = first + t * src_fps
        scene.frame_set(int(np.floor(frame)), subframe=float(frame - np.floor(frame)))
        posed.append(bone_rotations_world(armature, src_names, posed=True))
        mw = np.array(armature.matrix_world)
        hips.append(mw[:3, :3] @ np.array(armature.pose.bones[mapping.bones["hips"]].head) + mw[:3, 3])
        ankles.append([(mw[:3, :3] @ np.array(armature.pose.bones[n].head) + mw[:3, 3])[2] for n in feet])
    posed, hips = np.array(posed), np.array(hips)
    # Heights are measured from the floor, not from the file's origin: many BVH files put the root at
    # z = 0 in the rest pose, which would make the whole standing height look like a jump.
    hips[:, 2] -= float(np.min(ankles))

    # Bring the rest pose to face -Y; optionally turn the whole clip to start facing -Y.
    rest_left = (rest_heads["leftUpperLeg"] - rest_heads["rightUpperLeg"])
    q_rest = facing_rotation(rest_left)
    if face_front:
        q_motion = _clip_heading(posed, rest, bones.index("hips"), rest_left, q_rest)
    else:
        q_motion = q_rest
    rest = q_rest @ rest
    posed = q_motion @ posed
    hips = hips @ q_motion.T
    rest_heads = {b: q_rest @ h for b, h in rest_heads.items()}
    rest_dirs = rest_directions(rest_heads)
    rest_ankle = min(rest_heads["leftFoot"][2], rest_heads["rightFoot"][2])
    return SampledMotion(
        mapping=mapping, bones=bones, rest=rest, posed=posed, rest_dirs=rest_dirs, hips=hips,
        rest_hips_height=float(rest_heads["hips"][2] - rest_ankle), leg_length=leg_length(rest_heads),
        times=times, fps=float(src_fps),
        duration=float(duration), start=float(start), lead_in=float(lead_in),
    )


def _clip_heading(posed: np.ndarray, rest: np.ndarray, hips: int, rest_left: np.ndarray,
                  fallback: np.ndarray) -> np.ndarray:
    """Turn that makes the clip face -Y on average.

    The hips' lateral axis is followed through the clip and averaged on the circle. The mean rather
    than the first frame: mocap files often open with a calibration T-pose facing elsewhere. When the
    headings cancel out (a full spin), the first frame decides.
    """
    left = np.einsum("tij,jk,k->ti", posed[:, hips], rest[hips].T, rest_left)[:, :2]
    norms = np.linalg.norm(left, axis=1)
    if not (norms > 1e-6).any():
        return fallback
    unit = left[norms > 1e-6] / norms[norms > 1e-6, None]
    mean = unit.mean(axis=0)
    direction = mean if np.linalg.norm(mean) >= 0.3 else unit[0]
    return facing_rotation(np.array([direction[0], direction[1], 0.0]))


# canonical_order, rest_directions, leg_length (character4d.retarget) and bvh_fps (character4d.bvh) are
# bpy-free and live there; they stay importable from here.
__all__ = ["SampledMotion", "sample_motion", "canonical_order", "rest_directions", "bone_rotations_world",
           "armature_bones", "leg_length", "bvh_fps"]
