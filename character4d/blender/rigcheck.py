"""Strip the rig of rigged characters and auto-rig the bare meshes, to compare with the original rig.

Each character is loaded twice, as the renderer loads it: with its own rig, and as a plain OBJ export of
its rest-pose mesh (no skeleton), which `load_character` auto-rigs. Both are put in the canonical A-pose
(`apose_basis`, 40 degrees) and their joints are returned for `character4d.autorig.joint_errors`. The
Blender work runs in one child process, so the caller never imports bpy.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

_CHILD = r"""
import json, sys
import bpy
import numpy as np
from character4d.blender.character import load_character, reset_scene
from character4d.blender.render import apose_basis, _apply_basis, current_joints, face_points_local
from character4d.skeleton import JOINT_NAMES

def apose(path):
    reset_scene()
    ch = load_character(path)
    _apply_basis(ch, apose_basis(ch, float(sys.argv[2])), None)
    bpy.context.view_layer.update()
    j = current_joints(ch, face_points_local(ch))
    return ch, {n: j[i].tolist() for i, n in enumerate(JOINT_NAMES) if np.isfinite(j[i]).all()}

out = {}
for src, bare in json.loads(sys.argv[1]):
    reset_scene()
    bpy.ops.import_scene.gltf(filepath=src) if src.endswith((".glb", ".gltf")) else bpy.ops.import_scene.fbx(filepath=src)
    for o in bpy.data.objects:
        if o.type == "ARMATURE":
            o.data.pose_position = "REST"
    bpy.context.view_layer.update()
    bpy.ops.wm.obj_export(filepath=bare, export_materials=False, apply_modifiers=True)
    _, ref = apose(src)
    try:
        ch, fit = apose(bare)
        out[src] = {"reference": ref, "fitted": fit, "autorig": getattr(ch, "autorig", None)}
    except Exception as exc:
        out[src] = {"reference": ref, "error": f"{type(exc).__name__}: {exc}"}
print("RESULT " + json.dumps(out))
"""


# Procedural characters for the acceptance check (`character4d.blender.procedural`, rigged by the
# project's template skeleton): stylised as VRoid characters are, with what the auto-rigger must see
# through. "anime": an A-pose, big head (1.8x), one-sided hair strands, a skirt and loose open sleeves.
# "chibi": a T-pose, head 2.4x the template's (a third of the height), solid long hair over the
# shoulders, a cape and sleeves.
_COLORS = {"skin": [0.98, 0.86, 0.8], "top": [0.9, 0.9, 0.95], "bottom": [0.2, 0.25, 0.5],
           "shoes": [0.3, 0.1, 0.1], "hair": [0.6, 0.8, 0.95], "accent": [0.9, 0.3, 0.4]}
CHECK_CHARACTERS = {
    "anime": {"name": "anime", "height": 1.55, "widths": [0.8, 0.8, 1.0], "colors": _COLORS, "rest": "A",
              "prefix": "", "clothing": ["skirt", "hair_strands", "sleeves"], "head_scale": 1.8},
    "chibi": {"name": "chibi", "height": 1.2, "widths": [1.1, 0.9, 1.0], "colors": _COLORS, "rest": "T",
              "prefix": "mixamorig:", "clothing": ["cape", "long_hair", "sleeves"], "head_scale": 2.4},
}


def build_check_characters(folder: Path, names: tuple[str, ...] = tuple(CHECK_CHARACTERS)) -> list[Path]:
    """Write the procedural check characters as rigged .glb files (one Blender child process each).

    Args:
        folder: where to write ``<name>.glb``.
        names: which of `CHECK_CHARACTERS`.

    Returns:
        The written paths, in the order of ``names``.

    Raises:
        subprocess.CalledProcessError: when a build fails.
    """
    out = []
    for name in names:
        path = Path(folder) / f"{name}.glb"
        subprocess.run([sys.executable, "-m", "character4d.blender.worker", "build-character",
                        json.dumps(CHECK_CHARACTERS[name]), str(path)], check=True, capture_output=True)
        out.append(path)
    return out


def measure(paths: list[Path], arm_deg: float = 40.0) -> dict:
    """Reference and auto-rigged A-pose joints of each character (one Blender child process).

    Args:
        paths: rigged character files (.glb/.gltf/.fbx).
        arm_deg: A-pose arm angle.

    Returns:
        path -> {"reference": joints, "fitted": joints, "autorig": fit json} or {"error": message}
        (joints: canonical name -> [3] list, A-pose, normalised world).

    Raises:
        RuntimeError: when the Blender child process fails (with the end of its output).
    """
    with tempfile.TemporaryDirectory() as tmp:
        pairs = [(str(p), str(Path(tmp) / f"{p.stem}-bare.obj")) for p in paths]
        proc = subprocess.run([sys.executable, "-c", _CHILD, json.dumps(pairs), str(arm_deg)], capture_output=True,
                              text=True)
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")]
    if proc.returncode != 0 or not lines:
        raise RuntimeError(f"auto-rig measurement failed:\n{proc.stderr[-3000:]}")
    return json.loads(lines[-1][len("RESULT "):])


def errors(entry: dict) -> dict[str, float]:
    """Major-joint distances (metres) of one measured character."""
    from character4d.autorig import joint_errors

    ref = {k: np.array(v) for k, v in entry["reference"].items()}
    fit = {k: np.array(v) for k, v in entry["fitted"].items()}
    return joint_errors(fit, ref)


_REST_CHILD = r"""
import json, sys
import bpy
import numpy as np
from character4d.blender.character import load_character, mesh_triangles_world, reset_scene
for i, src in enumerate(json.loads(sys.argv[1])):
    reset_scene()
    ch = load_character(src)
    ch.armature.data.pose_position = "REST"
    bpy.context.view_layer.update()
    verts, faces = mesh_triangles_world(ch.meshes)
    aw = np.array(ch.armature.matrix_world)
    names = list(ch.mapping.bones)
    ends = []
    for n in names:
        b = ch.armature.data.bones[ch.mapping.bones[n]]
        ends.append([aw[:3, :3] @ np.array(b.head_local) + aw[:3, 3], aw[:3, :3] @ np.array(b.tail_local) + aw[:3, 3]])
    np.savez(f"{sys.argv[2]}/{i}.npz", verts=verts, faces=faces, names=np.array(names), ends=np.array(ends))
