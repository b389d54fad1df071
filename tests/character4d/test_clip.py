"""``--start auto``: a clip with a T-pose lead-in starts after it, in the window with the most motion.

The lead-in clip is written as a BVH here: 1 s of the template's T-pose held still, 0.4 s blending into
the default walk, then the walk. Joint positions for the numpy tests come from forward kinematics
(tests/character4d/template_fk.py, independent of Blender); the Blender test reads the same BVH through the importer.
"""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from character4d.clip import StartChoice, choose_start, is_t_pose
from character4d.default_data import MOTIONS, MotionSpec, motion_to_bvh
from tests.character4d.template_fk import canonical_joints

HOLD, BLEND = 1.0, 0.4
WALK = next(m for m in MOTIONS if m.name == "walk")


def _orthonormal(m: np.ndarray) -> np.ndarray:
    u, _, vt = np.linalg.svd(m)
    return u @ vt


def _lead_in_pose(t: np.ndarray):
    """Template T-pose (identity rotations) for HOLD s, a linear blend into the walk, then the walk."""
    walk_rot, walk_root = WALK.pose(np.maximum(t - HOLD - BLEND, 0.0))
    w = np.clip((t - HOLD) / BLEND, 0.0, 1.0)[:, None, None]
    rot = {b: np.stack([_orthonormal(m) for m in (1 - w) * np.eye(3) + w * r]) for b, r in walk_rot.items()}
    root = walk_root * w[:, 0]
    return rot, root


LEAD_IN = MotionSpec("walk-tpose-lead-in", HOLD + BLEND + 2.0, _lead_in_pose)


def test_t_pose_lead_in_is_skipped():
    joints, dt = canonical_joints(LEAD_IN, 30.0), 1.0 / 30.0
    choice = choose_start(joints, dt, num_frames=25, fps=15.0)
    assert isinstance(choice, StartChoice)
    # The lead-in ends once the arms have come down out of the T-pose (15 degrees: early in the blend).
    assert HOLD <= choice.lead_in <= HOLD + BLEND
    assert choice.start >= choice.lead_in
    # The window fits in the clip and holds walking, not the hold: the walk moves joints at ~0.5 m/s
    # on average (the still hold at 0).
    assert choice.start + 24 / 15.0 <= LEAD_IN.duration + 1e-9
    assert choice.motion > 0.3
    # The held T-pose frames are recognised as such, the walking frames are not.
    tpose = is_t_pose(joints)
    assert tpose[: int(HOLD * 30)].all() and not tpose[int((HOLD + BLEND) * 30):].any()


def test_the_window_with_the_most_motion_wins():
    # Hand-made joints: still for 1 s, a slow sway for 2 s, a fast one for 1 s, then still again.
    dt = 0.05
    t = np.arange(0, 5, dt)
    amp = np.where((t >= 1) & (t < 3), 0.15, 0.0) + np.where((t >= 3) & (t < 4), 0.4, 0.0)
    hand = np.stack([0.3 + amp * np.sin(2 * np.pi * 2 * t), np.zeros_like(t), 1.0 + 0 * t], axis=1)
    joints = {"hips": np.tile([0.0, 0.0, 1.0], (len(t), 1)), "leftHand": hand}
    choice = choose_start(joints, dt, num_frames=11, fps=10.0)  # a 1 s window
    assert choice.lead_in == pytest.approx(1.0, abs=2 * dt)
    assert choice.start == pytest.approx(3.0, abs=2 * dt)


def test_default_motions_have_no_lead_in():
    # The jump starts with a slow crouch: its first frames stay near the first pose, but that is the
    # motion beginning, not a calibration hold; a single T-pose frame (CMU's FBX files) is one.
    for spec in MOTIONS:
        choice = choose_start(canonical_joints(spec, 30.0), 1.0 / 30.0, num_frames=25, fps=15.0)
        assert choice.lead_in == 0.0, spec.name
    walk = canonical_joints(WALK, 30.0)
    tpose = canonical_joints(LEAD_IN, 30.0)
    one = {k: np.concatenate([tpose[k][:1], walk[k]]) for k in walk}
    assert choose_start(one, 1.0 / 30.0, 25, 15.0).lead_in == pytest.approx(1.0 / 30.0)


def test_a_clip_that_is_all_lead_in_starts_at_zero_and_bad_input_is_named():
    still = {"hips": np.zeros((20, 3)), "head": np.tile([0.0, 0.0, 0.6], (20, 1))}
    assert choose_start(still, 0.1, 5, 10.0).start == 0.0
    with pytest.raises(ValueError, match="dt"):
        choose_start(still, 0.0, 5, 10.0)
    with pytest.raises(ValueError, match="root joint"):
        choose_start({"head": still["head"]}, 0.1, 5, 10.0)


_CHILD = r"""
import json, sys
from character4d.blender.motion import sample_motion
from character4d.blender.character import reset_scene
out = {}
for start in ("auto", 0.5):
    reset_scene()
    m = sample_motion(sys.argv[1], 25, 15.0, start)
    out[str(start)] = {"start": m.start, "lead_in": m.lead_in, "t0": float(m.times[0])}
print("RESULT " + json.dumps(out))
"""


@pytest.mark.blender
def test_sample_motion_auto_in_blender(tmp_path):
    pytest.importorskip("bpy")
    bvh = motion_to_bvh(LEAD_IN, tmp_path / "walk-tpose-lead-in.bvh")
    proc = subprocess.run([sys.executable, "-c", _CHILD, str(bvh)], capture_output=True, text=True, check=True)
    res = json.loads(next(ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT "))[7:])
    auto, fixed = res["auto"], res["0.5"]
    assert HOLD <= auto["lead_in"] <= HOLD + BLEND
    assert auto["start"] >= auto["lead_in"] and auto["t0"] == pytest.approx(auto["start"])
    # Explicit seconds keep today's behaviour.
    assert fixed == {"start": 0.5, "lead_in": 0.0, "t0": 0.5}
