"""The character's own skinned mesh, animated by an IK motion, as GLB (Blender, in a worker process).

``python -m reference_model.export.blender_rig JOB.json`` loads the character with character4d's loader
(same normalisation as its renders), poses its bones with character4d's retargeting maths from the IK
motion (whose rest pose is the character's canonical A-pose), bakes one keyframe per frame, exports a
GLB with Blender's glTF exporter, then imports that GLB again with Blender's importer and measures how far
its bone heads are from the IK's forward kinematics. Job file: ``{"character", "height", "motion" (an
.npz written by `write_job`), "out" (the .glb), "fps"}``. Stdout carries one ``RESULT <json>`` line.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import traceback
from pathlib import Path

import numpy as np

from character4d.blender.worker import redirect_blender_output
from reference_model.export.ik import Motion, forward_kinematics

_JOINT_TOL_M = 0.01  # the character file must carry the sample's skeleton (1 cm: same file, same normalisation)


class RigExportError(RuntimeError):
    """The Blender worker failed; the message carries its reason."""


def export_glb(character: str | Path, motion: Motion, out: str | Path, fps: float, height: float | None = None,
               timeout: float = 600.0) -> dict:
    """Write the animated, skinned GLB of a character in a Blender worker subprocess.

    Args:
        character: the character file the sample was rendered from.
        motion: the IK motion (on the character's A-pose skeleton).
        out: the .glb to write.
        fps: frame rate.
        height: the ``--height`` the sample was rendered with (None: the loader's default).
        timeout: seconds before the worker is stopped.

    Returns:
        The worker's report: ``glb``, ``frames``, ``bones``, ``readback_max_mm`` (bone heads of the re-imported
        GLB against the IK's forward kinematics, every frame), ``seconds``.

    Raises:
        RigExportError: the worker failed (a bad character file, a skeleton that does not match, ...).
    """
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        npz = Path(tmp) / "motion.npz"
        sk = motion.skeleton
        np.savez(npz, rotations=motion.rotations, hips=motion.hips, heads=sk.heads, parents=np.array(sk.parents),
                 bones=np.array(sk.bones), joints=forward_kinematics(sk, motion.rotations, motion.hips))
        job = Path(tmp) / "job.json"
        job.write_text(json.dumps({"character": str(character), "height": height, "motion": str(npz),
                                   "out": str(out), "fps": fps, "log": str(out.with_suffix(".blender.log"))}))
        proc = subprocess.run([sys.executable, "-m", "reference_model.export.blender_rig", str(job)],
                              capture_output=True, text=True, timeout=timeout,
                              env={**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [
                                  str(Path(__file__).resolve().parents[2]), os.environ.get("PYTHONPATH")]))})
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")]
    if not lines:
        raise RigExportError(f"the Blender worker exited with {proc.returncode} and no result: {proc.stderr[-2000:]}")
    result = json.loads(lines[-1][len("RESULT "):])
    if not result.get("ok"):
        raise RigExportError(result.get("message", "unknown error"))
    return result


def _pose_character(char, data: dict, fps: float) -> int:
    """Keyframe the character's bones from the IK motion; returns the frame count."""
    import bpy
    import mathutils

    from character4d.blender.character import bone_heads_world
    from character4d.blender.motion import SampledMotion, rest_directions
    from character4d.blender.render import retarget_basis
    from character4d.skeleton import SkeletonMap

    bones = [str(b) for b in data["bones"]]
    heads = data["heads"]
    m = char.mapping.bones
    # The file must be the character the sample was rendered from: compare rest heads of the bones the
    # A-pose does not move (spine and legs).
    still = [b for b in bones if b in m and "Arm" not in b and "Hand" not in b and "Shoulder" not in b
             and b in ("hips", "spine", "chest", "upperChest", "neck", "head") + tuple(
                 f"{s}{p}" for s in ("left", "right") for p in ("UpperLeg", "LowerLeg", "Foot"))]
    char_heads = bone_heads_world(char.armature, [m[b] for b in still], posed=False)
    ours = heads[[bones.index(b) for b in still]]
    worst = float(np.abs(char_heads - ours).max())
    if worst > _JOINT_TOL_M:
        raise ValueError(f"the character's skeleton is {worst * 100:.1f} cm away from the sample's "
                         "(a different character file, or another --height)")
    common = tuple(b for b in bones if b in m)
    idx = [bones.index(b) for b in common]
    frames = len(data["hips"])
    motion = SampledMotion(
        mapping=SkeletonMap("vrm1", {b: b for b in common}), bones=common,
        rest=np.broadcast_to(np.eye(3), (len(common), 3, 3)).copy(), posed=data["rotations"][:, idx],
        # Without the hands' own directions a hand inherits its forearm's rest alignment, exactly as
        # character4d's A-pose does; so the fingers land where the A-pose skeleton puts them.
        rest_dirs={b: d for b, d in rest_directions({b: heads[bones.index(b)] for b in common}).items()
                   if not b.endswith("Hand")}, hips=data["hips"],
        rest_hips_height=float(heads[0, 2]), leg_length=1.0, times=np.arange(frames) / fps, fps=fps,
        duration=frames / fps)
    basis, _ = retarget_basis(char, motion, "center")
    # Hips location: the IK's hips position itself (retarget_basis re-centres and rescales), expressed in
    # the hips bone's rest axes, armature units.
    arm = char.armature
    aw = np.array(arm.matrix_world)[:3, :3]
    hips_rest = np.array(arm.data.bones[m["hips"]].matrix_local)[:3, :3]
    rest_hips = bone_heads_world(arm, [m["hips"]], posed=False)[0]
    loc = (data["hips"] - rest_hips) @ np.linalg.inv(aw).T @ hips_rest
    for f in range(frames):
        for name, mats in basis.items():
            pb = arm.pose.bones[name]
            pb.rotation_quaternion = mathutils.Matrix(mats[f].tolist()).to_quaternion()
            pb.keyframe_insert("rotation_quaternion", frame=f)
        pb = arm.pose.bones[m["hips"]]
        pb.location = tuple(loc[f])
        pb.keyframe_insert("location", frame=f)
    scene = bpy.context.scene
    scene.frame_start, scene.frame_end = 0, frames - 1
    scene.render.fps, scene.render.fps_base = int(round(fps)), round(fps) / fps
    return frames


def _readback(glb: Path, mapping: dict, joints: np.ndarray, fps: float) -> float:
    """Import the GLB with Blender's importer; max distance (mm) of its posed bone heads from ``joints``."""
    import bpy

    from character4d.blender.character import bone_heads_world, reset_scene
    from character4d.skeleton import JOINT_NAMES

    reset_scene()
    # The importer turns key times (seconds) into frames at the scene's rate.
    bpy.context.scene.render.fps, bpy.context.scene.render.fps_base = int(round(fps)), round(fps) / fps
    bpy.ops.import_scene.gltf(filepath=str(glb))
    arm = next(o for o in bpy.data.objects if o.type == "ARMATURE")
    names = [c for c in mapping if c in JOINT_NAMES and np.isfinite(joints[0, JOINT_NAMES.index(c)]).all()]
    worst, which = 0.0, None
    for f in range(len(joints)):
        bpy.context.scene.frame_set(f)
        got = bone_heads_world(arm, [mapping[c] for c in names], posed=True)
        want = joints[f, [JOINT_NAMES.index(c) for c in names]]
        d = np.linalg.norm(got - want, axis=1)
        if d.max() > worst:
            worst, which = float(d.max()), (names[int(np.argmax(d))], f)
    print("readback worst", worst, which)
    return worst * 1000


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 1:
        print("usage: python -m reference_model.export.blender_rig JOB.json", file=sys.stderr)
        return 2
    job = json.loads(Path(argv[0]).read_text())
    # Blender's own chatter goes to the log; results travel on the returned channel (as character4d's worker).
    channel = redirect_blender_output(Path(job["log"]))
    try:
        import time

        import bpy

        from character4d.blender.character import load_character, reset_scene

        start = time.perf_counter()
        data = dict(np.load(job["motion"]))
        reset_scene()
        char = load_character(job["character"], job["height"])
        if char.armature.animation_data is not None:
            char.armature.animation_data_clear()
        frames = _pose_character(char, data, float(job["fps"]))
        mapping = dict(char.mapping.bones)
        out = Path(job["out"])
        tmp = out.with_name(out.stem + ".tmp.glb")
        bpy.ops.export_scene.gltf(filepath=str(tmp), export_format="GLB", export_animations=True,
                                  export_force_sampling=True, export_skins=True, export_yup=True,
                                  export_optimize_animation_size=False)
        tmp.replace(out)
        worst = _readback(out, mapping, data["joints"], float(job["fps"]))
        channel.write("RESULT " + json.dumps({"ok": True, "glb": str(out), "frames": frames, "bones": len(mapping),
                                              "readback_max_mm": worst,
                                              "seconds": time.perf_counter() - start}) + "\n")
        return 0
    except Exception as exc:  # reported to the parent
        traceback.print_exc()
        channel.write("RESULT " + json.dumps({"ok": False, "message": f"{type(exc).__name__}: {exc}"}) + "\n")
        return 1


if __name__ == "__main__":
    sys.exit(main())
