"""Finger chains of the auto-rigger (`character4d.fingers`).

Without Blender: a box humanoid (T- and A-pose) whose hand is a palm box with four finger boxes and a
slanted thumb box, so each digit's root (where it leaves the palm) and tip (its far end's centre) are
known by construction; the same hand with the fingers touching (one block), and the plain box hand, are
mittens with the reason recorded.

With Blender: the rigs of the rigged characters in ../shared/assets are stripped and the bare meshes
auto-rigged; where the original rig has finger bones and the mesh separate fingers (human-male,
human-sintel), the fitted A-pose finger joints and tips are compared with the original's; the others
(human-zombie and human-kenney: a thumb and one block for the four fingers; human-bunny: fingers fused
over most of their length, the thumb against the palm) get no finger bones and say why. A stripped
human-male's fingertips are skinned to their own fingers, and it renders end to end with motions
without finger channels (the default walk), with finger channels at rest (the CMU takes in
../shared/assets never move their fingers) and with curling fingers (a BVH written here).
"""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from character4d.autorig import fit_skeleton
from character4d.fingers import _KNUCKLE_BEHIND, fit_hand
from character4d.skeleton import FINGER_BONES, HAND_POINTS, JOINT_NAMES
from tests.character4d.test_autorig import SHOULDER, _box, _figure, _merge, _rotate_about_y
from tests.conftest import shared_assets

# The left hand (the right one is its mirror image), facing -Y in a T-pose: a palm box from the wrist's
# end (x 0.73) to the knuckle line (x 0.83), four fingers beyond it, and a thumb leaving the palm's front
# edge (y = -0.045) near the wrist, slanting forward and out at 45 degrees.
_PALM = ([0.73, -0.045, 1.365], [0.83, 0.045, 1.395])
_FINGERS = {"Index": (-0.0345, 0.895), "Middle": (-0.0115, 0.905), "Ring": (0.0115, 0.9), "Little": (0.0345, 0.885)}
_FINGER_HALF = 0.0085  # 1.7 cm wide: 0.6 cm gaps between them
_THUMB_ROOT = np.array([0.765, -0.045, 1.38])
_THUMB_DIR = np.array([1.0, -1.0, 0.0]) / np.sqrt(2)
_THUMB_LEN = 0.06


def _slanted_box(root, direction, length, half_w, half_h):
    """A box from ``root`` along the horizontal ``direction``, 2 half_w wide and 2 half_h high."""
    side = np.cross([0.0, 0.0, 1.0], direction)
    corners = []
    for i in range(8):
        a = length if i & 1 else -0.01  # reaches 1 cm back into the palm
        b = half_w if i & 2 else -half_w
        c = half_h if i & 4 else -half_h
        corners.append(root + a * direction + b * side + [0.0, 0.0, c])
    _, f = _box([0, 0, 0], [1, 1, 1])
    return np.array(corners), f


def _hand(touching=False):
    """The left hand's parts: palm, four fingers (touching: 2.3 cm wide, no gaps) and the thumb."""
    parts = [_box(*_PALM)]
    half = 0.0115 if touching else _FINGER_HALF
    for y, x_end in _FINGERS.values():
        parts.append(_box([0.82, y - half, 1.37], [x_end, y + half, 1.39]))
    parts.append(_slanted_box(_THUMB_ROOT, _THUMB_DIR, _THUMB_LEN, 0.01, 0.01))
    return parts


def _figure_with_hands(touching=False, arm_drop_deg=0.0):
    """`_figure` with these hands in place of its box hands, arms lowered by ``arm_drop_deg``."""
    body_v, body_f = _figure(arm_drop_deg=arm_drop_deg)
    # Drop the box hands of `_figure` (every corner further than 0.555 m from the shoulder corner; the
    # wrist box reaches 0.57 m, the hand starts at 0.564 m) and put the fingered hands there.
    far = (np.linalg.norm(np.abs(body_v) - SHOULDER, axis=1) > 0.555) & (np.abs(body_v[:, 0]) > 0.4)
    far &= body_v[:, 2] > 0.6
    parts = [(body_v, body_f[~far[body_f].all(axis=1)])]
    for v, f in _hand(touching):
        v = _rotate_about_y(v, SHOULDER, arm_drop_deg)
        parts.append((v, f))
        parts.append((v * [-1, 1, 1], f[:, ::-1]))
    return _merge(parts)


