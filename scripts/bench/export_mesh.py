"""Time and quality of `charactershot export-mesh` on fitted samples.

For each fit directory (``charactershot fit4d --out``): extraction time per stage, mesh size, the glTF
file size, silhouette IoU against the ground truth's alpha for every view and frame, and the distance to
the posed ground-truth surface (Blender poses the character as character4d rendered it; points sampled on
each surface, exact distances to the other).

    python scripts/bench/export_mesh.py --gt out/board-gt --fits out/gs4d/ada64
    python scripts/bench/export_mesh.py --gt out/board-gt --fits out/gs4d/* --methods opacity tsdf
    python scripts/bench/export_mesh.py --gt out/board-gt --ideal ada__dance
    python scripts/bench/export_mesh.py --gt out/board-gt --meshes out/gpu-export/tsdf/mesh.glb

``--meshes`` measures meshes written elsewhere (``charactershot export-mesh --out DIR`` on the GPU machine,
whose ``DIR/mesh.json`` gives the sample, method and times) against the ground truth here.

``--ideal KEY`` measures the exporter itself on an ideal 4D Gaussian model of a ground-truth sample:
Gaussians sampled on the posed ground-truth surface of the first frame, each moving with its point of the
surface (the deformation is a lookup of the nearest Gaussian's true displacement). Its errors are the
exporter's alone (voxel size, level set, vertex motion), a floor for what a fitted model can reach.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from reference_model.export.blender_gt import posed_ground_truth
from reference_model.export.mesh import (AnimatedMesh, MeshConfig, extract_mesh, point_to_mesh, read_gltf,
                                         silhouette_iou, surface_distance, write_gltf)
from reference_model.export.rig import _load_sample
from reference_model.gs4d import load_fit

PROTOCOL_VIEWS = (0, 2, 5, 7, 9, 12, 14, 16, 19)  # CharacterBench protocol v1 (DESIGN.md section 7)
PROTOCOL_FRAMES = tuple(range(0, 25, 3))


class _LookupDeformation(torch.nn.Module):
    """Displacement of the nearest canonical Gaussian at the nearest frame: the ideal model's motion."""

    def __init__(self, canonical: np.ndarray, displacements: np.ndarray) -> None:
        super().__init__()
        from scipy.spatial import cKDTree

        self.tree = cKDTree(canonical)
        self.displacements = displacements  # [F, N, 3]

    def forward(self, means, t):
        f = int(round(float(t) * (len(self.displacements) - 1)))
        _, idx = self.tree.query(means.detach().cpu().numpy())
        d = torch.as_tensor(self.displacements[f][idx], dtype=means.dtype, device=means.device)
        return d, torch.zeros_like(means), torch.zeros(len(means), 4, dtype=means.dtype, device=means.device)


def ideal_model(gt_v: np.ndarray, gt_f: np.ndarray, count: int, sigma: float):
    """Gaussians on the posed ground-truth surface of frame 0, moving with it (see the module docstring)."""
    from reference_model.gs4d.model import Gaussians4D

    rng = np.random.default_rng(0)
    tri = gt_v[:, gt_f]  # [F, M, 3, 3]
    area = 0.5 * np.linalg.norm(np.cross(tri[0, :, 1] - tri[0, :, 0], tri[0, :, 2] - tri[0, :, 0]), axis=1)
    pick = rng.choice(len(gt_f), size=count, p=area / area.sum())
    r1, r2 = rng.random(count), rng.random(count)
    w = np.stack([1 - np.sqrt(r1), np.sqrt(r1) * (1 - r2), np.sqrt(r1) * r2], axis=1)
    pts = (tri[:, pick] * w[None, :, :, None]).sum(axis=2)  # [F, count, 3]
    params = dict(means=torch.tensor(pts[0], dtype=torch.float32),
                  log_scales=torch.full((count, 3), float(np.log(sigma))),
                  quats=torch.tensor([[1.0, 0, 0, 0]]).repeat(count, 1), opacity_logits=torch.full((count,), 3.0),
                  sh0=torch.zeros(count, 1, 3), shN=torch.zeros(count, 0, 3))
    return Gaussians4D(params, _LookupDeformation(pts[0], pts - pts[:1]), num_frames=len(gt_v))


