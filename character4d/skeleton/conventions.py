"""Naming conventions of source skeletons as name tables, and the registry ``register_convention`` extends."""

from __future__ import annotations

import difflib
import re
from collections.abc import Callable, Mapping, Sequence

from character4d.skeleton.bones import _ALL_BONES, _PHALANGES, _SIDES
from character4d.skeleton.hierarchy import _spine_chain_roles, _strip_namespace

# --------------------------------------------------------------------------------------------------
# Name tables
# --------------------------------------------------------------------------------------------------


def _table(
    centre: Mapping[str, Sequence[str]],
    sided: Mapping[str, Sequence[str]],
    side_tokens: tuple[str, str],
    fingers: Mapping[str, Sequence[str]] = {},
) -> dict[str, tuple[str, ...]]:
    """Build canonical -> aliases. ``sided`` keys are canonical suffixes (``UpperArm``) and its aliases
    contain ``{S}``, replaced by the convention's left/right token. ``fingers`` maps a canonical finger
    (``thumb``) to its three source bone templates, proximal to distal."""
    table = {canonical: tuple(aliases) for canonical, aliases in centre.items()}
    for side, token in zip(_SIDES, side_tokens):
        for suffix, aliases in sided.items():
            table[f"{side}{suffix}"] = tuple(alias.replace("{S}", token) for alias in aliases)
        for finger, templates in fingers.items():
            for phalanx, template in zip(_PHALANGES[finger], templates):
                table[f"{side}{finger.capitalize()}{phalanx}"] = (template.replace("{S}", token),)
    return table


def _numbered(template: str, names: Sequence[str]) -> dict[str, tuple[str, ...]]:
    return {finger: tuple(template.format(name=name, n=n) for n in (1, 2, 3)) for finger, name in names}


_MIXAMO = _table(
    # Mixamo's Spine/Spine1/Spine2 are spine/chest/upperChest; Chest/UpperChest/Toes are the variants of
    # Mixamo-like exports (e.g. Kenney's characters).
    centre={"hips": ["Hips"], "spine": ["Spine"], "chest": ["Spine1", "Chest"],
            "upperChest": ["Spine2", "UpperChest"], "neck": ["Neck"], "head": ["Head"]},
    sided={"Shoulder": ["{S}Shoulder"], "UpperArm": ["{S}Arm"], "LowerArm": ["{S}ForeArm"], "Hand": ["{S}Hand"],
           "UpperLeg": ["{S}UpLeg"], "LowerLeg": ["{S}Leg"], "Foot": ["{S}Foot"], "Toes": ["{S}ToeBase", "{S}Toes"],
           "Eye": ["{S}Eye"]},
    side_tokens=("Left", "Right"),
    fingers=_numbered("{{S}}Hand{name}{n}", [("thumb", "Thumb"), ("index", "Index"), ("middle", "Middle"),
                                             ("ring", "Ring"), ("little", "Pinky")]),
)  # fmt: skip

# The CMU BVH release: like Mixamo, but LowerBack/Spine/Spine1 is the spine chain.
_CMU_BVH = _table(
    centre={"hips": ["Hips"], "spine": ["LowerBack"], "chest": ["Spine"], "upperChest": ["Spine1"],
            "neck": ["Neck"], "head": ["Head"]},
    sided={"Shoulder": ["{S}Shoulder"], "UpperArm": ["{S}Arm"], "LowerArm": ["{S}ForeArm"], "Hand": ["{S}Hand"],
           "UpperLeg": ["{S}UpLeg"], "LowerLeg": ["{S}Leg"], "Foot": ["{S}Foot"], "Toes": ["{S}ToeBase"]},
    side_tokens=("Left", "Right"),
    fingers={"index": ["{S}HandIndex1"]},
)  # fmt: skip

_VRM1 = {name: (name,) for name in _ALL_BONES}

# VRM 0.x differs from 1.0 in the thumb only: Proximal/Intermediate/Distal -> Metacarpal/Proximal/Distal.
_VRM0 = dict(_VRM1)
for _side in _SIDES:
    _VRM0[f"{_side}ThumbMetacarpal"] = (f"{_side}ThumbProximal",)
    _VRM0[f"{_side}ThumbProximal"] = (f"{_side}ThumbIntermediate",)
    _VRM0[f"{_side}ThumbDistal"] = (f"{_side}ThumbDistal",)

