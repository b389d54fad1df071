"""Tests of character4d.cameras against hand-computed values and the published CharacterShot template."""

import json
import math

import numpy as np
import pytest

from character4d.cameras import (
    Cameras,
    RigConfig,
    blender_c2w_to_opencv_w2c,
    camera_centers,
    intrinsics,
    opencv_w2c_to_blender_c2w,
    project,
    rig_cameras,
)

# Camera centres (x, y) of the released CharacterShot camera template
# (4D_optimization/cam_template/transforms_train.json, view00..view20, z = 0.7 for all),
# which stores them rounded to 0.01 m.
TEMPLATE_XY = [
    (0.0, -3.5), (1.03, -3.34), (1.97, -2.89), (2.74, -2.18), (3.26, -1.28), (3.49, -0.26), (3.41, 0.78),
    (3.03, 1.75), (2.38, 2.57), (1.52, 3.15), (0.52, 3.46), (-0.52, 3.46), (-1.52, 3.15), (-2.38, 2.57),
    (-3.03, 1.75), (-3.41, 0.78), (-3.49, -0.26), (-3.26, -1.28), (-2.74, -2.18), (-1.97, -2.89), (-1.03, -3.34),
]
# Rotation part of the template's camera-to-world (Blender axes) for view05 and view07, as published.
TEMPLATE_R = {
    5: [[0.07429277, 0.0, 0.99723649], [0.99723649, 0.0, -0.07429277], [0.0, 1.0, 0.0]],
    7: [[-0.50013465, 0.0, 0.86594766], [0.86594766, 0.0, 0.50013465], [0.0, 1.0, 0.0]],
}
TEMPLATE_CAMERA_ANGLE_X = 0.6911111611634243


@pytest.fixture(scope="module")
def cams():
    return rig_cameras(RigConfig())


def test_rig_matches_published_template_positions(cams):
    expected = np.array([[x, y, 0.7] for x, y in TEMPLATE_XY])
    np.testing.assert_allclose(cams.c2w_blender[:, :3, 3], expected, atol=0.0051)
    np.testing.assert_allclose(camera_centers(cams.viewmats), expected, atol=0.0051)


def test_rig_positions_follow_the_formula_for_all_views(cams):
    for k in range(21):
        phi = 2.0 * math.pi * k / 21.0
        expected = (3.5 * math.sin(phi), -3.5 * math.cos(phi), 0.7)
        np.testing.assert_allclose(cams.centers[k], expected, atol=1e-9)
        assert cams.azimuths_deg[k] == pytest.approx(k * 360.0 / 21.0)


def test_spot_check_hand_computed_views(cams):
    np.testing.assert_allclose(cams.centers[0], (0.0, -3.5, 0.7), atol=1e-12)
    # View 5: azimuth 85.714 deg; sin = 0.997204, cos = 0.074730 (hand-computed).
    assert cams.azimuths_deg[5] == pytest.approx(85.7142857)
    np.testing.assert_allclose(cams.centers[5], (3.490214, -0.261555, 0.7), atol=1e-5)


def test_rig_rotations_match_template(cams):
    for k, rot in TEMPLATE_R.items():
        # The template derived its rotations from positions rounded to 1 cm, hence the loose tolerance.
        np.testing.assert_allclose(cams.c2w_blender[k, :3, :3], rot, atol=2e-3)
    np.testing.assert_allclose(cams.c2w_blender[0, :3, :3], [[1, 0, 0], [0, 0, -1], [0, 1, 0]], atol=1e-12)


def test_intrinsics_of_the_template_lens():
    K = intrinsics(39.5978, 512, 512)
    # tan(39.5978 deg / 2) = 0.36 (50 mm lens, 36 mm sensor) -> fx = W / (2 * 0.36).
    assert K[0, 0] == pytest.approx(512 / 0.72, rel=1e-5)
    assert K[1, 1] == K[0, 0]
    assert (K[0, 2], K[1, 2]) == (256.0, 256.0)
    assert math.radians(39.5978) == pytest.approx(TEMPLATE_CAMERA_ANGLE_X, abs=1e-6)


def test_intrinsics_sensor_fit_auto_uses_larger_side():
    landscape = intrinsics(90.0, 200, 100)
    portrait = intrinsics(90.0, 100, 200)
    # tan(45 deg) = 1: the focal length is half the larger side in both orientations.
    assert landscape[0, 0] == pytest.approx(100.0)
    assert portrait[1, 1] == pytest.approx(100.0)
    np.testing.assert_allclose(landscape[:2, 2], (100.0, 50.0))
    np.testing.assert_allclose(portrait[:2, 2], (50.0, 100.0))


