"""Retargeting maths on hand-built two-bone chains whose answers can be worked out on paper."""

import numpy as np
import pytest

from character4d.retarget import (
    axis_angle,
    facing_rotation,
    hips_offsets,
    resample_times,
    rest_alignment,
    swing_rotation,
    transfer_rotations,
    world_to_basis,
)

X, Y, Z = np.eye(3)


def frame_along(direction):
    """A rest frame whose Y axis (Blender's bone axis) points along ``direction``."""
    return swing_rotation(Y, direction)


def chain_positions(head, lengths, posed_frames):
    """Joint positions of a chain from posed world frames (bone axis = local Y)."""
    pts = [np.asarray(head, float)]
    for length, frame in zip(lengths, posed_frames):
        pts.append(pts[-1] + length * frame @ Y)
    return np.array(pts)


def test_swing_rotation_maps_a_to_b_without_twist():
    r = swing_rotation(X, Z)
    np.testing.assert_allclose(r @ X, Z, atol=1e-12)
    np.testing.assert_allclose(r @ Y, Y, atol=1e-12)  # axis of the swing is untouched
    np.testing.assert_allclose(swing_rotation(X, -X) @ X, -X, atol=1e-12)
    np.testing.assert_allclose(swing_rotation(Z, Z), np.eye(3), atol=1e-12)
    with pytest.raises(ValueError, match="non-zero"):
        swing_rotation(np.zeros(3), X)


def test_facing_rotation_turns_left_side_to_plus_x():
    # A character facing +Y has its left side at -X; turning it to face -Y is a half turn.
    r = facing_rotation(-X)
    np.testing.assert_allclose(r @ -X, X, atol=1e-12)
    np.testing.assert_allclose(r @ Y, -Y, atol=1e-12)
    with pytest.raises(ValueError, match="faces"):
        facing_rotation(Z)


def test_t_pose_source_drives_a_pose_target_to_same_world_pose():
    """Left arm (upperArm, lowerArm): source rests in T-pose, target in a 45-degree A-pose.

    The source lifts its arm from horizontal to straight up and bends the elbow 90 degrees forward.
    The target must end with exactly the same world bone directions.
    """
    bones = ["upperArm", "lowerArm"]
    parents = {"upperArm": None, "lowerArm": "upperArm"}
    t_dir = X
    a_dir = (X - Z) / np.sqrt(2)
    src_rest = np.stack([frame_along(t_dir), frame_along(t_dir)])
    tgt_rest = np.stack([frame_along(a_dir), frame_along(a_dir)])

    up = axis_angle(Y, -np.pi / 2)  # rotates +X onto +Z
    np.testing.assert_allclose(up @ X, Z, atol=1e-12)
    bend = axis_angle(X, np.pi / 2)  # rotates +Z onto -Y (forward for a -Y facing character)
    np.testing.assert_allclose(bend @ Z, -Y, atol=1e-12)
    upper_posed = up @ src_rest[0]
    lower_posed = bend @ up @ src_rest[1]
    src_posed = np.stack([upper_posed, lower_posed])[None]

    align = rest_alignment({b: t_dir for b in bones}, {b: a_dir for b in bones}, parents, bones)
    tgt_world = transfer_rotations(src_rest, src_posed, np.stack([align[b] for b in bones]), tgt_rest)

    np.testing.assert_allclose(tgt_world[0, 0] @ Y, Z, atol=1e-12)  # upper arm straight up
    np.testing.assert_allclose(tgt_world[0, 1] @ Y, -Y, atol=1e-12)  # forearm points forward

    # Basis rotations reproduce those world frames through Blender's composition rule.
    basis = world_to_basis(
        {b: tgt_world[:, i] for i, b in enumerate(bones)},
        {b: tgt_rest[i] for i, b in enumerate(bones)},
        parents,
        bones,
    )
    p_upper = tgt_rest[0] @ basis["upperArm"][0]
    p_lower = p_upper @ tgt_rest[0].T @ tgt_rest[1] @ basis["lowerArm"][0]
    pts = chain_positions([0.2, 0, 1.4], [0.3, 0.25], [p_upper, p_lower])
    np.testing.assert_allclose(pts[1], [0.2, 0, 1.7], atol=1e-12)
    np.testing.assert_allclose(pts[2], [0.2, -0.25, 1.7], atol=1e-12)


