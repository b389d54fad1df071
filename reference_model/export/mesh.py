"""``charactershot export-mesh FIT --out DIR``: an animated mesh from a fitted 4D Gaussian model.

1. Shape: the canonical Gaussians are rendered (colour, alpha, depth) from rings of cameras around the
   character and fused into a truncated signed distance volume (TSDF fusion, Curless & Levoy 1996;
   pixels the character does not cover carve free space); marching cubes (scikit-image) extracts the
   surface; vertex colours come from the fused colour volume; pieces smaller than
   ``min_component`` of the faces (floaters) are dropped.
2. Motion: each vertex is carried by its nearest canonical Gaussians (``motion="gaussians"``): held in
   each one's local frame, ``l = S^-1 R^T (v - mu)``, and put back with that Gaussian's pose at time t,
   ``mu(t) + R(t) S(t) l``, blended with the weights ``o exp(-|l|^2 / 2)``; so the mesh moves with the
   centres, rotations and scales the model deforms (a fitted model moves limbs partly by stretching
   and turning Gaussians, which centre offsets alone miss). ``motion="field"``: the deformation field's
   centre offset at the vertex, ``v(t) = v + d_means(v, t)``.
3. File: glTF 2.0 binary (``.glb``) with the first frame as the base mesh, one morph target per frame
   and an animation of the morph weights (one-hot per frame, linear in between), which Blender's
   importer turns into shape keys and three.js plays with its AnimationMixer.

``--gt DATA`` also measures it against the ground truth the model was fitted to: silhouette IoU per
view and frame (mesh silhouette vs the sample's alpha >= 0.5), and with ``--gt-mesh`` the distance to the
posed ground-truth surface (Blender poses the character as character4d rendered it).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np


@dataclass(frozen=True)
class MeshConfig:
    """Settings of `extract_mesh`.

    Attributes:
        voxel_size: TSDF voxel edge in metres (1 cm: about 2 px of a 512 px Character4D view).
        truncation: TSDF truncation in voxels (4: the usual 3-5 voxels).
        image_size: side of the fusion renders in pixels (a voxel stays ~1 px at the rig distance).
        rings: ``(elevation_deg, views)`` camera rings on the rig's orbit (fov and look-at of DESIGN.md
            section 4); above, level and below so the top of the head and the soles are seen.
        radius: orbit radius of the fusion cameras (3.5 m: the rig's).
        alpha_threshold: accumulated opacity above which a pixel is the character.
        min_component: drop connected pieces with fewer than this fraction of the faces.
        backend: Gaussian rasteriser for ``tsdf`` (``auto``: gsplat on CUDA, else the torch rasteriser).
        batch: views rendered together.
        method: ``tsdf`` (fusion of rendered depth), ``opacity`` (the 0.5 level set of the Gaussians'
            3D opacity field, 1 - prod(1 - o_i G_i(x)), as Gaussian Opacity Fields (Yu et al. 2024)
            define it, evaluated on the voxels directly: no rendering, so it is fast on CPU where the
            torch rasteriser is O(pixels x Gaussians)), or ``auto`` (``tsdf`` with gsplat on CUDA, else
            ``opacity``).
        cutoff: ``opacity`` evaluates each Gaussian within this many standard deviations (3, as the
            rasteriser's footprint), at most ``max_radius`` voxels from its centre.
        max_radius: see ``cutoff`` (12 voxels: large, faint Gaussians are cut, which they barely change).
        snap: for ``opacity``, move each vertex along its normal onto the surface of the nearby Gaussian
            centres (the mean normal offset of its ``snap_neighbours`` nearest centres, inwards only, at most
            ``cutoff`` of their size): the 0.5 level set of overlapping Gaussians lies about two standard
            deviations outside the centres, which sit on the surface of a fitted model.
        snap_neighbours: see ``snap`` (8).
        motion: how vertices move over time: ``gaussians`` (carried by their nearest Gaussians' full pose,
            see the module docstring) or ``field`` (the deformation field's centre offset at the vertex).
        motion_neighbours: Gaussians blended per vertex for ``gaussians`` (8, as ``snap_neighbours``).
        motion_opacity: only Gaussians at least this opaque carry vertices (0.1, as the surface's centres).
    """

    voxel_size: float = 0.01
    truncation: float = 4.0
    image_size: int = 384
    rings: tuple[tuple[float, int], ...] = ((0.0, 16), (35.0, 10), (-30.0, 8), (75.0, 4))
    radius: float = 3.5
    alpha_threshold: float = 0.5
    min_component: float = 0.02
    backend: str = "auto"
    batch: int = 4
    method: str = "auto"
    cutoff: float = 3.0
    max_radius: int = 12
    snap: bool = True
    snap_neighbours: int = 8
    motion: str = "gaussians"
    motion_neighbours: int = 8
    motion_opacity: float = 0.1

    def __post_init__(self) -> None:
        if not self.voxel_size > 0 or not self.truncation > 0:
            raise ValueError(f"voxel_size and truncation must be > 0, got {self.voxel_size}, {self.truncation}")
        if self.image_size < 8 or not self.rings:
            raise ValueError(f"image_size must be >= 8 and rings non-empty, got {self.image_size}, {self.rings}")
        if self.method not in ("auto", "tsdf", "opacity"):
            raise ValueError(f"method must be 'auto', 'tsdf' or 'opacity', got {self.method!r}")
        if self.motion not in ("gaussians", "field"):
            raise ValueError(f"motion must be 'gaussians' or 'field', got {self.motion!r}")
        if self.motion_neighbours < 1:
            raise ValueError(f"motion_neighbours must be >= 1, got {self.motion_neighbours}")


@dataclass(frozen=True)
class AnimatedMesh:
    """A triangle mesh whose vertices move over time.

    Attributes:
        vertices: [F, N, 3] float32 positions per frame (world, metres).
        faces: [M, 3] int64.
        colors: [N, 3] float32 in [0, 1].
        fps: frames per second.
    """

    vertices: np.ndarray
    faces: np.ndarray
    colors: np.ndarray
    fps: float


def fusion_cameras(cfg: MeshConfig):
    """The fusion rig: ``(viewmats [V, 4, 4] OpenCV, Ks [V, 3, 3])`` of every ring (Character4D rig geometry)."""
    from character4d.cameras import RigConfig, rig_cameras

    views, ks = [], []
    for elevation, count in cfg.rings:
        cams = rig_cameras(RigConfig(num_views=int(count), elevation_deg=float(elevation), resolution=cfg.image_size,
                                     radius=cfg.radius))
        views.append(cams.viewmats)
        ks.append(cams.Ks)
    return np.concatenate(views).astype(np.float32), np.concatenate(ks).astype(np.float32)


def tsdf_fuse(colors: np.ndarray, alphas: np.ndarray, depths: np.ndarray, viewmats: np.ndarray, Ks: np.ndarray,
              lo: np.ndarray, shape: tuple[int, int, int], voxel: float, truncation: float,
              alpha_threshold: float = 0.5) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Fuse depth maps into a TSDF volume (plain averaging, one weight per observation).

    Args:
        colors: [V, H, W, 3] in [0, 1] (straight, not premultiplied).
        alphas: [V, H, W] accumulated opacity.
        depths: [V, H, W] camera-space depth in metres.
        viewmats: [V, 4, 4] world-to-camera (OpenCV); Ks: [V, 3, 3].
        lo: [3] world position of voxel (0, 0, 0)'s centre; shape: voxels per axis; voxel: edge (m).
        truncation: in metres.
        alpha_threshold: pixels at or above it hold a surface; below it are free space.

    Returns:
        (tsdf [X, Y, Z] in [-1, 1] (1 = free, -1 = inside or never seen), weight [X, Y, Z], colour [X, Y, Z, 3]).
    """
    import torch

    grid = np.stack(np.meshgrid(*[np.arange(n) for n in shape], indexing="ij"), axis=-1).reshape(-1, 3)
    pts = torch.as_tensor(lo + grid * voxel, dtype=torch.float32)
    n = len(pts)
    tsdf = torch.zeros(n)
    weight = torch.zeros(n)
    color = torch.zeros(n, 3)
    cweight = torch.zeros(n)
    seen = torch.zeros(n, dtype=torch.bool)
    _, h, w = alphas.shape
    for v in range(len(viewmats)):
        vm = torch.as_tensor(viewmats[v])
        cam = pts @ vm[:3, :3].T + vm[:3, 3]
        z = cam[:, 2]
        uv = cam[:, :2] / z.clamp(min=1e-6)[:, None] * torch.as_tensor(Ks[v][[0, 1], [0, 1]]) + torch.as_tensor(Ks[v][:2, 2])
        px = torch.floor(uv).long()  # pixel whose area holds the projection (centres at +0.5)
        inside = (z > 1e-3) & (px[:, 0] >= 0) & (px[:, 0] < w) & (px[:, 1] >= 0) & (px[:, 1] < h)
        idx = torch.nonzero(inside).squeeze(1)
        seen[idx] = True
        pu, pv = px[idx, 0], px[idx, 1]
        a = torch.as_tensor(alphas[v])[pv, pu]
        d = torch.as_tensor(depths[v])[pv, pu]
        hit = a >= alpha_threshold
        sdf = torch.where(hit, d - z[idx], torch.full_like(d, truncation))
        # Voxels far behind the visible surface are unobserved from this view; leave them alone.
        keep = sdf > -truncation
        idx, sdf, hit, pu, pv = idx[keep], sdf[keep].clamp(max=truncation) / truncation, hit[keep], pu[keep], pv[keep]
        tsdf[idx] = (tsdf[idx] * weight[idx] + sdf) / (weight[idx] + 1)
        near = hit & (sdf.abs() < 1)
        ci = idx[near]
        c = torch.as_tensor(colors[v])[pv[near], pu[near]]
        # colours average only the views that see the voxel near their surface
        color[ci] = (color[ci] * cweight[ci, None] + c) / (cweight[ci, None] + 1)
        cweight[ci] += 1
        weight[idx] += 1
    # In view but never observed: every view saw it behind the surface (background pixels carve all the
    # free space the views see), so it is inside the character. Outside every view: free.
    tsdf = torch.where(weight > 0, tsdf, torch.where(seen, -1.0, 1.0))
    return (tsdf.reshape(shape).numpy(), weight.reshape(shape).numpy(), color.reshape(*shape, 3).numpy())


def opacity_field(means: np.ndarray, quats: np.ndarray, scales: np.ndarray, opacities: np.ndarray,
                  rgb: np.ndarray, lo: np.ndarray, shape: tuple[int, int, int], voxel: float, cutoff: float = 3.0,
                  max_radius: int = 12, chunk: int = 1 << 22) -> tuple[np.ndarray, np.ndarray]:
    """The 3D opacity field ``1 - prod_i (1 - o_i G_i(x))`` of Gaussians and their blended colour, on voxels.

    Args:
        means: [N, 3]; quats: [N, 4] (w, x, y, z); scales: [N, 3] standard deviations; opacities: [N];
        rgb: [N, 3] colours.
        lo: [3] centre of voxel (0, 0, 0); shape: voxels per axis; voxel: edge (m).
        cutoff: standard deviations evaluated around each Gaussian; max_radius: in voxels.
        chunk: (Gaussian, voxel) pairs per batch.

    Returns:
        (opacity [X, Y, Z] in [0, 1], colour [X, Y, Z, 3]: the opacity-weighted mean of the colours).
    """
    import torch

    m = torch.as_tensor(means, dtype=torch.float32)
    q = torch.nn.functional.normalize(torch.as_tensor(quats, dtype=torch.float32), dim=-1)
    w, x, y, z = q.unbind(-1)
    rot = torch.stack([1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y),
                       2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x),
                       2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y)], -1).reshape(-1, 3, 3)
    s = torch.as_tensor(scales, dtype=torch.float32).clamp(min=1e-6)
    inv_cov = rot @ torch.diag_embed(1 / s**2) @ rot.transpose(1, 2)
    std = torch.sqrt(((rot * s[:, None, :]) ** 2).sum(-1))  # per-axis standard deviation
    radius = torch.ceil(cutoff * std.max(-1).values / voxel).clamp(1, max_radius).long()
    o = torch.as_tensor(opacities, dtype=torch.float32).clamp(0, 0.999)
    c = torch.as_tensor(rgb, dtype=torch.float32)
    dims = torch.tensor(shape)
    n_vox = int(np.prod(shape))
    log_t = torch.zeros(n_vox)
    csum = torch.zeros(n_vox, 3)
    wsum = torch.zeros(n_vox)
    centre = torch.round((m - torch.as_tensor(lo, dtype=torch.float32)) / voxel).long()
    lo_t = torch.as_tensor(lo, dtype=torch.float32)
    k = 1
    while k <= max_radius:
        # Gaussians whose radius is in (k/2, k] share one block of (2k+1)^3 voxel offsets.
        sel = torch.nonzero((radius <= k) & (radius > k // 2)).squeeze(1) if k > 1 else torch.nonzero(radius <= 1).squeeze(1)
        r = torch.arange(-k, k + 1)
        offsets = torch.stack(torch.meshgrid(r, r, r, indexing="ij"), -1).reshape(-1, 3)
        per = max(1, chunk // len(offsets))
        for start in range(0, len(sel), per):
            idx = sel[start:start + per]
            vox = centre[idx, None, :] + offsets[None]  # [G, K, 3]
            inside = ((vox >= 0) & (vox < dims)).all(-1)
            d = lo_t + vox.float() * voxel - m[idx, None, :]
            mahal = torch.einsum("gki,gij,gkj->gk", d, inv_cov[idx], d)
            g = o[idx, None] * torch.exp(-0.5 * mahal) * (inside & (mahal <= cutoff**2))
            flat = (vox[..., 0] * shape[1] + vox[..., 1]) * shape[2] + vox[..., 2]
            keep = g > 1e-4
            flat, g = flat[keep], g[keep]
            log_t.index_add_(0, flat, torch.log1p(-g))
            wsum.index_add_(0, flat, g)
            gi = torch.nonzero(keep)[:, 0]
            csum.index_add_(0, flat, g[:, None] * c[idx][gi])
        if k >= max_radius:
            break
        k = min(2 * k, max_radius)
    opacity = 1 - torch.exp(log_t)
    color = csum / wsum.clamp(min=1e-8)[:, None]
    return opacity.reshape(shape).numpy(), color.reshape(*shape, 3).numpy()


def _snap_to_centres(verts: np.ndarray, faces: np.ndarray, centres: np.ndarray, limit: float, k: int) -> np.ndarray:
    """Move vertices inwards along their normals by the mean normal offset of their k nearest centres."""
    from scipy.spatial import cKDTree

    normals = vertex_normals(verts, faces).astype(np.float64)
    _, idx = cKDTree(centres).query(verts, k=min(k, len(centres)))
    idx = idx.reshape(len(verts), -1)
    offset = np.einsum("vkc,vc->v", centres[idx] - verts[:, None, :], normals) / idx.shape[1]
    return verts + normals * np.clip(offset, -limit, 0.0)[:, None]


def _rotations(quats: np.ndarray) -> np.ndarray:
    """[N, 3, 3] float64 rotation matrices of quaternions [N, 4] (w, x, y, z), through the model's own
    :func:`reference_model.gs4d.gaussians.quat_to_rotmat`."""
    import torch

    from reference_model.gs4d.gaussians import quat_to_rotmat

    return quat_to_rotmat(torch.from_numpy(np.asarray(quats, dtype=np.float64))).numpy()


def carry_vertices(verts: np.ndarray, canonical: tuple, posed: list[tuple], neighbours: int = 8,
                   min_opacity: float = 0.1) -> np.ndarray:
    """Vertices carried by their nearest Gaussians' poses over time (see the module docstring).

    Args:
        verts: [V, 3] canonical vertices.
        canonical: ``(means [N, 3], quats [N, 4] (w, x, y, z), scales [N, 3] standard deviations,
            opacities [N])`` of the canonical Gaussians.
        posed: per frame ``(means [N, 3], quats [N, 4], scales [N, 3])`` of the same Gaussians.
        neighbours: Gaussians blended per vertex (the nearest centres).
        min_opacity: Gaussians below it carry nothing (all of them when none reaches it).

    Returns:
        [F, V, 3] float32 positions.
    """
    from scipy.spatial import cKDTree

    means, quats, scales, opac = canonical
    use = np.nonzero(opac >= min_opacity)[0] if (opac >= min_opacity).any() else np.arange(len(means))
    k = min(neighbours, len(use))
    _, near = cKDTree(means[use]).query(verts, k=k)
    idx = use[np.asarray(near).reshape(len(verts), k)]  # [V, k]
    rot0 = _rotations(quats)[idx]  # [V, k, 3, 3]
    s0 = np.maximum(np.asarray(scales, dtype=np.float64)[idx], 1e-9)
    local = np.einsum("vkji,vkj->vki", rot0, verts[:, None, :] - means[idx]) / s0  # S^-1 R^T (v - mu)
    # Softmax of log o - |l|^2 / 2: the Gaussians' own weights at the vertex, stable far from all of them.
    logit = np.log(np.maximum(opac[idx], 1e-9)) - 0.5 * (local**2).sum(-1)
    w = np.exp(logit - logit.max(axis=1, keepdims=True))
    w /= w.sum(axis=1, keepdims=True)
    out = np.empty((len(posed), len(verts), 3), dtype=np.float32)
    for f, (m_t, q_t, s_t) in enumerate(posed):
        rot = _rotations(q_t[idx.reshape(-1)]).reshape(len(verts), k, 3, 3)
        moved = m_t[idx] + np.einsum("vkij,vkj->vki", rot, local * s_t[idx])
        out[f] = (w[..., None] * moved).sum(axis=1)
    return out


def _largest_components(faces: np.ndarray, num_vertices: int, min_fraction: float) -> np.ndarray:
    """Faces of the connected pieces holding at least ``min_fraction`` of all faces."""
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    if len(faces) == 0:
        return faces
    rows = np.concatenate([faces[:, 0], faces[:, 1], faces[:, 2]])
    cols = np.concatenate([faces[:, 1], faces[:, 2], faces[:, 0]])
    graph = coo_matrix((np.ones(len(rows)), (rows, cols)), shape=(num_vertices, num_vertices))
    _, labels = connected_components(graph, directed=False)
    face_label = labels[faces[:, 0]]
    counts = np.bincount(face_label)
    good = np.nonzero(counts >= min_fraction * len(faces))[0]
    return faces[np.isin(face_label, good)]


def _compact(vertices: np.ndarray, faces: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    used = np.unique(faces)
    remap = np.full(len(vertices), -1)
    remap[used] = np.arange(len(used))
    return vertices[used], remap[faces], used


def extract_mesh(model, cfg: MeshConfig = MeshConfig(), frames: int | None = None, fps: float = 15.0,
                 progress=None) -> tuple[AnimatedMesh, dict]:
    """The animated mesh of a fitted model (see the module docstring).

    Args:
        model: a ``reference_model.gs4d.Gaussians4D`` (``canonical()``, ``deformation``, ``num_frames``).
        cfg: settings.
        frames: frames to export (None: the model's ``num_frames``), at ``t = f / (frames - 1)``.
        fps: playback rate stored with the mesh.
        progress: optional callable(str) for stage messages.

    Returns:
        (the mesh, timings and sizes).

    Raises:
        ValueError: when no surface is found (nothing rendered above ``alpha_threshold``).
    """
    import torch
    from skimage.measure import marching_cubes

    from reference_model.gs4d.rasterize import rasterize

    from reference_model.gs4d.rasterize import gsplat_available

    say = progress or (lambda s: None)
    timings = {}
    t0 = time.perf_counter()
    frames = int(model.num_frames if frames is None else frames)
    with torch.no_grad():
        canon = model.canonical().detach()
    device = canon.means.device
    method = cfg.method
    if method == "auto":
        method = "tsdf" if canon.means.is_cuda and gsplat_available() else "opacity"
    means = canon.means.cpu().numpy()
    opac = canon.opacities.cpu().numpy()
    core = means[opac > 0.1] if (opac > 0.1).any() else means
    lo = np.percentile(core, 0.5, axis=0) - 0.1
    hi = np.percentile(core, 99.5, axis=0) + 0.1
    shape = tuple(int(np.ceil(x)) + 1 for x in (hi - lo) / cfg.voxel_size)
    if method == "tsdf":
        viewmats, Ks = fusion_cameras(cfg)
        size = cfg.image_size
        with torch.no_grad():
            outs = [rasterize(canon, torch.as_tensor(viewmats[i:i + cfg.batch], device=device),
                              torch.as_tensor(Ks[i:i + cfg.batch], device=device), size, size, None,
                              backend=cfg.backend) for i in range(0, len(viewmats), cfg.batch)]
        alphas = torch.cat([o.alphas for o in outs])[..., 0].cpu().numpy()
        depths = torch.cat([o.depths for o in outs])[..., 0].cpu().numpy()
        colors = torch.cat([o.colors for o in outs]).cpu().numpy() / np.maximum(alphas[..., None], 1e-6)
        timings["render_s"] = time.perf_counter() - t0
        say(f"rendered {len(viewmats)} fusion views at {size} px")
        t1 = time.perf_counter()
        trunc = cfg.truncation * cfg.voxel_size
        field, _, vol_color = tsdf_fuse(np.clip(colors, 0, 1), alphas, depths, viewmats, Ks, lo, shape,
                                        cfg.voxel_size, trunc, cfg.alpha_threshold)
        timings["fusion_s"] = time.perf_counter() - t1
    else:
        from reference_model.gs4d.gaussians import SH_C0

        t1 = time.perf_counter()
        rgb = np.clip(0.5 + SH_C0 * canon.sh[:, 0].cpu().numpy(), 0, 1)
        occ, vol_color = opacity_field(means, canon.quats.cpu().numpy(), canon.scales.cpu().numpy(), opac, rgb,
                                       lo, shape, cfg.voxel_size, cfg.cutoff, cfg.max_radius)
        # Fitted Gaussians sit on the surface and leave the inside empty, so the opacity field is a shell
        # with an inner wall; enclosed space is inside the character.
        from scipy.ndimage import binary_fill_holes

        solid = binary_fill_holes(occ >= 0.5)
        occ = np.where(solid & (occ < 0.5), 1.0, occ)
        field = 0.5 - occ  # negative inside, like the TSDF
        timings["fusion_s"] = time.perf_counter() - t1
        say(f"opacity field on {shape} voxels")
    if field.min() >= 0:
        raise ValueError("no surface: the model is nowhere opaque enough "
                         f"(alpha threshold {cfg.alpha_threshold}; an empty or fully transparent model?)")
    t2 = time.perf_counter()
    # A free border closes the surface where it meets the volume's faces.
    field = np.pad(field, 1, constant_values=1.0)
    verts, faces, _, _ = marching_cubes(field, level=0.0, spacing=(cfg.voxel_size,) * 3)
    verts = verts + lo - cfg.voxel_size
    faces = _largest_components(faces.astype(np.int64), len(verts), cfg.min_component)
    verts, faces, _ = _compact(verts, faces)
    # With the field negative inside, scikit-image's winding is already counter-clockwise seen from
    # outside (glTF's front faces); the tests check the signed volume.
    if method == "opacity" and cfg.snap and len(verts):
        verts = _snap_to_centres(verts, faces, means[opac > 0.1] if (opac > 0.1).any() else means,
                                 cfg.cutoff * float(np.median(canon.scales.cpu().numpy().max(axis=1))),
                                 cfg.snap_neighbours)
    gi = np.clip(np.round((verts - lo) / cfg.voxel_size).astype(int), 0, np.array(shape) - 1)
    vcol = vol_color[gi[:, 0], gi[:, 1], gi[:, 2]]
    timings["marching_cubes_s"] = time.perf_counter() - t2
    say(f"surface: {len(verts)} vertices, {len(faces)} faces")

    t3 = time.perf_counter()
    times = [f / max(frames - 1, 1) for f in range(frames)]
    if not getattr(model, "deform_enabled", True):
        out = np.broadcast_to(verts.astype(np.float32), (frames,) + verts.shape).copy()
    elif cfg.motion == "gaussians":
        with torch.no_grad():
            posed = [(g.means.cpu().numpy(), g.quats.cpu().numpy(), g.scales.cpu().numpy())
                     for g in (model.gaussians_at(t) for t in times)]
        out = carry_vertices(verts, (means, canon.quats.cpu().numpy(), canon.scales.cpu().numpy(), opac), posed,
                             cfg.motion_neighbours, cfg.motion_opacity)
    else:
        pts = torch.as_tensor(verts, dtype=torch.float32, device=device)
        out = np.empty((frames, len(verts), 3), dtype=np.float32)
        with torch.no_grad():
            for f, t in enumerate(times):
                out[f] = (pts + model.deformation(pts, t)[0]).cpu().numpy()
    timings["deformation_s"] = time.perf_counter() - t3
    timings["total_s"] = time.perf_counter() - t0
    info = {"method": method, "motion": cfg.motion, "vertices": int(len(verts)), "faces": int(len(faces)), "frames": frames,
            "voxels": list(shape), **timings}
    return AnimatedMesh(out, faces, np.clip(vcol, 0, 1).astype(np.float32), fps), info


# --------------------------------------------------------------------------------------------------
# glTF


def write_gltf(mesh: AnimatedMesh, path: str | Path) -> Path:
    """Write the mesh as a binary glTF (morph target per frame, weights animated over time).

    Args:
        mesh: the animated mesh.
        path: the ``.glb`` file.

    Returns:
        The path written.
    """
    import pygltflib as g

    base = mesh.vertices[0].astype(np.float32)
    frames = len(mesh.vertices)
    blobs: list[bytes] = []
    views: list = []
    accessors: list = []

    def add(arr: np.ndarray, kind: str, ctype: int, target: int | None, minmax: bool = False) -> int:
        data = np.ascontiguousarray(arr).tobytes()
        offset = sum(len(b) for b in blobs)
        blobs.append(data + b"\0" * (-len(data) % 4))
        views.append(g.BufferView(buffer=0, byteOffset=offset, byteLength=len(data), target=target))
        acc = g.Accessor(bufferView=len(views) - 1, componentType=ctype, count=len(arr), type=kind)
        if minmax:
            flat = arr.reshape(len(arr), -1)
            acc.min, acc.max = flat.min(0).tolist(), flat.max(0).tolist()
        accessors.append(acc)
        return len(accessors) - 1

    pos = add(base, g.VEC3, g.FLOAT, g.ARRAY_BUFFER, minmax=True)
    nor = add(vertex_normals(base, mesh.faces), g.VEC3, g.FLOAT, g.ARRAY_BUFFER)
    col = add(mesh.colors.astype(np.float32), g.VEC3, g.FLOAT, g.ARRAY_BUFFER)
    idx = add(mesh.faces.astype(np.uint32).reshape(-1), g.SCALAR, g.UNSIGNED_INT, g.ELEMENT_ARRAY_BUFFER)
    targets = [{"POSITION": add((mesh.vertices[f] - base).astype(np.float32), g.VEC3, g.FLOAT, g.ARRAY_BUFFER,
                                minmax=True)} for f in range(frames)]
    times = np.arange(frames, dtype=np.float32) / np.float32(mesh.fps)
    t_acc = add(times, g.SCALAR, g.FLOAT, None, minmax=True)
    w_acc = add(np.eye(frames, dtype=np.float32).reshape(-1), g.SCALAR, g.FLOAT, None)
    prim = g.Primitive(attributes=g.Attributes(POSITION=pos, NORMAL=nor, COLOR_0=col), indices=idx,
                       targets=targets, material=0)
    gltf = g.GLTF2(
        asset=g.Asset(generator="character4d-toolkit charactershot export-mesh", version="2.0"),
        scene=0, scenes=[g.Scene(nodes=[0])], nodes=[g.Node(name="character", mesh=0)],
        meshes=[g.Mesh(name="character", primitives=[prim], weights=[1.0] + [0.0] * (frames - 1),
                       extras={"targetNames": [f"frame{f:03d}" for f in range(frames)]})],
        materials=[g.Material(name="vertex colours", doubleSided=False,
                              pbrMetallicRoughness=g.PbrMetallicRoughness(baseColorFactor=[1, 1, 1, 1],
                                                                          metallicFactor=0.0, roughnessFactor=1.0))],
        animations=[g.Animation(name="motion", samplers=[g.AnimationSampler(input=t_acc, output=w_acc,
                                                                             interpolation="LINEAR")],
                                channels=[g.AnimationChannel(sampler=0, target=g.AnimationChannelTarget(node=0,
                                                                                                     path="weights"))])],
        accessors=accessors, bufferViews=views, buffers=[g.Buffer(byteLength=sum(len(b) for b in blobs))],
    )
    # glTF is Y up (+Z towards the viewer); our world is Z up facing -Y: turn the root node.
    gltf.nodes[0].rotation = [-np.sqrt(0.5), 0.0, 0.0, np.sqrt(0.5)]  # -90 degrees about X
    gltf.set_binary_blob(b"".join(blobs))
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    gltf.save_binary(str(tmp))
    tmp.replace(path)
    return path


def vertex_normals(vertices: np.ndarray, faces: np.ndarray) -> np.ndarray:
    """[N, 3] unit area-weighted vertex normals of a counter-clockwise mesh."""
    v = vertices.astype(np.float64)
    fn = np.cross(v[faces[:, 1]] - v[faces[:, 0]], v[faces[:, 2]] - v[faces[:, 0]])
    n = np.zeros_like(v)
    for k in range(3):
        np.add.at(n, faces[:, k], fn)
    length = np.linalg.norm(n, axis=1, keepdims=True)
    return (n / np.where(length > 0, length, 1.0)).astype(np.float32)


def read_gltf(path: str | Path) -> AnimatedMesh:
    """Read a mesh written by `write_gltf` back (pygltflib): per-frame positions in the toolkit's world axes.

    Raises:
        ValueError: when the file has no morph-target animation of one mesh.
    """
    import pygltflib as g

    gltf = g.GLTF2().load(str(path))
    blob = gltf.binary_blob()
    dtypes = {g.FLOAT: np.float32, g.UNSIGNED_INT: np.uint32, g.UNSIGNED_SHORT: np.uint16}
    sizes = {g.SCALAR: 1, g.VEC3: 3, g.VEC4: 4}

    def read(i: int) -> np.ndarray:
        acc = gltf.accessors[i]
        view = gltf.bufferViews[acc.bufferView]
        start = (view.byteOffset or 0) + (acc.byteOffset or 0)
        arr = np.frombuffer(blob, dtype=dtypes[acc.componentType], count=acc.count * sizes[acc.type], offset=start)
        return arr.reshape(acc.count, sizes[acc.type]) if sizes[acc.type] > 1 else arr

    if len(gltf.meshes) != 1 or not gltf.animations:
        raise ValueError(f"{path}: expected one mesh with a morph-target animation")
    prim = gltf.meshes[0].primitives[0]
    base = read(prim.attributes.POSITION)
    sampler = gltf.animations[0].samplers[0]
    times, weights = read(sampler.input), read(sampler.output).reshape(len(read(sampler.input)), -1)
    deltas = np.stack([read(t["POSITION"] if isinstance(t, dict) else t.POSITION) for t in prim.targets])
    # The node's rotation only turns our Z-up world into glTF's Y-up one: its local axes are ours.
    world = base[None] + np.einsum("fk,knc->fnc", weights, deltas)
    fps = 1.0 / float(times[1] - times[0]) if len(times) > 1 else 15.0
    colors = read(prim.attributes.COLOR_0)[:, :3] if prim.attributes.COLOR_0 is not None else np.ones_like(base)
    return AnimatedMesh(world.astype(np.float32), read(prim.indices).reshape(-1, 3).astype(np.int64), colors, fps)


# --------------------------------------------------------------------------------------------------
# Measuring against the ground truth


def silhouette(vertices: np.ndarray, faces: np.ndarray, viewmat: np.ndarray, K: np.ndarray, width: int,
               height: int) -> np.ndarray:
    """Binary silhouette of a triangle mesh: pixels whose centre lies inside a projected triangle.

    Args:
        vertices: [N, 3]; faces: [M, 3]; viewmat: [4, 4] world-to-camera (OpenCV); K: [3, 3].
        width, height: image size.

    Returns:
        [H, W] bool.
    """
    cam = vertices @ viewmat[:3, :3].T + viewmat[:3, 3]
    front = cam[:, 2] > 1e-6
    uv = cam[:, :2] / np.where(front, cam[:, 2], 1.0)[:, None] * K[[0, 1], [0, 1]] + K[:2, 2]
    tri = uv[faces]  # [M, 3, 2]
    ok = front[faces].all(axis=1)
    tri = tri[ok]
    mask = np.zeros((height, width), dtype=bool)
    lo = np.floor(tri.min(axis=1) - 0.5).astype(int)
    hi = np.ceil(tri.max(axis=1) - 0.5).astype(int)
    span = np.maximum(hi - lo + 1, 1).max(axis=1)
    # Triangles grouped by pixel span, so each group tests a small k x k block of candidate pixels.
    k = 1
    while True:
        sel = (span <= k) & (span > k // 2) if k > 1 else span <= 1
        if sel.any():
            t = tri[sel]
            base = lo[sel]
            oy, ox = np.mgrid[0:k, 0:k]
            px = base[:, None, 0] + ox.reshape(1, -1)
            py = base[:, None, 1] + oy.reshape(1, -1)
            cx, cy = px + 0.5, py + 0.5
            a, b, c = t[:, 0], t[:, 1], t[:, 2]

            def edge(p, q):
                return (q[:, None, 0] - p[:, None, 0]) * (cy - p[:, None, 1]) - (q[:, None, 1] - p[:, None, 1]) * (cx - p[:, None, 0])

            e0, e1, e2 = edge(a, b), edge(b, c), edge(c, a)
            inside = ((e0 >= 0) & (e1 >= 0) & (e2 >= 0)) | ((e0 <= 0) & (e1 <= 0) & (e2 <= 0))
            inside &= (px >= 0) & (px < width) & (py >= 0) & (py < height)
            mask[py[inside], px[inside]] = True
        if k >= span.max(initial=1):
            break
        k *= 2
    return mask


def silhouette_iou(mesh: AnimatedMesh, sample, views=None, frames=None) -> dict:
    """IoU of the mesh's silhouettes with the sample's alpha (>= 128) per view and frame.

    Returns:
        ``{"views", "frames", "iou" [V][F], "mean", "min"}``.
    """
    cams = sample.cameras
    views = list(range(sample.num_views)) if views is None else list(views)
    frames = list(range(min(sample.num_frames, len(mesh.vertices)))) if frames is None else list(frames)
    table = []
    for v in views:
        row = []
        for f in frames:
            gt = sample.frame(v, f)[..., 3] >= 128
            ours = silhouette(mesh.vertices[f], mesh.faces, cams.viewmats[v], cams.Ks[v], gt.shape[1], gt.shape[0])
            union = (gt | ours).sum()
            row.append(float((gt & ours).sum() / union) if union else 1.0)
        table.append(row)
    arr = np.array(table)
    return {"views": views, "frames": frames, "iou": arr.round(4).tolist(), "mean": float(arr.mean()),
            "min": float(arr.min())}


def surface_points(vertices: np.ndarray, faces: np.ndarray, count: int, seed: int = 0) -> np.ndarray:
    """[count, 3] points sampled uniformly by area on a triangle mesh."""
    rng = np.random.default_rng(seed)
    tri = vertices[faces]
    area = 0.5 * np.linalg.norm(np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0]), axis=1)
    pick = rng.choice(len(faces), size=count, p=area / area.sum())
    r1, r2 = rng.random(count), rng.random(count)
    s = np.sqrt(r1)
    w = np.stack([1 - s, s * (1 - r2), s * r2], axis=1)
    return (tri[pick] * w[:, :, None]).sum(axis=1)


def closest_point_on_triangles(p: np.ndarray, a: np.ndarray, b: np.ndarray, c: np.ndarray) -> np.ndarray:
    """Closest points to ``p`` on triangles ``(a, b, c)``, row by row (Ericson, Real-Time Collision
    Detection, 5.1.5: Voronoi regions of the vertices, edges and face).

    Args:
        p, a, b, c: [K, 3].

    Returns:
        [K, 3].
    """
    ab, ac, ap = b - a, c - a, p - a
    d1, d2 = (ab * ap).sum(-1), (ac * ap).sum(-1)
    bp = p - b
    d3, d4 = (ab * bp).sum(-1), (ac * bp).sum(-1)
    cp = p - c
    d5, d6 = (ab * cp).sum(-1), (ac * cp).sum(-1)
    va, vb, vc = d3 * d6 - d5 * d4, d5 * d2 - d1 * d6, d1 * d4 - d3 * d2
    denom = np.where(np.abs(va + vb + vc) > 1e-30, va + vb + vc, 1e-30)
    v, w = vb / denom, vc / denom
    out = a + ab * v[:, None] + ac * w[:, None]  # inside the face
    safe = lambda x: np.where(np.abs(x) > 1e-30, x, 1e-30)  # noqa: E731
    # edges
    t_bc = (d4 - d3) / safe((d4 - d3) + (d5 - d6))
    on_bc = (va <= 0) & (d4 - d3 >= 0) & (d5 - d6 >= 0)
    out = np.where(on_bc[:, None], b + (c - b) * t_bc[:, None], out)
    t_ac = d2 / safe(d2 - d6)
    on_ac = (vb <= 0) & (d2 >= 0) & (d6 <= 0)
    out = np.where(on_ac[:, None], a + ac * t_ac[:, None], out)
    t_ab = d1 / safe(d1 - d3)
    on_ab = (vc <= 0) & (d1 >= 0) & (d3 <= 0)
    out = np.where(on_ab[:, None], a + ab * t_ab[:, None], out)
    # vertices
    out = np.where(((d6 >= 0) & (d5 <= d6))[:, None], c, out)
    out = np.where(((d3 >= 0) & (d4 <= d3))[:, None], b, out)
    out = np.where(((d1 <= 0) & (d2 <= 0))[:, None], a, out)
    return out


def point_to_mesh(points: np.ndarray, vertices: np.ndarray, faces: np.ndarray, candidates: int = 16) -> np.ndarray:
    """Distance of each point to a triangle mesh (exact on the ``candidates`` triangles whose centroids are
    nearest, which holds the closest triangle for meshes of even triangle size).

    Args:
        points: [P, 3]; vertices: [N, 3]; faces: [M, 3].

    Returns:
        [P] distances.
    """
    from scipy.spatial import cKDTree

    tri = vertices[faces]
    k = min(candidates, len(faces))
    _, near = cKDTree(tri.mean(axis=1)).query(points, k=k)
    near = near.reshape(len(points), k)
    rep = np.repeat(points, k, axis=0)
    t = tri[near.reshape(-1)]
    q = closest_point_on_triangles(rep, t[:, 0], t[:, 1], t[:, 2])
    return np.linalg.norm(q - rep, axis=1).reshape(len(points), k).min(axis=1)


def surface_distance(mesh: AnimatedMesh, gt_vertices: np.ndarray, gt_faces: np.ndarray, count: int = 20000) -> dict:
    """Distances (mm) between the mesh and the ground-truth surface, per frame, both ways (points sampled
    on one surface, exact point-to-triangle distances to the other).

    Args:
        mesh: ours.
        gt_vertices: [F, N, 3] posed ground-truth vertices; gt_faces: [M, 3].
        count: surface samples per mesh and frame.

    Returns:
        ``{"to_gt_mean_mm", "from_gt_mean_mm", "chamfer_mm", "to_gt_p95_mm", "from_gt_p95_mm", "per_frame"}``;
        ``to_gt`` is ours -> ground truth (accuracy), ``from_gt`` ground truth -> ours (completeness).
    """
    rows = []
    for f in range(min(len(mesh.vertices), len(gt_vertices))):
        mine = mesh.vertices[f].astype(np.float64)
        ours = surface_points(mine, mesh.faces, count, seed=f)
        gt = surface_points(gt_vertices[f], gt_faces, count, seed=1000 + f)
        a = point_to_mesh(ours, gt_vertices[f], gt_faces)
        b = point_to_mesh(gt, mine, mesh.faces)
        rows.append((a.mean(), b.mean(), np.percentile(a, 95), np.percentile(b, 95)))
    r = np.array(rows) * 1000
    return {"to_gt_mean_mm": float(r[:, 0].mean()), "from_gt_mean_mm": float(r[:, 1].mean()),
            "chamfer_mm": float(r[:, :2].mean()), "to_gt_p95_mm": float(r[:, 2].mean()),
            "from_gt_p95_mm": float(r[:, 3].mean()), "per_frame": r.round(2).tolist()}


# --------------------------------------------------------------------------------------------------
# CLI


def add_arguments(parser: argparse.ArgumentParser) -> None:
    d = MeshConfig()
    parser.add_argument("fit", type=Path, help="a fit directory (charactershot fit4d --out)")
    parser.add_argument("--out", type=Path, required=True, help="output folder (mesh.glb, mesh.json)")
    parser.add_argument("--voxel-size", type=float, default=d.voxel_size, help=f"TSDF voxel in metres (default {d.voxel_size})")
    parser.add_argument("--method", choices=("auto", "tsdf", "opacity"), default=d.method,
                        help="surface: TSDF of rendered depth, the opacity field's level set, or auto (tsdf with "
                             "gsplat on CUDA, else opacity)")
    parser.add_argument("--motion", choices=("gaussians", "field"), default=d.motion,
                        help="vertex motion: carried by the nearest Gaussians' poses, or the deformation field's "
                             f"centre offset at the vertex (default {d.motion})")
    parser.add_argument("--image-size", type=int, default=d.image_size, help=f"fusion render size (default {d.image_size})")
    parser.add_argument("--frames", type=int, default=None, help="frames to export (default: the fit's)")
    parser.add_argument("--fps", type=float, default=15.0, help="playback rate (default 15)")
    parser.add_argument("--device", default="auto", help="auto (CUDA when available), cpu or cuda")
    parser.add_argument("--gt", type=Path, default=None, help="ground-truth samples: measure silhouette IoU against them")
    parser.add_argument("--key", default=None, help="sample key in --gt (default: fit.json's key)")
    parser.add_argument("--gt-mesh", action="store_true",
                        help="also the distance to the posed ground-truth surface (Blender; default-data samples)")
    parser.add_argument("--gt-character", type=Path, default=None,
                        help="for --gt-mesh: the character file the sample was rendered from (default: found in the "
                             "default-data cache by the name and SHA-256 the sample records)")


def run(args: argparse.Namespace) -> int:
    try:
        import torch

        from reference_model.gs4d import load_fit

        cfg = MeshConfig(voxel_size=args.voxel_size, image_size=args.image_size, method=args.method, motion=args.motion)
        device = "cuda" if args.device == "auto" and torch.cuda.is_available() else \
            ("cpu" if args.device == "auto" else args.device)
        if not (args.fit / "config.json").is_file():
            raise FileNotFoundError(f"{args.fit}: not a fit directory (no config.json)")
        model, _ = load_fit(args.fit, device=device)
        mesh, info = extract_mesh(model, cfg, frames=args.frames, fps=args.fps,
                                  progress=lambda s: print(f"export-mesh: {s}", file=sys.stderr))
        glb = write_gltf(mesh, args.out / "mesh.glb")
        report = {"fit": str(args.fit), "glb": glb.name, "bytes": glb.stat().st_size, "config": asdict(cfg),
                  "device": device, "gaussians": int(model.num), **info}
        if args.gt is not None:
            from reference_model.export.rig import _load_sample

            key = args.key
            if key is None and (args.fit / "fit.json").is_file():
                fit = json.loads((args.fit / "fit.json").read_text())
                key = fit.get("key") or fit.get("sample_key") or fit.get("sample")
            if args.gt_character is not None and not args.gt_character.is_file():
                raise FileNotFoundError(f"--gt-character {args.gt_character}: no such file")
            sample = _load_sample(args.gt, key)
            t0 = time.perf_counter()
            report["key"] = sample.key
            report["silhouette_iou"] = silhouette_iou(mesh, sample)
            if args.gt_mesh:
                from reference_model.export.blender_gt import posed_ground_truth

                gt_v, gt_f = posed_ground_truth(sample, character=args.gt_character)
                report["surface_distance"] = surface_distance(mesh, gt_v, gt_f)
            report["measure_s"] = time.perf_counter() - t0
        (args.out / "mesh.json").write_text(json.dumps(report, indent=1) + "\n")
    except (FileNotFoundError, ValueError, OSError) as exc:
        print(f"charactershot export-mesh: {exc}", file=sys.stderr)
        return 1
    line = f"wrote {glb} ({report['bytes'] / 1e6:.1f} MB: {info['vertices']} vertices, {info['frames']} frames) in {info['total_s']:.1f} s"
    if "silhouette_iou" in report:
        line += f"; silhouette IoU {report['silhouette_iou']['mean']:.3f}"
    if "surface_distance" in report:
        line += f", surface distance {report['surface_distance']['chamfer_mm']:.1f} mm"
    print(line)
    return 0
