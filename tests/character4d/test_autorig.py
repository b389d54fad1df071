"""Auto-rigging from geometry.

Without Blender: a humanoid built here from boxes (many overlapping parts, like game meshes) whose
landmarks are known by construction (ankle at the top of the feet, armpit at the torso's side, wrist at
the narrowing between forearm and hand, neck between shoulders and skull, crotch and waist), in T- and
A-pose, with and without a skirt and a cape, with a chibi's head sitting on the shoulders; shapes that
are no humanoid fail with a reason.

With Blender: the rigs of the rigged characters in ../shared/assets and of two procedural stylised
characters (`character4d.blender.rigcheck.CHECK_CHARACTERS`: an anime one with a big head, hair strands,
a skirt and loose sleeves; a chibi with a head a third of its height, long hair and a cape) are
stripped, the bare meshes auto-rigged and the A-pose joints compared with the original rig's against
issue 11's goal (median <= 3 cm, worst <= 6 cm) or, where it is not met, the best bound measured.
"""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from character4d.autorig import (
    MAJOR_JOINTS,
    AutoRigError,
    RigFit,
    apose_joints,
    fit_skeleton,
    joint_errors,
    voxelize,
)
from tests.conftest import shared_assets

_CUBE_FACES = np.array([[0, 1, 3], [0, 3, 2], [4, 6, 7], [4, 7, 5], [0, 4, 5], [0, 5, 1],
                        [2, 3, 7], [2, 7, 6], [0, 2, 6], [0, 6, 4], [1, 5, 7], [1, 7, 3]])


def _box(lo, hi):
    lo, hi = np.asarray(lo, float), np.asarray(hi, float)
    corners = np.array([[(hi if (i >> k) & 1 else lo)[k] for k in range(3)] for i in range(8)])
    return corners, _CUBE_FACES.copy()


def _merge(parts):
    verts, faces, off = [], [], 0
    for v, f in parts:
        verts.append(v)
        faces.append(f + off)
        off += len(v)
    return np.concatenate(verts), np.concatenate(faces)


def _rotate_about_y(v, pivot, deg):
    a = np.radians(deg)
    rot = np.array([[np.cos(a), 0, np.sin(a)], [0, 1, 0], [-np.sin(a), 0, np.cos(a)]])
    return (v - pivot) @ rot.T + pivot


SHOULDER = np.array([0.17, 0.0, 1.38])  # where the left arm meets the torso's side (armpit corner above)


