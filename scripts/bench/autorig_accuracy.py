"""Auto-rig accuracy: strip the rig of rigged characters, auto-rig the bare mesh, compare the joints.

Each character is loaded twice in Blender, as the renderer loads it: with its own rig, and as a plain
OBJ export of its rest-pose mesh (no skeleton), which `load_character` auto-rigs. Both are put in the
canonical A-pose (`apose_basis`, 40 degrees) and their joints are compared over
`character4d.autorig.MAJOR_JOINTS`. Prints a table (median, worst and which joint, per character).

    python scripts/bench/autorig_accuracy.py                         # the rigged characters of ../shared/assets
    python scripts/bench/autorig_accuracy.py a.glb b.fbx --json out.json
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

ASSETS = Path(__file__).resolve().parents[2].parent / "shared" / "assets"
RIGGED = ("human-male", "human-zombie", "human-kenney", "human-sintel", "human-bunny")

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
    _apply_basis(ch, apose_basis(ch, 40.0), None)
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


def measure(paths: list[Path]) -> dict:
    """Reference and auto-rigged A-pose joints of each character (one Blender child process).

    Returns:
        path -> {"reference": joints, "fitted": joints, "autorig": fit json} or {"error": message}.
    """
    with tempfile.TemporaryDirectory() as tmp:
        pairs = [(str(p), str(Path(tmp) / f"{p.stem}-bare.obj")) for p in paths]
        proc = subprocess.run([sys.executable, "-c", _CHILD, json.dumps(pairs)], capture_output=True, text=True)
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


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("characters", nargs="*", type=Path)
    p.add_argument("--json", type=Path, help="also write the per-joint errors here")
    a = p.parse_args(argv)
    paths = a.characters or [ASSETS / "characters" / f"{n}.glb" for n in RIGGED]
    result = measure(paths)
    table = {}
    print(f"{'character':16s} {'median cm':>9s} {'worst cm':>8s}  worst joint      quality")
    for path in paths:
        entry = result[str(path)]
        if "error" in entry:
            print(f"{path.stem:16s} {'-':>9s} {'-':>8s}  {entry['error']}")
            table[path.stem] = {"error": entry["error"]}
            continue
        e = errors(entry)
        worst = max(e, key=e.get)
        vals = np.array(list(e.values()))
        q = (entry["autorig"] or {}).get("quality", float("nan"))
        print(f"{path.stem:16s} {np.median(vals) * 100:9.1f} {vals.max() * 100:8.1f}  {worst:16s} {q:.2f}")
        table[path.stem] = {"median_m": float(np.median(vals)), "worst_m": float(vals.max()), "worst_joint": worst,
                            "quality": q, "errors_m": e}
    if a.json:
        a.json.write_text(json.dumps(table, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