_VROID = _table(
    centre={"hips": ["J_Bip_C_Hips"], "spine": ["J_Bip_C_Spine"], "chest": ["J_Bip_C_Chest"],
            "upperChest": ["J_Bip_C_UpperChest"], "neck": ["J_Bip_C_Neck"], "head": ["J_Bip_C_Head"]},
    sided={"Shoulder": ["J_Bip_{S}_Shoulder"], "UpperArm": ["J_Bip_{S}_UpperArm"], "LowerArm": ["J_Bip_{S}_LowerArm"],
           "Hand": ["J_Bip_{S}_Hand"], "UpperLeg": ["J_Bip_{S}_UpperLeg"], "LowerLeg": ["J_Bip_{S}_LowerLeg"],
           "Foot": ["J_Bip_{S}_Foot"], "Toes": ["J_Bip_{S}_ToeBase"], "Eye": ["J_Adj_{S}_FaceEye"]},
    side_tokens=("L", "R"),
    fingers=_numbered("J_Bip_{{S}}_{name}{n}", [("thumb", "Thumb"), ("index", "Index"), ("middle", "Middle"),
                                                ("ring", "Ring"), ("little", "Little")]),
)  # fmt: skip

# Unreal mannequin; spine/chest/upperChest come from the spine_NN chain (UE4 has 3, UE5 5 bones).
_UNREAL = _table(
    centre={"hips": ["pelvis"], "neck": ["neck_01"], "head": ["head"]},
    sided={"Shoulder": ["clavicle_{S}"], "UpperArm": ["upperarm_{S}"], "LowerArm": ["lowerarm_{S}"],
           "Hand": ["hand_{S}"], "UpperLeg": ["thigh_{S}"], "LowerLeg": ["calf_{S}"], "Foot": ["foot_{S}"],
           "Toes": ["ball_{S}"], "Eye": ["eye_{S}", "FACIAL_{S}_Eye"]},
    side_tokens=("l", "r"),
    fingers={finger: tuple(f"{name}_0{n}_{{S}}" for n in (1, 2, 3))
             for finger, name in [("thumb", "thumb"), ("index", "index"), ("middle", "middle"), ("ring", "ring"),
                                  ("little", "pinky")]},
)  # fmt: skip

# CMU/MotionBuilder FBX (and the DAZ names derived from it: abdomenLower, lShldrBend, ...).
_CMU = _table(
    centre={"hips": ["hip"], "spine": ["abdomen", "abdomenLower"], "chest": ["chest", "chestLower"],
            "upperChest": ["chestUpper"], "neck": ["neck", "neckLower"], "head": ["head"]},
    sided={"Shoulder": ["{S}Collar"], "UpperArm": ["{S}Shldr", "{S}ShldrBend"],
           "LowerArm": ["{S}ForeArm", "{S}ForearmBend"], "Hand": ["{S}Hand"],
           "UpperLeg": ["{S}Thigh", "{S}ThighBend"], "LowerLeg": ["{S}Shin"], "Foot": ["{S}Foot"],
           "Toes": ["{S}Toe"], "Eye": ["{S}Eye"]},
    side_tokens=("l", "r"),
    fingers=_numbered("{{S}}{name}{n}", [("thumb", "Thumb"), ("index", "Index"), ("middle", "Mid"),
                                         ("ring", "Ring"), ("little", "Pinky")]),
)  # fmt: skip
for _side in _SIDES:
    # CMU spells the eyes leftEye/rightEye, DAZ lEye/rEye.
    _CMU[f"{_side}Eye"] = (*_CMU[f"{_side}Eye"], f"{_side}Eye")

_UNREAL_SPINE = re.compile(r"^spine_?0*(\d+)$", re.IGNORECASE)


def _unreal_spine(names: Sequence[str], parent_of: Mapping[str, str | None] | None) -> dict[str, str]:
    numbered = []
    for name in names:
        match = _UNREAL_SPINE.match(_strip_namespace(name))
        if match:
            numbered.append((int(match.group(1)), name))
    return _spine_chain_roles([name for _, name in sorted(numbered)])



# A rule that adds matches a name table cannot express (e.g. numbered spine chains):
# (bone names, parent map or None) -> {canonical: source name}.
Extra = Callable[[Sequence[str], "Mapping[str, str | None] | None"], dict[str, str]]

