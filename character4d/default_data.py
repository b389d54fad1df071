"""The embedded default data: procedural characters and motions that the project generates itself.

Motions are pure numpy and written as BVH files; characters are built in Blender from the specs below
(`character4d.blender.procedural`) and written as GLB files. Both then go through exactly the same
import path as real files. Everything is deterministic and cached under
``$CHARACTER4D_HOME/default-data/<DATA_VERSION>`` (default ``~/.cache/character4d``).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from character4d.bvh import BvhSkeleton, write_bvh
from character4d.retarget import axis_angle

# Bump when the generated files change, so caches are rebuilt instead of silently reused.
DATA_VERSION = "v4"

X, Y, Z = np.eye(3)

# The template humanoid, Mixamo names, heads of bones in a T-pose of height 1 (feet on z=0, facing -Y,
# the character's left towards +X). Proportions are scaled per character.
_TEMPLATE: tuple[tuple[str, str | None, tuple[float, float, float]], ...] = (
    ("Hips", None, (0.0, 0.0, 0.53)),
    ("Spine", "Hips", (0.0, 0.0, 0.585)),
    ("Spine1", "Spine", (0.0, 0.0, 0.655)),
    ("Spine2", "Spine1", (0.0, 0.0, 0.73)),
    ("Neck", "Spine2", (0.0, 0.0, 0.83)),
    ("Head", "Neck", (0.0, 0.0, 0.875)),
    ("HeadTop_End", "Head", (0.0, 0.0, 1.0)),
    ("LeftShoulder", "Spine2", (0.025, 0.0, 0.805)),
    ("LeftArm", "LeftShoulder", (0.10, 0.0, 0.805)),
    ("LeftForeArm", "LeftArm", (0.28, 0.0, 0.805)),
    ("LeftHand", "LeftForeArm", (0.43, 0.0, 0.805)),
    ("RightShoulder", "Spine2", (-0.025, 0.0, 0.805)),
    ("RightArm", "RightShoulder", (-0.10, 0.0, 0.805)),
    ("RightForeArm", "RightArm", (-0.28, 0.0, 0.805)),
    ("RightHand", "RightForeArm", (-0.43, 0.0, 0.805)),
    ("LeftUpLeg", "Hips", (0.085, 0.0, 0.50)),
    ("LeftLeg", "LeftUpLeg", (0.085, 0.0, 0.275)),
    ("LeftFoot", "LeftLeg", (0.085, 0.0, 0.045)),
    ("LeftToeBase", "LeftFoot", (0.085, -0.09, 0.012)),
    ("LeftToe_End", "LeftToeBase", (0.085, -0.15, 0.012)),
    ("RightUpLeg", "Hips", (-0.085, 0.0, 0.50)),
    ("RightLeg", "RightUpLeg", (-0.085, 0.0, 0.275)),
    ("RightFoot", "RightLeg", (-0.085, 0.0, 0.045)),
    ("RightToeBase", "RightFoot", (-0.085, -0.09, 0.012)),
    ("RightToe_End", "RightToeBase", (-0.085, -0.15, 0.012)),
)

# Finger bones (3 segments + end) so hand pose maps have something to draw; offsets from the hand head
# along the arm (+x for the left hand), spread across y.
_FINGERS = {"Thumb": (0.025, -0.03, 0.035), "Index": (0.06, -0.022, 0.03), "Middle": (0.065, -0.007, 0.032),
            "Ring": (0.062, 0.008, 0.03), "Pinky": (0.055, 0.022, 0.024)}


@dataclass(frozen=True)
class CharacterSpec:
    """A procedural character.

    Attributes:
        name: id of the character (file stem).
        height: standing height in metres.
        widths: body-part thickness multipliers (torso, limbs, head).
        colors: RGB in [0, 1] per part: skin, top, bottom, shoes, hair, accent.
        rest: "T" or "A" rest pose of the exported skeleton (both occur in real data).
        prefix: bone-name prefix, e.g. "mixamorig:" (Mixamo exports vary).
        clothing: loose items that follow the body: "skirt", "cape", "long_hair".
        head_scale: head size relative to the template (stylised characters have big heads).
    """

    name: str
    height: float
    widths: tuple[float, float, float]
    colors: dict[str, tuple[float, float, float]]
    rest: str = "T"
    prefix: str = "mixamorig:"
    clothing: tuple[str, ...] = ()
    head_scale: float = 1.0


CHARACTERS: tuple[CharacterSpec, ...] = (
    CharacterSpec(
        "ada", 1.68, (0.9, 0.9, 1.0),
        {"skin": (0.95, 0.76, 0.65), "top": (0.80, 0.12, 0.15), "bottom": (0.80, 0.12, 0.15),
         "shoes": (0.15, 0.10, 0.08), "hair": (0.35, 0.18, 0.08), "accent": (0.95, 0.85, 0.3)},
        rest="A", prefix="mixamorig:", clothing=("skirt", "long_hair"), head_scale=1.1),
    CharacterSpec(
        "bram", 1.85, (1.25, 1.2, 1.0),
        {"skin": (0.62, 0.42, 0.30), "top": (0.15, 0.35, 0.75), "bottom": (0.35, 0.25, 0.18),
         "shoes": (0.1, 0.1, 0.1), "hair": (0.08, 0.06, 0.05), "accent": (0.9, 0.9, 0.9)},
        rest="T", prefix="mixamorig1:"),
    CharacterSpec(
        "cleo", 1.62, (1.0, 0.95, 1.0),
        {"skin": (0.98, 0.84, 0.74), "top": (0.15, 0.6, 0.3), "bottom": (0.95, 0.95, 0.9),
         "shoes": (0.55, 0.3, 0.1), "hair": (0.95, 0.8, 0.35), "accent": (0.55, 0.15, 0.6)},
        rest="T", prefix="", clothing=("cape",), head_scale=1.35),
    CharacterSpec(
        "dax", 1.78, (1.05, 1.0, 0.95),
        {"skin": (0.85, 0.62, 0.48), "top": (0.95, 0.55, 0.1), "bottom": (0.2, 0.2, 0.25),
         "shoes": (0.9, 0.9, 0.95), "hair": (0.1, 0.1, 0.12), "accent": (0.1, 0.6, 0.9)},
        rest="A", prefix="mixamorig:"),
)


def template_skeleton(height: float = 1.0, rest: str = "T", arm_drop_deg: float = 40.0,
                      fingers: bool = True) -> tuple[list[str], list[str | None], np.ndarray]:
    """Bone names, parents and head positions of the template humanoid.

    Args:
        height: standing height in metres.
        rest: "T" (arms horizontal) or "A" (arms lowered by ``arm_drop_deg``).
        arm_drop_deg: A-pose arm angle below horizontal.
        fingers: include 5 fingers x (3 segments + end) per hand.

    Returns:
        (names, parents, heads [B, 3]) without any prefix; parents use the same names.

    Raises:
        ValueError: for an unknown rest pose.
    """
    if rest not in ("T", "A"):
        raise ValueError(f"rest must be 'T' or 'A', got {rest!r}")
    names = [n for n, _, _ in _TEMPLATE]
    parents = [p for _, p, _ in _TEMPLATE]
    heads = [np.array(h) for _, _, h in _TEMPLATE]
    if fingers:
        for side, sign in (("Left", 1.0), ("Right", -1.0)):
            hand = heads[names.index(f"{side}Hand")]
            for finger, (dx, dy, seg) in _FINGERS.items():
                parent = f"{side}Hand"
                for k in range(1, 5):
                    name = f"{side}Hand{finger}{k}" if k < 4 else f"{side}Hand{finger}4"
                    names.append(name)
                    parents.append(parent)
                    heads.append(hand + np.array([sign * (dx + (k - 1) * seg), dy, -0.005 * (k - 1)]))
                    parent = name
    heads_arr = np.array(heads) * height
    if rest == "A":
        for side, sign in (("Left", 1.0), ("Right", -1.0)):
            pivot = heads_arr[names.index(f"{side}Arm")].copy()
            rot = axis_angle(Y, sign * np.radians(arm_drop_deg))
            for i, n in enumerate(names):
                if _is_descendant(n, f"{side}Arm", names, parents):
                    heads_arr[i] = pivot + rot @ (heads_arr[i] - pivot)
    return names, parents, heads_arr


def _is_descendant(name: str, ancestor: str, names: list[str], parents: list[str | None]) -> bool:
    while name is not None:
        if name == ancestor:
            return True
        name = parents[names.index(name)]
    return False


# ---------------------------------------------------------------------------------------------------
# Motions: local rotations per bone as functions of time, in world axes of the T-pose template.


@dataclass(frozen=True)
class MotionSpec:
    """A procedural motion.

    Attributes:
        name: id of the motion (file stem).
        duration: seconds.
        pose: t [T] -> (rotations: bone -> [T, 3, 3] local rotations in world axes, root offset [T, 3]).
    """

    name: str
    duration: float
    pose: Callable[[np.ndarray], tuple[dict[str, np.ndarray], np.ndarray]] = field(repr=False)


def _rot(axis: np.ndarray, angles_rad: np.ndarray) -> np.ndarray:
    return np.stack([axis_angle(axis, a) for a in np.atleast_1d(angles_rad)])


def _arms_down(drop_deg: float, t: np.ndarray) -> dict[str, np.ndarray]:
    """Lower both T-pose arms towards the body (left arm rotates +Y, right arm -Y)."""
    return {"LeftArm": _rot(Y, np.full(len(t), np.radians(drop_deg))),
            "RightArm": _rot(Y, np.full(len(t), -np.radians(drop_deg)))}


def _walk(t: np.ndarray) -> tuple[dict[str, np.ndarray], np.ndarray]:
    w = 2 * np.pi * t / 1.0  # one gait cycle per second
    swing = np.radians(28) * np.sin(w)
    rot = {
        # Negative rotation about X swings a leg forward (towards -Y, where the character faces).
        "LeftUpLeg": _rot(X, -swing),
        "RightUpLeg": _rot(X, swing),
        "LeftLeg": _rot(X, np.radians(35) * np.clip(np.sin(w + 1.3), 0, None)),
        "RightLeg": _rot(X, np.radians(35) * np.clip(np.sin(w + 1.3 + np.pi), 0, None)),
        "Spine": _rot(Z, np.radians(6) * np.sin(w)),
        "Hips": _rot(Z, -np.radians(5) * np.sin(w)),
    }
    arms = _arms_down(72, t)
    rot["LeftArm"] = _rot(X, np.radians(22) * np.sin(w)) @ arms["LeftArm"]
    rot["RightArm"] = _rot(X, -np.radians(22) * np.sin(w)) @ arms["RightArm"]
    rot["LeftForeArm"] = _rot(X, -np.radians(15) * np.ones_like(t))
    rot["RightForeArm"] = _rot(X, -np.radians(15) * np.ones_like(t))
    root = np.stack([np.zeros_like(t), -0.9 * t, 0.015 * np.cos(2 * w)], axis=-1)
    return rot, root


def _wave(t: np.ndarray) -> tuple[dict[str, np.ndarray], np.ndarray]:
    w = 2 * np.pi * t / 0.8
    rot = _arms_down(70, t)
    # Right arm raised (rotation about +Y lifts the -X-pointing arm, rotation about +Z brings it forward),
    # forearm up and waving side to side. The hand stays below ~1.9 m: the Character4D rig (camera at
    # 0.7 m, 39.6 degree fov, 3.5 m away) sees up to 1.96 m, and a raised hand above that is cut off.
    rot["RightArm"] = _rot(Y, np.radians(20) * np.ones_like(t)) @ _rot(Z, np.radians(10) * np.ones_like(t))
    rot["RightForeArm"] = _rot(Y, np.radians(45) + np.radians(20) * np.sin(w))
    rot["Spine"] = _rot(Y, np.radians(4) * np.sin(w / 2))
    rot["Head"] = _rot(Z, np.radians(10) * np.sin(w / 2))
    root = np.zeros((len(t), 3))
    return rot, root


def _jump(t: np.ndarray) -> tuple[dict[str, np.ndarray], np.ndarray]:
    # Phases over 1.6 s: crouch (0-0.5), take-off and flight (0.5-1.0), landing crouch (1.0-1.6).
    crouch = np.clip(np.sin(np.pi * np.clip(t / 0.5, 0, 1)) * (t < 0.5), 0, 1) \
        + np.clip(np.sin(np.pi * np.clip((t - 1.0) / 0.6, 0, 1)) * (t >= 1.0), 0, 1)
    flight = np.sin(np.pi * np.clip((t - 0.5) / 0.5, 0, 1)) * ((t >= 0.5) & (t < 1.0))
    knee = np.radians(70) * crouch
    rot = {
        "LeftUpLeg": _rot(X, -knee * 0.8), "RightUpLeg": _rot(X, -knee * 0.8),
        "LeftLeg": _rot(X, knee * 1.4), "RightLeg": _rot(X, knee * 1.4),
        "LeftFoot": _rot(X, -knee * 0.5), "RightFoot": _rot(X, -knee * 0.5),
        "Spine": _rot(X, -knee * 0.35),
    }
    lift = np.radians(70) * (1 - crouch) * flight + np.radians(72) * (1 - flight)
    rot["LeftArm"] = _rot(X, -np.radians(50) * flight) @ _rot(Y, lift)
    rot["RightArm"] = _rot(X, -np.radians(50) * flight) @ _rot(Y, -lift)
    root = np.stack([np.zeros_like(t), np.zeros_like(t), -0.16 * crouch + 0.35 * flight], axis=-1)
    return rot, root


def _dance(t: np.ndarray) -> tuple[dict[str, np.ndarray], np.ndarray]:
    w = 2 * np.pi * t / 1.2
    turn = 2 * np.pi * t / 2.4  # a full turn over the clip
    rot = {
        "Hips": _rot(Z, turn),
        "Spine": _rot(Y, np.radians(8) * np.sin(w)),
        "LeftArm": _rot(Y, np.radians(20) + np.radians(25) * np.sin(w)),
        "RightArm": _rot(Y, -np.radians(20) + np.radians(25) * np.sin(w)),
        # Elbows bend forward (towards -Y): -Z for the left forearm, +Z for the right one.
        "LeftForeArm": _rot(Z, -np.radians(40) * (1 + np.sin(w)) / 2),
        "RightForeArm": _rot(Z, np.radians(40) * (1 + np.sin(w)) / 2),
        "LeftUpLeg": _rot(Y, np.radians(10) * np.clip(np.sin(w), 0, None)),
        "RightUpLeg": _rot(Y, -np.radians(10) * np.clip(-np.sin(w), 0, None)),
    }
    root = np.stack([0.05 * np.sin(w), np.zeros_like(t), 0.02 * np.abs(np.sin(w))], axis=-1)
    return rot, root


MOTIONS: tuple[MotionSpec, ...] = (
    MotionSpec("walk", 2.4, _walk),
    MotionSpec("wave", 2.4, _wave),
    MotionSpec("jump", 1.6, _jump),
    MotionSpec("dance", 2.4, _dance),
)


def motion_to_bvh(spec: MotionSpec, path: Path, fps: float = 30.0) -> Path:
    """Write a procedural motion as a BVH file on the template skeleton (T-pose rest, Mixamo names).

    Args:
        spec: the motion.
        path: output .bvh path.
        fps: frame rate of the file.

    Returns:
        The path written.
    """
    names, parents, heads = template_skeleton(height=1.75, rest="T", fingers=False)
    keep = [i for i, n in enumerate(names) if not n.endswith("_End")]
    ends = {n: i for i, n in enumerate(names) if n.endswith("_End")}
    idx = {names[i]: k for k, i in enumerate(keep)}
    offsets = np.array([heads[i] - (heads[names.index(parents[i])] if parents[i] else 0) for i in keep])
    end_sites = {}
    for end_name, i in ends.items():
        end_sites[idx[parents[i]]] = heads[i] - heads[names.index(parents[i])]
    skel = BvhSkeleton(
        names=tuple(names[i] for i in keep),
        parents=tuple(idx[parents[i]] if parents[i] else -1 for i in keep),
        offsets=offsets,
        end_sites=end_sites,
    )
    t = np.arange(int(round(spec.duration * fps)) + 1) / fps
    rot, root = spec.pose(t)
    local = np.broadcast_to(np.eye(3), (len(t), len(skel.names), 3, 3)).copy()
    for bone, r in rot.items():
        local[:, idx[bone]] = r
    root_pos = offsets[0][None] + root
    return write_bvh(path, skel, local, root_pos, fps=fps)


def default_data_dir(home: str | Path | None = None) -> Path:
    """Where the default data is cached: ``$CHARACTER4D_HOME/default-data/<version>``."""
    base = Path(home or os.environ.get("CHARACTER4D_HOME", Path.home() / ".cache" / "character4d"))
    return base / "default-data" / DATA_VERSION


def ensure_default_motions(home: str | Path | None = None) -> list[Path]:
    """Generate (once) and return the default BVH motions.

    Args:
        home: cache root (default ``$CHARACTER4D_HOME`` or ``~/.cache/character4d``).

    Returns:
        Sorted paths of the motion files.
    """
    out = default_data_dir(home) / "motions"
    out.mkdir(parents=True, exist_ok=True)
    paths = []
    for spec in MOTIONS:
        path = out / f"{spec.name}.bvh"
        if not path.exists():
            tmp = path.with_suffix(".bvh.tmp")
            motion_to_bvh(spec, tmp)
            os.replace(tmp, path)
        paths.append(path)
    return sorted(paths)


def ensure_default_characters(home: str | Path | None = None) -> list[Path]:
    """Generate (once, in Blender) and return the default GLB characters.

    Args:
        home: cache root.

    Returns:
        Sorted paths of the character files.

    Raises:
        ImportError: when bpy is missing and the characters are not cached yet.
    """
    out = default_data_dir(home) / "characters"
    out.mkdir(parents=True, exist_ok=True)
    missing = [s for s in CHARACTERS if not (out / f"{s.name}.glb").exists()]
    if missing:
        from character4d.blender.procedural import build_character_file

        for spec in missing:
            build_character_file(spec, out / f"{spec.name}.glb")
    return sorted(out / f"{s.name}.glb" for s in CHARACTERS)
