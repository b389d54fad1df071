"""The Character4D sample contract: keys, field names, folder layout, encoding, shards.

One sample is one (character, motion) pair (DESIGN.md section 5). This module owns both on-disk
layouts of a sample and their round trip; every other package reads and writes samples through it
instead of re-deriving names, paths or shapes.

Shard fields (webdataset: member ``{key}.{field}``; names end in the extension so webdataset's
default decoders apply):

=========================  ==============================  =====================================
field                      folder path (under ``<key>/``)  content
=========================  ==============================  =====================================
``meta.json``              ``meta.json``                   ids, fps, joint names, source times...
``cameras.json``           ``cameras.json``                :meth:`character4d.cameras.Cameras.to_json`
``joints.npy``             ``joints.npy``                  float32 [F, J, 3] world positions
``apose_joints.npy``       ``apose_joints.npy``            float32 [J, 3]
``apose.v{VV}.png``        ``apose/view{VV}.png``          RGBA uint8
``v{VV}.f{FFF}.png``       ``motion/view{VV}/{FFF}.png``   RGBA uint8
``pose.v{VV}.f{FFF}.png``  ``pose/view{VV}/{FFF}.png``     RGB uint8 pose map
``depth.v{VV}.f{FFF}.png`` ``depth/view{VV}/{FFF}.png``    optional, uint16 millimetres, 0 = none
``mask.v{VV}.f{FFF}.png``  ``mask/view{VV}/{FFF}.png``     optional, L uint8 (0 or 255)
``normal.v{VV}.f{FFF}.png````normal/view{VV}/{FFF}.png``   optional, RGB uint8 (no accessor yet)
=========================  ==============================  =====================================

Only numpy and PIL are imported with this module; webdataset (which pulls in torch when it is
installed) is imported inside the functions that read or write shards.
"""

from __future__ import annotations

import hashlib
import io
import json
import math
import numbers
import os
import re
import shutil
import tarfile
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path, PurePosixPath
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

import numpy as np
from PIL import Image

if TYPE_CHECKING:
    from character4d.cameras import Cameras

__all__ = [
    "APOSE_JOINTS",
    "CAMERAS",
    "JOINTS",
    "META",
    "REQUIRED_META_KEYS",
    "Sample",
    "SampleFormatError",
    "ShardWriter",
    "apose_name",
    "build_sample",
    "depth_name",
    "encode_json",
    "encode_npy",
    "encode_png",
    "export_folders",
    "field_to_path",
    "frame_name",
    "mask_name",
    "open_samples",
    "parse_key",
    "path_to_field",
    "pose_name",
    "read_folder_sample",
    "sample_key",
    "sanitize_id",
    "write_folder_sample",
]

META = "meta.json"
CAMERAS = "cameras.json"
JOINTS = "joints.npy"
APOSE_JOINTS = "apose_joints.npy"
_TOP_LEVEL_FIELDS = (META, CAMERAS, JOINTS, APOSE_JOINTS)

# Two-digit views and three-digit frames are part of the field names, hence these limits.
MAX_VIEWS = 100
MAX_FRAMES = 1000
# Depth is stored as uint16 millimetres: 1 mm steps up to 65.535 m, 0 reserved for background.
_DEPTH_MM_PER_M = 1000.0
_DEPTH_MIN_M = 0.001
_DEPTH_MAX_M = 65.535

REQUIRED_META_KEYS = (
    "character_id",
    "motion_id",
    "num_views",
    "num_frames",
    "resolution",
    "fps",
    "joint_names",
    "source_times",
)

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

_APOSE_FIELD_RE = re.compile(r"^apose\.v(\d{2})\.png$")
_FRAME_FIELD_RE = re.compile(r"^(?:(pose|depth|mask|normal)\.)?v(\d{2})\.f(\d{3})\.png$")
_TOP_FIELD_RE = re.compile(r"^[a-z][a-z0-9_]*\.(?:json|npy)$")
_APOSE_PATH_RE = re.compile(r"^apose/view(\d{2})\.png$")
_FRAME_PATH_RE = re.compile(r"^(motion|pose|depth|mask|normal)/view(\d{2})/(\d{3})\.png$")

# Pillow reports 16-bit greyscale PNGs as "I;16" (or "I;16B"/"I" in older releases).
_DEPTH_READ_MODES = ("I;16", "I;16B", "I;16L", "I")


class SampleFormatError(ValueError):
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


def _frame_field(kind: str | None, v: int, f: int) -> str:
    prefix = f"{kind}." if kind else ""
    return f"{prefix}v{_index('v', v, MAX_VIEWS):02d}.f{_index('f', f, MAX_FRAMES):03d}.png"


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


def _parse_field(name: str) -> _Field | None:
    if name in _TOP_LEVEL_FIELDS or _TOP_FIELD_RE.match(name):
        return _Field(name)
    match = _APOSE_FIELD_RE.match(name)
    if match:
        return _Field(_APOSE, int(match.group(1)))
    match = _FRAME_FIELD_RE.match(name)
    if match:
        return _Field(match.group(1) or _MOTION, int(match.group(2)), int(match.group(3)))
    return None


