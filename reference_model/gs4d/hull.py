"""Initial Gaussians from the data: visual-hull carving from the alpha of the training views of one frame.

A voxel survives when its centre projects onto the character (alpha above a threshold) in every training
view; Gaussians are seeded on the hull's surface voxels, coloured by the views that face them. Carving runs
twice: a coarse pass over a generous box around the rig target finds the character, a fine pass over its
bounding box (padded) gives the seeds.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from reference_model.gs4d.data import ViewSet
from reference_model.gs4d.gaussians import rgb_to_sh0


def _project(points: torch.Tensor, viewmats: torch.Tensor, Ks: torch.Tensor):
    cam = torch.einsum("vij,nj->vni", viewmats[:, :3, :3], points) + viewmats[:, None, :3, 3]
    z = cam[..., 2]
    uv = torch.einsum("vij,vnj->vni", Ks, cam)[..., :2] / z.clamp_min(1e-6)[..., None]
    return uv, z


def _sample(images: torch.Tensor, uv: torch.Tensor) -> torch.Tensor:
    """Bilinear samples ``[V, N, C]`` of images ``[V, H, W, C]`` at pixel coords ``uv [V, N, 2]`` (0 outside)."""
    h, w = images.shape[1:3]
    grid = torch.stack([uv[..., 0] / w * 2 - 1, uv[..., 1] / h * 2 - 1], dim=-1)[:, None]  # [V, 1, N, 2]
    out = F.grid_sample(images.permute(0, 3, 1, 2), grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    return out[:, :, 0].permute(0, 2, 1)


def carve(views: ViewSet, frame: int, lo, hi, resolution: int, threshold: float, device) -> tuple[torch.Tensor, torch.Tensor, float]:
    """Occupancy ``[X, Y, Z]`` bool of the box ``[lo, hi]``, its voxel centres ``[X, Y, Z, 3]`` and voxel size.

    Raises:
        ValueError: if the box is empty or degenerate.
    """
    lo, hi = torch.as_tensor(lo, dtype=torch.float32, device=device), torch.as_tensor(hi, dtype=torch.float32, device=device)
    extent = hi - lo
    if not bool((extent > 0).all()):
        raise ValueError(f"carve: empty box lo={lo.tolist()} hi={hi.tolist()}")
    voxel = float(extent.max()) / resolution
    dims = [max(int(math.ceil(float(e) / voxel)), 1) for e in extent]
    axes = [lo[i] + (torch.arange(dims[i], device=device, dtype=torch.float32) + 0.5) * voxel for i in range(3)]
    centres = torch.stack(torch.meshgrid(*axes, indexing="ij"), dim=-1)
    _, alpha = views.targets(frame, (1.0, 1.0, 1.0), device)
    viewmats = torch.from_numpy(views.viewmats).to(device)
    Ks = torch.from_numpy(views.Ks).to(device)
    occ = torch.ones(centres.shape[:3], dtype=torch.bool, device=device)
    flat = centres.reshape(-1, 3)
    for start in range(0, flat.shape[0], 1 << 20):
        pts = flat[start:start + (1 << 20)]
        uv, z = _project(pts, viewmats, Ks)
        a = _sample(alpha, uv)[..., 0]
        inside = ((a > threshold) & (z > 0)).all(dim=0)
        occ.view(-1)[start:start + pts.shape[0]] = inside
    return occ, centres, voxel


def hull_gaussians(
    views: ViewSet,
    frame: int,
    num_points: int,
    resolution: int = 96,
    threshold: float = 0.5,
    init_opacity: float = 0.1,
    sh_degree: int = 3,
    target: tuple[float, float, float] = (0.0, 0.0, 0.7),
    half_extent: float = 1.6,
    generator: torch.Generator | None = None,
    device: str | torch.device = "cpu",
) -> tuple[dict[str, torch.Tensor], torch.Tensor, torch.Tensor]:
    """Raw canonical parameters seeded on the visual hull of ``frame``.

    Args:
        views: the training views (must hold ``frame``).
        frame: the frame carved.
        num_points: Gaussians to seed (fewer if the hull has fewer surface voxels times 8).
        resolution: voxels along the longest side of the fine box.
        threshold: alpha threshold.
        init_opacity: initial opacity.
        sh_degree: SH degree of the parameters.
        target, half_extent: centre and half side of the coarse search box (the rig target; metres).
        generator: random generator (sampling and jitter).
        device: where to carve.

    Returns:
        ``(params, lo, hi)``: the parameters of :class:`~reference_model.gs4d.model.Gaussians4D` and the
        hull's bounding box ``[3]``, ``[3]``.

    Raises:
        ValueError: if no voxel survives (no view sees the character, or the alpha is empty).
    """
    centre = torch.tensor(target, dtype=torch.float32)
    occ, centres, voxel = carve(views, frame, centre - half_extent, centre + half_extent, 48, threshold, device)
    if not bool(occ.any()):
        raise ValueError(f"sample {views.key!r} frame {frame}: the visual hull of the training views is empty")
    pts = centres[occ]
    lo, hi = pts.min(0).values - 2 * voxel, pts.max(0).values + 2 * voxel
    occ, centres, voxel = carve(views, frame, lo, hi, resolution, threshold, device)
    if not bool(occ.any()):
        raise ValueError(f"sample {views.key!r} frame {frame}: the visual hull of the training views is empty")
    occf = occ.float()[None, None]
    eroded = -F.max_pool3d(-occf, 3, stride=1, padding=1)[0, 0] > 0.5
    surface = occ & ~eroded
    blurred = F.avg_pool3d(occf, 5, stride=1, padding=2)[0, 0]
    grads = torch.stack(torch.gradient(blurred), dim=-1)
    cells = centres[surface]
    normals = -F.normalize(grads[surface], dim=-1)
    repeat = max(1, math.ceil(num_points / cells.shape[0]))
    idx = torch.arange(cells.shape[0], device=device).repeat(repeat)
    perm = torch.randperm(idx.shape[0], generator=generator, device="cpu").to(device)[:num_points]
    idx = idx[perm]
    jitter = (torch.rand(idx.shape[0], 3, generator=generator, device="cpu").to(device) - 0.5) * voxel
    means = cells[idx] + jitter
    normals = normals[idx]
    # Colour: views weighted by how squarely they face the surface (occlusion is left to the optimiser).
    rgb_imgs, alpha = views.targets(frame, (1.0, 1.0, 1.0), device)
    viewmats = torch.from_numpy(views.viewmats).to(device)
    Ks = torch.from_numpy(views.Ks).to(device)
    uv, _ = _project(means, viewmats, Ks)
    colours = _sample(torch.cat([rgb_imgs * alpha, alpha], -1), uv)  # premultiplied + alpha
    campos = -torch.einsum("vji,vj->vi", viewmats[:, :3, :3], viewmats[:, :3, 3])
    to_cam = F.normalize(campos[:, None] - means[None], dim=-1)
    weight = (to_cam * normals[None]).sum(-1).clamp_min(0.0) ** 2 * colours[..., 3] + 1e-6
    rgb = (colours[..., :3] * weight[..., None]).sum(0) / (colours[..., 3:4] * weight[..., None]).sum(0).clamp_min(1e-6)
    rgb = rgb.clamp(0.0, 1.0)
    n = means.shape[0]
    k = (sh_degree + 1) ** 2
    params = {
        "means": means,
        "log_scales": torch.full((n, 3), math.log(0.5 * voxel), device=device),
        "quats": torch.tensor([1.0, 0.0, 0.0, 0.0], device=device).repeat(n, 1),
        "opacity_logits": torch.full((n,), math.log(init_opacity / (1 - init_opacity)), device=device),
        "sh0": rgb_to_sh0(rgb)[:, None, :],
        "shN": torch.zeros(n, k - 1, 3, device=device),
    }
    return params, lo.to(device), hi.to(device)
