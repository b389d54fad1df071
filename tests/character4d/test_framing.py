"""Framing: joints and silhouettes leaving the image are detected, and the default motions stay in frame."""

from __future__ import annotations

import numpy as np
import pytest

from character4d.cameras import RigConfig, project, rig_cameras
from character4d.default_data import CHARACTERS, MOTIONS
from character4d.framing import framing_record, framing_warning, joints_outside, silhouette_outside
from tests.character4d.template_fk import forward_kinematics

CAMS = rig_cameras(RigConfig(num_views=21, resolution=512))


def test_joints_outside_against_the_rig_geometry():
    # The rig looks horizontally at (0, 0, 0.7) from 3.5 m with tan(fov / 2) = 0.36: at the orbit's centre
    # it sees heights 0.7 +- 1.26 m. A point at 1.90 m is inside every view, one at 2.02 m in none.
    inside = np.array([[[0.0, 0.0, 1.90], [0.0, 0.0, 0.1]]])
    outside = np.array([[[0.0, 0.0, 2.02], [0.0, 0.0, 0.1]]])
    assert not joints_outside(inside, CAMS).any()
    assert joints_outside(outside, CAMS).all()
    # Half a metre towards view 0's camera (at -Y) the top of view 0 drops to 0.7 + 0.36 * 3.0 = 1.78 m;
    # the opposite camera (view ~10.5) is now 4 m away and sees up to 2.14 m.
    near = np.array([[[0.0, -0.5, 1.85]]])
    flags = joints_outside(near, CAMS)[:, 0]
    assert flags[0] and not flags[10] and not flags[11]
    # NaN joints (a skeleton without them) are ignored; a joint behind a camera is outside.
    assert not joints_outside(np.full((1, 2, 3), np.nan), CAMS).any()
    assert joints_outside(np.array([[[0.0, -3.6, 0.7]]]), CAMS)[0, 0]
    assert joints_outside(inside[[0, 0]], CAMS).shape == (21, 2)


def test_silhouette_outside_and_the_record():
    uv = np.array([[1.0, 2.0], [63.0, 10.0]])
    assert not silhouette_outside(uv, np.array([3.0, 3.0]), 64, 64)
    assert silhouette_outside(uv + [1.0, 0.0], np.array([3.0, 3.0]), 64, 64)  # x = 64 is off the image
    assert silhouette_outside(uv, np.array([3.0, -0.1]), 64, 64)  # behind the camera
    # A thin 1.9 m tall pole (5 cm radius) at the orbit's centre fits under the rig's top (0.7 + 0.36 d
    # at the pole's near side, d = 3.45 m: 1.94 m), a 2.0 m one does not.
    ang = np.linspace(0, 2 * np.pi, 16)
    for top, out in ((1.9, False), (2.0, True)):
        ring = np.stack([0.05 * np.cos(ang), 0.05 * np.sin(ang), np.full_like(ang, top)], 1)
        uvs, z = project(ring, CAMS.viewmats[0], CAMS.Ks[0])
        assert silhouette_outside(uvs, z, 512, 512) is out
    with pytest.raises(ValueError, match="uv"):
        silhouette_outside(np.zeros((2, 3)), np.zeros(2), 8, 8)
    j = np.array([[False, True], [False, False]])
    s = np.array([[False, True], [True, False]])
    rec = framing_record(j, s, np.array([False, True]))
    assert rec == {"joint_outside": [[0, 1], [0, 0]], "silhouette_outside": [[0, 1], [1, 0]],
                   "apose_silhouette_outside": [0, 1], "clipped": 2}
    meta = {"character_id": "bram", "motion_id": "jump", "framing": rec}
    assert framing_warning(meta) == "bram__jump: 2 of 4 images leave the frame (views 0, 1)"
    assert framing_warning({"framing": framing_record(j & False, s & False, [0, 0])}) is None
    assert framing_warning({}) is None


@pytest.mark.parametrize("motion", MOTIONS, ids=lambda m: m.name)
def test_default_motions_stay_in_frame(motion):
    """Every default character's joints, over every 1.6 s window (25 frames at 15 fps) of every default
    motion, with the hips motion centred on the window as ``root_motion="center"`` does, project
    inside all 21 views of the rig (the head-top and fingertip joints included), at least 8 px (of 512)
    from the border: room for the hair and the skin beyond the joints."""
    window = 24
    for spec in CHARACTERS:
        names, pos = forward_kinematics(motion, 15.0, spec.height, fingers=True)
        hips = pos[:, names.index("Hips")]
        for start in range(0, max(1, len(pos) - window)):
            clip = pos[start:start + window + 1].copy()
            clip[..., :2] -= hips[start:start + window + 1, :2].mean(axis=0)
            flags = joints_outside(clip, CAMS)
            assert not flags.any(), (f"{spec.name} {motion.name} from frame {start}: joints leave views "
                                     f"{np.nonzero(flags.any(axis=1))[0].tolist()}")
            for v in range(CAMS.num_views):
                uv, _ = project(clip.reshape(-1, 3), CAMS.viewmats[v], CAMS.Ks[v])
                margin = min(uv.min(), 512 - uv.max())
                assert margin >= 8, f"{spec.name} {motion.name} view {v}: a joint {margin:.0f} px from the border"