# name -> (table, extra rule); the order breaks ties between equally good conventions. Built-in tables
# first; register_convention appends.
_TABLES: dict[str, tuple[dict[str, tuple[str, ...]], Extra | None]] = {
    "vrm1": (_VRM1, None),
    "vrm0": (_VRM0, None),
    "vroid": (_VROID, None),
    "mixamo": (_MIXAMO, None),
    "cmu_bvh": (_CMU_BVH, None),
    "unreal": (_UNREAL, _unreal_spine),
    "cmu": (_CMU, None),
}
_BUILT_IN = tuple(_TABLES)
HEURISTIC = "heuristic"


def conventions() -> tuple[str, ...]:
    """Names of the conventions :func:`~character4d.skeleton.map_skeleton` tries, in tie-breaking order:
    the built-in name tables, the registered ones, then ``"heuristic"``."""
    return (*_TABLES, HEURISTIC)


def register_convention(
    name: str,
    table: Mapping[str, str | Sequence[str]],
    extra: Extra | None = None,
    *,
    replace: bool = False,
) -> None:
    """Add a naming convention that :func:`~character4d.skeleton.map_skeleton` tries.

    Registered conventions are tried after the built-in tables and before the heuristic; the best
    match still wins (most required bones, then most body bones, ...), so a new table never hides a
    better one. Matching is as for the built-in tables: case-insensitive, namespaces (``rig:``) and
    separator-delimited prefixes (``Character1_``) ignored.

    Args:
        name: the convention's name, recorded in ``SkeletonMap.convention`` and meta.json.
        table: canonical bone name (``"leftUpperArm"``) -> the source bone name, or several alternative
            names in order of preference.
        extra: optional rule ``(names, parent_map) -> {canonical: source}`` applied before the table
            (for what a table cannot say, such as numbered spine chains).
        replace: allow replacing an already registered (non built-in) convention of that name.

    Raises:
        TypeError: if ``name`` is not a string, ``table`` not a mapping of strings, or ``extra`` not callable.
        ValueError: for an empty or reserved name (a built-in convention, ``"heuristic"``), a name already
            registered without ``replace``, an empty table, or a canonical name that does not exist (the
            message lists the closest canonical names).
    """
    if not isinstance(name, str):
        raise TypeError(f"name: expected str, got {type(name).__name__}")
    if not name or name == HEURISTIC or name in _BUILT_IN:
        raise ValueError(f"name: {name!r} is empty or reserved (built-in: {', '.join((*_BUILT_IN, HEURISTIC))})")
    if name in _TABLES and not replace:
        raise ValueError(f"name: convention {name!r} is already registered (pass replace=True to replace it)")
    if not isinstance(table, Mapping):
        raise TypeError(f"table: expected a mapping canonical name -> source name(s), got {type(table).__name__}")
    if not table:
        raise ValueError("table: expected at least one canonical bone")
    if extra is not None and not callable(extra):
        raise TypeError(f"extra: expected a callable (names, parents) -> dict or None, got {type(extra).__name__}")
    checked: dict[str, tuple[str, ...]] = {}
    for canonical, aliases in table.items():
        if canonical not in _ALL_BONES:
            close = difflib.get_close_matches(str(canonical), _ALL_BONES, n=3)
            raise ValueError(
                f"table: {canonical!r} is not a canonical bone (closest: {', '.join(close) or 'none'}; "
                "see character4d.skeleton.BODY_BONES, FINGER_BONES, EYE_BONES)"
            )
        aliases = (aliases,) if isinstance(aliases, str) else tuple(aliases)
        if not aliases or not all(isinstance(a, str) and a for a in aliases):
            raise TypeError(f"table[{canonical!r}]: expected a source bone name or a sequence of them, got {aliases!r}")
        checked[canonical] = aliases
    _TABLES[name] = (checked, extra)


def unregister_convention(name: str) -> None:
    """Remove a convention added by :func:`register_convention`.

    Raises:
        ValueError: if ``name`` is built in or was never registered.
    """
    if name in _BUILT_IN or name not in _TABLES:
        registered = [k for k in _TABLES if k not in _BUILT_IN]
        raise ValueError(
            f"name: {name!r} is not a registered convention (registered: {', '.join(registered) or 'none'})"
        )
    del _TABLES[name]
