"""The canonical humanoid and the mapping of source skeletons onto it (numpy-free, pure Python).

Every skeleton (character or motion) is mapped onto one canonical humanoid: the VRM 1.0 humanoid bone
set (DESIGN.md section 6). Known naming conventions are matched through name tables; anything else
goes through a token-based heuristic that uses the bone hierarchy when given. ``map_skeleton`` picks
the convention that matches the most required bones and fails with ``UnmappableSkeletonError`` naming
what is missing and which source bones look closest.

The package is split by idea, behind this one import path (every public name is re-exported here):
``bones`` (the canonical humanoid), ``conventions`` (name tables and :func:`register_convention`),
``tables`` (table matching), ``heuristic`` (token-based guessing), ``hierarchy`` (name normalisation,
parents), ``mapping`` (:func:`map_skeleton`, :class:`SkeletonMap`).
"""

from __future__ import annotations

from typing import Any

from character4d.skeleton.bones import (
    BODY_BONES,
    EYE_BONES,
    FACE_POINTS,
    FINGER_BONES,
    HAND_POINTS,
    JOINT_NAMES,
    PARENTS,
    REQUIRED_BONES,
)
from character4d.skeleton.conventions import conventions, register_convention, unregister_convention
# Kept importable from here for code written against the single-module version.
from character4d.skeleton.heuristic import _match_heuristic  # noqa: F401
from character4d.skeleton.hierarchy import _parent_map  # noqa: F401
from character4d.skeleton.mapping import SkeletonMap, UnmappableSkeletonError, describe_mapping, map_skeleton

__all__ = [
    "BODY_BONES",
    "CONVENTIONS",
    "EYE_BONES",
    "FACE_POINTS",
    "FINGER_BONES",
    "HAND_POINTS",
    "JOINT_NAMES",
    "PARENTS",
    "REQUIRED_BONES",
    "SkeletonMap",
    "UnmappableSkeletonError",
    "conventions",
    "describe_mapping",
    "map_skeleton",
    "register_convention",
    "unregister_convention",
]


def __getattr__(name: str) -> Any:
    # CONVENTIONS follows the registry (register_convention), so it is computed when read.
    if name == "CONVENTIONS":
        return conventions()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