@pytest.mark.parametrize("drop", [0.0, 40.0])
def test_finger_roots_and_tips_come_from_the_geometry(drop):
    fit = fit_skeleton(*_figure_with_hands(arm_drop_deg=drop))
    j = fit.joints
    assert fit.fingers == "resolved"
    assert json.loads(json.dumps(fit.to_json()))["fingers"] == "resolved"
    assert set(FINGER_BONES) <= set(j)

    def posed(p):  # a point of the T-pose hand where it is in this figure
        return _rotate_about_y(np.asarray(p, float)[None], SHOULDER, drop)[0]

    out = posed([1.0, 0.0, 1.38]) - posed([0.0, 0.0, 1.38])  # along the fingers
    for name, (y, x_end) in _FINGERS.items():
        tip = j[f"left{name}Distal_tail"]
        # The tip: on the finger's axis (y, z = 1.38), just inside its end (one silhouette cell).
        assert np.linalg.norm(tip - posed([x_end, y, 1.38])) < 0.006, name
        # The root is where the finger leaves the palm (x 0.83; found one to three silhouette cells,
        # 2-7 mm, beyond it: the opening's band); the knuckle sits behind it by the stated fraction of
        # the finger's root-to-tip length, on the finger's axis.
        expected = posed([0.83 - _KNUCKLE_BEHIND * (x_end - 0.83), y, 1.38])
        off = j[f"left{name}Proximal"] - expected
        assert abs(off @ out) < 0.012 and np.linalg.norm(off - (off @ out) * out) < 0.004, (name, off)
        # Inner joints in order along the finger.
        xs = [j[f"left{name}{p}"] @ out for p in ("Proximal", "Intermediate", "Distal")] + [tip @ out]
        assert np.all(np.diff(xs) > 0.005), name
    thumb_tip = posed(_THUMB_ROOT + _THUMB_LEN * _THUMB_DIR)
    assert np.linalg.norm(j["leftThumbDistal_tail"] - thumb_tip) < 0.01
    assert j["leftThumbProximal"][1] < -0.04  # on the thumb, in front of the palm
    # The right hand is found on its own, as the left's mirror image.
    for b in FINGER_BONES:
        if b.startswith("left"):
            np.testing.assert_allclose(j["right" + b[4:]], j[b] * [-1, 1, 1], atol=0.004)


def test_mitten_hands_get_no_finger_bones_and_say_why():
    # The box hand of `_figure`: one block beyond the wrist.
    fit = fit_skeleton(*_figure())
    assert fit.fingers.startswith("mitten: ") and "digit" in fit.fingers
    assert not set(FINGER_BONES) & set(fit.joints)
    assert fit.to_json()["fingers"] == fit.fingers
    # Fingers touching side by side over their whole length: one block with a thumb.
    fit = fit_skeleton(*_figure_with_hands(touching=True))
    assert fit.fingers == "mitten: one digit beyond the palm (needs a thumb and at least three fingers) (both hands)"
    assert not set(FINGER_BONES) & set(fit.joints)
    # A point cloud has no surface to see the fingers' gaps on.
    from character4d.autorig import _fit_fingers

    v, _ = _figure_with_hands()
    assert _fit_fingers(v, None, {}).startswith("mitten: a point cloud")


def test_a_hand_with_no_length_is_a_mitten():
    v, f = _box([0, 0, 0], [0.1, 0.1, 0.1])
    assert fit_hand(v, f, np.zeros(3), np.zeros(3), "left").reason.startswith("mitten: ")


# --------------------------------------------------------------------------------------------------
# Rig stripping on the shared characters (Blender)

# Characters whose original rigs have five-finger hands and whose meshes have separate fingers.
RESOLVED = ("human-male", "human-sintel")
# Mittens: zombie/kenney (rigs with a thumb and one "index" bone for the block of four fingers) and
# bunny (fused fingers).
MITTENS = ("human-zombie", "human-kenney", "human-bunny")
# A-pose distance (metres) between the fitted and the original finger points (`HAND_POINTS`: 15 bone
# heads and 5 tips per hand), median and worst, as measured (bpy 5.0.1, scripts/bench/autorig_accuracy.py):
# human-male 0.020 / 0.023 (a middle fingertip), human-sintel 0.034 / 0.044 (a thumb's distal head).
# They include the wrist's own error (0.006 m and 0.04 m): the whole arm is turned into the A-pose
# about the fitted shoulder. The knuckle and inner-joint ratios of `character4d.fingers` were measured
# on these two rigs; the roots and tips are found from the meshes alone.
FINGER_BOUNDS = {"human-male": (0.023, 0.026), "human-sintel": (0.037, 0.048)}
# The same points fitted to the rigged character's own rest-pose mesh (`rigcheck.rest_finger_errors`: no
# wrist or arm error): human-male 0.005 / 0.009 m, human-sintel 0.010 / 0.018 m.
REST_BOUNDS = {"human-male": (0.006, 0.011), "human-sintel": (0.012, 0.02)}


