"""Bone-name normalisation (namespaces, separators) and the bone hierarchy (parents, depths, spine chains)."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

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


