"""Named registries (tasks, metrics, baselines, resize filters) that miss helpfully.

A lookup of an unknown name raises ``KeyError`` with the known names and the closest match, in the
manner of lm-evaluation-harness' task registry.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterator
from typing import Generic, TypeVar

T = TypeVar("T")


def closest(name: str, known: list[str]) -> str:
    """``" (did you mean 'x'?)"`` for the closest known name, or ``""``."""
    match = difflib.get_close_matches(name, known, n=1)
    return f" (did you mean {match[0]!r}?)" if match else ""


class Registry(Generic[T]):
    """An ordered mapping of names to objects, filled by :meth:`register`.

    Args:
        kind: What the registry holds, for messages (``"task"``, ``"metric"``, ...).
    """

    def __init__(self, kind: str):
        self.kind = kind
        self._items: dict[str, T] = {}

    def register(self, name: str, item: T) -> T:
        """Add ``item`` under ``name`` and return it.

        Raises:
            ValueError: ``name`` is already registered.
        """
        if name in self._items:
            raise ValueError(f"{self.kind} {name!r} is already registered")
        self._items[name] = item
        return item

    def get(self, name: str) -> T:
        """The item registered under ``name``.

        Raises:
            KeyError: Unknown name; the message lists the known names and the closest match.
        """
        if name not in self._items:
            raise KeyError(
                f"unknown {self.kind} {name!r}{closest(name, list(self._items))}; known {self.kind}s: {list(self._items)}"
            )
        return self._items[name]

    def __getitem__(self, name: str) -> T:
        return self.get(name)

    def __contains__(self, name: object) -> bool:
        return name in self._items

    def __iter__(self) -> Iterator[str]:
        return iter(self._items)

    def __len__(self) -> int:
        return len(self._items)

    def names(self) -> list[str]:
        """Registered names, in registration order."""
        return list(self._items)

    def values(self) -> list[T]:
        """Registered items, in registration order."""
        return list(self._items.values())

    def items(self) -> list[tuple[str, T]]:
        """``(name, item)`` pairs, in registration order."""
        return list(self._items.items())