@pytest.mark.blender
def test_stripped_rigs_get_their_fingers_again():
    pytest.importorskip("bpy")
    from character4d.blender.rigcheck import measure, rest_finger_errors

    assets = shared_assets()
    names = RESOLVED + MITTENS
    result = measure([assets / "characters" / f"{n}.glb" for n in names])
    rest = rest_finger_errors([assets / "characters" / f"{n}.glb" for n in RESOLVED])
    for name in RESOLVED:
        entry = rest[str(assets / "characters" / f"{name}.glb")]
        assert entry["fingers"] == "resolved" and set(entry["errors_m"]) == set(HAND_POINTS), name
        err = list(entry["errors_m"].values())
        median, worst = float(np.median(err)), max(err)
        assert median <= REST_BOUNDS[name][0] and worst <= REST_BOUNDS[name][1], f"{name}: {median:.3f}, {worst:.3f}"
    for name in names:
        entry = result[str(assets / "characters" / f"{name}.glb")]
        assert "error" not in entry, f"{name}: {entry.get('error')}"
        fingers = entry["autorig"]["fingers"]
        fitted, ref = entry["fitted"], entry["reference"]
        if name in MITTENS:
            assert fingers.startswith("mitten: ") and "digit" in fingers, (name, fingers)
            assert not set(HAND_POINTS) & set(fitted), name
            continue
        assert fingers == "resolved", (name, fingers)
        assert set(HAND_POINTS) <= set(fitted) and set(HAND_POINTS) <= set(ref), name
        err = {k: float(np.linalg.norm(np.subtract(fitted[k], ref[k]))) for k in HAND_POINTS}
        median, worst = float(np.median(list(err.values()))), max(err.values())
        lim = FINGER_BOUNDS[name]
        assert median <= lim[0] and worst <= lim[1], f"{name}: median {median:.3f} m, worst {worst:.3f} m"


_SKIN = r"""
import json, sys
import bpy
import numpy as np
from character4d.blender.character import load_character, reset_scene
from character4d.skeleton import FINGER_BONES
src, bare = sys.argv[1], sys.argv[2]
reset_scene()
bpy.ops.import_scene.gltf(filepath=src)
for o in bpy.data.objects:
    if o.type == "ARMATURE":
        o.data.pose_position = "REST"
bpy.context.view_layer.update()
bpy.ops.wm.obj_export(filepath=bare, export_materials=False, apply_modifiers=True)
reset_scene()
ch = load_character(bare)
aw = np.array(ch.armature.matrix_world)
tips = {b[:-len("Distal")]: aw[:3, :3] @ np.array(ch.armature.data.bones[b].tail_local) + aw[:3, 3]
        for b in FINGER_BONES if b.endswith("Distal") and b in ch.armature.data.bones}
near = own = 0
for mesh in ch.meshes:
    mw = np.array(mesh.matrix_world)
    names = {g.index: g.name for g in mesh.vertex_groups}
    for v in mesh.data.vertices:
        p = mw[:3, :3] @ np.array(v.co) + mw[:3, 3]
        for finger, tip in tips.items():
            if np.linalg.norm(p - tip) < 0.012:
                near += 1
                best = max(v.groups, key=lambda g: g.weight, default=None)
                own += best is not None and names[best.group].startswith(finger)
print("RESULT " + json.dumps({"fingers": ch.autorig["fingers"], "tips": len(tips), "near": near, "own": own}))
"""


