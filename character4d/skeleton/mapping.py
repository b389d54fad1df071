"""``map_skeleton``: pick the convention that maps a skeleton best; ``SkeletonMap`` and its error."""

from __future__ import annotations

import difflib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from character4d.errors import InputError
from character4d.skeleton.bones import _ALL_BONES, BODY_BONES, PARENTS, REQUIRED_BONES
from character4d.skeleton.conventions import _TABLES, HEURISTIC, conventions
from character4d.skeleton.heuristic import _LEFT, _RIGHT, _match_heuristic, _tokens
from character4d.skeleton.hierarchy import _parent_map
from character4d.skeleton.tables import _match_table


class UnmappableSkeletonError(InputError):
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
        convention: The naming convention that matched (one of ``conventions()``, or ``"autorig"`` for
            fitted skeletons).
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
    found.append((HEURISTIC, _match_heuristic(names, parent_of)))
    return found


def _best(found: list[tuple[str, dict[str, str]]]) -> tuple[str, dict[str, str]]:
    """Most required bones first; a name table beats the heuristic; then most body bones (so that the CMU
    BVH spine chain LowerBack/Spine/Spine1 beats Mixamo's reading of it); then most bones; then table order."""

    def key(item: tuple[int, tuple[str, dict[str, str]]]) -> tuple:
        order, (conv, bones) = item
        required = sum(b in bones for b in REQUIRED_BONES)
        body = sum(b in bones for b in BODY_BONES)
        return (-required, conv == HEURISTIC, -body, -len(bones), order)

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
        f"required bones. Details: {'; '.join(parts)}. Known conventions: {', '.join(conventions())}. "
        f"Source has {len(names)} bones: {', '.join(names[:40])}{' ...' if len(names) > 40 else ''}"
    )
    return UnmappableSkeletonError(message, missing=missing, found=bones, convention=convention)


def map_skeleton(bone_names: Sequence[str], parents: Any = None) -> SkeletonMap:
    """Map a source skeleton onto the canonical humanoid.

    Every known convention (:func:`conventions`, including registered ones) is tried; the one matching the
    most ``REQUIRED_BONES`` wins, name tables before the heuristic, then the one matching the most bones.
    Names may carry namespaces (``mixamorig:``, ``Armature|``, ``rig:``) or prefixes ending in a
    separator (``Character1_``); matching is case-insensitive.

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
