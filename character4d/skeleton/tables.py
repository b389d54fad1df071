"""Matching source bone names against one convention's name table."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from character4d.skeleton.conventions import Extra
from character4d.skeleton.hierarchy import _SEPARATORS, _strip_namespace

def _ends_with_part(name: str, alias: str) -> bool:
    """``name`` ends with ``alias`` right after a separator: a prefix such as ``character1_``."""
    return len(name) > len(alias) and name.endswith(alias) and name[-len(alias) - 1] in _SEPARATORS


def _match_table(
    names: Sequence[str],
    table: Mapping[str, Sequence[str]],
    extra: Extra | None,
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


