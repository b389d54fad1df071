"""The canonical humanoid: VRM 1.0 body, finger and eye bones, the joints of ``joints.npy``, parents."""

from __future__ import annotations

from collections.abc import Mapping

_SIDES = ("left", "right")

BODY_BONES: tuple[str, ...] = (
    "hips", "spine", "chest", "upperChest", "neck", "head",
    "leftShoulder", "leftUpperArm", "leftLowerArm", "leftHand",
    "rightShoulder", "rightUpperArm", "rightLowerArm", "rightHand",
    "leftUpperLeg", "leftLowerLeg", "leftFoot", "leftToes",
    "rightUpperLeg", "rightLowerLeg", "rightFoot", "rightToes",
)  # fmt: skip

REQUIRED_BONES: tuple[str, ...] = (
    "hips", "spine", "head",
    "leftUpperArm", "leftLowerArm", "leftHand", "rightUpperArm", "rightLowerArm", "rightHand",
    "leftUpperLeg", "leftLowerLeg", "leftFoot", "rightUpperLeg", "rightLowerLeg", "rightFoot",
)  # fmt: skip

_FINGERS = ("thumb", "index", "middle", "ring", "little")
# VRM 1.0 phalanges: the thumb has a metacarpal and no intermediate, the other fingers the reverse.
_PHALANGES = {
    "thumb": ("Metacarpal", "Proximal", "Distal"),
    **{finger: ("Proximal", "Intermediate", "Distal") for finger in _FINGERS[1:]},
}

FINGER_BONES: tuple[str, ...] = tuple(
    f"{side}{finger.capitalize()}{phalanx}" for side in _SIDES for finger in _FINGERS for phalanx in _PHALANGES[finger]
)

# Optional: VRM's eye bones. When a skeleton has them, they give the eye points of the pose map.
EYE_BONES: tuple[str, ...] = ("leftEye", "rightEye")

FACE_POINTS: tuple[str, ...] = ("nose", "leftEye", "rightEye", "leftEar", "rightEar")

# Per hand: the heads of the 15 finger bones plus a tip per finger (tail of the distal bone), in the
# OpenPose hand order without the wrist (the wrist is the head of the hand bone).
HAND_POINTS: tuple[str, ...] = tuple(
    f"{side}{finger.capitalize()}{point}"
    for side in _SIDES
    for finger in _FINGERS
    for point in (*_PHALANGES[finger], "Tip")
)

JOINT_NAMES: tuple[str, ...] = BODY_BONES + FACE_POINTS + HAND_POINTS


def _canonical_parents() -> dict[str, str | None]:
    parents: dict[str, str | None] = {
        "hips": None, "spine": "hips", "chest": "spine", "upperChest": "chest", "neck": "upperChest",
        "head": "neck",
    }  # fmt: skip
    for side in _SIDES:
        parents[f"{side}Shoulder"] = "upperChest"
        parents[f"{side}UpperArm"] = f"{side}Shoulder"
        parents[f"{side}LowerArm"] = f"{side}UpperArm"
        parents[f"{side}Hand"] = f"{side}LowerArm"
        parents[f"{side}UpperLeg"] = "hips"
        parents[f"{side}LowerLeg"] = f"{side}UpperLeg"
        parents[f"{side}Foot"] = f"{side}LowerLeg"
        parents[f"{side}Toes"] = f"{side}Foot"
    for side in _SIDES:
        for finger in _FINGERS:
            parent = f"{side}Hand"
            for phalanx in _PHALANGES[finger]:
                name = f"{side}{finger.capitalize()}{phalanx}"
                parents[name] = parent
                parent = name
    for side in _SIDES:
        parents[f"{side}Eye"] = "head"
    return parents


PARENTS: Mapping[str, str | None] = _canonical_parents()

_ALL_BONES: tuple[str, ...] = BODY_BONES + FINGER_BONES + EYE_BONES

