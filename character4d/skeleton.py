"""The canonical humanoid and the mapping of source skeletons onto it (numpy-free, pure Python).

Every skeleton (character or motion) is mapped onto one canonical humanoid: the VRM 1.0 humanoid bone
set (DESIGN.md section 6). Known naming conventions are matched through name tables; anything else
goes through a token-based heuristic that uses the bone hierarchy when given. ``map_skeleton`` picks
the convention that matches the most required bones and fails with ``UnmappableSkeletonError`` naming
what is missing and which source bones look closest.
"""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Mapping, Sequence

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
    "describe_mapping",
    "map_skeleton",
]

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


class UnmappableSkeletonError(ValueError):
    """A skeleton lacks required humanoid bones.

    Attributes:
        missing: Canonical names of the required bones that no source bone matched.
        found: The partial mapping (canonical -> source name) of the best convention.
        convention: That convention's name.
    """

    def __init__(self, message: str, missing: tuple[str, ...], found: Mapping[str, str], convention: str) -> None:
        super().__init__(message)
        self.missing = tuple(missing)
        self.found = dict(found)
        self.convention = convention


@dataclass(frozen=True)
class SkeletonMap:
    """Which source bone plays which canonical humanoid bone.

    Attributes:
        convention: The naming convention that matched (one of ``CONVENTIONS``).
        bones: canonical name -> source bone name, for every mapped bone (body, fingers, eyes).
        unmapped: Source bones that play no canonical role (roots, twist/leaf bones, props, ...).
    """

    convention: str
    bones: dict[str, str]
    unmapped: tuple[str, ...] = field(default=())

    def canonical_of(self, source_name: str) -> str | None:
        """The canonical name a source bone was mapped to, or None if it is unmapped."""
        for canonical, source in self.bones.items():
            if source == source_name:
                return canonical
        return None

    def parent_of(self, canonical: str) -> str | None:
        """The nearest *mapped* canonical ancestor of a canonical bone (skips e.g. a missing upperChest).

        Raises:
            KeyError: if ``canonical`` is not a canonical bone name.
        """
        if canonical not in PARENTS:
            raise KeyError(f"canonical: expected one of the canonical bones, got {canonical!r}")
        parent = PARENTS[canonical]
        while parent is not None and parent not in self.bones:
            parent = PARENTS[parent]
        return parent

    def to_json(self) -> dict[str, Any]:
        """Plain-JSON form for ``meta.json``: ``{"convention", "bones", "unmapped"}``."""
        return {"convention": self.convention, "bones": dict(self.bones), "unmapped": list(self.unmapped)}

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> "SkeletonMap":
        """Inverse of :meth:`to_json`."""
        return cls(convention=str(d["convention"]), bones=dict(d["bones"]), unmapped=tuple(d.get("unmapped", ())))


# --------------------------------------------------------------------------------------------------
# Name normalisation and the hierarchy
# --------------------------------------------------------------------------------------------------

# Namespaces end at the last ':' (Mixamo `mixamorig:`, Maya `rig:`), '|' (FBX/glTF `Armature|`) or '/'.
_NAMESPACE = re.compile(r"^.*[:|/]")
_SEPARATORS = "_.- "


def _strip_namespace(name: str) -> str:
    return _NAMESPACE.sub("", name)


def _parent_map(names: Sequence[str], parents: Any) -> dict[str, str | None] | None:
    """Normalise ``parents`` (mapping name -> parent name, or a sequence aligned with ``names`` of parent
    names / parent indices with -1 / None for roots) to name -> parent name. Parents that are not in
    ``names`` (the armature object, a scene node) make their child a root."""
    if parents is None:
        return None
    known = set(names)
    result: dict[str, str | None] = {}
    if isinstance(parents, Mapping):
        for name in names:
            parent = parents.get(name)
            result[name] = parent if parent in known and parent != name else None
        return result
    parents = list(parents)
    if len(parents) != len(names):
        raise ValueError(f"parents: expected {len(names)} entries (one per bone name), got {len(parents)}")
    for i, (name, parent) in enumerate(zip(names, parents)):
        if parent is None:
            result[name] = None
        elif isinstance(parent, str):
            result[name] = parent if parent in known and parent != name else None
        elif isinstance(parent, int) or hasattr(parent, "__index__"):
            index = int(parent)
            if index < -1 or index >= len(names) or index == i:
                raise ValueError(
                    f"parents[{i}]: expected -1 or an index in [0, {len(names)}) other than {i}, got {index}"
                )
            result[name] = None if index == -1 else names[index]
        else:
            raise ValueError(f"parents[{i}]: expected a bone name, an index or None, got {parent!r}")
    return result


