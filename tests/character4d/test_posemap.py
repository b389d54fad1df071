"""Tests of character4d.posemap with a hand-built skeleton and a hand-built camera."""


import numpy as np
import pytest

from character4d.posemap import (
    COCO18_NAMES,
    HAND_EDGE_COLORS,
    KEYPOINT_COLORS,
    LIMB_COLORS,
    LIMBS,
    PoseStyle,
    coco18_from_joints,
    draw_keypoints,
    draw_pose_map,
    hand21_from_joints,
    keypoint_visibility,
)
from character4d.skeleton import HAND_POINTS, JOINT_NAMES

W = H = 512
# Hand-built OpenCV camera at (0, -5, 1) looking along +Y: camera x = world X, camera y = world -Z,
# camera z = world Y. With f = 100 px per metre at depth 5 (f = 500), a point (X, 0, Z) lands at
# u = 256 + 100 X, v = 256 + 100 (1 - Z).
VIEWMAT = np.array([[1.0, 0, 0, 0], [0, 0, -1, 1], [0, 1, 0, 5], [0, 0, 0, 1]])
K = np.array([[500.0, 0, 256], [0, 500.0, 256], [0, 0, 1]])


def pixel(X, Z):
    """Row/column of the pixel containing the projection of (X, 0, Z)."""
    return int(np.floor(256 + 100 * (1 - Z))), int(np.floor(256 + 100 * X))


def skeleton() -> np.ndarray:
    """A T-posed character facing -Y (towards the camera); its left side is +X (image right)."""
    j = {name: np.full(3, np.nan) for name in JOINT_NAMES}
    j.update(
        hips=(0, 0, 1.0), spine=(0, 0, 1.1), neck=(0, 0, 1.5), head=(0, 0, 1.6),
        leftUpperArm=(0.2, 0, 1.4), leftLowerArm=(0.6, 0, 1.4), leftHand=(1.0, 0, 1.4),
        rightUpperArm=(-0.2, 0, 1.4), rightLowerArm=(-0.6, 0, 1.4), rightHand=(-1.0, 0, 1.4),
        leftUpperLeg=(0.1, 0, 1.0), leftLowerLeg=(0.1, 0, 0.55), leftFoot=(0.1, 0, 0.1),
        rightUpperLeg=(-0.1, 0, 1.0), rightLowerLeg=(-0.1, 0, 0.55), rightFoot=(-0.1, 0, 0.1),
        nose=(0, -0.1, 1.65), leftEye=(0.04, -0.08, 1.7), rightEye=(-0.04, -0.08, 1.7),
        leftEar=(0.08, 0, 1.68), rightEar=(-0.08, 0, 1.68),
    )  # fmt: skip
    return np.array([j[name] for name in JOINT_NAMES], dtype=np.float64)


def add_left_hand(joints: np.ndarray) -> np.ndarray:
    """A fan of fingers from the left wrist at (1.0, 0, 1.4): finger f (thumb..little) at height
    1.4 + 0.15 (2 - f), point i at X = 1.1 + 0.1 i, i.e. pixels (366 + 10 i, 186 + 15 f)."""
    joints = joints.copy()
    index = {n: i for i, n in enumerate(JOINT_NAMES)}
    left = [p for p in HAND_POINTS if p.startswith("left")]
    for f in range(5):
        for i in range(4):
            joints[index[left[4 * f + i]]] = (1.1 + 0.1 * i, 0, 1.4 + 0.15 * (2 - f))
    return joints


def dim(color):
    return tuple(int(c * 0.6) for c in color)


# ----- keypoints from joints ----------------------------------------------------------------------