@pytest.mark.parametrize("bad", [dict(fov_deg=0.0), dict(fov_deg=180.0), dict(width=0), dict(height=2.5)])
def test_intrinsics_rejects_bad_input(bad):
    args = dict(fov_deg=40.0, width=10, height=10) | bad
    with pytest.raises(ValueError, match=next(iter(bad))):
        intrinsics(**args)


def test_view0_sees_the_front(cams):
    uv, depth = project(np.array([[0.0, -0.5, 0.7], [0.0, 0.0, 0.0], [0.0, 0.0, 0.7]]), cams.viewmats[0], cams.Ks[0])
    np.testing.assert_allclose(uv[0], (256.0, 256.0), atol=1e-9)  # on the optical axis
    assert depth[0] == pytest.approx(3.0)
    assert depth[0] < depth[2]  # the point in front of the character is closer than its axis
    assert uv[1, 1] > 256.0  # the floor below the target appears in the lower half (image y down)


def test_view0_shows_character_left_on_image_right(cams):
    # Characters face -Y, so their left side is +X; a camera at -Y looking at +Y sees it on its right.
    uv, _ = project(np.array([[0.3, 0.0, 0.7], [-0.3, 0.0, 0.7]]), cams.viewmats[0], cams.Ks[0])
    assert uv[0, 0] > 256.0 > uv[1, 0]
    # Hand-computed: fx = 711.11, depth 3.5 -> 0.3 m is 60.95 px from the centre.
    assert uv[0, 0] == pytest.approx(256.0 + 0.3 * (512 / 0.72) / 3.5)


def test_view5_shows_the_profile(cams):
    # From azimuth ~86 deg the camera is near +X: the character's left side (+X) faces it and its
    # front (-Y) is on the image left (camera x = world +Y there).
    pts = np.array([[0.3, 0.0, 0.7], [-0.3, 0.0, 0.7], [0.0, -0.3, 0.7]])
    uv, depth = project(pts, cams.viewmats[5], cams.Ks[5])
    assert depth[0] < depth[1]
    assert uv[2, 0] < 256.0


def test_optical_axes_point_at_target_and_are_horizontal(cams):
    forward = -cams.c2w_blender[:, :3, 2]
    to_target = np.array([0.0, 0.0, 0.7]) - cams.centers
    to_target /= np.linalg.norm(to_target, axis=1, keepdims=True)
    np.testing.assert_allclose(forward, to_target, atol=1e-12)
    np.testing.assert_allclose(forward[:, 2], 0.0, atol=1e-12)
    # No roll: camera x stays horizontal, camera y points up.
    np.testing.assert_allclose(cams.c2w_blender[:, 2, 0], 0.0, atol=1e-12)
    assert np.all(cams.c2w_blender[:, 2, 1] > 0.99)


def test_sv3d_style_rig_is_expressible():
    cfg = RigConfig(num_views=21, fov_deg=33.8, elevation_deg=10.0, resolution=576)
    cams = rig_cameras(cfg)
    centres = cams.centers
    np.testing.assert_allclose(np.linalg.norm(centres - np.array(cfg.target), axis=1), 3.5, atol=1e-12)
    np.testing.assert_allclose(centres[:, 2], 0.7 + 3.5 * math.sin(math.radians(10.0)), atol=1e-12)
    target = np.tile(np.array(cfg.target), (21, 1))
    for k in range(21):
        uv, depth = project(target[k:k + 1], cams.viewmats[k], cams.Ks[k])
        np.testing.assert_allclose(uv[0], (288.0, 288.0), atol=1e-9)
        assert depth[0] == pytest.approx(3.5)
    assert cams.Ks[0, 0, 0] == pytest.approx(288.0 / math.tan(math.radians(16.9)))
    assert np.all(cams.c2w_blender[:, 2, 2] > 0)  # the back axis tilts up: the cameras look down