@pytest.mark.blender
def test_fingertips_are_skinned_to_their_own_finger(tmp_path):
    """Blender's automatic weights (or the distance fallback) give each fingertip to its own finger."""
    pytest.importorskip("bpy")
    src = shared_assets() / "characters" / "human-male.glb"
    proc = subprocess.run([sys.executable, "-c", _SKIN, str(src), str(tmp_path / "male-bare.obj")],
                          capture_output=True, text=True, check=True)
    res = json.loads(next(ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT "))[7:])
    assert res["fingers"] == "resolved" and res["tips"] == 10
    # Every vertex within 1.2 cm of a fitted fingertip (154 on human-male) weighs most on that finger.
    assert res["near"] >= 100 and res["own"] == res["near"], res


_STRIP = r"""
import json, sys
import bpy
from character4d.blender.character import reset_scene
reset_scene()
bpy.ops.import_scene.gltf(filepath=sys.argv[1])
for o in bpy.data.objects:
    if o.type == "ARMATURE":
        o.data.pose_position = "REST"
bpy.context.view_layer.update()
bpy.ops.wm.obj_export(filepath=sys.argv[2], export_materials=False, apply_modifiers=True)
"""


def _curling_fingers_bvh(path):
    """A still T-pose on the template skeleton whose fingers curl by 0, 20 and 40 degrees a joint."""
    from character4d.bvh import BvhSkeleton, write_bvh
    from character4d.default_data import template_skeleton

    names, parents, heads = template_skeleton(1.75, "T", fingers=True)
    keep = [i for i, n in enumerate(names) if not n.endswith(("_End", "4"))]  # leaves become end sites
    idx = {names[i]: k for k, i in enumerate(keep)}
    par = tuple(idx[parents[i]] if parents[i] is not None else -1 for i in keep)
    offsets = np.array([heads[i] - (heads[names.index(parents[i])] if parents[i] else 0) for i in keep])
    ends = {}
    for i, n in enumerate(names):
        if n.endswith(("_End", "4")) and parents[i] in idx:
            ends[idx[parents[i]]] = heads[i] - heads[names.index(parents[i])]
    skeleton = BvhSkeleton(tuple(names[i] for i in keep), par, offsets, ends)
    rot = np.tile(np.eye(3), (3, len(keep), 1, 1))
    for k, i in enumerate(keep):
        if "Hand" in names[i] and names[i][-1].isdigit():
            for t, deg in enumerate((0.0, 20.0, 40.0)):
                a = np.radians(deg)
                rot[t, k] = [[np.cos(a), 0, np.sin(a)], [0, 1, 0], [-np.sin(a), 0, np.cos(a)]]
    return write_bvh(path, skeleton, rot, np.tile(heads[0], (3, 1)), fps=5.0)


@pytest.mark.blender
def test_a_stripped_character_with_fingers_renders_with_and_without_finger_motion(default_data, tmp_path):
    from character4d.config import RenderConfig
    from character4d.format import open_samples
    from character4d.pipeline import render

    _, motions = default_data
    assets = shared_assets()
    bare = tmp_path / "male-bare.obj"
    subprocess.run([sys.executable, "-c", _STRIP, str(assets / "characters" / "human-male.glb"), str(bare)],
                   check=True, capture_output=True)
    # start 0: the curling clip is still but for its fingers (no motion for --start auto to look for).
    cfg = RenderConfig(resolution=32, num_frames=3, num_views=2, fps=5.0, samples=1, start=0.0)
    cmu = assets / "motions" / "91_48.fbx"
    curl = _curling_fingers_bvh(tmp_path / "curl.bvh")
    summary = render([bare], [cmu, motions["walk"], curl], tmp_path / "out", cfg, progress=False)
    assert not summary.failed, summary.failed
    samples = {s.key: s for s in open_samples(tmp_path / "out" / "shards")}
    assert set(samples) == {"male-bare__91_48", "male-bare__walk", "male-bare__curl"}
    hand = [JOINT_NAMES.index("leftHand")] + [JOINT_NAMES.index(n) for n in HAND_POINTS if n.startswith("left")]
    shapes = {}
    for key, s in samples.items():
        rig = s.meta["skeleton"]
        assert rig["character_rigged"] is False and rig["autorig"]["fingers"] == "resolved"
        pts = np.asarray(s.joints, dtype=np.float64)[:, hand]  # [F, 21, 3]
        assert np.isfinite(pts).all(), key
        # The hand's shape: distances between the wrist and all finger points, per frame.
        shapes[key] = np.linalg.norm(pts[:, :, None] - pts[:, None, :], axis=-1)
    # The default walk has no finger channels: the fingers stay at rest on the hand (a rigid shape).
    walk = shapes["male-bare__walk"]
    assert np.abs(walk - walk[0]).max() < 1e-3
    # The CMU take has finger channels that stay at their rest rotation: the hand keeps its rest shape.
    assert np.abs(shapes["male-bare__91_48"] - walk[0]).max() < 1e-3
    # Curling fingers are carried over: frame 0 is the rest hand, then the fingertips close on the palm.
    curl = shapes["male-bare__curl"]
    assert np.abs(curl[0] - walk[0]).max() < 1e-3
    wrist_to_tip = [1 + HAND_POINTS.index(f"left{f}Tip") for f in ("Index", "Middle", "Ring", "Little")]
    d = curl[:, 0, wrist_to_tip]  # [F, 4] wrist-to-fingertip distances
    assert np.all(d[2] < d[1] - 0.003) and np.all(d[1] < d[0] - 0.003), d