def test_coco18_from_joints():
    joints = skeleton()
    kp = coco18_from_joints(joints)
    assert kp.shape == (18, 3)
    np.testing.assert_allclose(kp[COCO18_NAMES.index("neck")], (0, 0, 1.4))  # shoulders' mid-point, not the neck bone
    np.testing.assert_allclose(kp[COCO18_NAMES.index("right_shoulder")], (-0.2, 0, 1.4))
    np.testing.assert_allclose(kp[COCO18_NAMES.index("left_wrist")], (1.0, 0, 1.4))
    np.testing.assert_allclose(kp[COCO18_NAMES.index("right_knee")], (-0.1, 0, 0.55))
    np.testing.assert_allclose(kp[COCO18_NAMES.index("left_ear")], (0.08, 0, 1.68))
    batched = coco18_from_joints(np.stack([joints, joints + 1.0]))
    assert batched.shape == (2, 18, 3)
    np.testing.assert_allclose(batched[1], kp + 1.0)


def test_coco18_missing_names_are_nan():
    names = ["leftUpperArm", "rightUpperArm", "nose"]
    kp = coco18_from_joints(np.array([[1.0, 0, 0], [-1.0, 0, 0], [0, -1.0, 0]]), names)
    np.testing.assert_allclose(kp[[0, 1, 2, 5]], [[0, -1, 0], [0, 0, 0], [-1, 0, 0], [1, 0, 0]])
    assert np.isnan(kp[3:5]).all() and np.isnan(kp[6:]).all()
    with pytest.raises(ValueError, match="joints"):
        coco18_from_joints(np.zeros((4, 3)), names)


def test_hand21_from_joints():
    hands = hand21_from_joints(add_left_hand(skeleton()))
    assert hands.shape == (2, 21, 3)
    np.testing.assert_allclose(hands[0, 0], (1.0, 0, 1.4))  # wrist = head of the hand bone
    np.testing.assert_allclose(hands[0, 4], (1.4, 0, 1.7))  # thumb tip
    np.testing.assert_allclose(hands[0, 17], (1.1, 0, 1.1))  # little finger base
    assert np.isnan(hands[1, 1:]).all()


# ----- visibility ---------------------------------------------------------------------------------


def test_visibility_front_back_profile():
    kp = coco18_from_joints(skeleton())
    front = keypoint_visibility(kp, np.array([0.0, -5.0, 1.6]))
    assert front.all()
    back = keypoint_visibility(kp, np.array([0.0, 5.0, 1.6]))
    assert not back[[0, 14, 15]].any()
    assert back[[16, 17]].all() and back[1:14].all()
    left_profile = keypoint_visibility(kp, np.array([5.0, 0.0, 1.6]))  # camera on the character's left
    assert left_profile[17] and not left_profile[16]
    assert left_profile[[0, 14, 15]].all()
    right_profile = keypoint_visibility(kp, np.array([-5.0, -0.2, 1.6]))
    assert right_profile[16] and not right_profile[17]


def test_visibility_hides_nan_and_falls_back_to_eyes():
    kp = coco18_from_joints(skeleton())
    kp[16:] = np.nan  # no ears: the eyes give the head centre
    vis = keypoint_visibility(kp, np.array([0.0, 5.0, 1.6]))
    assert not vis[[0, 14, 15, 16, 17]].any() and vis[1:14].all()
    assert keypoint_visibility(kp, np.array([0.0, -5.0, 1.6]))[[0, 14, 15]].all()


# ----- drawing ------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def pose_map():
    return draw_pose_map(skeleton(), VIEWMAT, K, W, H)


def test_limb_midpoints_have_dimmed_colours(pose_map):
    assert pose_map.shape == (H, W, 3) and pose_map.dtype == np.uint8
    # (limb index, world mid-point X, Z) of limbs whose mid-points no keypoint disc covers.
    cases = [(2, -0.4, 1.4), (3, -0.8, 1.4), (4, 0.4, 1.4), (5, 0.8, 1.4), (7, -0.1, 0.775), (11, 0.1, 0.325)]
    for limb, X, Z in cases:
        assert tuple(pose_map[pixel(X, Z)]) == dim(LIMB_COLORS[limb]), LIMBS[limb]
    # (1, 2) neck -> right shoulder lies on image left of the neck; (1, 5) on its right.
    assert tuple(pose_map[pixel(-0.1, 1.4)]) == (153, 0, 0)
    assert tuple(pose_map[pixel(0.1, 1.4)]) == (153, 51, 0)
    assert pose_map[pixel(0.1, 1.4)][0] == 153 and LIMB_COLORS[1] == (255, 85, 0)


