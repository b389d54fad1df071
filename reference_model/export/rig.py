"""``charactershot export-rig``: a skeletal animation of a character from 3D joints (BVH + skinned GLB).

The joints (a sample's own ``joints.npy`` by default, or ``--joints`` [F, J, 3] in character4d's
canonical order, e.g. triangulated from predicted pose maps) drive the character's own skeleton through
`reference_model.export.ik`. Written into ``--out``:

- ``<key>.bvh``: the motion on the character's skeleton (canonical VRM bone names, rest = its A-pose);
  ``character4d render --characters CHAR --motions <key>.bvh --no-face-front --start 0`` renders it
  again (character4d re-bases a motion's height on the clip's lowest ankle: where the input's lowest ankle
  is not at the character's rest height, the render sits higher by the difference);
- ``<key>.glb``: the character's skinned mesh with the animation baked (Blender's glTF exporter; needs
  bpy and the character file the sample was rendered from);
``--keypoints`` takes COCO-18 world keypoints instead (what triangulating pose maps gives, e.g.
``characterbench.pose.triangulate_pose_maps``); the joints they do not show are placed from the rest
skeleton (`reference_model.export.ik.joints_from_coco18`).

- ``rig.json``: where the joints came from, the IK settings, the joint error of the solved skeleton
  against the input joints, the GLB read-back error, timings.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
import time
from dataclasses import asdict
from pathlib import Path

import numpy as np

from character4d.skeleton import BODY_BONES
from reference_model.export.ik import IKConfig, IKError, Skeleton, forward_kinematics, joint_errors, \
    joints_from_coco18, solve_ik, write_motion_bvh


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _load_sample(data: Path, key: str | None):
    from character4d.format import SampleFormatError, open_samples

    try:
        samples = open_samples(data, keys=[key] if key else None)
        sample = next(samples, None)
    except (SampleFormatError, FileNotFoundError) as exc:
        raise ValueError(str(exc)) from exc
    if sample is None:
        raise ValueError(f"{data}: no sample {key!r}" if key else f"{data}: no samples")
    return sample


def default_character(sample) -> Path | None:
    """The embedded default-data character a sample was rendered from (matched by name and SHA-256), or None."""
    from character4d.default_data import default_data_dir

    src = sample.meta.get("sources", {}).get("character", {})
    if not src.get("name"):
        return None
    # Any cached version of the default data: the sample may predate the current DATA_VERSION.
    here = default_data_dir()
    for folder in [here, *sorted(p for p in here.parent.glob("*") if p != here)]:
        path = folder / "characters" / str(src["name"])
        if path.is_file() and _sha256(path) == src.get("sha256"):
            return path
    return None


def add_arguments(parser: argparse.ArgumentParser) -> None:
    d = IKConfig()
    parser.add_argument("--data", type=Path, required=True,
                        help="character4d samples (shard, folder, render output): the character's A-pose skeleton")
    parser.add_argument("--key", default=None, help="sample key (default: the first sample)")
    parser.add_argument("--joints", type=Path, default=None,
                        help="[F, J, 3] .npy in character4d's joint order (default: the sample's joints.npy)")
    parser.add_argument("--keypoints", type=Path, default=None,
                        help="[F, 18, 3] .npy of COCO-18 world keypoints instead, e.g. triangulated from pose maps "
                             "by characterbench.pose.triangulate_pose_maps")
    parser.add_argument("--character", type=Path, default=None,
                        help="character file for the GLB (default: the embedded default-data character the "
                             "sample names, when it is one)")
    parser.add_argument("--out", type=Path, required=True, help="output folder")
    parser.add_argument("--no-glb", action="store_true", help="write the BVH only (no Blender)")
    parser.add_argument("--pin-contacts", action="store_true",
                        help="hold feet in floor contact still (for noisy, e.g. triangulated, joints)")
    parser.add_argument("--no-scale", action="store_true", help="keep the input's positions (no leg-length scaling)")
    parser.add_argument("--contact-height", type=float, default=d.contact_height,
                        help=f"ankle height above the clip's lowest ankle that counts as contact (default {d.contact_height} m)")


def run(args: argparse.Namespace) -> int:
    try:
        start = time.perf_counter()
        sample = _load_sample(args.data, args.key)
        fps = float(sample.meta.get("fps", 15.0))
        cfg = IKConfig(pin_contacts=args.pin_contacts, scale_to_character=not args.no_scale,
                       contact_height=args.contact_height, fps=fps)
        if args.joints is not None and args.keypoints is not None:
            raise ValueError("give --joints or --keypoints, not both")
        if args.joints is not None:
            if not args.joints.is_file():
                raise ValueError(f"{args.joints}: no such file")
            joints, source = np.load(args.joints), str(args.joints)
        elif args.keypoints is not None:
            if not args.keypoints.is_file():
                raise ValueError(f"{args.keypoints}: no such file")
            joints = joints_from_coco18(np.load(args.keypoints), sample.apose_joints)
            source = f"{args.keypoints} (COCO-18 keypoints)"
        else:
            joints, source = sample.joints, f"{sample.key}/joints.npy (ground truth)"
        skeleton = Skeleton.from_joints(sample.apose_joints)
        character = args.character
        if not args.no_glb and character is None:
            character = default_character(sample)
            if character is None:
                raise ValueError(f"{sample.key}: its character is not in the embedded default data; pass "
                                 "--character FILE (the file it was rendered from) or --no-glb")
        if character is not None and not Path(character).is_file():
            raise ValueError(f"{character}: no such file")
        motion = solve_ik(joints, skeleton, cfg)
        ik_s = time.perf_counter() - start
        args.out.mkdir(parents=True, exist_ok=True)
        bvh = write_motion_bvh(args.out / f"{sample.key}.bvh", motion, fps)
        fk = forward_kinematics(skeleton, motion.rotations, motion.hips)
        report = {
            "key": sample.key, "joints": source, "frames": int(len(joints)), "fps": fps, "ik_config": asdict(cfg),
            "scale": motion.scale, "contact_frames": motion.contacts.sum(axis=0).tolist(),
            "fk_vs_input_body": joint_errors(fk, np.asarray(joints, dtype=np.float64) * motion.scale,
                                             [b for b in skeleton.bones if b in BODY_BONES]),
            "bvh": bvh.name, "ik_seconds": ik_s,
        }
        if not args.no_glb:
            from reference_model.export.blender_rig import RigExportError, export_glb

            height = sample.meta.get("render_config", {}).get("height")
            try:
                glb = export_glb(character, motion, args.out / f"{sample.key}.glb", fps, height)
            except RigExportError as exc:
                raise ValueError(f"GLB export failed: {exc}") from exc
            report.update({"glb": Path(glb["glb"]).name, "glb_readback_max_mm": glb["readback_max_mm"],
                           "glb_seconds": glb["seconds"], "character": Path(character).name})
        (args.out / "rig.json").write_text(json.dumps(report, indent=1) + "\n")
    except (ValueError, IKError, OSError) as exc:
        print(f"charactershot export-rig: {exc}", file=sys.stderr)
        return 1
    e = report["fk_vs_input_body"]
    print(f"wrote {args.out / report['bvh']}" + (f" and {report['glb']}" if "glb" in report else "")
          + f": {report['frames']} frames, solved skeleton {e['mean_mm']:.2f} mm mean / {e['max_mm']:.2f} mm max "
            f"from the input joints (x{motion.scale:.3f})")
    return 0
