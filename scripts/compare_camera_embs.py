"""Compare our Plücker ray maps of the 21-view rig with the released ``camera_embs/{0..20}.pt``.

The released CharacterShot checkpoint ships its camera conditioning as precomputed 6 x 480 x 720 tensors
and no code that makes them (DESIGN.md 8.2.1). ``reference_model.camera.plucker_rays`` computes ours from
the cameras character4d writes (480 x 480 renders centred on the 720 x 480 canvas). This script loads the
released files (which cannot be downloaded here: pass the folder of a checkpoint you have) and reports,
per view, the largest difference, and which of a few plausible conventions the files follow when they do
not match ours (channel order, OpenGL camera axes, unnormalised directions, moment sign).

Usage: ``python scripts/compare_camera_embs.py --camera-embs CHECKPOINT/camera_embs [--atol 1e-3]``.
Exit status 0 when every view matches within ``--atol``, 1 otherwise, 2 when files are missing.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def variants(rays: torch.Tensor, raw_dirs_rays: torch.Tensor) -> dict[str, torch.Tensor]:
    """Our maps under alternative conventions, ``[V, 6, H, W]`` each, by name."""
    m, d = rays[:, :3], rays[:, 3:]
    return {
        "ours: (o x d, d), row 0 at the top, unit d": rays,
        "(d, o x d)": torch.cat([d, m], 1),
        "(d x o, d)": torch.cat([-m, d], 1),
        "rows flipped (row 0 at the bottom, OpenGL-style)": rays.flip(-2),
        "columns flipped": rays.flip(-1),
        "unnormalised d": raw_dirs_rays,
    }


def _unnormalised(Ks, viewmats, height, width) -> torch.Tensor:
    """Rays with direction K^-1 [u, v, 1] rotated to the world but not normalised."""
    Ks = torch.as_tensor(np.array(Ks, dtype=np.float64))
    viewmats = torch.as_tensor(np.array(viewmats, dtype=np.float64))
    vs, us = torch.meshgrid(torch.arange(height, dtype=torch.float64) + 0.5,
                            torch.arange(width, dtype=torch.float64) + 0.5, indexing="ij")  # fmt: skip
    pix = torch.stack([us, vs, torch.ones_like(us)], -1).reshape(-1, 3)
    rot, trans = viewmats[:, :3, :3], viewmats[:, :3, 3]
    dirs = torch.einsum("vji,vnj->vni", rot, torch.einsum("vij,nj->vni", torch.linalg.inv(Ks), pix))
    origins = -torch.einsum("vji,vj->vi", rot, trans)
    rays = torch.cat([torch.cross(origins[:, None].expand_as(dirs), dirs, dim=-1), dirs], -1)
    return rays.reshape(-1, height, width, 6).permute(0, 3, 1, 2).float()


def main(argv=None) -> int:
    from character4d.cameras import RigConfig, rig_cameras
    from reference_model.camera import canvas_intrinsics, plucker_rays

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--camera-embs", required=True, help="folder with the released 0.pt ... 20.pt")
    parser.add_argument("--views", type=int, default=21)
    parser.add_argument("--height", type=int, default=480)
    parser.add_argument("--width", type=int, default=720)
    parser.add_argument("--atol", type=float, default=1e-3)
    args = parser.parse_args(argv)

    folder = Path(args.camera_embs)
    files = [folder / f"{v}.pt" for v in range(args.views)]
    missing = [str(f) for f in files if not f.is_file()]
    if missing:
        print(f"compare_camera_embs: missing {missing[:3]}{' ...' if len(missing) > 3 else ''}; pass the camera_embs/ "
              "folder of the released CharacterShot checkpoint (Hugging Face Gaojunyao/CharacterShot)", file=sys.stderr)  # fmt: skip
        return 2
    released = torch.stack([torch.load(f, map_location="cpu", weights_only=True).float() for f in files])
    expected_shape = (args.views, 6, args.height, args.width)
    if tuple(released.shape) != expected_shape:
        print(f"compare_camera_embs: expected maps of shape {expected_shape[1:]}, got {tuple(released.shape[1:])}", file=sys.stderr)
        return 1

    cams = rig_cameras(RigConfig(num_views=args.views, resolution=args.height))
    Ks = canvas_intrinsics(cams.Ks, cams.width, args.height, args.width)
    ours = plucker_rays(Ks, cams.viewmats, args.height, args.width)
    candidates = variants(ours, _unnormalised(Ks, cams.viewmats, args.height, args.width))

    print(f"{'view':>4} {'max |ours - released|':>22} {'mean':>10}")
    worst = 0.0
    for v in range(args.views):
        diff = (ours[v] - released[v]).abs()
        worst = max(worst, float(diff.max()))
        print(f"{v:>4} {float(diff.max()):>22.3e} {float(diff.mean()):>10.3e}")
    if worst <= args.atol:
        print(f"all {args.views} views match within {args.atol}")
        return 0
    print(f"\nno match within {args.atol}; mean absolute difference of other conventions:")
    scores = {name: float((c - released).abs().mean()) for name, c in candidates.items()}
    for name, score in sorted(scores.items(), key=lambda kv: kv[1]):
        print(f"  {score:.3e}  {name}")
    print(f"closest: {min(scores, key=scores.get)}")
    return 1


if __name__ == "__main__":
    sys.exit(main())