def test_keypoint_centres_have_full_colours(pose_map):
    kp = coco18_from_joints(skeleton())
    for k in range(14):  # body keypoints (the face points are too close together to test one by one)
        X, _, Z = kp[k]
        assert tuple(pose_map[pixel(X, Z)]) == KEYPOINT_COLORS[k], COCO18_NAMES[k]
    # The right wrist (image left) is drawn at u = 156, the left wrist at u = 356.
    assert tuple(pose_map[216, 156]) == KEYPOINT_COLORS[4]
    assert tuple(pose_map[216, 356]) == KEYPOINT_COLORS[7]


def test_limb_widths_and_background(pose_map):
    # The limb ellipse is 8 px wide: pixel centres 3.5 px from the axis are in, 4.5 px out.
    row, col = pixel(-0.4, 1.4)
    assert tuple(pose_map[row - 4, col]) == dim(LIMB_COLORS[2]) and tuple(pose_map[row + 3, col]) == dim(LIMB_COLORS[2])
    assert tuple(pose_map[row - 5, col]) == (0, 0, 0) and tuple(pose_map[row + 4, col]) == (0, 0, 0)
    assert tuple(pose_map[10, 10]) == (0, 0, 0) and tuple(pose_map[500, 256]) == (0, 0, 0)


def test_charactershot_variant_swaps_red_and_blue_and_is_thinner(pose_map):
    cs = draw_pose_map(skeleton(), VIEWMAT, K, W, H, style=PoseStyle(variant="charactershot"))
    row, col = pixel(-0.4, 1.4)
    r, g, b = dim(LIMB_COLORS[2])
    assert tuple(cs[row, col]) == (b, g, r)
    assert tuple(cs[row - 3, col]) == (0, 0, 0) and tuple(pose_map[row - 3, col]) != (0, 0, 0)
    assert tuple(cs[pixel(-1.0, 1.4)]) == KEYPOINT_COLORS[4][::-1]
    assert (cs > 0).any(axis=-1).sum() < 0.4 * (pose_map > 0).any(axis=-1).sum()


def test_charactershot_confidence_scales_colours():
    uv = np.array([[256 + 100 * x, 256 + 100 * (1 - z)] for x, _, z in coco18_from_joints(skeleton())])
    conf = np.ones(18)
    conf[3] = 0.5  # right elbow
    cs = draw_keypoints(uv, W, H, PoseStyle(variant="charactershot"), confidences=conf)
    row, col = pixel(-0.4, 1.4)  # limb (2, 3): colour * 0.5, then * 0.6, then R/B swapped
    assert tuple(cs[row, col]) == tuple(int(int(c * 0.5) * 0.6) for c in LIMB_COLORS[2])[::-1]
    assert tuple(cs[pixel(-0.6, 1.4)]) == tuple(int(c * 0.5) for c in KEYPOINT_COLORS[3])[::-1]
    conf[3] = 0.2  # below the detection threshold: the elbow and both its limbs disappear
    cs = draw_keypoints(uv, W, H, PoseStyle(variant="charactershot"), confidences=conf)
    assert tuple(cs[row, col]) == (0, 0, 0) and tuple(cs[pixel(-0.6, 1.4)]) == (0, 0, 0)
    openpose = draw_keypoints(uv, W, H, PoseStyle(), confidences=np.full(18, 0.5))
    assert tuple(openpose[row, col]) == dim(LIMB_COLORS[2])  # OpenPose does not scale colours


