"""Plücker ray maps against hand computations from the rig geometry, and the camera encoder layout."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from character4d.cameras import RigConfig, rig_cameras
from reference_model.camera import CameraEncoder, camera_tokens, canvas_intrinsics, plucker_rays


def _hand_rays(view: int, height: int, width: int, fov_deg: float = 39.5978) -> np.ndarray:
    """Rays of rig camera ``view`` on a ``width x height`` canvas, written out from DESIGN.md section 4.

    The square render (fov along its side) is scaled to the canvas height and centred, as CharacterShot
    pads 480 x 480 renders to 720 x 480.
    """
    phi = math.radians(view * 360.0 / 21)
    origin = np.array([3.5 * math.sin(phi), -3.5 * math.cos(phi), 0.7])
    forward = np.array([-math.sin(phi), math.cos(phi), 0.0])  # horizontal, towards the Z axis
    right = np.array([math.cos(phi), math.sin(phi), 0.0])
    down = np.array([0.0, 0.0, -1.0])
    focal = 0.5 * height / math.tan(math.radians(fov_deg) / 2)
    rays = np.zeros((6, height, width))
    for row in range(height):
        for col in range(width):
            x = (col + 0.5 - width / 2) / focal
            y = (row + 0.5 - height / 2) / focal
            d = x * right + y * down + forward
            d /= np.linalg.norm(d)
            rays[:3, row, col] = np.cross(origin, d)
            rays[3:, row, col] = d
    return rays


@pytest.mark.parametrize("view", [0, 5])
def test_rays_of_two_rig_cameras_match_a_hand_computation(view):
    height, width = 5, 7
    cams = rig_cameras(RigConfig(resolution=7))
    K = canvas_intrinsics(cams.Ks, image_size=7, height=height, width=width)
    rays = plucker_rays(K[[view]], cams.viewmats[[view]], height, width)[0].numpy()
    assert rays.shape == (6, height, width) and rays.dtype == np.float32
    np.testing.assert_allclose(rays, _hand_rays(view, height, width), atol=1e-6)
    d, m = rays[3:], rays[:3]
    np.testing.assert_allclose(np.linalg.norm(d, axis=0), 1.0, atol=1e-6)
    np.testing.assert_allclose((d * m).sum(axis=0), 0.0, atol=1e-6)  # moment orthogonal to direction
    # The centre pixel (odd sizes: exactly the principal point) looks horizontally at (0, 0, 0.7).
    centre = d[:, height // 2, width // 2]
    phi = math.radians(view * 360.0 / 21)
    np.testing.assert_allclose(centre, [-math.sin(phi), math.cos(phi), 0.0], atol=1e-6)
    # |o x d| is the distance of the ray's line from the world origin: the centre ray passes horizontally
    # through (0, 0, 0.7), so 0.7 m.
    np.testing.assert_allclose(np.linalg.norm(m[:, height // 2, width // 2]), 0.7, atol=1e-6)


def test_rays_rotate_with_the_world():
    cams = rig_cameras(RigConfig(resolution=8, elevation_deg=10.0))
    rng = np.random.default_rng(0)
    q, _ = np.linalg.qr(rng.normal(size=(3, 3)))
    rot = q * np.sign(np.linalg.det(q))  # a proper rotation
    world = np.eye(4)
    world[:3, :3] = rot
    # World points p -> R p; cameras follow: w2c' = w2c @ inverse(world transform).
    viewmats = cams.viewmats @ np.linalg.inv(world)
    before = plucker_rays(cams.Ks, cams.viewmats, 6, 8).double()
    after = plucker_rays(cams.Ks, viewmats, 6, 8).double()
    r = torch.from_numpy(rot)
    expected = torch.cat(
        [torch.einsum("ij,vjhw->vihw", r, before[:, :3]), torch.einsum("ij,vjhw->vihw", r, before[:, 3:])], dim=1
    )
    torch.testing.assert_close(after, expected, atol=1e-5, rtol=0)


def test_canvas_rays_are_the_render_rays_inside_the_padding():
    cams = rig_cameras(RigConfig(resolution=512)).select([3])
    square = plucker_rays(canvas_intrinsics(cams.Ks, 512, 16, 16), cams.viewmats, 16, 16)
    canvas = plucker_rays(canvas_intrinsics(cams.Ks, 512, 16, 24), cams.viewmats, 16, 24)
    torch.testing.assert_close(canvas[..., 4:20], square)


def test_bad_inputs():
    cams = rig_cameras(RigConfig(resolution=8))
    with pytest.raises(ValueError, match="Ks"):
        plucker_rays(cams.Ks[:, :2], cams.viewmats, 4, 4)
    with pytest.raises(ValueError, match="same number"):
        plucker_rays(cams.Ks[:2], cams.viewmats, 4, 4)
    with pytest.raises(ValueError, match="height"):
        plucker_rays(cams.Ks, cams.viewmats, 0, 4)
    with pytest.raises(ValueError, match="width"):
        canvas_intrinsics(cams.Ks, 8, height=10, width=8)


def test_encoder_has_the_released_camera_guider_layout():
    with torch.device("meta"):
        encoder = CameraEncoder()
    shapes = {k: tuple(v.shape) for k, v in encoder.state_dict().items()}
    expected = {"layer.0.weight": (16, 6, 3, 3), "layer.12.weight": (3072, 16, 2, 2), "layer.12.bias": (3072,)}
    for i in (2, 4, 6, 8, 10):
        expected[f"layer.{i}.weight"] = (16, 16, 3, 3)
    for i in (0, 2, 4, 6, 8, 10):
        expected[f"layer.{i}.bias"] = (16,)
    assert shapes == expected
    strides = [m.stride for m in encoder.layer if isinstance(m, torch.nn.Conv2d)]
    assert strides == [(1, 1)] * 3 + [(2, 2)] * 4


def test_encoder_tokens_follow_the_patch_grid():
    torch.manual_seed(0)
    encoder = CameraEncoder(hidden_channels=4, out_channels=8, zero_init_output=False).eval()
    rays = torch.randn(2, 3, 6, 32, 48)
    tokens = encoder(rays)
    assert tokens.shape == (2, 3, 2 * 3, 8)
    grid = encoder.layer(rays[1, 2:3])[0]  # [8, 2, 3]
    torch.testing.assert_close(tokens[1, 2, 1 * 3 + 2], grid[:, 1, 2])  # row-major like the patch embedding
    with pytest.raises(ValueError, match="multiples of 16"):
        encoder(torch.zeros(1, 6, 20, 32))
    # An untrained encoder with the default zero output layer adds nothing.
    assert not CameraEncoder(hidden_channels=4, out_channels=8)(rays).any()
    # Full size: a 6 x 480 x 720 ray map of a rig camera becomes 30 x 45 = 1350 tokens.
    cams = rig_cameras(RigConfig())
    K = canvas_intrinsics(cams.Ks[:1], cams.width)
    full = camera_tokens(CameraEncoder(hidden_channels=4, out_channels=8), K, cams.viewmats[:1], 480, 720)
    assert full.shape == (1, 1350, 8)


def test_compare_script_reports_a_match_and_diagnoses_another_convention(tmp_path, capsys):
    import importlib.util
    from pathlib import Path

    script = Path(__file__).resolve().parents[2] / "scripts" / "compare_camera_embs.py"
    spec = importlib.util.spec_from_file_location("compare_camera_embs", script)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    cams = rig_cameras(RigConfig(num_views=3, resolution=16))
    rays = plucker_rays(canvas_intrinsics(cams.Ks, 16, 16, 24), cams.viewmats, 16, 24)
    args = ["--views", "3", "--height", "16", "--width", "24", "--camera-embs"]
    good, swapped = tmp_path / "good", tmp_path / "swapped"
    for folder, maps in ((good, rays), (swapped, torch.cat([rays[:, 3:], rays[:, :3]], 1))):
        folder.mkdir()
        for v in range(3):
            torch.save(maps[v].clone(), folder / f"{v}.pt")
    assert module.main([*args, str(good)]) == 0
    assert module.main([*args, str(swapped)]) == 1
    assert "closest: (d, o x d)" in capsys.readouterr().out
    assert module.main([*args, str(tmp_path / "missing")]) == 2