_LAYOUT_HINT = (
    "expected meta.json, cameras.json, joints.npy, apose_joints.npy, apose.vVV.png, vVV.fFFF.png or "
    "{pose,depth,mask,normal}.vVV.fFFF.png"
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
    if parsed.frame is None:
        return f"apose/view{parsed.view:02d}.png"
    return f"{parsed.kind}/view{parsed.view:02d}/{parsed.frame:03d}.png"


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
        return f"apose.v{match.group(1)}.png"
    match = _FRAME_PATH_RE.match(posix)
    if match:
        kind, view, frame = match.groups()
        return f"v{view}.f{frame}.png" if kind == _MOTION else f"{kind}.v{view}.f{frame}.png"
    raise SampleFormatError(
        f"relpath: {posix!r} is not part of the sample folder layout (expected meta.json, cameras.json, "
        "joints.npy, apose_joints.npy, apose/viewVV.png or {motion,pose,depth,mask,normal}/viewVV/FFF.png)"
    )


# --------------------------------------------------------------------------------------------
# Encoders
# --------------------------------------------------------------------------------------------


def encode_png(array: np.ndarray) -> bytes:
    """Encode an image as PNG (fast zlib level 1: the shards are dominated by PNG encode time).

    Args:
        array: uint8 [H, W] (L), [H, W, 1] (L), [H, W, 3] (RGB), [H, W, 4] (RGBA), or uint16 [H, W]
            (16-bit greyscale, used for depth in millimetres).

    Returns:
        The PNG bytes.

    Raises:
        TypeError: if ``array`` is not a numpy array.
        ValueError: if its dtype or shape is not one of the above.
    """
    if not isinstance(array, np.ndarray):
        raise TypeError(f"array: expected a numpy array, got {type(array).__name__}")
    if array.ndim == 3 and array.shape[2] == 1:
        array = array[:, :, 0]
    ok_uint8 = array.dtype == np.uint8 and (array.ndim == 2 or (array.ndim == 3 and array.shape[2] in (3, 4)))
    ok_uint16 = array.dtype == np.uint16 and array.ndim == 2
    if not (ok_uint8 or ok_uint16):
        raise ValueError(
            "array: expected uint8 [H,W], [H,W,3], [H,W,4] or uint16 [H,W], "
            f"got {array.dtype} {list(array.shape)}"
        )
    buffer = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(array)).save(buffer, format="PNG", compress_level=1)
    return buffer.getvalue()


def encode_npy(array: np.ndarray) -> bytes:
    """Encode an array in ``.npy`` format (no pickles, so any numpy can read it safely).

    Args:
        array: any numeric array.

    Returns:
        The ``.npy`` bytes.

    Raises:
        ValueError: for object arrays, which would need pickling.
    """
    buffer = io.BytesIO()
    np.save(buffer, np.asarray(array), allow_pickle=False)
    return buffer.getvalue()