def test_face_hidden_when_camera_behind_the_head():
    # Camera at (0, 5, 1) looking along -Y: image x = world -X, depth = 5 - Y.
    viewmat = np.array([[-1.0, 0, 0, 0], [0, 0, -1, 1], [0, -1, 0, 5], [0, 0, 0, 1]])
    joints = skeleton()
    back = draw_pose_map(joints, viewmat, K, W, H)
    front = draw_pose_map(joints, VIEWMAT, K, W, H)
    # The nose projects to (256, 192.3) from behind (depth 5.1) and to (256, 189.7) from the front.
    assert tuple(back[192, 256]) == (0, 0, 0)
    assert tuple(front[190, 256]) == KEYPOINT_COLORS[0]
    # The ears stay: from behind, the right ear (world -X) is at u = 264, v = 188.
    assert tuple(back[188, 264]) == KEYPOINT_COLORS[16]
    assert tuple(back[188, 248]) == KEYPOINT_COLORS[17]
    # The neck -> nose limb is gone too (neck at v = 216).
    assert tuple(back[204, 256]) == (0, 0, 0)
    assert tuple(front[203, 256]) == dim(LIMB_COLORS[12])


def test_points_outside_the_image_are_not_drawn():
    joints = skeleton()
    joints[JOINT_NAMES.index("leftHand")] = (3.0, 0, 1.4)  # u = 556 > 512
    img = draw_pose_map(joints, VIEWMAT, K, W, H)
    # No forearm (5 -> ... 6 -> 7) reaching towards the edge, but the upper arm is still there.
    assert not img[pixel(1.5, 1.4)[0], 420:].any()
    assert tuple(img[pixel(0.4, 1.4)]) == dim(LIMB_COLORS[4])
    joints[:] += (0, -10, 0)  # everything behind the camera
    assert not draw_pose_map(joints, VIEWMAT, K, W, H).any()


def test_hands_only_when_asked_and_available():
    joints = add_left_hand(skeleton())
    plain = draw_pose_map(joints, VIEWMAT, K, W, H)
    with_hands = draw_pose_map(joints, VIEWMAT, K, W, H, style=PoseStyle(hands=True))
    # Edge 4 runs from the wrist (356, 216) to the index base (366, 201); its mid-point is 9 px from both
    # discs. Hue 4 / 20 = 0.2 -> RGB (0.8, 1, 0).
    assert HAND_EDGE_COLORS[4] == (204, 255, 0)
    assert tuple(plain[208, 361]) == (0, 0, 0)
    assert tuple(with_hands[208, 361]) == (204, 255, 0)
    # Edge 19 (little 3 -> tip) between (386, 246) and (396, 246).
    assert tuple(with_hands[246, 391]) == HAND_EDGE_COLORS[19]
    # Hand points are blue discs, the wrist included.
    assert tuple(with_hands[246, 396]) == (0, 0, 255)
    assert tuple(with_hands[216, 356]) == (0, 0, 255)
    # Without hands, only the body differs from nothing there.
    assert not plain[180:260, 362:].any()
    # No finger joints: asking for hands changes nothing.
    np.testing.assert_array_equal(draw_pose_map(skeleton(), VIEWMAT, K, W, H, style=PoseStyle(hands=True)), plain)


def test_hand_edge_colours_follow_the_hue_wheel():
    assert HAND_EDGE_COLORS[0] == (255, 0, 0)
    assert HAND_EDGE_COLORS[5] == (127, 255, 0) or HAND_EDGE_COLORS[5] == (128, 255, 0)  # hue 0.25
    assert HAND_EDGE_COLORS[10] == (0, 255, 255)  # hue 0.5
    assert HAND_EDGE_COLORS[15] == (127, 0, 255) or HAND_EDGE_COLORS[15] == (128, 0, 255)  # hue 0.75


def test_sizes_scale_with_resolution():
    small = draw_pose_map(skeleton(), VIEWMAT, K * np.array([[0.5], [0.5], [1]]), 256, 256)
    row, col = int(128 + 50 * (1 - 1.4)), int(128 - 50 * 0.4)
    assert tuple(small[row, col]) == dim(LIMB_COLORS[2])
    assert tuple(small[row - 2, col]) == dim(LIMB_COLORS[2]) and tuple(small[row - 3, col]) == (0, 0, 0)
    assert PoseStyle().sizes(1024, 768) == (12.0, 6.0, 3.0)


def test_style_validation():
    with pytest.raises(ValueError, match="variant"):
        PoseStyle(variant="dwpose2")
    with pytest.raises(ValueError, match="limb_width_at_512"):
        PoseStyle(limb_width_at_512=0.0)
