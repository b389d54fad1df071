"""IK from 3D joints (hand-built skeletons with known answers), BVH read back by an independent FK, and
the ground-truth round trip through `charactershot export-rig` and `character4d render` (Blender)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest

from character4d.bvh import WORLD_TO_BVH, matrix_zxy, read_bvh
from character4d.default_data import template_skeleton
from character4d.retarget import axis_angle
from character4d.skeleton import BODY_BONES, FACE_POINTS, JOINT_NAMES, map_skeleton
from reference_model.export.ik import (IKConfig, IKError, Skeleton, foot_contacts, forward_kinematics, solve_ik,
                                       write_motion_bvh)

J = {n: i for i, n in enumerate(JOINT_NAMES)}


def rest_joints(rest: str = "A", height: float = 1.7, leg_scale: float = 1.0) -> np.ndarray:
    """A stick humanoid from character4d's template (straight limbs), with face points on the head."""
    names, parents, heads = template_skeleton(height, rest)
    m = map_skeleton(names, parents)
    out = np.full((len(JOINT_NAMES), 3), np.nan)
    for canonical, source in m.bones.items():
        if canonical in J:
            out[J[canonical]] = heads[names.index(source)]
    if leg_scale != 1.0:  # longer legs, the body raised so the feet stay on the floor
        legs = [J[f"{s}{b}"] for s in ("left", "right") for b in ("UpperLeg", "LowerLeg", "Foot", "Toes")]
        hip_z = out[J["leftUpperLeg"], 2]
        lift = hip_z * (leg_scale - 1)
        top = [j for j in range(len(JOINT_NAMES)) if j not in legs and np.isfinite(out[j]).all()]
        out[top, 2] += lift
        out[legs, 2] = out[legs, 2] * leg_scale
    h = out[J["head"]]
    for p, off in dict(nose=(0, -0.1, 0.08), leftEye=(0.03, -0.09, 0.1), rightEye=(-0.03, -0.09, 0.1),
                       leftEar=(0.08, 0, 0.09), rightEar=(-0.08, 0, 0.09)).items():
        out[J[p]] = h + np.array(off) * height / 1.7
    return out


def pose(sk: Skeleton, local: dict[str, np.ndarray], frames: int = 1) -> np.ndarray:
    """World rotations [F, B, 3, 3] from local (relative to parent, world axes) rotations by bone name."""
    rot = np.zeros((frames, len(sk.bones), 3, 3))
    for i, p in enumerate(sk.parents):
        r = local.get(sk.bones[i], np.eye(3))
        rot[:, i] = r if p < 0 else rot[:, p] @ r
    return rot


