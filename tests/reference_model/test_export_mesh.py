"""`charactershot export-mesh`: a translating sphere of Gaussians gives a sphere mesh that translates (both
surface methods); the glTF is read back by pygltflib and by Blender's importer; silhouettes against an
analytic projection."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from character4d.cameras import RigConfig, rig_cameras
from reference_model.cli import main as charactershot
from reference_model.export.mesh import (AnimatedMesh, MeshConfig, carry_vertices, extract_mesh, read_gltf,
                                         silhouette, silhouette_iou, surface_distance, write_gltf)
from reference_model.gs4d.model import Gaussians4D

CENTRE = np.array([0.0, 0.0, 0.7])
RADIUS = 0.25
SHIFT = np.array([0.3, -0.1, 0.05])  # over the whole clip (t from 0 to 1)


class Translation(torch.nn.Module):
    """A deformation field that moves everything by ``t * shift``: a known answer."""

    def __init__(self, shift) -> None:
        super().__init__()
        self.register_buffer("shift", torch.tensor(shift, dtype=torch.float32))

    def forward(self, means, t):
        return (self.shift * float(t)).expand_as(means), torch.zeros_like(means), torch.zeros(len(means), 4)


def sphere_model(n: int, sigma: float, frames: int = 3) -> Gaussians4D:
    rng = np.random.default_rng(0)
    d = rng.normal(size=(n, 3))
    d /= np.linalg.norm(d, axis=1, keepdims=True)
    params = dict(
        means=torch.tensor(d * RADIUS + CENTRE, dtype=torch.float32),
        log_scales=torch.full((n, 3), float(np.log(sigma))),
        quats=torch.tensor([[1.0, 0, 0, 0]]).repeat(n, 1),
        opacity_logits=torch.full((n,), 3.0),
        sh0=torch.full((n, 1, 3), 0.7),  # colour 0.5 + 0.2821 * 0.7 = 0.697
        shN=torch.zeros(n, 0, 3),
    )
    return Gaussians4D(params, Translation(SHIFT), num_frames=frames)


def sphere_silhouette(centre, radius, viewmat, K, size) -> np.ndarray:
    """Pixels whose ray passes within ``radius`` of ``centre`` (an exact sphere's silhouette)."""
    ys, xs = np.mgrid[0:size, 0:size] + 0.5
    rays = np.stack([(xs - K[0, 2]) / K[0, 0], (ys - K[1, 2]) / K[1, 1], np.ones_like(xs)], -1)
    rays /= np.linalg.norm(rays, axis=-1, keepdims=True)
    c = viewmat[:3, :3] @ centre + viewmat[:3, 3]
    along = rays @ c
    return np.linalg.norm(rays * along[..., None] - c, axis=-1) <= radius


@pytest.mark.parametrize("method,snap,n,sigma,voxel,expected_radius", [
    # opacity field, snapped onto the centres' shell (radius 0.25)
    ("opacity", True, 3000, 0.02, 0.02, (0.24, 0.26)),
    # ... unsnapped: the 0.5 level set of overlapping Gaussians lies about 2 sigma outside their centres
    ("opacity", False, 3000, 0.02, 0.02, (0.27, 0.31)),
    # TSDF of the torch rasteriser's expected depth: the front of the (large, sparse) Gaussians
    ("tsdf", False, 600, 0.035, 0.025, (0.24, 0.32)),
])
def test_translating_sphere_gives_a_translating_sphere_mesh(method, snap, n, sigma, voxel, expected_radius):
    model = sphere_model(n, sigma)
    # fusion cameras close enough that a pixel is about a voxel
    cfg = MeshConfig(voxel_size=voxel, method=method, image_size=40, rings=((0.0, 8), (45.0, 4), (-45.0, 4)),
                     radius=1.3, snap=snap)
    mesh, info = extract_mesh(model, cfg)
    assert info["method"] == method and mesh.vertices.shape[0] == 3
    r = np.linalg.norm(mesh.vertices[0] - CENTRE, axis=1)
    assert expected_radius[0] < r.mean() < expected_radius[1] and r.std() < 0.02, (r.mean(), r.std())
    # a closed surface: every edge is shared by exactly two faces
    e = np.sort(np.concatenate([mesh.faces[:, [0, 1]], mesh.faces[:, [1, 2]], mesh.faces[:, [2, 0]]]), axis=1)
    _, counts = np.unique(e, axis=0, return_counts=True)
    assert (counts == 2).all()
    # outward normals: the signed volume of a counter-clockwise closed mesh is positive
    v = mesh.vertices[0].astype(np.float64)
    vol = np.einsum("ij,ij->i", v[mesh.faces[:, 0]], np.cross(v[mesh.faces[:, 1]], v[mesh.faces[:, 2]])).sum() / 6
    assert 0.7 < vol / (4 / 3 * np.pi * r.mean() ** 3) < 1.3
    for f, t in enumerate((0.0, 0.5, 1.0)):
        assert np.allclose(mesh.vertices[f] - mesh.vertices[0], t * SHIFT, atol=1e-5)
    assert np.allclose(mesh.colors, 0.5 + 0.28209479 * 0.7, atol=0.02)


def test_vertices_follow_their_gaussians_rotation_and_scale():
    """Hand-computed: a Gaussian at the origin, sd (0.1, 0.2, 0.3), moves to (1, 0, 0), turns 90 degrees about Z
    and doubles in size; a second Gaussian 10 m away has no weight at its vertices."""
    c = np.sqrt(0.5)
    canonical = (np.array([[0.0, 0, 0], [10.0, 0, 0]]), np.array([[1.0, 0, 0, 0], [1.0, 0, 0, 0]]),
                 np.array([[0.1, 0.2, 0.3], [0.1, 0.1, 0.1]]), np.array([0.9, 0.9]))
    posed = [canonical[:3],
             (np.array([[1.0, 0, 0], [10.0, 0, 0]]), np.array([[c, 0, 0, c], [1.0, 0, 0, 0]]),
              np.array([[0.2, 0.4, 0.6], [0.1, 0.1, 0.1]]))]
    verts = np.array([[0.1, 0.0, 0.0], [0.0, 0.2, 0.3]])  # local (1, 0, 0) and (0, 1, 1)
    out = carry_vertices(verts, canonical, posed, neighbours=2)
    assert np.allclose(out[0], verts, atol=1e-6)
    # (1, 0, 0) + Rz(90) (0.2, 0, 0) and (1, 0, 0) + Rz(90) (0, 0.4, 0.6)
    assert np.allclose(out[1], [[1.0, 0.2, 0.0], [0.6, 0.0, 0.6]], atol=1e-6)
    # midway between two equal Gaussians: the mean of where each carries it
    two = (np.array([[0.0, 0, 0], [0.2, 0, 0]]), np.array([[1.0, 0, 0, 0]] * 2), np.full((2, 3), 0.1),
           np.array([0.5, 0.5]))
    moved = [(np.array([[0.0, 0, 0], [0.2, 0, 1.0]]), two[1], np.array([[0.1] * 3, [0.2] * 3]))]
    # first: stays at (0.1, 0, 0); second: (0.2, 0, 1) + 2 (-0.1, 0, 0) = (0, 0, 1)
    assert np.allclose(carry_vertices(np.array([[0.1, 0, 0]]), two, moved, neighbours=2)[0], [[0.05, 0, 0.5]])


class Spin(torch.nn.Module):
    """A field that turns everything about the vertical axis through ``CENTRE`` by ``t * 90`` degrees."""

    def forward(self, means, t):
        a = np.pi / 2 * float(t)
        rot = torch.tensor([[np.cos(a), -np.sin(a), 0], [np.sin(a), np.cos(a), 0], [0, 0, 1]], dtype=torch.float32)
        c = torch.tensor(CENTRE, dtype=torch.float32)
        d_means = (means - c) @ rot.T + c - means
        # canonical quaternions are (1, 0, 0, 0): this offset makes them (cos a/2, 0, 0, sin a/2) once normalised
        dq = torch.tensor([np.cos(a / 2) - 1, 0, 0, np.sin(a / 2)], dtype=torch.float32).expand(len(means), 4)
        return d_means, torch.zeros_like(means), dq


def test_mesh_of_a_spinning_ellipsoid_turns_with_it():
    """Elongated Gaussians on an ellipsoid, turned rigidly: each vertex turns with them (both motions)."""
    rng = np.random.default_rng(1)
    d = rng.normal(size=(3000, 3))
    d /= np.linalg.norm(d, axis=1, keepdims=True)
    params = dict(means=torch.tensor(d * [0.3, 0.15, 0.2] + CENTRE, dtype=torch.float32),
                  log_scales=torch.tensor(np.log([0.03, 0.015, 0.02]), dtype=torch.float32).repeat(3000, 1),
                  quats=torch.tensor([[1.0, 0, 0, 0]]).repeat(3000, 1), opacity_logits=torch.full((3000,), 3.0),
                  sh0=torch.zeros(3000, 1, 3), shN=torch.zeros(3000, 0, 3))
    model = Gaussians4D(params, Spin(), num_frames=3)
    for motion in ("gaussians", "field"):
        mesh, info = extract_mesh(model, MeshConfig(voxel_size=0.02, method="opacity", motion=motion))
        assert info["motion"] == motion
        v0 = mesh.vertices[0] - CENTRE
        for f, a in ((1, np.pi / 4), (2, np.pi / 2)):
            rot = np.array([[np.cos(a), -np.sin(a), 0], [np.sin(a), np.cos(a), 0], [0, 0, 1]])
            assert np.allclose(mesh.vertices[f] - CENTRE, v0 @ rot.T, atol=1e-4)
    with pytest.raises(ValueError, match="motion"):
        MeshConfig(motion="bones")


def test_silhouettes_match_an_exact_sphere():
    model = sphere_model(3000, 0.02)
    mesh, _ = extract_mesh(model, MeshConfig(voxel_size=0.02, method="opacity"))
    r = float(np.linalg.norm(mesh.vertices[0] - CENTRE, axis=1).mean())
    cams = rig_cameras(RigConfig(num_views=4, resolution=96))
    for v in range(4):
        for f, t in enumerate((0.0, 0.5, 1.0)):
            ours = silhouette(mesh.vertices[f], mesh.faces, cams.viewmats[v], cams.Ks[v], 96, 96)
            exact = sphere_silhouette(CENTRE + t * SHIFT, r, cams.viewmats[v], cams.Ks[v], 96)
            assert (ours & exact).sum() / (ours | exact).sum() > 0.95


def test_silhouette_of_a_square_covers_the_pixels_whose_centres_it_holds():
    cams = rig_cameras(RigConfig(num_views=1, resolution=64))
    # a square facing camera 0 at the look-at distance: 0.5 m wide -> 0.5 * f / 3.5 pixels
    s = 0.25
    verts = np.array([[-s, 0, 0.7 - s], [s, 0, 0.7 - s], [s, 0, 0.7 + s], [-s, 0, 0.7 + s]])
    mask = silhouette(verts, np.array([[0, 1, 2], [0, 2, 3]]), cams.viewmats[0], cams.Ks[0], 64, 64)
    f = cams.Ks[0][0, 0]
    half = s * f / 3.5
    ys, xs = np.mgrid[0:64, 0:64] + 0.5
    exact = (np.abs(xs - 32) <= half) & (np.abs(ys - 32) <= half)
    assert (mask != exact).sum() <= 2 * 4 * 8  # only pixels on the border lines can differ
    assert abs(int(mask.sum()) - (2 * half) ** 2) < 4 * 2 * half


def test_gltf_round_trip_with_pygltflib(tmp_path):
    import pygltflib

    model = sphere_model(1500, 0.025, frames=4)
    mesh, _ = extract_mesh(model, MeshConfig(voxel_size=0.025, method="opacity"), fps=12.0)
    path = write_gltf(mesh, tmp_path / "m.glb")
    gltf = pygltflib.GLTF2().load(str(path))
    prim = gltf.meshes[0].primitives[0]
    assert len(prim.targets) == 4 and gltf.animations[0].channels[0].target.path == "weights"
    assert gltf.accessors[gltf.animations[0].samplers[0].input].max == [pytest.approx(3 / 12)]
    back = read_gltf(path)
    assert np.allclose(back.vertices, mesh.vertices, atol=1e-6) and np.array_equal(back.faces, mesh.faces)
    assert back.fps == pytest.approx(12.0)


def test_surface_distance_of_a_shifted_copy():
    model = sphere_model(1500, 0.025, frames=2)
    mesh, _ = extract_mesh(model, MeshConfig(voxel_size=0.025, method="opacity"))
    moved = mesh.vertices + np.array([0.0, 0.0, 0.004])  # 4 mm up
    d = surface_distance(mesh, moved.astype(np.float64), mesh.faces, count=4000)
    # a sphere moved by 4 mm: the distance to the other surface is 4 |cos(polar angle)| mm, mean 2 mm
    assert d["chamfer_mm"] == pytest.approx(2.0, abs=0.3)
    same = surface_distance(mesh, mesh.vertices.astype(np.float64), mesh.faces, count=4000)
    assert same["chamfer_mm"] < 1e-6


def test_closest_points_on_a_triangle_against_brute_force():
    from reference_model.export.mesh import closest_point_on_triangles

    rng = np.random.default_rng(4)
    a, b, c = rng.normal(size=(3, 200, 3))
    p = rng.normal(size=(200, 3)) * 2
    got = closest_point_on_triangles(p, a, b, c)
    u, v = np.meshgrid(np.linspace(0, 1, 301), np.linspace(0, 1, 301))
    keep = u + v <= 1
    u, v = u[keep], v[keep]
    for i in range(0, 200, 20):
        pts = a[i] + np.outer(u, b[i] - a[i]) + np.outer(v, c[i] - a[i])
        best = np.linalg.norm(pts - p[i], axis=1).min()
        assert np.linalg.norm(got[i] - p[i]) <= best + 1e-9 and np.linalg.norm(got[i] - p[i]) > best - 0.02


class _FakeSample:
    """Alpha of an exact sphere in a rig, enough for `silhouette_iou`."""

    def __init__(self, r: float):
        self.cameras = rig_cameras(RigConfig(num_views=3, resolution=64))
        self.num_views, self.num_frames, self._r = 3, 3, r

    def frame(self, v, f):
        m = sphere_silhouette(CENTRE + f / 2 * SHIFT, self._r, self.cameras.viewmats[v], self.cameras.Ks[v], 64)
        out = np.zeros((64, 64, 4), np.uint8)
        out[..., 3] = m * 255
        return out


def test_silhouette_iou_per_view_and_frame():
    model = sphere_model(3000, 0.02)
    mesh, _ = extract_mesh(model, MeshConfig(voxel_size=0.02, method="opacity"))
    r = float(np.linalg.norm(mesh.vertices[0] - CENTRE, axis=1).mean())
    iou = silhouette_iou(mesh, _FakeSample(r))
    assert np.array(iou["iou"]).shape == (3, 3) and iou["min"] > 0.9
    smaller = silhouette_iou(mesh, _FakeSample(r * 0.8))
    assert smaller["mean"] < iou["mean"] - 0.1


def _save_tiny_fit(tmp_path: Path) -> Path:
    from reference_model.gs4d import Gs4dConfig, save_fit
    from reference_model.gs4d.deformation import DeformationField

    sphere = sphere_model(1500, 0.025, frames=3)
    field = DeformationField(aabb=(-0.5, -0.5, 0.2, 0.5, 0.5, 1.2), plane_resolution=8, time_resolution=3,
                             multires=(1,), plane_features=4, mlp_width=8)
    model = Gaussians4D({k: v.detach() for k, v in sphere.params.items()}, field, num_frames=3)
    return save_fit(tmp_path / "fit", model, Gs4dConfig())


def test_cli_runs_on_a_saved_fit(tmp_path, capsys):
    fit = _save_tiny_fit(tmp_path)
    assert charactershot(["export-mesh", str(fit), "--out", str(tmp_path / "out"), "--voxel-size", "0.025",
                          "--device", "cpu", "--motion", "gaussians"]) == 0
    report = json.loads((tmp_path / "out" / "mesh.json").read_text())
    assert report["vertices"] > 100 and report["frames"] == 3 and report["method"] == "opacity"
    assert report["motion"] == report["config"]["motion"] == "gaussians"
    back = read_gltf(tmp_path / "out" / "mesh.glb")
    assert back.vertices.shape == (3, report["vertices"], 3)
    assert charactershot(["export-mesh", str(tmp_path / "nofit"), "--out", str(tmp_path / "o2")]) == 1
    assert "not a fit directory" in capsys.readouterr().err
    assert charactershot(["export-mesh", str(fit), "--out", str(tmp_path / "o3"), "--gt", str(tmp_path),
                          "--gt-mesh", "--gt-character", str(tmp_path / "none.glb")]) == 1
    assert "--gt-character" in capsys.readouterr().err and not (tmp_path / "o3" / "mesh.json").exists()


@pytest.mark.blender
def test_blender_imports_the_morph_animation(tmp_path):
    model = sphere_model(1500, 0.025, frames=3)
    mesh, _ = extract_mesh(model, MeshConfig(voxel_size=0.025, method="opacity"), fps=15.0)
    path = write_gltf(mesh, tmp_path / "m.glb")
    script = f"""
import bpy, json, numpy as np
bpy.ops.wm.read_factory_settings(use_empty=True)
bpy.context.scene.render.fps = 15
bpy.ops.import_scene.gltf(filepath={str(path)!r})
obj = next(o for o in bpy.data.objects if o.type == "MESH")
out = {{"keys": len(obj.data.shape_keys.key_blocks), "centres": []}}
for f in range(3):
    bpy.context.scene.frame_set(f)
    dg = bpy.context.evaluated_depsgraph_get()
    ev = obj.evaluated_get(dg)
    m = ev.to_mesh()
    co = np.empty(len(m.vertices) * 3); m.vertices.foreach_get("co", co)
    mw = np.array(ev.matrix_world)
    w = co.reshape(-1, 3) @ mw[:3, :3].T + mw[:3, 3]
    out["centres"].append(w.mean(0).tolist())
    ev.to_mesh_clear()
print("RESULT " + json.dumps(out))
"""
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    line = next(ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT "))
    got = json.loads(line[7:])
    assert got["keys"] == 1 + 3  # the basis plus one shape key per frame
    for f in range(3):
        # Blender's world is Z up like ours: the importer undoes glTF's Y-up turn
        assert np.allclose(got["centres"][f], mesh.vertices[f].mean(0), atol=2e-3), (f, got["centres"][f])
