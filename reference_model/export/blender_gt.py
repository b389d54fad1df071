"""The posed ground-truth surface of a character4d sample, frame by frame (Blender, in a worker process).

``python -m reference_model.export.blender_gt JOB.json`` poses the character exactly as
``character4d render`` did (character4d's own loader, motion sampler and retargeting, with the sample's
render settings and chosen start) and writes the evaluated mesh of every frame. Used to measure an
exported mesh's distance to the true surface. The character and motion files are found in the embedded
default data by the names and SHA-256 the sample records, or given explicitly.
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

_HIPS_TOL_M = 0.002  # the re-posed hips must sit where the sample's joints say (2 mm)


def _default_file(kind: str, src: dict) -> Path | None:
    import hashlib

    from character4d.default_data import default_data_dir

    here = default_data_dir()
    for folder in [here, *sorted(p for p in here.parent.glob("*") if p != here)]:
        path = folder / kind / str(src.get("name", ""))
        if src.get("name") and path.is_file() and hashlib.sha256(path.read_bytes()).hexdigest() == src.get("sha256"):
            return path
    return None


def posed_ground_truth(sample, character: str | Path | None = None, motion: str | Path | None = None,
                       timeout: float = 900.0) -> tuple[np.ndarray, np.ndarray]:
    """Posed vertices of the sample's character for every frame.

    Args:
        sample: a `character4d.format.Sample`.
        character, motion: the files it was rendered from (default: found in the embedded default data).
        timeout: seconds before the worker is stopped.

    Returns:
        ([F, N, 3] float64 world vertices, [M, 3] int64 triangles).

    Raises:
        ValueError: the files cannot be found, or the worker failed (its reason in the message).
    """
    sources = sample.meta.get("sources", {})
    character = character or _default_file("characters", sources.get("character", {}))
    motion = motion or _default_file("motions", sources.get("motion", {}))
    if character is None or motion is None:
        raise ValueError(f"{sample.key}: its character and motion are not in the embedded default data; "
                         "the ground-truth surface needs the files it was rendered from")
    with tempfile.TemporaryDirectory() as tmp:
        job = Path(tmp) / "job.json"
        out = Path(tmp) / "posed.npz"
        meta = {k: sample.meta[k] for k in ("render_config", "start") if k in sample.meta}
        job.write_text(json.dumps({"character": str(character), "motion": str(motion), "meta": meta,
                                   "joints": sample.joints[:, 0].tolist(), "out": str(out),
                                   "log": str(Path(tmp) / "blender.log")}))
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [
            str(Path(__file__).resolve().parents[2]), os.environ.get("PYTHONPATH")]))}
        proc = subprocess.run([sys.executable, "-m", "reference_model.export.blender_gt", str(job)],
                              capture_output=True, text=True, timeout=timeout, env=env)
        lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")]
        result = json.loads(lines[-1][7:]) if lines else {"ok": False, "message": proc.stderr[-2000:]}
        if not result.get("ok"):
            raise ValueError(f"posing the ground truth failed: {result.get('message')}")
        with np.load(out) as data:
            return data["vertices"], data["faces"]


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 1:
        print("usage: python -m reference_model.export.blender_gt JOB.json", file=sys.stderr)
        return 2
    job = json.loads(Path(argv[0]).read_text())
    # Blender's own chatter goes to the log; results travel on the returned channel (as character4d's worker).
    channel = redirect_blender_output(Path(job["log"]))
    try:
        import bpy
        import mathutils

        from character4d.blender.character import bone_heads_world, load_character, mesh_triangles_world, reset_scene
        from character4d.blender.motion import sample_motion
        from character4d.blender.render import retarget_basis
        from character4d.config import RenderConfig

        cfg = RenderConfig.from_json(job["meta"]["render_config"])
        start = job["meta"].get("start", {})
        start_s = start.get("chosen_s", cfg.start) if isinstance(start, dict) else cfg.start
        reset_scene()
        sampled = sample_motion(job["motion"], cfg.num_frames, cfg.fps, start_s, cfg.face_front)
        reset_scene()
        char = load_character(job["character"], cfg.height)
        if char.armature.animation_data is not None:
            char.armature.animation_data_clear()
        basis, hips_loc = retarget_basis(char, sampled, cfg.root_motion)
        hips_name = char.mapping.bones["hips"]
        want = np.array(job["joints"])
        verts, faces, worst = [], None, 0.0
        for f in range(cfg.num_frames):
            for name, mats in basis.items():
                char.armature.pose.bones[name].rotation_quaternion = mathutils.Matrix(mats[f].tolist()).to_quaternion()
            char.armature.pose.bones[hips_name].location = tuple(hips_loc[f])
            bpy.context.view_layer.update()
            worst = max(worst, float(np.linalg.norm(bone_heads_world(char.armature, [hips_name], posed=True)[0] - want[f])))
            v, faces = mesh_triangles_world(char.meshes)
            verts.append(v)
        if worst > _HIPS_TOL_M:
            raise ValueError(f"re-posed hips are {worst * 1000:.1f} mm from the sample's joints (another "
                             "character4d version or different files?)")
        np.savez(job["out"], vertices=np.stack(verts), faces=faces)
        channel.write("RESULT " + json.dumps({"ok": True, "hips_max_mm": worst * 1000}) + "\n")
        return 0
    except Exception as exc:  # reported to the parent
        traceback.print_exc()
        channel.write("RESULT " + json.dumps({"ok": False, "message": f"{type(exc).__name__}: {exc}"}) + "\n")
        return 1


if __name__ == "__main__":
    sys.exit(main())