def _json_default(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    raise TypeError(f"encode_json: cannot encode {type(value).__name__} {value!r}")


def encode_json(obj: Any) -> bytes:
    """Encode JSON deterministically (sorted keys) and strictly (no NaN/Infinity).

    numpy scalars and arrays and paths are converted; strict JSON keeps the files readable by any
    JSON parser (NaN is not JSON).

    Args:
        obj: a JSON-compatible object.

    Returns:
        UTF-8 bytes.

    Raises:
        TypeError: for values JSON cannot represent.
        ValueError: for NaN or infinite floats.
    """
    return json.dumps(obj, indent=1, sort_keys=True, allow_nan=False, default=_json_default).encode("utf-8")


def encode_depth(depth_m: np.ndarray) -> bytes:
    """Encode a depth map as the sample's 16-bit PNG (millimetres, 0 = background).

    Args:
        depth_m: [H, W] float metres; NaN or inf mark background.

    Returns:
        PNG bytes.

    Raises:
        ValueError: for foreground depths outside [0.001, 65.535] m.
    """
    return _encode_depth(depth_m, "depth_m")


def _encode_depth(depth_m: np.ndarray, arg: str) -> bytes:
    depth = np.asarray(depth_m, dtype=np.float64)
    background = ~np.isfinite(depth)
    foreground = depth[~background]
    if foreground.size and (foreground.min() < _DEPTH_MIN_M or foreground.max() > _DEPTH_MAX_M):
        raise ValueError(
            f"{arg}: expected metres in [{_DEPTH_MIN_M}, {_DEPTH_MAX_M}] or NaN/inf for background, "
            f"got values in [{foreground.min()}, {foreground.max()}]"
        )
    millimetres = np.zeros(depth.shape, dtype=np.uint16)
    millimetres[~background] = np.rint(foreground * _DEPTH_MM_PER_M).astype(np.uint16)
    return encode_png(millimetres)


# --------------------------------------------------------------------------------------------
# Sample
# --------------------------------------------------------------------------------------------


def _check_files(files: Any) -> dict[str, bytes]:
    if not isinstance(files, Mapping):
        raise TypeError(f"files: expected a mapping of field name to bytes, got {type(files).__name__}")
    checked = {}
    for name, data in files.items():
        if not isinstance(name, str):
            raise TypeError(f"files: expected str field names, got {type(name).__name__} {name!r}")
        if isinstance(data, (bytearray, memoryview)):
            data = bytes(data)
        if not isinstance(data, bytes):
            raise TypeError(f"files[{name!r}]: expected bytes, got {type(data).__name__}")
        checked[name] = data
    return checked


def _read_only(array: np.ndarray) -> np.ndarray:
    # Cached arrays are shared by every caller; freezing them stops one caller corrupting another.
    array.setflags(write=False)
    return array


@dataclass(frozen=True)
class Sample:
    """One (character, motion) sample: encoded fields with lazy, cached decoding.

    ``files`` maps field names (see the module docstring) to encoded bytes and is stored as a
    read-only mapping. Small fields (meta, cameras, joints) are decoded once and cached; images are
    decoded on every call so that iterating over a sample does not keep hundreds of decoded frames
    alive. The cached ``meta`` dict is shared: do not mutate it.

    Attributes:
        key: ``{character_id}__{motion_id}``.
        files: field name -> encoded bytes.

    Raises:
        SampleFormatError: (on construction) if ``key`` is not a valid key.
        TypeError: (on construction) if ``files`` is not a mapping of str to bytes.
    """

    key: str
    files: Mapping[str, bytes]

    def __post_init__(self) -> None:
        parse_key(self.key)
        object.__setattr__(self, "files", MappingProxyType(_check_files(self.files)))

    def __reduce__(self) -> tuple:
        # The read-only mapping proxy cannot be pickled; rebuild from a plain dict (for worker processes).
        return (type(self), (self.key, dict(self.files)))

    @classmethod
    def from_files(cls, key: str, files: Mapping[str, bytes], validate: bool = True) -> Sample:
        """Build a sample from already encoded fields.

        Args:
            key: the sample key.
            files: field name -> encoded bytes.
            validate: run :meth:`validate` before returning.

        Returns:
            The sample.

        Raises:
            SampleFormatError: if the key is invalid or (with ``validate``) the fields are incomplete
                or inconsistent.
        """
        sample = cls(key, files)
        if validate:
            sample.validate()
        return sample

    # -- raw access ---------------------------------------------------------------------------

    def _field(self, name: str) -> bytes:
        try:
            return self.files[name]
        except KeyError:
            raise SampleFormatError(f"sample {self.key!r}: missing field {name!r}") from None

    def _json(self, name: str) -> Any:
        try:
            return json.loads(self._field(name))
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise SampleFormatError(f"sample {self.key!r}: {name} is not valid JSON ({exc})") from exc

    def _npy(self, name: str) -> np.ndarray:
        try:
            return np.load(io.BytesIO(self._field(name)), allow_pickle=False)
        except (ValueError, OSError, EOFError) as exc:
            raise SampleFormatError(f"sample {self.key!r}: {name} is not a valid .npy array ({exc})") from exc

    def _png(self, name: str, modes: tuple[str, ...]) -> np.ndarray:
        try:
            with Image.open(io.BytesIO(self._field(name))) as image:
                if image.mode not in modes:
                    raise SampleFormatError(
                        f"sample {self.key!r}: {name} has PNG mode {image.mode}, expected {' or '.join(modes)}"
                    )
                return np.array(image)
        except (OSError, SyntaxError) as exc:  # PIL raises these for corrupt image data
            raise SampleFormatError(f"sample {self.key!r}: {name} is not a readable PNG ({exc})") from exc

    def _meta_value(self, name: str) -> Any:
        try:
            return self.meta[name]
        except KeyError:
            raise SampleFormatError(f"sample {self.key!r}: meta.json has no {name!r}") from None

    # -- decoded fields -----------------------------------------------------------------------

    @cached_property
    def meta(self) -> dict[str, Any]:
        """The decoded ``meta.json`` (shared and cached: treat as read-only)."""
        meta = self._json(META)
        if not isinstance(meta, dict):
            raise SampleFormatError(f"sample {self.key!r}: meta.json must hold an object, got {type(meta).__name__}")
        return meta

    @cached_property
    def cameras(self) -> Cameras:
        """The rig, decoded from ``cameras.json`` by :meth:`character4d.cameras.Cameras.from_json`."""
        from character4d.cameras import Cameras  # imported here so the format has no hard cameras dependency

        return Cameras.from_json(self._json(CAMERAS))

    @cached_property
    def joints(self) -> np.ndarray:
        """float32 [F, J, 3] world positions (metres, Z up) of ``joint_names``; NaN where missing."""
        return _read_only(self._npy(JOINTS))

    @cached_property
    def apose_joints(self) -> np.ndarray:
        """float32 [J, 3] world positions of ``joint_names`` in the A-pose."""
        return _read_only(self._npy(APOSE_JOINTS))

    @property
    def joint_names(self) -> list[str]:
        """Names of the joints, in the order of the J axis of ``joints``."""
        return list(self._meta_value("joint_names"))

    @property
    def num_views(self) -> int:
        """Number of views V."""
        return int(self._meta_value("num_views"))

    @property
    def num_frames(self) -> int:
        """Number of motion frames F."""
        return int(self._meta_value("num_frames"))

    @property
    def resolution(self) -> int:
        """Side of the square images in pixels."""
        return int(self._meta_value("resolution"))

    @property
    def fps(self) -> float:
        """Frame rate of the motion frames."""
        return float(self._meta_value("fps"))

    @property
    def has_depth(self) -> bool:
        """Whether the sample carries depth maps."""
        return any(name.startswith("depth.") for name in self.files)

    @property
    def has_mask(self) -> bool:
        """Whether the sample carries masks."""
        return any(name.startswith("mask.") for name in self.files)

    def apose(self, v: int) -> np.ndarray:
        """A-pose image of view ``v``: uint8 [H, W, 4] RGBA (straight alpha)."""
        return self._png(apose_name(v), ("RGBA",))

    def frame(self, v: int, f: int) -> np.ndarray:
        """Motion frame ``f`` of view ``v``: uint8 [H, W, 4] RGBA (straight alpha)."""
        return self._png(frame_name(v, f), ("RGBA",))

    def pose(self, v: int, f: int) -> np.ndarray:
        """Pose map of view ``v``, frame ``f``: uint8 [H, W, 3] RGB."""
        return self._png(pose_name(v, f), ("RGB",))

    def depth(self, v: int, f: int) -> np.ndarray:
        """Depth of view ``v``, frame ``f``: float32 [H, W] metres along the optical axis, NaN = background."""
        millimetres = self._png(depth_name(v, f), _DEPTH_READ_MODES).astype(np.float32)
        millimetres[millimetres == 0] = np.nan
        return millimetres / np.float32(_DEPTH_MM_PER_M)

    def mask(self, v: int, f: int) -> np.ndarray:
        """Foreground mask of view ``v``, frame ``f``: bool [H, W]."""
        return self._png(mask_name(v, f), ("L",)) > 127

    # -- validation ---------------------------------------------------------------------------

    def validate(self) -> None:
        """Check that the sample is complete and consistent.

        Checks: required top-level fields; meta.json core keys and their types; key == ids in meta;
        joints [F, J, 3] and apose_joints [J, 3] float32 with J = len(joint_names); cameras.json
        decodes to V cameras of the sample resolution; an A-pose image per view and a frame and a
        pose map per (view, frame); depth/mask either complete or absent; no unknown or
        out-of-range fields; every PNG of the right size and mode (read from the PNG header only).

        Raises:
            SampleFormatError: listing every problem found (also in ``.problems``).
        """
        problems = _SampleChecker(self).problems()
        if problems:
            listing = "\n  - ".join(problems)
            raise SampleFormatError(
                f"sample {self.key!r} does not follow the Character4D sample contract "
                f"({len(problems)} problem(s)):\n  - {listing}",
                problems,
            )


class _SampleChecker:
    """Collects every problem of one sample (helper of Sample.validate)."""

    def __init__(self, sample: Sample) -> None:
        self.sample = sample
        self.found: list[str] = []

    def problems(self) -> list[str]:
        fields = self._parse_names()
        missing_top = [name for name in _TOP_LEVEL_FIELDS if name not in self.sample.files]
        if missing_top:
            self.found.append(f"missing required fields: {', '.join(missing_top)}")
        meta = self._check_meta()
        if meta is not None:
            num_views, num_frames, resolution, num_joints = meta
            self._check_arrays(num_frames, num_joints)
            self._check_cameras(num_views, resolution)
            self._check_completeness(fields, num_views, num_frames)
            self._check_images(fields, resolution)
        return self.found

    def _parse_names(self) -> dict[str, _Field]:
        fields = {}
        for name in sorted(self.sample.files):
            parsed = _parse_field(name)
            if parsed is None:
                self.found.append(f"unknown field {name!r} ({_LAYOUT_HINT})")
            else:
                fields[name] = parsed
        return fields

    def _check_meta(self) -> tuple[int, int, int, int] | None:
        if META not in self.sample.files:
            return None
        try:
            meta = self.sample.meta
        except SampleFormatError as exc:
            self.found.append(str(exc))
            return None
        missing = [name for name in REQUIRED_META_KEYS if name not in meta]
        if missing:
            self.found.append(f"meta.json lacks required keys: {', '.join(missing)}")
            return None
        counts = [self._positive_int(meta, name, limit) for name, limit in
                  (("num_views", MAX_VIEWS), ("num_frames", MAX_FRAMES), ("resolution", 1 << 16))]
        fps = meta["fps"]
        if isinstance(fps, bool) or not isinstance(fps, numbers.Real) or not fps > 0:
            self.found.append(f"meta.json fps: expected a positive number, got {fps!r}")
        names = meta["joint_names"]
        if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
            self.found.append("meta.json joint_names: expected a list of strings")
            names = None
        elif len(set(names)) != len(names):
            self.found.append("meta.json joint_names: names are not unique")
        self._check_ids(meta)
        if None in counts or names is None:
            return None
        num_views, num_frames, resolution = counts
        self._check_source_times(meta["source_times"], num_frames)
        return num_views, num_frames, resolution, len(names)

    def _positive_int(self, meta: dict, name: str, limit: int) -> int | None:
        value = meta[name]
        if isinstance(value, bool) or not isinstance(value, int) or not 0 < value <= limit:
            self.found.append(f"meta.json {name}: expected an integer in [1, {limit}], got {value!r}")
            return None
        return value

    def _check_ids(self, meta: dict) -> None:
        character_id, motion_id = parse_key(self.sample.key)
        for name, expected in (("character_id", character_id), ("motion_id", motion_id)):
            if meta[name] != expected:
                self.found.append(f"meta.json {name}: key {self.sample.key!r} implies {expected!r}, got {meta[name]!r}")

    def _check_source_times(self, times: Any, num_frames: int) -> None:
        valid = isinstance(times, list) and all(
            isinstance(t, numbers.Real) and not isinstance(t, bool) and math.isfinite(t) for t in times
        )
        if not valid or len(times) != num_frames:
            got = f"{len(times)} entries" if isinstance(times, list) else type(times).__name__
            self.found.append(f"meta.json source_times: expected {num_frames} finite numbers, got {got}")

    def _check_arrays(self, num_frames: int, num_joints: int) -> None:
        for name, shape in ((JOINTS, (num_frames, num_joints, 3)), (APOSE_JOINTS, (num_joints, 3))):
            if name not in self.sample.files:
                continue
            try:
                array = self.sample._npy(name)
            except SampleFormatError as exc:
                self.found.append(str(exc))
                continue
            if array.shape != shape or array.dtype != np.float32:
                self.found.append(
                    f"{name}: expected float32 {list(shape)} (F, J from meta.json), "
                    f"got {array.dtype} {list(array.shape)}"
                )

    def _check_cameras(self, num_views: int, resolution: int) -> None:
        if CAMERAS not in self.sample.files:
            return
        try:
            cameras = self.sample.cameras
        except (ValueError, KeyError, TypeError, IndexError) as exc:
            self.found.append(f"cameras.json cannot be decoded ({type(exc).__name__}: {exc})")
            return
        count = len(cameras.viewmats)
        if count != num_views:
            self.found.append(f"cameras.json: expected {num_views} cameras (num_views), got {count}")
        if (cameras.width, cameras.height) != (resolution, resolution):
            self.found.append(
                f"cameras.json: expected {resolution}x{resolution} (resolution), got {cameras.width}x{cameras.height}"
            )

    def _check_completeness(self, fields: dict[str, _Field], num_views: int, num_frames: int) -> None:
        for name, parsed in fields.items():
            out_of_range = (parsed.view is not None and parsed.view >= num_views) or (
                parsed.frame is not None and parsed.frame >= num_frames
            )
            if out_of_range:
                self.found.append(f"field {name!r} is outside {num_views} views x {num_frames} frames")
        present = set(fields)
        expected = {_APOSE: [apose_name(v) for v in range(num_views)]}
        kinds = [_MOTION, "pose"] + [k for k in _OPTIONAL_KINDS if any(p.kind == k for p in fields.values())]
        for kind in kinds:
            prefix = None if kind == _MOTION else kind
            expected[kind] = [_frame_field(prefix, v, f) for v in range(num_views) for f in range(num_frames)]
        for kind, names in expected.items():
            missing = [name for name in names if name not in present]
            if missing:
                shown = ", ".join(missing[:6]) + (", ..." if len(missing) > 6 else "")
                self.found.append(f"missing {len(missing)} of {len(names)} {kind!r} fields: {shown}")

    def _check_images(self, fields: dict[str, _Field], resolution: int) -> None:
        wrong = []
        for name, parsed in fields.items():
            if parsed.view is None:
                continue
            modes = ("RGBA",) if parsed.kind in (_APOSE, _MOTION) else (_FRAME_KIND_MODES[parsed.kind],)
            modes = _DEPTH_READ_MODES if parsed.kind == "depth" else modes
            try:
                with Image.open(io.BytesIO(self.sample.files[name])) as image:
                    size, mode, fmt = image.size, image.mode, image.format
            except (OSError, SyntaxError) as exc:
                wrong.append(f"{name}: not a readable image ({exc})")
                continue
            if fmt != "PNG" or mode not in modes or size != (resolution, resolution):
                got = f"{size[0]}x{size[1]} {fmt} {mode}"
                wrong.append(f"{name}: expected {resolution}x{resolution} PNG {modes[0]}, got {got}")
        if wrong:
            shown = "; ".join(wrong[:6]) + ("; ..." if len(wrong) > 6 else "")
            self.found.append(f"{len(wrong)} image(s) with the wrong format: {shown}")


# --------------------------------------------------------------------------------------------
# Building a sample from arrays
# --------------------------------------------------------------------------------------------


def _image(stack: Any, index: tuple[int, ...], arg: str, dtype: type, shape: tuple[int, ...]) -> np.ndarray:
    item = stack
    for i in index:
        item = item[i]
    array = np.asarray(item)
    if array.dtype != dtype or array.shape != shape:
        where = "".join(f"[{i}]" for i in index)
        expected = f"{np.dtype(dtype)} {list(shape)}"
        raise ValueError(f"{arg}{where}: expected {expected}, got {array.dtype} {list(array.shape)}")
    return array


def _complete_meta(meta: Mapping[str, Any], key: str, num_views: int, num_frames: int, resolution: int) -> dict:
    # Fill what the arrays already say; a conflicting value is an error, never overwritten.
    character_id, motion_id = parse_key(key)
    derived = {
        "character_id": character_id,
        "motion_id": motion_id,
        "num_views": num_views,
        "num_frames": num_frames,
        "resolution": resolution,
    }
    completed = dict(meta)
    for name, value in derived.items():
        if name in completed and completed[name] != value:
            raise ValueError(f"meta[{name!r}]: the key and arrays imply {value!r}, got {completed[name]!r}")
        completed[name] = value
    return completed


def _encode_optional(
    files: dict, arrays: Any, arg: str, name_fn: Any, views: int, frames: int, res: int
) -> None:
    if arrays is None:
        return
    for v in range(views):
        for f in range(frames):
            item = np.asarray(arrays[v][f])
            if item.shape != (res, res):
                raise ValueError(f"{arg}[{v}][{f}]: expected [{res}, {res}], got {list(item.shape)}")
            if arg == "depths":
                files[name_fn(v, f)] = _encode_depth(item, f"{arg}[{v}][{f}]")
            else:
                if item.dtype not in (np.bool_, np.uint8):
                    raise ValueError(f"{arg}[{v}][{f}]: expected bool or uint8 (0/255), got {item.dtype}")
                files[name_fn(v, f)] = encode_png(np.where(item.astype(bool), 255, 0).astype(np.uint8))


def build_sample(
    key: str,
    meta: Mapping[str, Any],
    cameras_json: Mapping[str, Any],
    joints: np.ndarray,
    apose_joints: np.ndarray,
    apose_images: Sequence[np.ndarray] | np.ndarray,
    frames: Sequence[Sequence[np.ndarray]] | np.ndarray,
    poses: Sequence[Sequence[np.ndarray]] | np.ndarray,
    depths: Sequence[Sequence[np.ndarray]] | np.ndarray | None = None,
    masks: Sequence[Sequence[np.ndarray]] | np.ndarray | None = None,
) -> Sample:
    """Encode arrays into a validated sample.

    Image stacks may be numpy arrays or nested sequences (``frames[v][f]``), so a renderer can pass
    per-view lists without stacking hundreds of frames into one array. ``meta`` gets
    ``character_id``, ``motion_id`` (from the key), ``num_views``, ``num_frames`` and ``resolution``
    (from the arrays) filled in when absent; present values must agree.

    Args:
        key: sample key ``{character_id}__{motion_id}``.
        meta: meta.json content; must hold fps, joint_names and source_times (F entries) itself.
        cameras_json: ``Cameras.to_json()`` of the rig.
        joints: float [F, J, 3] world joint positions (stored as float32; NaN for missing joints).
        apose_joints: float [J, 3].
        apose_images: uint8 [V, H, W, 4] RGBA, H == W.
        frames: uint8 [V, F, H, W, 4] RGBA.
        poses: uint8 [V, F, H, W, 3] RGB pose maps.
        depths: optional float [V, F, H, W] metres; NaN or inf marks background.
        masks: optional bool (or uint8 0/255) [V, F, H, W].

    Returns:
        The validated :class:`Sample`.

    Raises:
        ValueError: for wrong shapes/dtypes, depth out of [0.001, 65.535] m, or meta conflicts.
        SampleFormatError: if the assembled sample fails :meth:`Sample.validate`.
    """
    num_views = len(apose_images)
    if not 0 < num_views <= MAX_VIEWS:
        raise ValueError(f"apose_images: expected 1 to {MAX_VIEWS} views, got {num_views}")
    first = np.asarray(apose_images[0])
    if first.ndim != 3 or first.shape[0] != first.shape[1]:
        raise ValueError(f"apose_images[0]: expected square [H, W, 4] with H == W, got {list(first.shape)}")
    res = first.shape[0]
    if len(frames) != num_views or len(poses) != num_views:
        raise ValueError(
            f"frames, poses: expected {num_views} views like apose_images, got {len(frames)}, {len(poses)}"
        )
    num_frames = len(frames[0])
    if not 0 < num_frames <= MAX_FRAMES:
        raise ValueError(f"frames: expected 1 to {MAX_FRAMES} frames per view, got {num_frames}")
    joints = np.asarray(joints, dtype=np.float32)
    apose_joints = np.asarray(apose_joints, dtype=np.float32)
    if joints.ndim != 3 or joints.shape[0] != num_frames or joints.shape[2] != 3:
        raise ValueError(f"joints: expected [{num_frames}, J, 3], got {list(joints.shape)}")
    if apose_joints.shape != joints.shape[1:]:
        raise ValueError(f"apose_joints: expected {list(joints.shape[1:])}, got {list(apose_joints.shape)}")
    files = {
        META: encode_json(_complete_meta(meta, key, num_views, num_frames, res)),
        CAMERAS: encode_json(dict(cameras_json)),
        JOINTS: encode_npy(joints),
        APOSE_JOINTS: encode_npy(apose_joints),
    }
    for v in range(num_views):
        files[apose_name(v)] = encode_png(_image(apose_images, (v,), "apose_images", np.uint8, (res, res, 4)))
        for f in range(num_frames):
            files[frame_name(v, f)] = encode_png(_image(frames, (v, f), "frames", np.uint8, (res, res, 4)))
            files[pose_name(v, f)] = encode_png(_image(poses, (v, f), "poses", np.uint8, (res, res, 3)))
    _encode_optional(files, depths, "depths", depth_name, num_views, num_frames, res)
    _encode_optional(files, masks, "masks", mask_name, num_views, num_frames, res)
    return Sample.from_files(key, files, validate=True)


# --------------------------------------------------------------------------------------------
# Folders
# --------------------------------------------------------------------------------------------


def read_folder_sample(folder: str | os.PathLike, validate: bool = True) -> Sample:
    """Read one sample folder (``<key>/meta.json``, ``apose/view00.png``, ...).

    Hidden files (``.DS_Store``...) are ignored; any other file outside the layout is an error.

    Args:
        folder: the sample folder; its name is the key.
        validate: run :meth:`Sample.validate`.

    Returns:
        The sample.

    Raises:
        FileNotFoundError: if ``folder`` is not a directory.
        SampleFormatError: if a file is outside the layout or the sample is invalid (names the folder).
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"folder: no such sample folder {folder}")
    files = {}
    for path in sorted(folder.rglob("*")):
        relative = path.relative_to(folder)
        if path.is_dir() or any(part.startswith(".") for part in relative.parts):
            continue
        try:
            files[path_to_field(relative.as_posix())] = path.read_bytes()
        except SampleFormatError as exc:
            raise SampleFormatError(f"{folder}: {exc}") from exc
    try:
        return Sample.from_files(folder.name, files, validate=validate)
    except SampleFormatError as exc:
        raise SampleFormatError(f"{folder}: {exc}", exc.problems) from exc


def write_folder_sample(sample: Sample, root: str | os.PathLike) -> Path:
    """Write a sample as ``root/<key>/`` atomically.

    Files go to ``root/.<key>.tmp/`` first (a leftover one from an interrupted write is removed), and
    the folder is renamed to ``root/<key>`` only when complete, so a reader or a resumed job never
    sees half a sample.

    Args:
        sample: the sample.
        root: the export root (created if missing).

    Returns:
        The sample folder ``root/<key>``.

    Raises:
        TypeError: if ``sample`` is not a :class:`Sample`.
        FileExistsError: if ``root/<key>`` already exists (nothing is replaced).
        SampleFormatError: if a field has no folder path.
    """
    if not isinstance(sample, Sample):
        raise TypeError(f"sample: expected Sample, got {type(sample).__name__}")
    root = Path(root)
    final = root / sample.key
    if final.exists():
        raise FileExistsError(f"{final} already exists; write_folder_sample never replaces a sample")
    paths = {name: field_to_path(name) for name in sample.files}
    root.mkdir(parents=True, exist_ok=True)
    staging = root / f".{sample.key}.tmp"
    if staging.exists():
        shutil.rmtree(staging)
    try:
        for name in sorted(paths):
            target = staging / paths[name]
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(sample.files[name])
        os.rename(staging, final)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return final


# --------------------------------------------------------------------------------------------
# Shards
# --------------------------------------------------------------------------------------------


class ShardWriter:
    """Write samples to one webdataset ``.tar`` shard, atomically.

    Writes ``<path>.tmp`` and renames it to ``path`` when the ``with`` block ends without an error;
    on an error the temporary file is removed. Samples must come in strictly increasing key order,
    which makes every shard sorted and free of duplicates. Tar members get a fixed mtime so the same
    samples always give byte-identical shards.

    Args:
        path: the shard path, ending in ``.tar``.

    Raises:
        ValueError: if ``path`` does not end in ``.tar``.
        FileExistsError: (on entering) if ``path`` exists; shards are never overwritten.

    Example::

        with ShardWriter("out/c4d-00000.tar") as writer:
            for sample in samples:
                writer.write(sample)
    """

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = Path(path)
        if self.path.suffix != ".tar":
            raise ValueError(f"path: expected a file name ending in .tar, got {self.path}")
        self.tmp_path = self.path.with_name(self.path.name + ".tmp")
        self.count = 0
        self._last_key: str | None = None
        self._file: Any = None
        self._writer: Any = None

    def __enter__(self) -> ShardWriter:
        if self.path.exists():
            raise FileExistsError(f"{self.path} already exists; ShardWriter never overwrites a shard")
        from webdataset import TarWriter  # heavy import (pulls in torch when installed)

        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._file = open(self.tmp_path, "wb")
        # An integer mtime: tarfile writes a PAX header for every float field, which costs readers ~50 us
        # per member to parse.
        self._writer = TarWriter(self._file, encoder=False, mtime=0)
        return self

    def write(self, sample: Sample) -> None:
        """Append one sample.

        Args:
            sample: the sample; its key must be greater than the previous one.

        Raises:
            RuntimeError: if called outside the ``with`` block.
            TypeError: if ``sample`` is not a :class:`Sample`.
            ValueError: if the key does not increase.
        """
        if self._writer is None:
            raise RuntimeError("ShardWriter.write: use it inside 'with ShardWriter(path) as writer:'")
        if not isinstance(sample, Sample):
            raise TypeError(f"sample: expected Sample, got {type(sample).__name__}")
        if self._last_key is not None and sample.key <= self._last_key:
            raise ValueError(
                f"sample.key: expected keys in strictly increasing order, got {sample.key!r} after {self._last_key!r}"
            )
        self._writer.write({"__key__": sample.key, **sample.files})
        self._last_key = sample.key
        self.count += 1

    def __exit__(self, exc_type: Any, exc: Any, traceback: Any) -> None:
        writer, handle = self._writer, self._file
        self._writer = self._file = None
        try:
            writer.close()
            handle.flush()
            # fsync before the rename: a renamed shard must never turn out truncated after a crash.
            os.fsync(handle.fileno())
        except BaseException:
            handle.close()
            self.tmp_path.unlink(missing_ok=True)
            raise
        handle.close()
        if exc_type is None:
            os.replace(self.tmp_path, self.path)
        else:
            self.tmp_path.unlink(missing_ok=True)


def _raw_tar_samples(path: Path, select: Any) -> Iterator[dict]:
    """Yield webdataset's raw sample dicts of one tar, turning read errors into SampleFormatError."""
    from webdataset import tariterators  # heavy import (pulls in torch when installed)

    with open(path, "rb") as stream:
        members = tariterators.tar_file_expander([{"url": str(path), "stream": stream}], select_files=select)
        grouped = tariterators.group_by_keys(members)
        while True:
            try:
                raw = next(grouped)
            except StopIteration:
                return
            except (tarfile.TarError, OSError, EOFError, ValueError) as exc:
                reason = exc.args[0] if exc.args else type(exc).__name__
                raise SampleFormatError(f"{path}: not a readable webdataset tar shard ({reason})") from exc
            yield raw


def _iter_tar(path: Path, keys: set[str] | None, validate: bool) -> Iterator[Sample]:
    # Selecting by member name lets tarfile skip the data of unwanted samples without reading it.
    select = None if keys is None else (lambda name: name.split(".", 1)[0] in keys)
    previous = None
    for raw in _raw_tar_samples(path, select):
        key = raw["__key__"]
        if previous is not None and key <= previous:
            raise SampleFormatError(
                f"{path}: sample {key!r} follows {previous!r}; shards must be sorted by key without duplicates"
            )
        previous = key
        files = {name: data for name, data in raw.items() if not name.startswith("__")}
        try:
            yield Sample.from_files(key, files, validate=validate)
        except SampleFormatError as exc:
            raise SampleFormatError(f"{path}: {exc}", exc.problems) from exc


def _iter_folders(folders: list[Path], keys: set[str] | None, validate: bool) -> Iterator[Sample]:
    for folder in folders:
        if keys is None or folder.name in keys:
            yield read_folder_sample(folder, validate=validate)


def _discover(directory: Path) -> tuple[str, list[Path]]:
    """Classify a directory as ("folder", [itself]), ("tars", shards) or ("folders", sample folders)."""
    if (directory / META).is_file():
        return "folder", [directory]
    visible = sorted(p for p in directory.iterdir() if not p.name.startswith("."))
    # Only complete shards end in .tar; partial ones end in .tar.tmp.
    tars = [p for p in visible if p.is_file() and p.suffix == ".tar"]
    folders = [p for p in visible if p.is_dir() and (p / META).is_file()]
    if tars and folders:
        raise SampleFormatError(
            f"{directory}: holds both .tar shards and sample folders; point open_samples at one of them"
        )
    if tars:
        return "tars", tars
    if folders:
        return "folders", folders
    if (directory / "shards").is_dir():  # the out_dir of character4d.jobs.run_jobs
        kind, found = _discover(directory / "shards")
        if kind == "tars":
            return kind, found
    raise SampleFormatError(
        f"{directory}: no samples found (expected .tar shards, sample folders holding meta.json, "
        "a sample folder, or a 'shards' subfolder)"
    )


def open_samples(
    path: str | os.PathLike, keys: Iterable[str] | None = None, validate: bool = True
) -> Iterator[Sample]:
    """Iterate over the samples of a shard, a shard directory, a folder export or one sample folder.

    Order is deterministic: shards in file-name order and samples in key order within each shard;
    sample folders in key order. Partial outputs (``*.tmp``, hidden staging folders) are ignored.

    Args:
        path: a ``.tar`` shard; a directory of ``.tar`` shards; a folder-export root (subfolders
            holding meta.json); one sample folder; or a run_jobs output directory (reads ``shards/``).
        keys: if given, only these samples are read (others are skipped without decoding), and a
            requested key that is not found raises at the end of the iteration.
        validate: run :meth:`Sample.validate` on each sample.

    Returns:
        An iterator of :class:`Sample`.

    Raises:
        FileNotFoundError: if ``path`` does not exist.
        SampleFormatError: for unreadable/corrupt shards, invalid samples, duplicate keys across
            sources, or requested keys that are missing; the message names the file.
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"path: {path} does not exist")
    wanted = None if keys is None else {key for key in keys}
    if wanted is not None:
        for key in wanted:
            parse_key(key)
    if path.is_file():
        if path.suffix != ".tar":
            raise SampleFormatError(f"path: expected a .tar shard or a directory, got {path}")
        kind, sources = "tars", [path]
    else:
        kind, sources = _discover(path)
    return _open_sources(path, kind, sources, wanted, validate)


def _open_sources(
    path: Path, kind: str, sources: list[Path], wanted: set[str] | None, validate: bool
) -> Iterator[Sample]:
    seen: dict[str, Path] = {}
    streams = [(src, _iter_tar(src, wanted, validate)) for src in sources] if kind == "tars" else [
        (path, _iter_folders(sources, wanted, validate))
    ]
    for source, stream in streams:
        for sample in stream:
            if sample.key in seen:
                raise SampleFormatError(f"{source}: sample {sample.key!r} was already read from {seen[sample.key]}")
            seen[sample.key] = source
            yield sample
    if wanted is not None and wanted - seen.keys():
        missing = sorted(wanted - seen.keys())
        raise SampleFormatError(f"{path}: requested keys not found: {', '.join(missing)}")


def export_folders(
    src: str | os.PathLike, root: str | os.PathLike, keys: Iterable[str] | None = None
) -> list[Path]:
    """Convert shards (or any source :func:`open_samples` reads) to sample folders under ``root``.

    Args:
        src: anything :func:`open_samples` accepts.
        root: the export root; ``root/<key>/`` must not exist yet.
        keys: optional subset of keys.

    Returns:
        The written sample folders, in reading order.

    Raises:
        FileExistsError: if a sample folder already exists.
        SampleFormatError: if the source is invalid.
    """
    return [write_folder_sample(sample, root) for sample in open_samples(src, keys=keys)]