def test_identity_motion_gives_identity_basis_and_source_rest_pose():
    """A source held in its rest (T) pose puts an A-pose target into the T-pose."""
    bones = ["upperArm", "lowerArm"]
    parents = {"upperArm": None, "lowerArm": "upperArm"}
    a_dir = (X - Z) / np.sqrt(2)
    src_rest = np.stack([frame_along(X)] * 2)
    tgt_rest = np.stack([frame_along(a_dir)] * 2)
    align = rest_alignment({b: X for b in bones}, {b: a_dir for b in bones}, parents, bones)
    world = transfer_rotations(src_rest, src_rest[None], np.stack([align[b] for b in bones]), tgt_rest)
    np.testing.assert_allclose(world[0, 0] @ Y, X, atol=1e-12)
    basis = world_to_basis({"upperArm": world[:, 0], "lowerArm": world[:, 1]},
                           {"upperArm": tgt_rest[0], "lowerArm": tgt_rest[1]}, parents, bones)
    # The elbow is straight in both rests, so only the shoulder rotates: 45 degrees up.
    np.testing.assert_allclose(basis["lowerArm"][0], np.eye(3), atol=1e-12)
    angle = np.degrees(np.arccos((np.trace(basis["upperArm"][0]) - 1) / 2))
    assert angle == pytest.approx(45.0)


def test_unmapped_bone_follows_its_parent():
    parents = {"a": None, "twist": "a", "b": "twist"}
    rest = {"a": np.eye(3), "twist": np.eye(3), "b": frame_along(X)}
    turn = axis_angle(Z, 0.3)[None]
    basis = world_to_basis({"a": turn, "b": turn @ rest["b"]}, rest, parents, ["a", "twist", "b"])
    np.testing.assert_allclose(basis["twist"][0], np.eye(3))
    np.testing.assert_allclose(basis["b"][0], np.eye(3), atol=1e-12)


def test_hand_without_children_inherits_forearm_alignment():
    parents = {"lowerArm": None, "hand": "lowerArm"}
    align = rest_alignment({"lowerArm": X}, {"lowerArm": -Z}, parents, ["lowerArm", "hand"])
    np.testing.assert_allclose(align["hand"], align["lowerArm"])
    np.testing.assert_allclose(align["lowerArm"] @ -Z, X, atol=1e-12)


def test_hips_offsets_scale_by_leg_ratio():
    src = np.array([[1.0, 2.0, 1.0], [1.5, 2.0, 1.2], [2.0, 2.0, 0.8]])
    keep = hips_offsets(src, src_rest_height=1.0, scale=0.5, root_motion="keep")
    np.testing.assert_allclose(keep, [[0, 0, 0], [0.25, 0, 0.1], [0.5, 0, -0.1]])
    center = hips_offsets(src, 1.0, 0.5, "center")
    np.testing.assert_allclose(center[:, 0], [-0.25, 0, 0.25])
    in_place = hips_offsets(src, 1.0, 0.5, "in_place")
    np.testing.assert_allclose(in_place[:, :2], 0)
    with pytest.raises(ValueError, match="root_motion"):
        hips_offsets(src, 1.0, 0.5, "drift")


def test_resample_times_holds_last_pose():
    t = resample_times(5, fps=10, start=0.2, duration=0.45)
    np.testing.assert_allclose(t, [0.2, 0.3, 0.4, 0.45, 0.45])
    with pytest.raises(ValueError, match="fps"):
        resample_times(5, fps=0, start=0)