def _figure(arm_drop_deg=0.0, skirt=False, cape=False, arms=True, left_forearm=True, waist=False, hair=False,
            big_head=False):
    """A box humanoid, 1.80 m, facing -Y. Arms from x = 0.17 (the torso's side) outwards.

    waist: the torso narrows to +-0.11 m over z 1.00-1.10 (the pelvis below keeps the thighs' span).
    hair: a solid block of hair behind and beside the head and neck, down to the shoulders (z 1.42).
    big_head: a chibi's head, 0.64 m wide, sitting on the shoulders (z 1.45) with no neck between.
    """
    parts = []
    for s in (1.0, -1.0):
        def box(lo, hi):
            lo, hi = np.array(lo, float), np.array(hi, float)
            if s < 0:
                lo[0], hi[0] = -hi[0], -lo[0]
            return _box(lo, hi)

        parts.append(box([0.05, -0.20, 0.00], [0.15, 0.05, 0.08]))   # foot
        parts.append(box([0.06, -0.05, 0.06], [0.14, 0.05, 0.50]))   # shin
        parts.append(box([0.03, -0.07, 0.48], [0.17, 0.07, 0.85]))   # thigh
        if arms and (s < 0 or left_forearm):
            arm = [box([0.16, -0.05, 1.33], [0.45, 0.05, 1.43]),      # upper arm
                   box([0.44, -0.04, 1.34], [0.70, 0.04, 1.42]),      # forearm
                   box([0.69, -0.025, 1.36], [0.74, 0.025, 1.40]),    # wrist
                   box([0.73, -0.06, 1.355], [0.90, 0.06, 1.405])]    # hand
            if not left_forearm and s > 0:
                arm = arm[:1]
            for v, f in arm:
                parts.append((_rotate_about_y(v, SHOULDER * [s, 1, 1], s * arm_drop_deg), f))
        elif arms:
            v, f = box([0.16, -0.05, 1.33], [0.45, 0.05, 1.43])
            parts.append((_rotate_about_y(v, SHOULDER * [s, 1, 1], s * arm_drop_deg), f))
    if waist:
        parts.append(_box([-0.17, -0.10, 0.80], [0.17, 0.10, 1.00]))  # pelvis
        parts.append(_box([-0.11, -0.08, 0.99], [0.11, 0.08, 1.11]))  # waist
        parts.append(_box([-0.17, -0.10, 1.10], [0.17, 0.10, 1.45]))  # chest
    else:
        parts.append(_box([-0.17, -0.10, 0.80], [0.17, 0.10, 1.45]))  # pelvis and torso
    if big_head:
        parts.append(_box([-0.32, -0.20, 1.45], [0.32, 0.20, 1.80]))  # head on the shoulders
    else:
        parts.append(_box([-0.05, -0.05, 1.44], [0.05, 0.05, 1.56]))  # neck
        parts.append(_box([-0.09, -0.11, 1.55], [0.09, 0.09, 1.80]))  # head
    if hair:
        parts.append(_box([-0.13, 0.0, 1.42], [0.13, 0.14, 1.84]))    # behind
        for sx in (-1, 1):                                            # beside, down to the shoulders
            parts.append(_box([min(sx * 0.05, sx * 0.13), -0.04, 1.42], [max(sx * 0.05, sx * 0.13), 0.14, 1.84]))
    if skirt:  # an open cone shell, one surface thick, from the waist to the knees
        ang = np.linspace(0, 2 * np.pi, 33)[:-1]
        top = np.stack([0.19 * np.cos(ang), 0.12 * np.sin(ang), np.full_like(ang, 0.95)], 1)
        bottom = np.stack([0.33 * np.cos(ang), 0.26 * np.sin(ang), np.full_like(ang, 0.45)], 1)
        n = len(ang)
        faces = [[i, (i + 1) % n, n + i] for i in range(n)] + [[(i + 1) % n, n + (i + 1) % n, n + i] for i in range(n)]
        parts.append((np.concatenate([top, bottom]), np.array(faces)))
    if cape:  # a single sheet behind the back
        xs, zs = np.meshgrid(np.linspace(-0.25, 0.25, 6), np.linspace(0.5, 1.45, 10))
        v = np.stack([xs.ravel(), np.full(xs.size, 0.16), zs.ravel()], 1)
        faces = []
        for r in range(9):
            for c in range(5):
                i = r * 6 + c
                faces += [[i, i + 1, i + 6], [i + 1, i + 7, i + 6]]
        parts.append((v, np.array(faces)))
    return _merge(parts)


def test_voxelize_fills_solids_and_drops_thin_shells():
    v, f = _box([0, 0, 0], [0.3, 0.3, 0.3])
    size = 0.01
    vox = voxelize(v, f, size)
    assert vox.occupied.sum() * size ** 3 == pytest.approx(0.027, rel=0.12)
    sheet_v = np.array([[0, 0, 0], [0.5, 0, 0], [0, 0, 0.5], [0.5, 0, 0.5]], float)
    sheet_f = np.array([[0, 1, 2], [1, 3, 2]])
    assert voxelize(sheet_v, sheet_f, size).occupied.sum() == 0
    assert voxelize(sheet_v, sheet_f, size, open_radius=0).occupied.sum() > 2000


