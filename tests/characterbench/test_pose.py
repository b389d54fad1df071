"""The pose task: colour table against OpenPose's, keypoints by hand, decoding of
drawn maps, DLT triangulation against exact projections, Procrustes against a known similarity, and the
end-to-end round trip (the ground truth's own pose maps score ~0 mm; left/right swapped maps do not)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from characterbench import pose as K
from characterbench.cli import main

SIZE = 256  # pose maps need discs of a few pixels (radius 4 px at 512 px, 2 px here)
KEYS = ("ann__sway", "ben__wave")


def _figure(sway: float, wave: float, shift: float) -> dict[str, tuple[float, float, float]]:
    """A standing humanoid facing -Y (its right side at -X), with the hips swaying and the right arm
    raised by ``wave`` (metres)."""
    x = shift + sway
    return {
        "hips": (x, 0, 0.95), "spine": (x, 0, 1.05), "chest": (x, 0, 1.2), "upperChest": (x, 0, 1.3),
        "neck": (x, 0, 1.45), "head": (x, 0, 1.55),
        "leftShoulder": (x + 0.06, 0, 1.42), "leftUpperArm": (x + 0.18, 0, 1.4), "leftLowerArm": (x + 0.3, 0.02, 1.15),
        "leftHand": (x + 0.38, 0.03, 0.92),
        "rightShoulder": (x - 0.06, 0, 1.42), "rightUpperArm": (x - 0.18, 0, 1.4),
        "rightLowerArm": (x - 0.32, -0.02, 1.18 + 0.5 * wave), "rightHand": (x - 0.42, -0.04, 0.95 + wave),
        "leftUpperLeg": (x + 0.1, 0, 0.92), "leftLowerLeg": (x + 0.11, 0.01, 0.5), "leftFoot": (x + 0.12, 0.02, 0.08),
        "leftToes": (x + 0.12, -0.1, 0.02),
        "rightUpperLeg": (x - 0.1, 0, 0.92), "rightLowerLeg": (x - 0.11, 0.01, 0.5), "rightFoot": (x - 0.12, 0.02, 0.08),
        "rightToes": (x - 0.12, -0.1, 0.02),
        "nose": (x, -0.1, 1.6), "leftEye": (x + 0.035, -0.085, 1.645), "rightEye": (x - 0.035, -0.085, 1.645),
        "leftEar": (x + 0.075, 0.0, 1.61), "rightEar": (x - 0.075, 0.0, 1.61),
    }  # fmt: skip


def _joints(frames: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    from character4d.skeleton import JOINT_NAMES

    def as_array(points):
        out = np.full((len(JOINT_NAMES), 3), np.nan, dtype=np.float32)
        for name, p in points.items():
            out[JOINT_NAMES.index(name)] = p
        return out

    motion = np.stack([as_array(_figure(0.08 * np.sin(f / 4 + seed), 0.4 * (f / frames), 0.05 * seed)) for f in range(frames)])
    return motion, as_array(_figure(0.0, 0.0, 0.05 * seed))


def _swap_left_right(joints: np.ndarray) -> np.ndarray:
    from character4d.skeleton import JOINT_NAMES

    out = joints.copy()
    for i, name in enumerate(JOINT_NAMES):
        if name.startswith("left"):
            j = JOINT_NAMES.index("right" + name[4:])
            out[..., i, :], out[..., j, :] = joints[..., j, :], joints[..., i, :]
    return out


def make_pose_sample(key: str, seed: int, swap: bool = False):
    """A 21-view x 25-frame sample whose pose maps are drawn from its joints by character4d.posemap."""
    from character4d.cameras import RigConfig, rig_cameras
    from character4d.format import build_sample
    from character4d.posemap import draw_pose_map
    from character4d.skeleton import JOINT_NAMES

    cams = rig_cameras(RigConfig(resolution=SIZE))
    motion, apose = _joints(25, seed)
    drawn = _swap_left_right(motion) if swap else motion
    poses = [[draw_pose_map(drawn[f], cams.viewmats[v], cams.Ks[v], SIZE, SIZE) for f in range(25)] for v in range(21)]
    solid = np.zeros((SIZE, SIZE, 4), np.uint8)
    solid[..., 3] = 255
    return build_sample(
        key, {"fps": 15.0, "joint_names": list(JOINT_NAMES), "source_times": [f / 15 for f in range(25)]},
        cams.to_json(), motion, apose, [solid] * 21, [[solid] * 25 for _ in range(21)], poses,
    )


@pytest.fixture(scope="module")
def pose_gt(tmp_path_factory) -> Path:
    from character4d.format import ShardWriter

    path = tmp_path_factory.mktemp("pose_gt") / "gt-00000.tar"
    with ShardWriter(path) as writer:
        for i, key in enumerate(KEYS):
            writer.write(make_pose_sample(key, i))
    return path


# OpenPose's body colours in COCO-18 keypoint order, written out from `colors` of `draw_bodypose` in
# pytorch-openpose's util.py (the openpose annotator that ControlNet and DWPose ship).
OPENPOSE_COCO18_COLORS = (
    (255, 0, 0), (255, 85, 0), (255, 170, 0), (255, 255, 0), (170, 255, 0), (85, 255, 0), (0, 255, 0),
    (0, 255, 85), (0, 255, 170), (0, 255, 255), (0, 170, 255), (0, 85, 255), (0, 0, 255), (85, 0, 255),
    (170, 0, 255), (255, 0, 255), (255, 0, 170), (255, 0, 85),
)  # fmt: skip
# OpenPose's COCO-18 body parts (poseParameters `POSE_COCO_BODY_PARTS`: Nose, Neck, RShoulder, ...), in
# order, spelled as the benchmark spells them.
OPENPOSE_COCO18_PARTS = (
    "nose", "neck", "right_shoulder", "right_elbow", "right_wrist", "left_shoulder", "left_elbow", "left_wrist",
    "right_hip", "right_knee", "right_ankle", "left_hip", "left_knee", "left_ankle",
    "right_eye", "left_eye", "right_ear", "left_ear",
)  # fmt: skip


def test_colour_table_and_keypoints_follow_openpose():
    from character4d.skeleton import JOINT_NAMES

    assert K.KEYPOINT_COLORS == OPENPOSE_COCO18_COLORS
    assert len(set(K.KEYPOINT_COLORS)) == 18  # one colour per keypoint: decoding relies on it
    assert K.COCO18_NAMES == OPENPOSE_COCO18_PARTS
    # Frame 0 of the test figure (no sway, no wave, no shift) by hand, from _figure's joint positions:
    # keypoints are bone heads (shoulder = upper arm, elbow = lower arm, wrist = hand, hip = upper leg,
    # knee = lower leg, ankle = foot), the neck the mid-point of the two shoulders (DESIGN.md Appendix A).
    expected = np.array([
        (0, -0.1, 1.6), (0, 0, 1.4), (-0.18, 0, 1.4), (-0.32, -0.02, 1.18), (-0.42, -0.04, 0.95),
        (0.18, 0, 1.4), (0.3, 0.02, 1.15), (0.38, 0.03, 0.92), (-0.1, 0, 0.92), (-0.11, 0.01, 0.5),
        (-0.12, 0.02, 0.08), (0.1, 0, 0.92), (0.11, 0.01, 0.5), (0.12, 0.02, 0.08), (-0.035, -0.085, 1.645),
        (0.035, -0.085, 1.645), (-0.075, 0, 1.61), (0.075, 0, 1.61),
    ])  # fmt: skip
    joints, _ = _joints(3, 0)
    got = K.coco18_from_joints(joints, JOINT_NAMES)
    assert got.shape == (3, 18, 3)
    np.testing.assert_allclose(got[0], expected, atol=1e-6)
    # A missing source joint makes its keypoint absent (NaN), and the neck needs both shoulders.
    holed = joints.copy()
    holed[:, JOINT_NAMES.index("leftUpperArm")] = np.nan
    missing = np.isnan(K.coco18_from_joints(holed, JOINT_NAMES)[0]).all(axis=1)
    assert np.flatnonzero(missing).tolist() == [1, 5]


def test_decode_drawn_keypoints_and_openpose_json():
    from character4d.posemap import draw_keypoints

    # A 6 x 3 grid 70 px apart (no disc covers another), on pixel centres, limbs drawn between them.
    uv = np.array([[40.5 + 70 * (k % 6), 60.5 + 150 * (k // 6) + 7 * (k % 2)] for k in range(18)])
    uv[7] = np.nan  # hidden keypoint: not drawn
    image = draw_keypoints(uv, 512, 512)
    got = K.decode_pose_map(image)
    assert np.isnan(got[7]).all() and np.isfinite(np.delete(got, 7, axis=0)).all()
    np.testing.assert_allclose(np.delete(got, 7, axis=0), np.delete(uv, 7, axis=0), atol=1e-9)  # symmetric discs
    # Stray pixels of a keypoint's colour elsewhere do not move it (largest component wins).
    image[5:7, 5:7] = K.KEYPOINT_COLORS[0]
    np.testing.assert_allclose(K.decode_pose_map(image)[0], uv[0], atol=1e-9)
    # CharacterShot maps swap red and blue.
    np.testing.assert_allclose(K.decode_pose_map(image[..., ::-1].copy(), "charactershot")[3], uv[3], atol=1e-9)
    text = K.keypoints_to_openpose_json(uv)
    back = K.keypoints_from_openpose_json(text)
    assert np.isnan(back[7]).all()
    np.testing.assert_allclose(np.delete(back, 7, axis=0), np.delete(uv, 7, axis=0), atol=1e-3)
    with pytest.raises(ValueError, match="54 numbers"):
        K.keypoints_from_openpose_json(json.dumps({"people": [{"pose_keypoints_2d": [1, 2]}]}))
    with pytest.raises(ValueError, match="uint8 pose map"):
        K.decode_pose_map(np.zeros((4, 4), np.float32))


def test_triangulation_recovers_exact_points_and_rejects_an_outlier_view():
    from character4d.cameras import RigConfig, project, rig_cameras

    cams = rig_cameras(RigConfig(resolution=512))
    views = [0, 2, 5, 7, 9, 12, 14, 16, 19]
    viewmats, Ks = cams.viewmats[views], cams.Ks[views]
    points = np.random.default_rng(1).uniform([-0.4, -0.3, 0.1], [0.4, 0.3, 1.7], (10, 3))
    # Projections by character4d.cameras (independent of characterbench.pose's own projection).
    uv = np.stack([project(points, viewmats[i], Ks[i])[0] for i in range(len(views))], axis=1)  # [10, V, 2]
    got = K.triangulate_keypoints(uv.transpose(1, 0, 2)[None], viewmats, Ks)[0]  # [F=1, V, K, 2]
    np.testing.assert_allclose(got, points, atol=1e-9)
    # A keypoint hidden in most views still triangulates from two; from one it is absent.
    sparse = uv.copy()
    sparse[0, 2:] = np.nan
    sparse[1, 1:] = np.nan
    got = K.triangulate_keypoints(sparse.transpose(1, 0, 2)[None], viewmats, Ks)[0]
    np.testing.assert_allclose(got[0], points[0], atol=1e-9)
    assert np.isnan(got[1]).all()
    # One view 40 px off (a decoding slip): dropped, the point stays exact.
    bad = uv[2].copy()
    bad[3] += [40.0, -25.0]
    point, inliers = K.triangulate_points(bad, viewmats, Ks, threshold_px=8.0)
    np.testing.assert_allclose(point, points[2], atol=1e-9)
    assert inliers.tolist() == [v != 3 for v in range(9)]


def test_procrustes_and_errors_by_hand():
    rng = np.random.default_rng(2)
    gt = rng.normal(size=(1, 18, 3))
    angle = 0.7
    rot = np.array([[np.cos(angle), -np.sin(angle), 0], [np.sin(angle), np.cos(angle), 0], [0, 0, 1]])
    pred = 1.3 * gt @ rot.T + np.array([0.5, -1.0, 2.0])
    errors = K.pose_errors(pred, gt)
    assert errors["pa_mpjpe"] < 1e-9 and errors["mpjpe_raw"] > 100
    # A pure translation: root-aligned error 0, raw error its length (in mm).
    shifted = gt + np.array([0.0, 0.03, 0.04])
    errors = K.pose_errors(shifted, gt)
    assert errors["mpjpe"] == pytest.approx(0.0, abs=1e-9) and errors["mpjpe_raw"] == pytest.approx(50.0)
    # A missing keypoint is charged, never skipped.
    shifted[0, 0] = np.nan
    errors = K.pose_errors(shifted, gt, missing_mm=1000.0)
    assert errors["mpjpe_raw"] == pytest.approx((17 * 50.0 + 1000.0) / 18) and errors["coverage"] == pytest.approx(17 / 18)
    assert K.pck_hits(np.array([[0.0, 0.0], [10.0, 0.0]]), np.array([[0.0, 0.0], [100.0, 0.0]]), np.array([True, True])) == (1, 2)


def test_pose_round_trip_swapped_maps_and_baselines(pose_gt, tmp_path, capsys):
    from character4d.format import ShardWriter, open_samples

    def evaluate(pred: Path, name: str) -> dict:
        out = tmp_path / f"{name}.json"
        assert main(["eval", "--task", "pose", "--pred", str(pred), "--gt", str(pose_gt), "--out", str(out), "--quiet"]) == 0
        return json.loads(out.read_text())

    assert main(["baseline", "ground-truth", "--gt", str(pose_gt), "--out", str(tmp_path / "gt-pred"), "--quiet"]) == 0
    exact = evaluate(tmp_path / "gt-pred", "exact")
    m = exact["metrics"]
    print("pose round trip (ground truth's own maps):", {k: round(v, 3) for k, v in m.items()})
    assert m["mpjpe"] < 5.0 and m["mpjpe_raw"] < 5.0 and m["pa_mpjpe"] < 5.0 and m["pck"] == 1.0
    assert exact["breakdown"]["coverage"]["triangulated"] == 1.0
    assert set(exact["breakdown"]["mpjpe_per_joint"]) == set(K.COCO18_NAMES)
    assert exact["breakdown"]["mpjpe_per_joint"]["left_wrist"] < 5.0
    assert set(exact["breakdown"]["pck_per_view"]) == {"0", "2", "5", "7", "9", "12", "14", "16", "19"}

    # Left/right swapped maps (the figure drawn with its sides exchanged): large errors.
    swapped_gt = tmp_path / "swapped-gt.tar"
    with ShardWriter(swapped_gt) as writer:
        for i, key in enumerate(KEYS):
            writer.write(make_pose_sample(key, i, swap=True))
    assert main(["baseline", "ground-truth", "--gt", str(swapped_gt), "--out", str(tmp_path / "swapped"), "--quiet"]) == 0
    swapped = evaluate(tmp_path / "swapped", "swapped")["metrics"]
    print("left/right swapped maps:", {k: round(v, 3) for k, v in swapped.items()})
    assert swapped["mpjpe"] > 100.0 and swapped["pck"] < 0.6

    # The A-pose held still (OpenPose JSON keypoints): between the two.
    assert main(["baseline", "static-apose", "--gt", str(pose_gt), "--out", str(tmp_path / "apose"), "--quiet"]) == 0
    assert (tmp_path / "apose" / KEYS[0] / "pose" / "view05" / "frame012.json").is_file()
    still = evaluate(tmp_path / "apose", "apose")["metrics"]
    assert m["mpjpe"] < still["mpjpe"] and 0.0 < still["pck"] < 1.0

    # triangulate_pose_maps on a sample gives the same keypoints as the task scored.
    sample = next(iter(open_samples(pose_gt)))
    from character4d.skeleton import JOINT_NAMES

    got = K.triangulate_pose_maps(sample, views=[0, 2, 5, 7, 9, 12, 14, 16, 19], frames=[0, 12, 24])
    truth = K.coco18_from_joints(np.asarray(sample.joints)[[0, 12, 24]], JOINT_NAMES)
    assert np.nanmax(np.linalg.norm(got - truth, axis=-1)) < 0.02