def angle_deg(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    # |A - B|_F = 2 sqrt(2) sin(angle / 2): accurate for small angles, unlike arccos of the trace
    d = np.linalg.norm(a - b, axis=(-2, -1))
    return np.degrees(2 * np.arcsin(np.clip(d / (2 * np.sqrt(2)), 0, 1)))


@pytest.fixture(scope="module")
def sk() -> Skeleton:
    return Skeleton.from_joints(rest_joints())


def test_rigid_turn_and_shift_gives_that_rotation_for_every_bone(sk):
    r = axis_angle(np.array([0.2, -0.3, 1.0]), 1.1)
    hips = sk.heads[0] + np.array([0.3, -0.2, 0.05])
    joints = forward_kinematics(sk, pose(sk, {"hips": r}), hips[None])
    # independent of the FK under test: rotate the rest joints about the hips head
    rest = rest_joints()
    assert np.allclose(joints[0], (rest - sk.heads[0]) @ r.T + hips, equal_nan=True)
    m = solve_ik(joints, sk, IKConfig(scale_to_character=False))
    assert angle_deg(m.rotations[0], np.broadcast_to(r, m.rotations[0].shape)).max() < 1e-4
    assert np.allclose(m.hips[0], hips)


@pytest.mark.parametrize("side", ["left", "right"])
def test_bent_elbow_gives_the_upper_arm_twist_and_the_hinge_bend(sk, side):
    """Upper arm twisted by 35 degrees about its axis, elbow bent by 60 degrees about its (twisted) hinge."""
    u = sk.heads[sk.index(f"{side}LowerArm")] - sk.heads[sk.index(f"{side}UpperArm")]
    u /= np.linalg.norm(u)
    hinge = np.array([0, 0, -1.0 if side == "left" else 1.0])
    hinge = hinge - hinge.dot(u) * u
    hinge /= np.linalg.norm(hinge)
    twist = axis_angle(u, np.radians(35))
    bend = axis_angle(hinge, np.radians(60))
    rot = pose(sk, {f"{side}UpperArm": twist, f"{side}LowerArm": bend})
    joints = forward_kinematics(sk, rot, sk.heads[:1])
    forearm = joints[0, J[f"{side}Hand"]] - joints[0, J[f"{side}LowerArm"]]
    assert forearm[1] < -0.05  # the forearm came forwards (-Y), as an elbow bends
    m = solve_ik(joints, sk, IKConfig(scale_to_character=False))
    for bone in (f"{side}UpperArm", f"{side}LowerArm"):
        assert angle_deg(m.rotations[0, sk.index(bone)], rot[0, sk.index(bone)]) < 1e-4, bone


def test_a_turned_chest_spreads_its_twist_over_the_spine(sk):
    """Shoulders turned 45 degrees about the vertical over still hips: spine 15, chest 30, upper chest 45."""
    turn = axis_angle(np.array([0, 0, 1.0]), np.radians(45))
    rot = pose(sk, {"upperChest": turn})
    joints = forward_kinematics(sk, rot, sk.heads[:1])
    m = solve_ik(joints, sk, IKConfig(scale_to_character=False))
    for bone, deg in (("hips", 0), ("spine", 15), ("chest", 30), ("upperChest", 45)):
        want = axis_angle(np.array([0, 0, 1.0]), np.radians(deg))
        assert angle_deg(m.rotations[0, sk.index(bone)], want) < 1e-4, bone
    ok = np.isfinite(joints)
    assert np.abs(forward_kinematics(sk, m.rotations, m.hips)[ok] - joints[ok]).max() < 1e-9


def test_bent_knee_bends_about_the_knee_hinge(sk):
    bend = axis_angle(np.array([1.0, 0, 0]), np.radians(50))
    rot = pose(sk, {"rightLowerLeg": bend, "leftUpperLeg": axis_angle(np.array([1.0, 0, 0]), -0.4),
                    "leftLowerLeg": axis_angle(np.array([1.0, 0, 0]), 0.8)})
    joints = forward_kinematics(sk, rot, sk.heads[:1])
    m = solve_ik(joints, sk, IKConfig(scale_to_character=False))
    for bone in ("rightUpperLeg", "rightLowerLeg", "leftUpperLeg", "leftLowerLeg"):
        assert angle_deg(m.rotations[0, sk.index(bone)], rot[0, sk.index(bone)]) < 1e-4, bone


def test_any_pose_is_reproduced_and_frame_bones_recover_their_rotation(sk):
    rng = np.random.default_rng(1)
    frames = 6
    rot = np.stack([pose(sk, {b: axis_angle(rng.normal(size=3), rng.uniform(0, 0.9)) for b in sk.bones})[0]
                    for _ in range(frames)])
    hips = sk.heads[0] + rng.normal(size=(frames, 3)) * 0.05
    joints = forward_kinematics(sk, rot, hips)
    m = solve_ik(joints, sk, IKConfig(scale_to_character=False))
    fk = forward_kinematics(sk, m.rotations, m.hips)
    ok = np.isfinite(joints)
    assert np.abs(fk[ok] - joints[ok]).max() < 1e-9
    # bones with several attached points are fully determined: hips, the chest carrying neck and shoulders,
    # the head (face points), the hands (finger bases)
    for bone in ("hips", "upperChest", "head", "leftHand", "rightHand"):
        assert angle_deg(m.rotations[:, sk.index(bone)], rot[:, sk.index(bone)]).max() < 1e-4, bone


def test_longer_input_legs_are_scaled_and_the_ankles_still_reached(sk):
    """Joints of a skeleton with 15 % longer legs, walking: scaled by the leg ratio, the ankles reached."""
    tall = Skeleton.from_joints(rest_joints(leg_scale=1.15))
    frames = 8
    t = np.linspace(0, 1, frames)
    rot = np.stack([pose(tall, {"leftUpperLeg": axis_angle(np.array([1.0, 0, 0]), -0.5 * np.sin(6 * x)),
                                "leftLowerLeg": axis_angle(np.array([1.0, 0, 0]), 0.6 * (1 + np.sin(6 * x)))})[0]
                    for x in t])
    hips = tall.heads[0] + np.stack([0 * t, -0.3 * t, 0 * t], axis=1)
    joints = forward_kinematics(tall, rot, hips)
    m = solve_ik(joints, sk)
    expected_scale = sk.leg_length() / tall.leg_length()
    assert m.scale == pytest.approx(expected_scale, rel=1e-9) and m.scale < 0.95
    fk = forward_kinematics(sk, m.rotations, m.hips)
    # reached to a fraction of a millimetre: the scaled input's hips are narrower than the character's, so
    # a straight leg falls short by a little
    for ankle in ("leftFoot", "rightFoot"):
        assert np.abs(fk[:, J[ankle]] - joints[:, J[ankle]] * m.scale).max() < 1e-3
    assert np.allclose(fk[:, J["leftFoot"], 2], fk[:, J["leftFoot"], 2].min() + (joints[:, J["leftFoot"], 2]
                       - joints[:, J["leftFoot"], 2].min()) * m.scale, atol=1e-3)


def test_coco18_keypoints_drive_the_skeleton(sk):
    """COCO-18 keypoints only (what triangulated pose maps give): the joints they show are reproduced."""
    from reference_model.export.ik import coco18_of, joints_from_coco18

    rng = np.random.default_rng(5)
    frames = 5
    rot = np.stack([pose(sk, {b: axis_angle(rng.normal(size=3), rng.uniform(0, 0.5)) for b in
                              ("hips", "spine", "chest", "neck", "head", "leftUpperArm", "leftLowerArm",
                               "rightUpperArm", "rightUpperLeg", "rightLowerLeg", "leftUpperLeg")})[0]
                    for _ in range(frames)])
    truth = forward_kinematics(sk, rot, sk.heads[0] + rng.normal(size=(frames, 3)) * 0.03)
    kp = coco18_of(truth)
    assert np.allclose(kp[:, 1], 0.5 * (truth[:, J["leftUpperArm"]] + truth[:, J["rightUpperArm"]]))
    kp[2, 16] = np.nan  # an ear hidden in one frame
    joints = joints_from_coco18(kp, rest_joints())
    m = solve_ik(joints, sk, IKConfig(scale_to_character=False))
    got = coco18_of(forward_kinematics(sk, m.rotations, m.hips))
    ok = np.isfinite(kp).all(-1)
    err = np.linalg.norm(got - kp, axis=-1)[ok]
    # the limbs exactly; the face through the estimated neck/head chain, within a few mm
    assert err.max() < 0.01 and np.median(err) < 1e-4, (err.max(), np.median(err))
    with pytest.raises(IKError, match="COCO-18"):
        joints_from_coco18(np.zeros((2, 17, 3)), rest_joints())


def test_contacts_are_found_and_pinned():
    joints = np.tile(rest_joints()[None], (12, 1, 1))
    rng = np.random.default_rng(2)
    left = J["leftFoot"]
    joints[:, left, :2] += rng.normal(size=(12, 2)) * 0.002  # a planted foot with 2 mm of jitter
    joints[6:, left, 2] += np.linspace(0.05, 0.3, 6)  # ... lifted from frame 6
    joints[6:, left, 1] -= np.linspace(0.05, 0.5, 6)
    contacts = foot_contacts(joints, IKConfig())
    # frame 5 is the lift-off: its speed counts the step to frame 6, so it is not a contact
    assert contacts[:5, 0].all() and not contacts[5:, 0].any() and contacts[:, 1].all()
    sk = Skeleton.from_joints(rest_joints())
    m = solve_ik(joints, sk, IKConfig(pin_contacts=True, scale_to_character=False))
    ankle = forward_kinematics(sk, m.rotations, m.hips)[:5, left]
    assert np.abs(ankle - ankle.mean(axis=0)).max() < 1e-6  # held still while planted


def test_bad_inputs_name_the_problem(sk):
    with pytest.raises(IKError, match=r"joints must be \[F, "):
        solve_ik(np.zeros((3, 10, 3)), sk)
    joints = forward_kinematics(sk, pose(sk, {}, 2), np.tile(sk.heads[0], (2, 1)))
    joints[:, J["leftFoot"]] = np.nan
    with pytest.raises(IKError, match="leftFoot"):
        solve_ik(joints, sk)
    rest = rest_joints()
    rest[J["rightHand"]] = np.nan
    with pytest.raises(IKError, match="rightHand"):
        Skeleton.from_joints(rest)
    # a joint missing in some frames is interpolated over time
    joints = forward_kinematics(sk, pose(sk, {}, 3), np.tile(sk.heads[0], (3, 1)))
    joints[1, J["leftHand"]] = np.nan
    m = solve_ik(joints, sk, IKConfig(scale_to_character=False))
    assert np.isfinite(m.rotations).all()


def test_bvh_read_back_by_an_independent_forward_kinematics(sk, tmp_path):
    rng = np.random.default_rng(3)
    rot = np.stack([pose(sk, {b: axis_angle(rng.normal(size=3), rng.uniform(0, 0.7)) for b in sk.bones})[0]
                    for _ in range(4)])
    hips = sk.heads[0] + rng.normal(size=(4, 3)) * 0.05
    joints = forward_kinematics(sk, rot, hips)
    m = solve_ik(joints, sk, IKConfig(scale_to_character=False))
    bvh = read_bvh(write_motion_bvh(tmp_path / "m.bvh", m, fps=15.0))
    assert sorted(bvh.names) == sorted(sk.bones) and bvh.frame_time == pytest.approx(1 / 15, abs=1e-7)
    # BVH: centimetres, Y up; channels: root position, then Z X Y degrees per joint in file order
    c = WORLD_TO_BVH
    for f in range(4):
        ch = bvh.channels[f]
        glob, pos = {}, {}
        for k, name in enumerate(bvh.names):
            local = matrix_zxy(ch[3 + 3 * k: 6 + 3 * k])
            p = bvh.parents[k]
            if p < 0:
                glob[k], pos[k] = local, ch[:3] / 100
            else:
                glob[k], pos[k] = glob[p] @ local, pos[p] + glob[p] @ bvh.offsets[k] / 100
            world = c.T @ pos[k]
            assert np.abs(world - joints[f, J[name]]).max() < 1e-5, name


# --------------------------------------------------------------------------------------------------
# Blender: the ground-truth round trip at 64 px

try:
    import importlib.util

    HAS_BPY = importlib.util.find_spec("bpy") is not None
except ValueError:  # pragma: no cover
    HAS_BPY = False


@pytest.fixture(scope="module")
def c4d_env(tmp_path_factory):
    if not HAS_BPY:
        pytest.skip("bpy is not installed")
    home = tmp_path_factory.mktemp("c4d_home")
    mp = pytest.MonkeyPatch()
    mp.setenv("CHARACTER4D_HOME", str(home))
    from character4d.pipeline import default_inputs

    chars, motions = default_inputs()
    yield {p.stem: p for p in chars}, {p.stem: p for p in motions}
    mp.undo()


TINY = ["--pairing", "zip", "--resolution", "64", "--frames", "6", "--views", "4", "--engine", "workbench",
        "--samples", "5", "--format", "folders", "--threads", "2", "--quiet"]


@pytest.fixture(scope="module")
def gt_walk(c4d_env, tmp_path_factory) -> Path:
    """cleo x walk rendered tiny (64 px, 4 views, 6 frames)."""
    from character4d.cli import main as character4d

    chars, motions = c4d_env
    out = tmp_path_factory.mktemp("gt_walk") / "gt"
    assert character4d(["render", "--characters", str(chars["cleo"]), "--motions", str(motions["walk"]),
                        "--out", str(out), *TINY]) == 0
    return out


@pytest.mark.blender
@pytest.mark.slow
def test_ground_truth_round_trip_through_export_rig_and_character4d_render(c4d_env, gt_walk, tmp_path):
    import pygltflib

    from character4d.cli import main as character4d
    from character4d.format import open_samples
    from reference_model.cli import main as charactershot

    chars, motions = c4d_env
    (tmp_path / "gt").symlink_to(gt_walk)
    gt = next(open_samples(tmp_path / "gt"))
    assert charactershot(["export-rig", "--data", str(tmp_path / "gt"), "--out", str(tmp_path / "rig")]) == 0
    report = json.loads((tmp_path / "rig" / "rig.json").read_text())
    assert report["glb_readback_max_mm"] < 0.1  # Blender's importer poses the GLB exactly as solved

    # COCO-18 keypoints (what triangulated pose maps give) through the same command, BVH only
    from reference_model.export.ik import coco18_of

    np.save(tmp_path / "kp.npy", coco18_of(gt.joints))
    assert charactershot(["export-rig", "--data", str(tmp_path / "gt"), "--keypoints", str(tmp_path / "kp.npy"),
                          "--no-glb", "--out", str(tmp_path / "rig_kp")]) == 0
    assert "COCO-18" in json.loads((tmp_path / "rig_kp" / "rig.json").read_text())["joints"]
    assert (tmp_path / "rig_kp" / f"{gt.key}.bvh").is_file() and not (tmp_path / "rig_kp" / f"{gt.key}.glb").exists()

    glb = pygltflib.GLTF2().load(str(tmp_path / "rig" / f"{gt.key}.glb"))
    assert len(glb.skins) >= 1 and len(glb.animations) == 1
    node_names = {n.name for n in glb.nodes}
    bones = set(gt.meta["skeleton"]["character"]["bones"].values())
    assert bones <= node_names  # the character's own bones
    anim = glb.animations[0]
    times = glb.accessors[anim.samplers[0].input]
    assert times.count == gt.num_frames and times.max[0] == pytest.approx((gt.num_frames - 1) / gt.meta["fps"])

    # Render the BVH again on the same character; its joints and pose maps must match the originals.
    bvh = tmp_path / "rig" / f"{gt.key}.bvh"
    motion = tmp_path / "walk.bvh"
    motion.write_bytes(bvh.read_bytes())
    assert character4d(["render", "--characters", str(chars["cleo"]), "--motions", str(motion), "--no-face-front",
                        "--start", "0",
                        "--out", str(tmp_path / "re"), *TINY]) == 0
    again = next(open_samples(tmp_path / "re"))
    assert again.key == gt.key
    body = [J[b] for b in BODY_BONES + FACE_POINTS]
    err = np.linalg.norm(again.joints[:, body] - gt.joints[:, body], axis=-1) * 1000
    assert np.nanmax(err) < 3.0, np.nanmax(err)  # millimetres
    for v in range(gt.num_views):
        for f in range(gt.num_frames):
            a, b = gt.pose(v, f).astype(int), again.pose(v, f).astype(int)
            assert np.abs(a - b).mean() < 1.0 and ((a > 0).any(-1) == (b > 0).any(-1)).mean() > 0.99


@pytest.mark.blender
def test_export_mesh_measures_against_the_ground_truth(gt_walk, tmp_path):
    """`export-mesh --gt --gt-mesh` on a saved fit: the character's own posed surface as the Gaussians gives
    a mesh whose silhouettes and surface match the ground truth's."""
    import torch

    from character4d.format import open_samples
    from reference_model.cli import main as charactershot
    from reference_model.export.blender_gt import posed_ground_truth
    from reference_model.export.mesh import surface_points
    from reference_model.gs4d import Gs4dConfig, save_fit
    from reference_model.gs4d.deformation import DeformationField
    from reference_model.gs4d.model import Gaussians4D

    gt = next(open_samples(gt_walk))
    verts, faces = posed_ground_truth(gt)
    assert verts.shape[0] == gt.num_frames  # (the worker checks the hips against joints.npy, 2 mm)
    # Gaussians on frame 0's surface; a real (zero-motion at init) deformation field, so frame 0 is the test
    pts = surface_points(verts[0], faces, 30000)
    n = len(pts)
    params = dict(means=torch.tensor(pts, dtype=torch.float32), log_scales=torch.full((n, 3), float(np.log(0.005))),
                  quats=torch.tensor([[1.0, 0, 0, 0]]).repeat(n, 1), opacity_logits=torch.full((n,), 3.0),
                  sh0=torch.zeros(n, 1, 3), shN=torch.zeros(n, 0, 3))
    field = DeformationField(aabb=(-1, -1, 0, 1, 1, 2), plane_resolution=8, time_resolution=3, multires=(1,),
                             plane_features=4, mlp_width=8)
    fit = save_fit(tmp_path / "fit", Gaussians4D(params, field, num_frames=1), Gs4dConfig())
    assert charactershot(["export-mesh", str(fit), "--out", str(tmp_path / "mesh"), "--gt", str(gt_walk),
                          "--gt-mesh", "--device", "cpu"]) == 0
    report = json.loads((tmp_path / "mesh" / "mesh.json").read_text())
    iou = report["silhouette_iou"]
    assert report["frames"] == 1 and iou["frames"] == [0] and len(iou["views"]) == gt.num_views
    assert iou["min"] > 0.85, iou
    d = report["surface_distance"]
    assert d["to_gt_mean_mm"] < 6 and d["from_gt_mean_mm"] < 3, d