def test_t_pose_landmarks_come_from_the_geometry():
    fit = fit_skeleton(*_figure())
    j = fit.joints
    assert isinstance(fit, RigFit) and fit.quality > 0.9
    vox = 1.8 / 128
    # Ankle where the feet (0.25 m deep) end and the shins (0.10 m) begin, over the shin.
    assert j["leftFoot"][2] == pytest.approx(0.08, abs=2 * vox)
    assert j["leftFoot"][0] == pytest.approx(0.10, abs=vox)
    # Wrist at the narrowing between forearm and hand (x 0.69-0.74), on the arm's axis.
    assert 0.68 <= j["leftHand"][0] <= 0.75
    assert j["leftHand"][2] == pytest.approx(1.38, abs=1.5 * vox)
    # Shoulder joint at the armpit (the torso's side, x = 0.17), on the arm's axis, one arm radius
    # below the arm's top edge (z 1.43 - 0.05).
    assert j["leftUpperArm"][0] == pytest.approx(0.17, abs=0.025)
    assert j["leftUpperArm"][2] == pytest.approx(1.38, abs=0.02)
    # The elbow on the arm between them; the knee on the leg between hip and ankle.
    assert j["leftUpperArm"][0] < j["leftLowerArm"][0] < j["leftHand"][0]
    assert j["leftFoot"][2] < j["leftLowerLeg"][2] < j["leftUpperLeg"][2]
    # The head joint at the neck (narrowest above the shoulders, z 1.44-1.56), the hips above the crotch.
    assert 1.43 <= j["head"][2] <= 1.57
    assert j["hips"][2] > 0.80 and abs(j["hips"][0]) < 1e-9
    # Mirror symmetry, and every canonical body bone is placed.
    np.testing.assert_allclose(j["rightHand"], j["leftHand"] * [-1, 1, 1])
    from character4d.skeleton import BODY_BONES

    assert all(b in j for b in BODY_BONES)
    assert json.loads(json.dumps(fit.to_json()))["quality"] == pytest.approx(fit.quality, abs=1e-4)


def test_a_pose_and_loose_clothes_give_the_same_skeleton():
    t_pose = fit_skeleton(*_figure()).joints
    a_pose = fit_skeleton(*_figure(arm_drop_deg=40.0)).joints
    # The A-pose wrist is the T-pose wrist turned 40 degrees down about the shoulder corner.
    expected = _rotate_about_y(t_pose["leftHand"][None], SHOULDER, 40.0)[0]
    assert np.linalg.norm(a_pose["leftHand"] - expected) < 0.03
    # A one-sided skirt and cape are ignored: legs, hips and arms stay where they were.
    dressed = fit_skeleton(*_figure(skirt=True, cape=True)).joints
    for name in MAJOR_JOINTS:
        assert np.linalg.norm(dressed[name] - t_pose[name]) < 0.02, name


def test_hip_joints_lie_between_the_crotch_and_the_waist():
    from character4d.autorig import _HIP_OF_WAIST

    vox = 1.8 / 128
    # The thighs merge into the pelvis at z 0.80; the torso is narrowest from z 1.00 (the waist box).
    hip = fit_skeleton(*_figure(waist=True)).joints["leftUpperLeg"]
    assert hip[2] == pytest.approx(0.80 + _HIP_OF_WAIST * (1.00 - 0.80), abs=1.5 * vox)
    # A skirt widening the sections round the pelvis does not move the waist.
    dressed = fit_skeleton(*_figure(waist=True, skirt=True)).joints["leftUpperLeg"]
    assert dressed[2] == pytest.approx(hip[2], abs=vox)
    # Without a waist (one straight torso box) the hip joint is still above the crotch and below the
    # shoulders' line.
    plain = fit_skeleton(*_figure()).joints["leftUpperLeg"]
    assert 0.80 < plain[2] < 1.38