def _depths(names: Sequence[str], parent_of: Mapping[str, str | None] | None) -> dict[str, int]:
    """Depth of every bone in the hierarchy (0 for roots); position in ``names`` when no hierarchy."""
    if parent_of is None:
        return {name: i for i, name in enumerate(names)}
    depths: dict[str, int] = {}
    for name in names:
        depth, node, seen = 0, parent_of.get(name), {name}
        while node is not None and node not in seen:
            seen.add(node)
            depth += 1
            node = parent_of.get(node)
        depths[name] = depth
    return depths


def _spine_chain_roles(chain: Sequence[str]) -> dict[str, str]:
    """Spread a hips-to-neck chain of spine bones over spine / chest / upperChest.

    The first bone is the spine, the last one (with three or more) the upperChest and the middle one the
    chest, so UE4's spine_01..03 map one to one and UE5's spine_01..05 map 01 / 03 / 05.
    """
    roles: dict[str, str] = {}
    if not chain:
        return roles
    roles["spine"] = chain[0]
    if len(chain) == 2:
        roles["chest"] = chain[1]
    elif len(chain) >= 3:
        roles["chest"] = chain[(len(chain) - 1) // 2]
        roles["upperChest"] = chain[-1]
    return roles


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


_Extra = Callable[[Sequence[str], "Mapping[str, str | None] | None"], dict[str, str]]

# name -> (table, extra rule); the order breaks ties between equally good conventions.
_TABLES: dict[str, tuple[dict[str, tuple[str, ...]], _Extra | None]] = {
    "vrm1": (_VRM1, None),
    "vrm0": (_VRM0, None),
    "vroid": (_VROID, None),
    "mixamo": (_MIXAMO, None),
    "cmu_bvh": (_CMU_BVH, None),
    "unreal": (_UNREAL, _unreal_spine),
    "cmu": (_CMU, None),
}

CONVENTIONS: tuple[str, ...] = (*_TABLES, "heuristic")


def _ends_with_part(name: str, alias: str) -> bool:
    """``name`` ends with ``alias`` right after a separator: a prefix such as ``character1_``."""
    return len(name) > len(alias) and name.endswith(alias) and name[-len(alias) - 1] in _SEPARATORS


def _match_table(
    names: Sequence[str],
    table: Mapping[str, Sequence[str]],
    extra: _Extra | None,
    parent_of: Mapping[str, str | None] | None,
) -> dict[str, str]:
    """Map ``names`` with one name table. A source name matches an alias when, case-insensitively, its
    namespace-stripped form equals the alias, or failing that when it ends with the alias after a
    separator (``Character1_LeftArm``, ``Armature_Hips``). Each source bone serves one canonical bone."""
    stripped = [_strip_namespace(name).lower() for name in names]
    result = dict(extra(names, parent_of)) if extra else {}
    used = set(result.values())
    for canonical, aliases in table.items():
        if canonical in result:
            continue
        found = None
        for alias in (a.lower() for a in aliases):
            free = [(n, s) for n, s in zip(names, stripped) if n not in used]
            found = next((n for n, s in free if s == alias), None)
            if found is None:
                found = next((n for n, s in free if _ends_with_part(s, alias)), None)
            if found is not None:
                break
        if found is not None:
            result[canonical] = found
            used.add(found)
    return result


# --------------------------------------------------------------------------------------------------
# Heuristic matching
# --------------------------------------------------------------------------------------------------

# Upper-case runs before a capitalised word, capitalised words, lower/upper-case runs, digit runs:
# "lShldr" -> l Shldr, "LeftUpLeg" -> Left Up Leg, "J_Bip_L_Hand" -> J Bip L Hand, "RThigh" -> R Thigh.
_TOKEN = re.compile(r"[A-Z]+(?=[A-Z][a-z])|[A-Z]?[a-z]+|[A-Z]+|\d+")
_LEFT = {"l", "left", "lft", "lf"}
_RIGHT = {"r", "right", "rt", "rgt"}
# Bones with these tokens are helpers, not the limb itself (twist bones, leaf/end bones, IK targets).
_JUNK = {"end", "leaf", "nub", "tip", "top", "twist", "roll", "ik", "fk", "pole", "target", "ctrl", "control",
         "helper", "socket", "mch", "org", "null", "dummy", "prop", "weapon", "attach", "corrective", "offset",
         "jiggle", "tail", "hair", "skirt", "bust", "breast", "ear", "jaw", "tongue", "tooth", "teeth", "lid", "brow"}
_FINGER_WORDS = {"thumb": "thumb", "index": "index", "middle": "middle", "mid": "middle", "ring": "ring",
                 "pinky": "little", "little": "little", "pinkie": "little"}
_PHALANX_WORDS = {"metacarpal": "metacarpal", "proximal": "proximal", "intermediate": "intermediate",
                  "medial": "intermediate", "middle": "intermediate", "distal": "distal"}  # fmt: skip


@dataclass(frozen=True)
class _Candidate:
    name: str
    role: str  # a canonical suffix ("UpperArm") for sided roles, a canonical name for centre roles
    side: str | None
    number: int | None = None  # spine/neck/finger numbering
    finger: str | None = None
    phalanx: str | None = None  # "proximal", ... when the name says so
    weak: bool = False  # generic words ("leg", "arm", "root") that need confirmation


def _tokens(name: str) -> list[str]:
    return [t.lower() for t in _TOKEN.findall(_strip_namespace(name))]


def _classify(name: str) -> _Candidate | None:
    """Guess the humanoid role of one bone from its name alone."""
    tokens = _tokens(name)
    words = [t for t in tokens if not t.isdigit()]
    if not words or _JUNK.intersection(words):
        return None
    is_left, is_right = bool(_LEFT.intersection(words)), bool(_RIGHT.intersection(words))
    side = "left" if is_left and not is_right else "right" if is_right and not is_left else None
    words = [w for w in words if w not in _LEFT | _RIGHT]
    digits = [int(t) for t in tokens if t.isdigit()]
    number = digits[-1] if digits else None

    def has(*keys: str) -> bool:
        # Substrings of single words: "upperarm", "LeftUpLeg" and "upper_arm" all read alike, but an
        # "Armature_" prefix never reads as an arm.
        return any(k in w for w in words for k in keys)

    arm = any(w.endswith("arm") for w in words)  # arm, upperarm, forearm, lowerarm
    leg = any(w.endswith("leg") for w in words)  # leg, upleg, upperleg, lowerleg
    upper = has("upper") or "up" in words
    lower = has("lower", "fore") or "low" in words

    finger_word = next((w for w in words if w in _FINGER_WORDS), None)
    finger = _FINGER_WORDS.get(finger_word) if finger_word else None
    if finger is not None:
        if side is None:
            return None
        phalanx = next((_PHALANX_WORDS[w] for w in words if w in _PHALANX_WORDS and w != finger_word), None)
        if phalanx == "metacarpal" and finger != "thumb":
            return None  # UE5's index_metacarpal_l etc. have no VRM counterpart
        return _Candidate(name, "finger", side, number=number, finger=finger, phalanx=phalanx)
    if side is None:
        if has("pelvis", "hip"):
            return _Candidate(name, "hips", None)
        if "root" in words:
            return _Candidate(name, "hips", None, weak=True)
        if has("chest", "ribcage", "thorax"):
            return _Candidate(name, "upperChest" if upper else "chest", None)
        if has("spine", "torso", "abdomen", "waist", "lowerback"):
            return _Candidate(name, "spine", None, number=number)
        if has("neck"):
            return _Candidate(name, "neck", None, number=number)
        if "head" in words:
            return _Candidate(name, "head", None)
        return None
    if any(w in ("eye", "eyeball") or w.endswith("eye") for w in words):
        return _Candidate(name, "Eye", side)
    if has("hand", "wrist", "palm"):
        return _Candidate(name, "Hand", side)
    if has("forearm", "elbow") or (arm and lower):
        return _Candidate(name, "LowerArm", side)
    if has("shldr") or (arm and upper):
        return _Candidate(name, "UpperArm", side)
    if has("shoulder", "clavicle", "collar", "clav"):
        return _Candidate(name, "Shoulder", side)
    if arm:
        return _Candidate(name, "UpperArm", side, weak=True)
    if has("toe", "ball"):
        return _Candidate(name, "Toes", side)
    if has("foot", "ankle"):
        return _Candidate(name, "Foot", side)
    if has("thigh", "upleg", "hip") or (leg and upper):
        return _Candidate(name, "UpperLeg", side)
    if has("calf", "shin", "knee") or (leg and lower):
        return _Candidate(name, "LowerLeg", side)
    if leg:
        return _Candidate(name, "LowerLeg", side, weak=True)
    return None


def _pick(cands: Iterable[_Candidate], depth: Mapping[str, int]) -> _Candidate | None:
    """Of several bones claiming one role, take the strong, shallowest, lowest-numbered one."""
    return min(cands, key=lambda c: (c.weak, depth[c.name], c.number or 0), default=None)


def _common_ancestor(a: str, b: str, parent_of: Mapping[str, str | None]) -> str | None:
    ancestors = []
    node: str | None = parent_of.get(a)
    while node is not None and node not in ancestors:
        ancestors.append(node)
        node = parent_of.get(node)
    node = parent_of.get(b)
    while node is not None:
        if node in ancestors:
            return node
        node = parent_of.get(node)
    return None


def _finger_phalanges(finger: str, group: Sequence[_Candidate], depth: Mapping[str, int]) -> dict[str, _Candidate]:
    """Assign the bones of one finger to its phalanges: by phalanx words when every bone has one, else
    by rank (number, then depth), so 0- and 1-based numbering both work; the first thumb bone is the
    metacarpal, as in Mixamo and VRoid."""
    phalanges = _PHALANGES[finger]
    if group and all(c.phalanx is not None for c in group):
        words = {c.phalanx: c for c in group}
        if finger == "thumb" and "metacarpal" not in words and "intermediate" in words:
            # VRM 0.x-style thumb: proximal/intermediate/distal are metacarpal/proximal/distal.
            shift = {"proximal": "Metacarpal", "intermediate": "Proximal", "distal": "Distal"}
            return {shift[w]: c for w, c in words.items() if w in shift}
        return {w.capitalize(): c for w, c in words.items() if w.capitalize() in phalanges}
    ranked = sorted(group, key=lambda c: (c.number if c.number is not None else 1_000, depth[c.name]))
    return dict(zip(phalanges, ranked))


def _match_heuristic(names: Sequence[str], parent_of: Mapping[str, str | None] | None) -> dict[str, str]:
    """Token-based matching for unknown conventions; the hierarchy (when given) orders spine chains and
    disambiguates generic words."""
    depth = _depths(names, parent_of)
    cands = [c for c in (_classify(n) for n in names) if c is not None]
    result: dict[str, str] = {}

    def claim(canonical: str, cand: _Candidate | None) -> None:
        if cand is not None and canonical not in result and cand.name not in result.values():
            result[canonical] = cand.name

    for side in _SIDES:
        sided = [c for c in cands if c.side == side]
        by_role = {role: [c for c in sided if c.role == role] for role in
                   ("Shoulder", "UpperArm", "LowerArm", "Hand", "UpperLeg", "LowerLeg", "Foot", "Toes", "Eye")}
        # "LeftShoulder-LeftElbow-LeftWrist" skeletons have no clavicle: their shoulder is the upper arm.
        if not by_role["UpperArm"] and by_role["Shoulder"] and by_role["LowerArm"]:
            by_role["UpperArm"], by_role["Shoulder"] = by_role["Shoulder"], []
        # A bare "leg" is the lower leg next to a thigh (Mixamo's LeftLeg) but the thigh next to a knee.
        strong_lower = [c for c in by_role["LowerLeg"] if not c.weak]
        if not by_role["UpperLeg"] and strong_lower:
            by_role["UpperLeg"] = [c for c in by_role["LowerLeg"] if c.weak]
            by_role["LowerLeg"] = strong_lower
        for role, group in by_role.items():
            claim(f"{side}{role}", _pick(group, depth))
        for finger in _FINGERS:
            group = [c for c in sided if c.role == "finger" and c.finger == finger]
            for phalanx, cand in _finger_phalanges(finger, group, depth).items():
                claim(f"{side}{finger.capitalize()}{phalanx}", cand)

    centre = [c for c in cands if c.side is None]
    strong_hips = [c for c in centre if c.role == "hips" and not c.weak]
    claim("hips", _pick(strong_hips, depth))
    if "hips" not in result and parent_of is not None and "leftUpperLeg" in result and "rightUpperLeg" in result:
        ancestor = _common_ancestor(result["leftUpperLeg"], result["rightUpperLeg"], parent_of)
        if ancestor is not None:
            result["hips"] = ancestor
    if "hips" not in result:
        claim("hips", _pick([c for c in centre if c.role == "hips"], depth))
    for role in ("chest", "upperChest", "head"):
        claim(role, _pick([c for c in centre if c.role == role], depth))
    claim("neck", _pick([c for c in centre if c.role == "neck"], depth))
    spines = [c for c in centre if c.role == "spine" and c.name not in result.values()]
    chain = [c.name for c in sorted(spines, key=lambda c: (depth[c.name], c.number or 0))]
    roles = _spine_chain_roles(chain)
    if "chest" in result or "upperChest" in result:
        # An explicitly named chest wins; the spine chain then only provides the spine.
        roles = {"spine": chain[0]} if chain else {}
    for canonical, name in roles.items():
        if canonical not in result and name not in result.values():
            result[canonical] = name
    return {canonical: result[canonical] for canonical in _ALL_BONES if canonical in result}


# --------------------------------------------------------------------------------------------------
# Public entry points
# --------------------------------------------------------------------------------------------------


def _check_names(bone_names: Any) -> list[str]:
    if isinstance(bone_names, str):
        raise TypeError("bone_names: expected a sequence of bone names, got a single string")
    names = list(bone_names)
    bad = [n for n in names if not isinstance(n, str)]
    if bad:
        raise TypeError(f"bone_names: expected strings, got {bad[:3]!r}")
    return names


def _candidates(names: Sequence[str], parent_of: Mapping[str, str | None] | None) -> list[tuple[str, dict[str, str]]]:
    found = [(conv, _match_table(names, table, extra, parent_of)) for conv, (table, extra) in _TABLES.items()]
    found.append(("heuristic", _match_heuristic(names, parent_of)))
    return found


def _best(found: list[tuple[str, dict[str, str]]]) -> tuple[str, dict[str, str]]:
    """Most required bones first; a name table beats the heuristic; then most body bones (so that the CMU
    BVH spine chain LowerBack/Spine/Spine1 beats Mixamo's reading of it); then most bones; then table order."""

    def key(item: tuple[int, tuple[str, dict[str, str]]]) -> tuple:
        order, (conv, bones) = item
        required = sum(b in bones for b in REQUIRED_BONES)
        body = sum(b in bones for b in BODY_BONES)
        return (-required, conv == "heuristic", -body, -len(bones), order)

    return min(enumerate(found), key=key)[1]


def _comparable(name: str) -> str:
    """Side-first, separator-free lower-case form, so that ``front_leg_l`` compares as ``leftfrontleg``."""
    words = _tokens(name)
    side = [("left" if w in _LEFT else "right") for w in words if w in _LEFT | _RIGHT][:1]
    return "".join(side + [w for w in words if w not in _LEFT | _RIGHT])


def _closest(canonical: str, names: Sequence[str], taken: set[str]) -> list[str]:
    pool: dict[str, str] = {}
    for name in names:
        if name not in taken:
            pool.setdefault(_comparable(name), name)
    hits = difflib.get_close_matches(_comparable(canonical), list(pool), n=3, cutoff=0.4)
    return [pool[h] for h in hits]


def _unmappable(names: Sequence[str], convention: str, bones: Mapping[str, str]) -> UnmappableSkeletonError:
    missing = tuple(b for b in REQUIRED_BONES if b not in bones)
    taken = set(bones.values())
    parts = []
    for canonical in missing:
        close = _closest(canonical, names, taken)
        hint = f"closest source bones: {', '.join(close)}" if close else "no similar source bone"
        parts.append(f"{canonical} ({hint})")
    message = (
        f"cannot map skeleton onto the humanoid: missing required bones {', '.join(missing)}. "
        f"Best convention {convention!r} matched {len(REQUIRED_BONES) - len(missing)}/{len(REQUIRED_BONES)} "
        f"required bones. Details: {'; '.join(parts)}. Known conventions: {', '.join(CONVENTIONS)}. "
        f"Source has {len(names)} bones: {', '.join(names[:40])}{' ...' if len(names) > 40 else ''}"
    )
    return UnmappableSkeletonError(message, missing=missing, found=bones, convention=convention)


def map_skeleton(bone_names: Sequence[str], parents: Any = None) -> SkeletonMap:
    """Map a source skeleton onto the canonical humanoid.

    Every known convention (``CONVENTIONS``) is tried; the one matching the most ``REQUIRED_BONES``
    wins, name tables before the heuristic, then the one matching the most bones. Names may carry
    namespaces (``mixamorig:``, ``Armature|``, ``rig:``) or prefixes ending in a separator
    (``Character1_``); matching is case-insensitive.

    Args:
        bone_names: ``[B]`` source bone names.
        parents: Optional hierarchy: a mapping bone name -> parent name, or a ``[B]`` sequence of parent
            names or parent indices (-1 or None for roots). Parents outside ``bone_names`` count as roots.
            Used by the heuristic to order spine chains and to find an unnamed hips bone.

    Returns:
        ``SkeletonMap`` with the convention, canonical -> source bones and the unmapped source bones.

    Raises:
        UnmappableSkeletonError: if no convention matches all ``REQUIRED_BONES``; its ``missing`` names
            them and its message lists the closest-looking source bones.
        TypeError / ValueError: on malformed ``bone_names`` / ``parents``.
    """
    names = _check_names(bone_names)
    parent_of = _parent_map(names, parents)
    convention, bones = _best(_candidates(names, parent_of))
    if any(b not in bones for b in REQUIRED_BONES):
        raise _unmappable(names, convention, bones)
    used = set(bones.values())
    return SkeletonMap(convention=convention, bones=bones, unmapped=tuple(n for n in names if n not in used))


def describe_mapping(names: Sequence[str], parents: Any = None) -> str:
    """A human-readable report of how a skeleton maps (for ``character4d inspect``).

    Args:
        names: ``[B]`` source bone names.
        parents: As for :func:`map_skeleton`.

    Returns:
        A multi-line table: the convention, every canonical bone (``*`` = required) with its source bone
        or ``-``, the missing required bones if any, and the unmapped source bones.
    """
    names = _check_names(names)
    try:
        mapping = map_skeleton(names, parents)
        convention, bones, error = mapping.convention, mapping.bones, None
    except UnmappableSkeletonError as exc:
        convention, bones, error = exc.convention, exc.found, exc
    required = sum(b in bones for b in REQUIRED_BONES)
    lines = [
        f"convention: {convention}{'' if error is None else ' (best guess; UNMAPPABLE)'}",
        f"required bones: {required}/{len(REQUIRED_BONES)}; mapped bones: {len(bones)}/{len(_ALL_BONES)}",
        "",
        f"  {'canonical':<24} source",
    ]
    for canonical in _ALL_BONES:
        flag = "*" if canonical in REQUIRED_BONES else " "
        lines.append(f"{flag} {canonical:<24} {bones.get(canonical, '-')}")
    if error is not None:
        lines += ["", f"missing required bones: {', '.join(error.missing)}"]
        for canonical in error.missing:
            close = _closest(canonical, names, set(bones.values()))
            lines.append(f"  {canonical}: closest source bones {', '.join(close) if close else '(none)'}")
    used = set(bones.values())
    unmapped = [n for n in names if n not in used]
    lines += ["", f"unmapped source bones ({len(unmapped)}): {', '.join(unmapped) if unmapped else '-'}"]
    return "\n".join(lines)
