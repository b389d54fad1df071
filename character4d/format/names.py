"""Keys, ids and field names of a sample; the mapping between shard fields and folder paths."""

from __future__ import annotations

import hashlib
import numbers
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

from character4d.errors import InputError

META = "meta.json"
CAMERAS = "cameras.json"
JOINTS = "joints.npy"
APOSE_JOINTS = "apose_joints.npy"
_TOP_LEVEL_FIELDS = (META, CAMERAS, JOINTS, APOSE_JOINTS)

# Two-digit views and three-digit frames are part of the field names, hence these limits.
MAX_VIEWS = 100
MAX_FRAMES = 1000

# An id is runs of [A-Za-z0-9-] joined by single underscores: no dots (webdataset splits keys at the
# first dot) and no "__" (the key separator), so parse_key can always split a key unambiguously.
_ID_PATTERN = r"[A-Za-z0-9-]+(?:_[A-Za-z0-9-]+)*"
_ID_RE = re.compile(rf"^{_ID_PATTERN}$")
_KEY_RE = re.compile(rf"^({_ID_PATTERN})__({_ID_PATTERN})$")

# Per-(view, frame) image kinds other than the RGBA motion frames, with their PNG mode.
_FRAME_KIND_MODES = {"pose": "RGB", "depth": "I;16", "mask": "L", "normal": "RGB"}
_OPTIONAL_KINDS = ("depth", "mask", "normal")
_MOTION = "motion"
_APOSE = "apose"

# Images are PNG, or lossless WebP for training data (character4d.format.codecs.transcode): per image
# (``v00.f000.webp``) or one animated WebP per view holding all frames of the motion or the pose maps
# (``v00.webp``, ``pose.v00.webp``; folders ``motion/view00.webp``, ``pose/view00.webp``).
IMAGE_EXTENSIONS = ("png", "webp")
_STACK_KINDS = ("motion", "pose")
_APOSE_FIELD_RE = re.compile(r"^apose\.v(\d{2})\.(png|webp)$")
_FRAME_FIELD_RE = re.compile(r"^(?:(pose|depth|mask|normal)\.)?v(\d{2})\.f(\d{3})\.(png|webp)$")
_STACK_FIELD_RE = re.compile(r"^(?:(pose)\.)?v(\d{2})\.webp$")
_TOP_FIELD_RE = re.compile(r"^[a-z][a-z0-9_]*\.(?:json|npy)$")
_APOSE_PATH_RE = re.compile(r"^apose/view(\d{2})\.(png|webp)$")
_FRAME_PATH_RE = re.compile(r"^(motion|pose|depth|mask|normal)/view(\d{2})/(\d{3})\.(png|webp)$")
_STACK_PATH_RE = re.compile(r"^(motion|pose)/view(\d{2})\.webp$")


class SampleFormatError(InputError):
    """A sample, shard or sample folder does not follow the Character4D sample contract.

    Attributes:
        problems: every individual problem found (``validate`` collects them all before raising).
    """

    def __init__(self, message: str, problems: Sequence[str] = ()) -> None:
        super().__init__(message)
        self.problems = tuple(problems) if problems else (message,)


# --------------------------------------------------------------------------------------------
# Keys and field names
# --------------------------------------------------------------------------------------------


def sanitize_id(name: str) -> str:
    """Turn a file stem or asset name into an id usable in sample keys.

    Every run of characters outside ``[A-Za-z0-9-]`` (dots, spaces, underscores...) becomes one
    ``_``, and leading/trailing ``_`` are dropped. Names with non-ASCII characters (common for VRoid
    characters) also get ``-`` plus 8 hex digits of the name's SHA-256, so that two names differing
    only in non-ASCII characters still get different ids.

    Args:
        name: the raw name, e.g. ``"Alice v2.vrm"`` stem ``"Alice v2"``.

    Returns:
        The id, e.g. ``"Alice_v2"``.

    Raises:
        TypeError: if ``name`` is not a string.
        ValueError: if nothing usable is left (an empty or all-punctuation name).
    """
    if not isinstance(name, str):
        raise TypeError(f"name: expected str, got {type(name).__name__}")
    cleaned = re.sub(r"[^A-Za-z0-9-]+", "_", name).strip("_")
    if not name.isascii():
        digest = hashlib.sha256(name.encode("utf-8")).hexdigest()[:8]
        cleaned = f"{cleaned}-{digest}" if cleaned else digest
    if not cleaned:
        raise ValueError(f"name: expected at least one character of [A-Za-z0-9-], got {name!r}")
    return cleaned


def _check_id(arg: str, value: Any) -> str:
    if not isinstance(value, str) or not _ID_RE.match(value):
        raise ValueError(
            f"{arg}: expected runs of [A-Za-z0-9-] joined by single '_' (see sanitize_id), got {value!r}"
        )
    return value


def sample_key(character_id: str, motion_id: str) -> str:
    """Build the sample key ``{character_id}__{motion_id}``.

    Args:
        character_id: an id as returned by :func:`sanitize_id`.
        motion_id: an id as returned by :func:`sanitize_id`.

    Returns:
        The key.

    Raises:
        ValueError: if an id contains characters outside the id alphabet, ``__`` or a dot.
    """
    return f"{_check_id('character_id', character_id)}__{_check_id('motion_id', motion_id)}"


def parse_key(key: str) -> tuple[str, str]:
    """Split a sample key into ``(character_id, motion_id)``.

    Args:
        key: a key ``{character_id}__{motion_id}``.

    Returns:
        ``(character_id, motion_id)``.

    Raises:
        SampleFormatError: if ``key`` is not a string of that form (e.g. it contains a dot, which
            webdataset would split the key at).
    """
    match = _KEY_RE.match(key) if isinstance(key, str) else None
    if match is None:
        raise SampleFormatError(
            "key: expected '{character_id}__{motion_id}' with ids of [A-Za-z0-9-] joined by single '_' "
            f"(no dots), got {key!r}"
        )
    return match.group(1), match.group(2)