def test_conversion_round_trips_and_axes():
    rng = np.random.default_rng(0)
    cams = rig_cameras(RigConfig(elevation_deg=-20.0, num_views=7))
    np.testing.assert_allclose(opencv_w2c_to_blender_c2w(cams.viewmats), cams.c2w_blender, atol=1e-12)
    # A random rigid transform, batched.
    q, _ = np.linalg.qr(rng.normal(size=(5, 3, 3)))
    q *= np.sign(np.linalg.det(q))[:, None, None]
    c2w = np.tile(np.eye(4), (5, 1, 1))
    c2w[:, :3, :3], c2w[:, :3, 3] = q, rng.normal(size=(5, 3))
    w2c = blender_c2w_to_opencv_w2c(c2w)
    np.testing.assert_allclose(opencv_w2c_to_blender_c2w(w2c), c2w, atol=1e-12)
    # The OpenCV camera's +z (forward) is the Blender camera's -z, its +y (down) the Blender -y.
    c2w_cv = np.linalg.inv(w2c)
    np.testing.assert_allclose(c2w_cv[:, :3, 2], -c2w[:, :3, 2], atol=1e-12)
    np.testing.assert_allclose(c2w_cv[:, :3, 1], -c2w[:, :3, 1], atol=1e-12)
    np.testing.assert_allclose(c2w_cv[:, :3, 0], c2w[:, :3, 0], atol=1e-12)


def test_project_hand_built_pinhole():
    # Identity camera (OpenCV axes = world axes), f = 100, principal point (50.5, 40).
    K = np.array([[100.0, 0, 50.5], [0, 100.0, 40.0], [0, 0, 1]])
    pts = np.array([[0.0, 0.0, 2.0], [1.0, -0.5, 2.0], [0.2, 0.4, 4.0], [0.0, 0.0, -1.0], [np.nan, 0, 1]])
    uv, depth = project(pts, np.eye(4), K)
    np.testing.assert_allclose(uv[:3], [[50.5, 40.0], [100.5, 15.0], [55.5, 50.0]])
    np.testing.assert_allclose(depth[:4], [2.0, 2.0, 4.0, -1.0])
    assert np.all(np.isnan(uv[3:]))


def test_project_validates_shapes():
    with pytest.raises(ValueError, match="points"):
        project(np.zeros((3, 2)), np.eye(4), np.eye(3))
    with pytest.raises(ValueError, match="viewmat"):
        project(np.zeros((3, 3)), np.eye(3), np.eye(3))


def test_json_round_trip(cams):
    doc = json.loads(json.dumps(cams.to_json()))
    assert set(doc) == {"convention", "width", "height", "rig", "views"}
    assert doc["rig"]["target"] == [0.0, 0.0, 0.7]
    view = doc["views"][5]
    assert set(view) == {"index", "azimuth_deg", "K", "w2c_opencv", "c2w_blender", "width", "height"}
    back = Cameras.from_json(doc)
    np.testing.assert_array_equal(back.c2w_blender, cams.c2w_blender)
    np.testing.assert_array_equal(back.viewmats, cams.viewmats)
    np.testing.assert_array_equal(back.Ks, cams.Ks)
    assert back.rig == cams.rig and (back.width, back.height) == (512, 512)


def test_select_keeps_original_indices(cams):
    sub = cams.select([0, 2, 5])
    assert sub.num_views == 3
    np.testing.assert_array_equal(sub.view_indices, [0, 2, 5])
    np.testing.assert_array_equal(sub.viewmats[2], cams.viewmats[5])
    back = Cameras.from_json(sub.to_json())
    np.testing.assert_array_equal(back.view_indices, [0, 2, 5])
    with pytest.raises(ValueError, match="indices"):
        cams.select([21])


def test_inconsistent_conventions_are_rejected(cams):
    with pytest.raises(ValueError, match="different cameras"):
        Cameras(cams.c2w_blender, cams.c2w_blender, cams.Ks, 512, 512, cams.azimuths_deg)


@pytest.mark.parametrize(
    "kwargs", [dict(num_views=0), dict(radius=-1.0), dict(fov_deg=200.0), dict(elevation_deg=90.0), dict(target=(0, 0))]
)
def test_rig_config_validation(kwargs):
    with pytest.raises(ValueError, match=next(iter(kwargs))):
        RigConfig(**kwargs)


def test_arrays_are_read_only(cams):
    with pytest.raises(ValueError):
        cams.viewmats[0, 0, 0] = 2.0


def test_from_json_errors_name_the_problem(cams):
    doc = cams.to_json()
    with pytest.raises(ValueError, match="views"):
        Cameras.from_json({k: v for k, v in doc.items() if k != "views"})
    bad = dict(doc, rig=dict(doc["rig"], lens_mm=50))
    with pytest.raises(ValueError, match="lens_mm"):
        Cameras.from_json(bad)
    bad = dict(doc, views=[dict(doc["views"][0], width=256)])
    with pytest.raises(ValueError, match="size"):
        Cameras.from_json(bad)
