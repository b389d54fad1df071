"""Time and quality of `charactershot export-mesh` on fitted samples.

For each fit directory (``charactershot fit4d --out``): extraction time per stage, mesh size, the glTF
file size, silhouette IoU against the ground truth's alpha for every view and frame, and the distance to
the posed ground-truth surface (Blender poses the character as character4d rendered it; points sampled on
each surface, exact distances to the other).

    python scripts/bench/export_mesh.py --gt out/board-gt --fits out/gs4d/ada64
    python scripts/bench/export_mesh.py --gt out/board-gt --fits out/gs4d/* --methods opacity tsdf
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import tempfile
import time
from pathlib import Path

import torch

from reference_model.export.blender_gt import posed_ground_truth
from reference_model.export.mesh import MeshConfig, extract_mesh, silhouette_iou, surface_distance, write_gltf
from reference_model.export.rig import _load_sample
from reference_model.gs4d import load_fit


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--gt", type=Path, required=True)
    parser.add_argument("--fits", type=Path, nargs="+", required=True)
    parser.add_argument("--methods", nargs="+", default=["auto"])
    parser.add_argument("--voxel-size", type=float, default=MeshConfig().voxel_size)
    parser.add_argument("--device", default="auto")
    args = parser.parse_args()
    device = "cuda" if args.device == "auto" and torch.cuda.is_available() else ("cpu" if args.device == "auto" else args.device)
    rows = []
    for fit in args.fits:
        record = json.loads((fit / "fit.json").read_text()) if (fit / "fit.json").is_file() else {}
        key = record.get("key") or record.get("sample_key") or record.get("sample")
        sample = _load_sample(args.gt, key)
        model, _ = load_fit(fit, device=device)
        t0 = time.perf_counter()
        gt_v, gt_f = posed_ground_truth(sample)
        gt_s = time.perf_counter() - t0
        for method in args.methods:
            mesh, info = extract_mesh(model, MeshConfig(voxel_size=args.voxel_size, method=method),
                                      frames=sample.num_frames, fps=float(sample.meta["fps"]))
            with tempfile.TemporaryDirectory() as tmp:
                t0 = time.perf_counter()
                glb = write_gltf(mesh, Path(tmp) / "mesh.glb")
                write_s, size = time.perf_counter() - t0, glb.stat().st_size
            t0 = time.perf_counter()
            iou = silhouette_iou(mesh, sample)
            dist = surface_distance(mesh, gt_v, gt_f)
            rows.append({"fit": fit.name, "key": sample.key, "gaussians": int(model.num), **info, "write_s": write_s,
                         "MB": size / 1e6, "iou_mean": iou["mean"], "iou_min": iou["min"], **dist,
                         "measure_s": time.perf_counter() - t0, "gt_pose_s": gt_s})
            print({k: v for k, v in rows[-1].items() if k != "per_frame"}, file=sys.stderr)
    print(f"machine: {platform.node()} ({platform.processor() or platform.machine()}), device {device}")
    print("| fit | sample | Gaussians | method | vertices | export s (total) | glb MB | IoU mean / min "
          "| mesh->GT mm mean / p95 | GT->mesh mm mean / p95 |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['fit']} | {r['key']} | {r['gaussians']:,} | {r['method']} | {r['vertices']:,} | "
              f"{r['total_s'] + r['write_s']:.1f} | {r['MB']:.1f} | {r['iou_mean']:.3f} / {r['iou_min']:.3f} | "
              f"{r['to_gt_mean_mm']:.1f} / {r['to_gt_p95_mm']:.1f} | {r['from_gt_mean_mm']:.1f} / {r['from_gt_p95_mm']:.1f} |")


if __name__ == "__main__":
    main()
