"""Provenance of a result record: the commit of the scoring code, and whether it was modified."""

from __future__ import annotations

import subprocess
from pathlib import Path

import characterbench


# The code a score depends on: a change here (uncommitted) makes a record's commit "+dirty".
SCORING_PATHS = ("characterbench", "metrics", "character4d/format")


def git_commit(path: str | Path | None = None) -> str | None:
    """Commit of the checkout holding ``path`` (default: this package), ``+dirty`` when the scoring code
    (:data:`SCORING_PATHS`) differs from it; changes elsewhere in the tree do not move a score.

    Returns:
        The commit hash, or None outside a git checkout (e.g. an installed wheel).
    """
    where = str(path or Path(characterbench.__file__).resolve().parent)
    try:
        top = subprocess.run(["git", "-C", where, "rev-parse", "--show-toplevel"], capture_output=True, text=True, timeout=10)
        head = subprocess.run(["git", "-C", where, "rev-parse", "HEAD"], capture_output=True, text=True, timeout=10)
        if head.returncode != 0 or top.returncode != 0:
            return None
        dirty = subprocess.run(
            ["git", "-C", top.stdout.strip(), "status", "--porcelain", "--untracked-files=normal", "--", *SCORING_PATHS],
            capture_output=True, text=True, timeout=30,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return head.stdout.strip() + ("+dirty" if dirty.stdout.strip() else "")


