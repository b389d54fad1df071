"""Where a clip starts in its source motion (numpy only): ``--start auto``.

Motion-capture takes open with a calibration pose: the actor stands in a T-pose, or still, before the
motion starts (CMU's clips do). Rendering from t = 0 puts that pose in the first frames. `choose_start`
skips such a lead-in and then picks the window of the output clip's length that holds the most motion.
The Blender layer samples the source's joint positions on a regular grid and calls it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

# A frame belongs to the lead-in while its pose (hips-relative joints) stays within this mean distance
# of the first frame's: mocap noise on a standing actor is ~1 cm, a first step moves joints by 10+ cm.
STILL_TOLERANCE_M = 0.04
# Both upper arms within this angle of horizontal, and the elbows bent less than T_POSE_ELBOW_DEG: a
# T-pose (CMU's calibration frames hold the arms level with the elbows bent ~17 degrees).
T_POSE_DEG = 15.0
T_POSE_ELBOW_DEG = 30.0
# A still prefix without a T-pose is a calibration hold only when it lasts this long: a motion that
# merely starts slowly (a jump's crouch) keeps its first frames.
MIN_HOLD_S = 0.5


@dataclass(frozen=True)
class StartChoice:
    """The chosen start of a clip.

    Attributes:
        start: seconds since the first keyframe.
        lead_in: length (seconds) of the calibration/still prefix that was skipped.
        motion: mean joint speed (m/s) over the chosen window.
    """

    start: float
    lead_in: float
    motion: float


def is_t_pose(joints: dict[str, np.ndarray]) -> np.ndarray:
    """Per frame: both arms stretched out sideways, near horizontal.

    Args:
        joints: canonical bone -> [T, 3] positions (needs left/right UpperArm, LowerArm, Hand).

    Returns:
        [T] bool (all False when the arms are not mapped).
    """
    needed = [f"{s}{b}" for s in ("left", "right") for b in ("UpperArm", "LowerArm", "Hand")]
    if not all(n in joints for n in needed):
        some = next(iter(joints.values()))
        return np.zeros(len(some), dtype=bool)
    limit = np.sin(np.radians(T_POSE_DEG))
    ok = None
    for side in ("left", "right"):
        upper = joints[f"{side}LowerArm"] - joints[f"{side}UpperArm"]
        fore = joints[f"{side}Hand"] - joints[f"{side}LowerArm"]
        un = upper / np.maximum(np.linalg.norm(upper, axis=-1, keepdims=True), 1e-9)
        fn = fore / np.maximum(np.linalg.norm(fore, axis=-1, keepdims=True), 1e-9)
        flat = np.abs(un[:, 2]) < limit
        straight = (un * fn).sum(-1) > np.cos(np.radians(T_POSE_ELBOW_DEG))
        side_ok = flat & straight
        ok = side_ok if ok is None else ok & side_ok
    return ok


def choose_start(joints: dict[str, np.ndarray], dt: float, num_frames: int, fps: float,
                 hips: str = "hips") -> StartChoice:
    """Skip a leading calibration pose, then pick the window with the most motion.

    The lead-in is the longest prefix of frames that are a T-pose or still (hips-relative joints
    within `STILL_TOLERANCE_M` of the first frame's); a still prefix with no T-pose in it counts only
    from `MIN_HOLD_S` on.

    Args:
        joints: canonical bone -> [T, 3] world positions sampled every ``dt`` seconds from the first
            keyframe (T >= 2).
        dt: sampling interval (seconds).
        num_frames: output clip length F.
        fps: output frame rate (the window is (F - 1) / fps seconds long).
        hips: the root joint (poses are compared relative to it).

    Returns:
        The choice. A clip that is all lead-in (a still or T-pose file) starts at 0.

    Raises:
        ValueError: for fewer than 2 samples, a non-positive dt, or inconsistent shapes.
    """
    if dt <= 0:
        raise ValueError(f"dt must be > 0, got {dt}")
    if hips not in joints:
        raise ValueError(f"joints must include the root joint {hips!r}")
    names = sorted(joints)
    pos = np.stack([np.asarray(joints[n], dtype=np.float64) for n in names], axis=1)  # [T, J, 3]
    if pos.ndim != 3 or pos.shape[0] < 2 or pos.shape[2] != 3:
        raise ValueError(f"joints must be [T >= 2, 3] arrays, got {pos.shape[0]} samples")
    rel = pos - pos[:, names.index(hips)][:, None]
    still = np.linalg.norm(rel - rel[0], axis=-1).mean(axis=-1) < STILL_TOLERANCE_M
    tpose = is_t_pose(joints)
    moving = np.nonzero(~(still | tpose))[0]
    count = len(pos)
    lead = int(moving[0]) if len(moving) else count
    if not tpose[:lead].any() and lead * dt < MIN_HOLD_S:
        lead = 0
    speed = np.linalg.norm(np.diff(pos, axis=0), axis=-1).mean(axis=-1) / dt  # [T-1], m/s
    window = max(1, int(round((num_frames - 1) / fps / dt)))
    if lead >= count - 1:
        return StartChoice(0.0, 0.0, float(speed[:window].mean()))
    # Window sums of the speed over [s, s + window) for every start s >= lead that fits in the clip.
    csum = np.concatenate([[0.0], np.cumsum(speed)])
    last = max(lead, len(speed) - window)
    starts = np.arange(lead, last + 1)
    ends = np.minimum(starts + window, len(speed))
    score = (csum[ends] - csum[starts]) / np.maximum(ends - starts, 1)
    best = int(starts[int(np.argmax(score))])  # the earliest of equal windows
    return StartChoice(float(best * dt), float(lead * dt), float(score.max()))