def test_a_chibi_head_on_the_shoulders_leaves_shoulders_and_head_in_place():
    vox = 1.8 / 128
    for drop in (0.0, 40.0):
        fit = fit_skeleton(*_figure(big_head=True, arm_drop_deg=drop))
        j = fit.joints
        # The head box (0.64 m wide, no neck) starts at z 1.45: the head joint is at its base (in the
        # A-pose, between the lowered shoulder line and that base).
        assert j["leftUpperArm"][2] < j["head"][2] <= 1.45 + 2 * vox, drop
        if drop == 0.0:
            assert j["head"][2] == pytest.approx(1.45, abs=2 * vox)
            # The shoulder joint stays on the arm's axis (z 1.38): the head resting on the arms' top
            # edge near the armpit is not taken for the arm.
            assert j["leftUpperArm"][2] == pytest.approx(1.38, abs=0.02)
        assert fit.quality > 0.9


def test_shapes_that_are_no_humanoid_fail_with_a_reason():
    with pytest.raises(AutoRigError, match="feet|legs"):
        fit_skeleton(*_box([-0.3, -0.3, 0], [0.3, 0.3, 1.7]))
    with pytest.raises(AutoRigError, match="arms"):
        fit_skeleton(*_figure(arms=False))
    with pytest.raises(AutoRigError, match="disagree"):
        fit_skeleton(*_figure(left_forearm=False))
    with pytest.raises(AutoRigError, match="vertices"):
        fit_skeleton(np.zeros((3, 2)))


def test_apose_joints_and_errors_by_hand():
    heads = {"leftUpperArm": np.array([0.2, 0.0, 1.4]), "leftLowerArm": np.array([0.5, 0.0, 1.4]),
             "leftHand": np.array([0.75, 0.0, 1.4]), "hips": np.array([0.0, 0.0, 1.0])}
    out = apose_joints(heads, 40.0)
    c, s = np.cos(np.radians(40)), np.sin(np.radians(40))
    np.testing.assert_allclose(out["leftLowerArm"], [0.2 + 0.3 * c, 0, 1.4 - 0.3 * s])
    np.testing.assert_allclose(out["leftHand"], [0.2 + 0.55 * c, 0, 1.4 - 0.55 * s])
    np.testing.assert_allclose(out["hips"], heads["hips"])
    err = joint_errors({"hips": np.array([0.0, 0.03, 1.04])}, heads)
    assert err == {"hips": pytest.approx(0.05)}


# --------------------------------------------------------------------------------------------------
# Rig stripping on real and procedural characters (Blender)

RIGGED = ("human-male", "human-zombie", "human-kenney", "human-sintel", "human-bunny")

# Issue 11's goal over the major joints: median <= 0.03 m and worst <= 0.06 m from the original rig.
GOAL = (0.03, 0.06)
# Characters that meet it (the test asserts the goal for them).
MEETS_GOAL = ("human-male", "human-zombie")
# The others: the best bound measured (bpy 5.0.1, scripts/bench/autorig_accuracy.py --check; median,
# worst and its joint), asserted so they do not get worse; which part of the goal each misses:
# - human-kenney 0.035 / 0.082 (head): both. Its mesh is human-zombie's, vertex for vertex, rigged twice
#   by Mesh2Motion: the two rigs' heads are 0.126 m apart and their median joint 0.062 m, so no single
#   fit is within 0.06 m of both heads; the fit follows zombie's.
# - human-sintel 0.033 / 0.054 (head): the median. Its rig keeps human-male's legs, hips, spine, neck and
#   head joints (within 0.02 m) on a slimmer body with boots and long hair: its head, ankle and spine
#   joints are 0.04-0.05 m off.
# - human-bunny 0.044 / 0.068 (a hand): both. A cartoon with conical arms and a round body: the arm line
#   sits 0.04-0.07 m below the rig's, whose neck joint is 0.08 m below its shoulders (the other rigs':
#   level with them to 0.04 m above).
# - anime 0.033 / 0.069 (neck) and chibi 0.038 / 0.045 (a knee), the procedural check characters
#   (`character4d.blender.rigcheck.CHECK_CHARACTERS`): the project's template puts the neck joint
#   0.04 m above the shoulder line and the shoulder joints 0.05 m further in than the armpit. The chibi's
#   first measurement (0.070 / 0.155, head) led to the two fixes for a head and hair resting on the
#   shoulders, so it is no longer unseen.
BOUNDS = {"human-kenney": (0.036, 0.083), "human-sintel": (0.034, 0.055), "human-bunny": (0.045, 0.069),
          "anime": (0.034, 0.07), "chibi": (0.039, 0.046)}