def _index(arg: str, value: Any, limit: int) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or not 0 <= value < limit:
        raise ValueError(f"{arg}: expected an integer in [0, {limit - 1}], got {value!r}")
    return int(value)


def _frame_field(kind: str | None, v: int, f: int, ext: str = "png") -> str:
    prefix = f"{kind}." if kind else ""
    return f"{prefix}v{_index('v', v, MAX_VIEWS):02d}.f{_index('f', f, MAX_FRAMES):03d}.{ext}"


def _stack_field(kind: str, v: int) -> str:
    prefix = "" if kind == "motion" else f"{kind}."
    return f"{prefix}v{_index('v', v, MAX_VIEWS):02d}.webp"


def apose_name(v: int) -> str:
    """Field name of the A-pose RGBA image of view ``v`` (``apose.v00.png``)."""
    return f"apose.v{_index('v', v, MAX_VIEWS):02d}.png"


def frame_name(v: int, f: int) -> str:
    """Field name of the RGBA motion frame ``f`` of view ``v`` (``v00.f000.png``)."""
    return _frame_field(None, v, f)


def pose_name(v: int, f: int) -> str:
    """Field name of the RGB pose map of view ``v``, frame ``f`` (``pose.v00.f000.png``)."""
    return _frame_field("pose", v, f)


def depth_name(v: int, f: int) -> str:
    """Field name of the uint16 millimetre depth of view ``v``, frame ``f`` (``depth.v00.f000.png``)."""
    return _frame_field("depth", v, f)


def mask_name(v: int, f: int) -> str:
    """Field name of the L mask of view ``v``, frame ``f`` (``mask.v00.f000.png``)."""
    return _frame_field("mask", v, f)


@dataclass(frozen=True)
class _Field:
    """A parsed field name: ``kind`` is a top-level name, "apose", "motion" or a per-frame kind."""

    kind: str
    view: int | None = None
    frame: int | None = None
    ext: str = "png"
    stack: bool = False  # one animated image holding every frame of the view


def _parse_field(name: str) -> _Field | None:
    if name in _TOP_LEVEL_FIELDS or _TOP_FIELD_RE.match(name):
        return _Field(name)
    match = _APOSE_FIELD_RE.match(name)
    if match:
        return _Field(_APOSE, int(match.group(1)), ext=match.group(2))
    match = _FRAME_FIELD_RE.match(name)
    if match:
        return _Field(match.group(1) or _MOTION, int(match.group(2)), int(match.group(3)), ext=match.group(4))
    match = _STACK_FIELD_RE.match(name)
    if match:
        return _Field(match.group(1) or _MOTION, int(match.group(2)), ext="webp", stack=True)
    return None


_LAYOUT_HINT = (
    "expected meta.json, cameras.json, joints.npy, apose_joints.npy, apose.vVV.png, vVV.fFFF.png, "
    "{pose,depth,mask,normal}.vVV.fFFF.png (or .webp), or per-view vVV.webp / pose.vVV.webp"
)


def field_to_path(name: str) -> str:
    """Map a shard field name to its path inside a sample folder.

    Args:
        name: a field name, e.g. ``"v03.f007.png"``.

    Returns:
        The POSIX relative path, e.g. ``"motion/view03/007.png"``.

    Raises:
        SampleFormatError: if ``name`` is not a field of the sample contract.
    """
    parsed = _parse_field(name) if isinstance(name, str) else None
    if parsed is None:
        raise SampleFormatError(f"name: {name!r} is not a sample field ({_LAYOUT_HINT})")
    if parsed.view is None:
        return name
    if parsed.stack:
        return f"{parsed.kind}/view{parsed.view:02d}.{parsed.ext}"
    if parsed.frame is None:
        return f"apose/view{parsed.view:02d}.{parsed.ext}"
    return f"{parsed.kind}/view{parsed.view:02d}/{parsed.frame:03d}.{parsed.ext}"


def path_to_field(relpath: str | os.PathLike) -> str:
    """Map a path inside a sample folder back to its shard field name (inverse of field_to_path).

    Args:
        relpath: relative path, ``/``-separated or an ``os.PathLike``, e.g. ``"pose/view01/002.png"``.

    Returns:
        The field name, e.g. ``"pose.v01.f002.png"``.

    Raises:
        SampleFormatError: if the path is not part of the sample folder layout.
    """
    posix = PurePosixPath(*Path(relpath).parts).as_posix() if not isinstance(relpath, str) else relpath
    if "/" not in posix and (posix in _TOP_LEVEL_FIELDS or _TOP_FIELD_RE.match(posix)):
        return posix
    match = _APOSE_PATH_RE.match(posix)
    if match:
        return f"apose.v{match.group(1)}.{match.group(2)}"
    match = _FRAME_PATH_RE.match(posix)
    if match:
        kind, view, frame, ext = match.groups()
        return f"v{view}.f{frame}.{ext}" if kind == _MOTION else f"{kind}.v{view}.f{frame}.{ext}"
    match = _STACK_PATH_RE.match(posix)
    if match:
        kind, view = match.groups()
        return f"v{view}.webp" if kind == _MOTION else f"{kind}.v{view}.webp"
    raise SampleFormatError(
        f"relpath: {posix!r} is not part of the sample folder layout (expected meta.json, cameras.json, "
        "joints.npy, apose_joints.npy, apose/viewVV.png, {motion,pose,depth,mask,normal}/viewVV/FFF.png, "
        "the .webp forms of the colour images, or {motion,pose}/viewVV.webp)"
    )