def centres_to_surface(model, gt_v: np.ndarray, gt_f: np.ndarray, min_opacity: float = 0.1) -> tuple[float, float]:
    """Mean and median distance (mm) of the fit's own Gaussian centres (opacity >= ``min_opacity``, as the
    mesh's) to the posed ground-truth surface over the protocol frames: how far the model itself is from
    the surface, the mesh's reference. Centres left inside the body count too (the mesh fills them)."""
    dist = []
    with torch.no_grad():
        for f in [f for f in PROTOCOL_FRAMES if f < min(len(gt_v), model.num_frames)]:
            g = model.gaussians_at(model.frame_time(f))
            keep = g.opacities.cpu().numpy() >= min_opacity
            dist.append(point_to_mesh(g.means.cpu().numpy()[keep].astype(np.float64), gt_v[f], gt_f))
    d = np.concatenate(dist) * 1000
    return float(d.mean()), float(np.median(d))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--gt", type=Path, required=True)
    parser.add_argument("--fits", type=Path, nargs="*", default=[])
    parser.add_argument("--ideal", nargs="*", default=[], help="sample keys: measure on ideal models (see above)")
    parser.add_argument("--ideal-gaussians", type=int, default=100_000)
    parser.add_argument("--ideal-sigma", type=float, default=0.004, help="ideal Gaussians' size (m)")
    parser.add_argument("--methods", nargs="+", default=["auto"])
    parser.add_argument("--motions", nargs="+", default=[MeshConfig().motion], choices=("gaussians", "field"),
                        help="vertex motions to compare (see MeshConfig.motion)")
    parser.add_argument("--voxel-size", type=float, default=MeshConfig().voxel_size)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--meshes", type=Path, nargs="*", default=[], help="mesh.glb files to measure (see above)")
    parser.add_argument("--no-surface", action="store_true", help="silhouette IoU only (no Blender posing)")
    parser.add_argument("--character", type=Path, default=None,
                        help="the character file to pose when the one the sample records (name + SHA-256) is no "
                             "longer in the default-data cache, e.g. rebuilt; the posed surface's own silhouette "
                             "IoU against the ground truth is printed as the check")
    args = parser.parse_args()
    device = "cuda" if args.device == "auto" and torch.cuda.is_available() else ("cpu" if args.device == "auto" else args.device)
    rows, checked = [], {}
    cases = [("fit", f) for f in args.fits] + [("ideal", k) for k in args.ideal] + [("glb", m) for m in args.meshes]
    for kind, what in cases:
        record = {}
        if kind == "fit" and (what / "fit.json").is_file():
            record = json.loads((what / "fit.json").read_text())
        elif kind == "glb" and (what.parent / "mesh.json").is_file():
            record = json.loads((what.parent / "mesh.json").read_text())
        key = what if kind == "ideal" else (record.get("key") or record.get("sample_key") or record.get("sample"))
        sample = _load_sample(args.gt, key)
        t0 = time.perf_counter()
        gt_v, gt_f = (None, None) if args.no_surface and kind != "ideal" else posed_ground_truth(
            sample, character=args.character)
        gt_s = time.perf_counter() - t0
        if gt_v is not None and key not in checked:
            check = silhouette_iou(AnimatedMesh(gt_v.astype(np.float32), gt_f, np.ones_like(gt_v[0]), 15.0), sample,
                                   [v for v in PROTOCOL_VIEWS if v < sample.num_views],
                                   [f for f in PROTOCOL_FRAMES if f < sample.num_frames])
            checked[key] = check
            print(f"{key}: posed ground-truth surface vs its own alpha: IoU mean {check['mean']:.4f}, "
                  f"min {check['min']:.4f}", file=sys.stderr)
        centres = float("nan"), float("nan")
        if kind == "fit":
            model, _ = load_fit(what, device=device)
            name = what.name
            if gt_v is not None:
                centres = centres_to_surface(model, gt_v, gt_f)
        elif kind == "ideal":
            model = ideal_model(gt_v, gt_f, args.ideal_gaussians, args.ideal_sigma)
            name = f"ideal ({args.ideal_gaussians:,} x {args.ideal_sigma * 1000:g} mm)"
        else:
            name = f"{what.parent.name}/{what.name} ({record.get('device', '?')})"
        settings = [(a, b) for a in args.methods for b in args.motions] if kind != "glb" else [(None, None)]
        for method, motion in settings:
            if kind == "glb":
                mesh = read_gltf(what)
                info = {k: record.get(k, float("nan")) for k in ("method", "motion", "total_s", "deformation_s")}
                info["vertices"], write_s, size = mesh.vertices.shape[1], 0.0, what.stat().st_size
                gaussians = record.get("gaussians", 0)
            else:
                mesh, info = extract_mesh(model, MeshConfig(voxel_size=args.voxel_size, method=method, motion=motion),
                                          frames=sample.num_frames, fps=float(sample.meta["fps"]))
                gaussians = int(model.num)
                with tempfile.TemporaryDirectory() as tmp:
                    t0 = time.perf_counter()
                    glb = write_gltf(mesh, Path(tmp) / "mesh.glb")
                    write_s, size = time.perf_counter() - t0, glb.stat().st_size
            t0 = time.perf_counter()
            # every view and frame at low resolution; the protocol's 9 x 9 cells at full size (time)
            full = sample.frame(0, 0).shape[0] < 256
            iou = silhouette_iou(mesh, sample) if full else silhouette_iou(
                mesh, sample, [v for v in PROTOCOL_VIEWS if v < sample.num_views],
                [f for f in PROTOCOL_FRAMES if f < sample.num_frames])
            dist = surface_distance(mesh, gt_v, gt_f) if gt_v is not None else {
                k: float("nan") for k in ("to_gt_mean_mm", "to_gt_p95_mm", "from_gt_mean_mm", "from_gt_p95_mm")}
            rows.append({"fit": name, "key": sample.key, "resolution": sample.frame(0, 0).shape[0], "gaussians": gaussians, **info, "write_s": write_s,
                         "MB": size / 1e6, "iou_mean": iou["mean"], "iou_min": iou["min"],
                         "iou_frames": np.mean(iou["iou"], axis=0).tolist(), **dist,
                         "centres_mean_mm": centres[0], "centres_median_mm": centres[1],
                         "measure_s": time.perf_counter() - t0, "gt_pose_s": gt_s})
            print({k: v for k, v in rows[-1].items() if k != "per_frame"}, file=sys.stderr)
    print(f"machine: {platform.node()} ({platform.processor() or platform.machine()}), device {device}")
    for key, check in checked.items():
        print(f"{key}: the posed ground-truth surface's own silhouette IoU {check['mean']:.4f} (min {check['min']:.4f})")
    print(f"voxel {args.voxel_size * 1000:g} mm; IoU at the ground truth's resolution over every view and frame "
          "below 256 px, over the protocol's 9 views x 9 frames above")
    print("| model | sample (px) | Gaussians | method | motion | vertices | export s (surface + motion + glb) | glb MB "
          "| IoU mean / min | IoU per frame (first, middle, last) | mesh->GT mm mean / p95 | GT->mesh mm mean / p95 "
          "| fit's centres->GT mm mean / median |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        per = r["iou_frames"]
        print(f"| {r['fit']} | {r['key']} ({r['resolution']}) | {r['gaussians']:,} | {r['method']} | {r['motion']} | "
              f"{r['vertices']:,} | {r['total_s'] - r['deformation_s']:.1f} + {r['deformation_s']:.1f} + {r['write_s']:.1f} | "
              f"{r['MB']:.1f} | {r['iou_mean']:.3f} / {r['iou_min']:.3f} | "
              f"{per[0]:.3f}, {per[len(per) // 2]:.3f}, {per[-1]:.3f} | "
              f"{r['to_gt_mean_mm']:.1f} / {r['to_gt_p95_mm']:.1f} | {r['from_gt_mean_mm']:.1f} / {r['from_gt_p95_mm']:.1f} | "
              f"{r['centres_mean_mm']:.1f} / {r['centres_median_mm']:.1f} |")


if __name__ == "__main__":
    main()
