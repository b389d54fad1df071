"""IK round trip of `charactershot export-rig` on rendered samples: joints -> IK -> BVH -> `character4d render`.

For each sample of ``--gt`` (default: the board's ground truth), two inputs drive the character's own
skeleton: the sample's exact ``joints.npy``, and COCO-18 keypoints triangulated from its own pose maps
(``characterbench.pose.triangulate_pose_maps``, 21 views). The BVH is rendered again with the sample's
settings at ``--resolution`` (Workbench) and its joints compared with the original: body bones + face
(mm), the COCO-18 keypoints (mm), and the re-rendered pose maps against the original joints drawn at that
resolution (mean absolute difference, 0-255). Also timed: IK, BVH, skinned GLB (Blender), re-render.

    python scripts/bench/export_rig.py                          # out/board-gt, 64 px
    python scripts/bench/export_rig.py --gt out/c4d --keys ada__dance --resolution 128
"""

from __future__ import annotations

import argparse
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from character4d.cameras import RigConfig, rig_cameras
from character4d.format import open_samples
from character4d.posemap import PoseStyle, draw_pose_map
from character4d.skeleton import BODY_BONES, FACE_POINTS, JOINT_NAMES
from characterbench.pose import triangulate_pose_maps
from reference_model.export.blender_rig import export_glb
from reference_model.export.ik import (IKConfig, Skeleton, coco18_of, joints_from_coco18, solve_ik,
                                       write_motion_bvh)
from reference_model.export.rig import default_character

J = {n: i for i, n in enumerate(JOINT_NAMES)}


def rerender(character: Path, bvh: Path, sample, resolution: int, out: Path) -> tuple[object, float]:
    cfg = sample.meta["render_config"]
    motion = out / f"{sample.key.split('__')[1]}.bvh"
    motion.write_bytes(bvh.read_bytes())
    cmd = [sys.executable, "-m", "character4d.cli", "render", "--characters", str(character), "--motions", str(motion),
           "--out", str(out / "re"), "--pairing", "zip", "--resolution", str(resolution),
           "--frames", str(sample.num_frames), "--views", str(sample.num_views), "--fps", str(cfg["fps"]),
           "--engine", "workbench", "--samples", "5", "--format", "folders", "--no-face-front", "--start", "0", "--quiet",
           "--root-motion", cfg.get("root_motion", "center")]
    if cfg.get("height"):
        cmd += ["--height", str(cfg["height"])]
    t0 = time.perf_counter()
    subprocess.run(cmd, check=True, capture_output=True, text=True)
    return next(open_samples(out / "re")), time.perf_counter() - t0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--gt", type=Path, default=Path("out/board-gt"))
    parser.add_argument("--keys", nargs="*", default=None)
    parser.add_argument("--resolution", type=int, default=64)
    parser.add_argument("--inputs", nargs="+", choices=("joints.npy", "pose maps"), default=["joints.npy", "pose maps"])
    args = parser.parse_args()
    rows = []
    for sample in open_samples(args.gt, keys=args.keys):
        character = default_character(sample)
        if character is None:
            print(f"skip {sample.key}: its character is not in the embedded default data", file=sys.stderr)
            continue
        sk = Skeleton.from_joints(sample.apose_joints)
        fps = float(sample.meta["fps"])
        t0 = time.perf_counter()
        keypoints = triangulate_pose_maps(sample)
        tri_s = time.perf_counter() - t0
        inputs = {"joints.npy": sample.joints, "pose maps": joints_from_coco18(keypoints, sample.apose_joints)}
        cams = rig_cameras(RigConfig(resolution=args.resolution, num_views=sample.num_views))
        style = PoseStyle(variant=sample.meta["render_config"].get("pose_variant", "openpose"))
        for name, joints in ((n, j) for n, j in inputs.items() if n in args.inputs):
            with tempfile.TemporaryDirectory() as tmp:
                tmp = Path(tmp)
                t0 = time.perf_counter()
                motion = solve_ik(joints, sk, IKConfig(fps=fps))
                ik_s = time.perf_counter() - t0
                bvh = write_motion_bvh(tmp / "motion.bvh", motion, fps)
                t0 = time.perf_counter()
                glb = export_glb(character, motion, tmp / "rig.glb", fps, sample.meta["render_config"].get("height"))
                glb_s = time.perf_counter() - t0
                again, render_s = rerender(character, bvh, sample, args.resolution, tmp)
            body = [J[b] for b in BODY_BONES + FACE_POINTS]
            d = np.linalg.norm(again.joints[:, body] - sample.joints[:, body], axis=-1) * 1000
            d = d[np.isfinite(d)]
            got, want = coco18_of(again.joints), coco18_of(sample.joints)
            c = np.linalg.norm(got - want, axis=-1) * 1000
            c = c[np.isfinite(c)]
            # root-aligned (the hips' mid-point, COCO-18 keypoints 8 and 11), as MPJPE reports it: `character4d
            # render` re-centres the hips bone over the clip, which the keypoints do not show
            root = lambda k: 0.5 * (k[:, 8:9] + k[:, 11:12])  # noqa: E731
            ra = np.linalg.norm((got - root(got)) - (want - root(want)), axis=-1) * 1000
            ra = ra[np.isfinite(ra)]
            diffs = []
            for v in range(sample.num_views):
                for f in range(sample.num_frames):
                    ref = draw_pose_map(sample.joints[f], cams.viewmats[v], cams.Ks[v], args.resolution,
                                        args.resolution, style=style)
                    diffs.append(np.abs(ref.astype(int) - again.pose(v, f).astype(int)).mean())
            rows.append({"key": sample.key, "input": name, "frames": sample.num_frames, "ik_s": ik_s,
                         "tri_s": tri_s if name == "pose maps" else 0.0, "glb_s": glb_s,
                         "glb_mm": glb["readback_max_mm"], "render_s": render_s, "body_mean": d.mean(),
                         "body_max": d.max(), "coco_mean": c.mean(), "coco_max": c.max(), "coco_ra_mean": ra.mean(), "coco_ra_max": ra.max(),
                         "pose_diff": np.mean(diffs)})
            print(rows[-1], file=sys.stderr)
    print(f"machine: {platform.node()} ({platform.processor() or platform.machine()}); "
          f"re-rendered at {args.resolution} px, Workbench")
    print("| sample | input | IK s | triangulation s | GLB s (read-back max mm) | re-render s | body+face mm mean / max "
          "| COCO-18 mm mean / max | COCO-18 root-aligned mm mean / max | pose-map mean abs diff |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['key']} | {r['input']} | {r['ik_s']:.2f} | {r['tri_s']:.1f} | {r['glb_s']:.1f} ({r['glb_mm']:.3f}) | "
              f"{r['render_s']:.0f} | {r['body_mean']:.2f} / {r['body_max']:.1f} | {r['coco_mean']:.2f} / "
              f"{r['coco_max']:.1f} | {r['coco_ra_mean']:.2f} / {r['coco_ra_max']:.1f} | {r['pose_diff']:.2f} |")


if __name__ == "__main__":
    main()