print("RESULT done")
"""


def rest_finger_errors(paths: list[Path]) -> dict:
    """Fingers fitted to each rigged character's own rest-pose mesh, against its own finger bones.

    The rigged character is loaded as the renderer loads it (normalised, rest pose); its mesh goes to
    `character4d.autorig.fit_skeleton` in that same frame, so the comparison measures where the finger
    chains are put on the hand, without the A-pose turn of the whole arm about the fitted shoulder
    that `measure` includes.

    Args:
        paths: rigged character files.

    Returns:
        path -> {"fingers": `RigFit.fingers`, "errors_m": {hand point -> distance}} (hand points as in
        `character4d.skeleton.HAND_POINTS`; empty when not resolved or the rig has no fingers).

    Raises:
        RuntimeError: when the Blender child process fails (with the end of its output).
    """
    from character4d.autorig import fit_skeleton
    from character4d.skeleton import FINGER_BONES

    out = {}
    with tempfile.TemporaryDirectory() as tmp:
        proc = subprocess.run([sys.executable, "-c", _REST_CHILD, json.dumps([str(p) for p in paths]), tmp],
                              capture_output=True, text=True)
        if proc.returncode != 0:
            raise RuntimeError(f"rest-pose export failed:\n{proc.stderr[-3000:]}")
        for i, path in enumerate(paths):
            with np.load(Path(tmp) / f"{i}.npz") as d:
                verts, faces = d["verts"], d["faces"]
                bones = dict(zip(d["names"].tolist(), d["ends"]))
            fit = fit_skeleton(verts, faces)
            errors = {}
            for b in FINGER_BONES:
                if b in fit.joints and b in bones:
                    errors[b] = float(np.linalg.norm(fit.joints[b] - bones[b][0]))
                    if b.endswith("Distal"):
                        tip = fit.joints[f"{b}_tail"]
                        errors[b[: -len("Distal")] + "Tip"] = float(np.linalg.norm(tip - bones[b][1]))
            out[str(path)] = {"fingers": fit.fingers, "errors_m": errors}
    return out
