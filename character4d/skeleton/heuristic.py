"""Token-based guessing of humanoid roles for skeletons of no known convention."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from character4d.skeleton.bones import _ALL_BONES, _FINGERS, _PHALANGES, _SIDES
from character4d.skeleton.hierarchy import _depths, _spine_chain_roles, _strip_namespace


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