@pytest.mark.blender
def test_stripped_rigs_are_found_again(tmp_path):
    pytest.importorskip("bpy")
    from character4d.blender.rigcheck import build_check_characters, errors, measure

    assets = shared_assets()
    paths = [assets / "characters" / f"{n}.glb" for n in RIGGED] + build_check_characters(tmp_path)
    result = measure(paths)
    table = {}
    for path in paths:
        entry = result[str(path)]
        assert "error" not in entry, f"{path.stem}: {entry.get('error')}"
        e = errors(entry)
        assert set(e) == set(MAJOR_JOINTS)
        table[path.stem] = (float(np.median(list(e.values()))), max(e.values()), max(e, key=e.get))
        assert 0.5 <= entry["autorig"]["quality"] <= 1.0
    assert set(table) == set(MEETS_GOAL) | set(BOUNDS)
    for name, (median, worst, joint) in table.items():
        lim = GOAL if name in MEETS_GOAL else BOUNDS[name]
        assert median <= lim[0] and worst <= lim[1], f"{name}: median {median:.3f} m, worst {worst:.3f} m ({joint})"


def test_facing_is_read_from_the_arms_and_feet():
    from character4d.autorig import facing_turn

    for drop in (0.0, 40.0):
        v, f = _figure(arm_drop_deg=drop)
        for k in range(4):
            a = k * np.pi / 2
            turned = v @ np.array([[np.cos(a), -np.sin(a), 0], [np.sin(a), np.cos(a), 0], [0, 0, 1]]).T
            # Turned k quarter turns away from -Y, the figure needs (4 - k) more to come back.
            assert facing_turn(turned, f) == (4 - k) % 4
    with pytest.raises(AutoRigError, match="faces"):
        facing_turn(*_box([-0.2, -0.2, 0], [0.2, 0.2, 1.7]))


_TURNED = r"""
import json, sys
import bpy
import numpy as np
from character4d.blender.character import load_character, mesh_vertices_world, reset_scene

def rest_verts(path):
    reset_scene()
    ch = load_character(path)
    ch.armature.data.pose_position = "REST"
    bpy.context.view_layer.update()
    return mesh_vertices_world(ch.meshes), ch.rigged

src, bare = sys.argv[1], sys.argv[2]
reset_scene()
bpy.ops.import_scene.gltf(filepath=src)
# Forward +Z instead of the default -Z: read back with the default axes, the mesh faces +Y.
bpy.ops.wm.obj_export(filepath=bare, export_materials=False, forward_axis="Z")
out = {}
for name, path in (("rigged", src), ("bare", bare)):
    v, rigged = rest_verts(path)
    z = v[:, 2]
    toes = float(np.median(v[z < 0.03, 1]) - np.median(v[(z > 0.15) & (z < 0.4), 1]))
    out[name] = {"rigged": rigged, "toes_ahead": toes}
print("RESULT " + json.dumps(out))
"""


@pytest.mark.blender
def test_an_unrigged_mesh_facing_backwards_is_turned_round(default_data, tmp_path):
    """dax exported to OBJ facing +Y: auto-rigged, it faces -Y like the rigged original (toes ahead)."""
    chars, _ = default_data
    proc = subprocess.run([sys.executable, "-c", _TURNED, str(chars["dax"]), str(tmp_path / "dax-back.obj")],
                          capture_output=True, text=True, check=True)
    res = json.loads(next(ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT "))[7:])
    assert res["rigged"]["rigged"] and not res["bare"]["rigged"]
    assert res["rigged"]["toes_ahead"] < -0.01 and res["bare"]["toes_ahead"] < -0.01, res
