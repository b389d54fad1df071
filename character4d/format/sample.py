"""`Sample`: one (character, motion) sample as encoded fields with lazy, cached decoding."""

from __future__ import annotations

import io
import json
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cached_property
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

import numpy as np
from PIL import Image

from character4d.format.codecs import _DEPTH_MM_PER_M, _DEPTH_READ_MODES, decode_image
from character4d.format.names import (
    APOSE_JOINTS,
    CAMERAS,
    JOINTS,
    META,
    SampleFormatError,
    _stack_field,
    apose_name,
    depth_name,
    frame_name,
    mask_name,
    parse_key,
    pose_name,
)
from character4d.format.meta import SampleMeta
from character4d.format.validation import _SampleChecker

if TYPE_CHECKING:
    from character4d.cameras import Cameras

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
    def sample_meta(self) -> SampleMeta:
        """``meta.json`` as a :class:`~character4d.format.SampleMeta` (typed; checked against the key)."""
        return SampleMeta.from_json(self.meta, self.key)

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

    def _colour(self, png: str, channels: int, stack: str | None = None, frame: int | None = None) -> np.ndarray:
        """An RGB(A) image stored as PNG, as lossless WebP (same name, .webp) or as a frame of a per-view WebP."""
        if png in self.files:
            return self._png(png, ("RGBA",) if channels == 4 else ("RGB",))
        webp = png[: -len("png")] + "webp"
        if webp in self.files:
            name, index = webp, None
        elif stack is not None and stack in self.files:
            name, index = stack, frame
        else:
            self._field(png)  # raises, naming the field
        try:
            return decode_image(self._field(name), channels, index, self.num_frames if index is not None else 1)
        except (OSError, SyntaxError, ValueError, EOFError) as exc:
            raise SampleFormatError(f"sample {self.key!r}: {name} is not a readable image ({exc})") from exc

    def apose(self, v: int) -> np.ndarray:
        """A-pose image of view ``v``: uint8 [H, W, 4] RGBA (straight alpha)."""
        return self._colour(apose_name(v), 4)

    def frame(self, v: int, f: int) -> np.ndarray:
        """Motion frame ``f`` of view ``v``: uint8 [H, W, 4] RGBA (straight alpha)."""
        return self._colour(frame_name(v, f), 4, _stack_field("motion", v), f)

    def pose(self, v: int, f: int) -> np.ndarray:
        """Pose map of view ``v``, frame ``f``: uint8 [H, W, 3] RGB."""
        return self._colour(pose_name(v, f), 3, _stack_field("pose", v), f)

    def depth(self, v: int, f: int) -> np.ndarray:
        """Depth of view ``v``, frame ``f``: float32 [H, W] metres along the optical axis, NaN = background."""
        millimetres = self._png(depth_name(v, f), _DEPTH_READ_MODES).astype(np.float32)
        millimetres[millimetres == 0] = np.nan
        return millimetres / np.float32(_DEPTH_MM_PER_M)

    def mask(self, v: int, f: int) -> np.ndarray:
        """Foreground mask of view ``v``, frame ``f``: bool [H, W]."""
        return self._png(mask_name(v, f), ("L",)) > 127

    # -- validation ---------------------------------------------------------------------------

    def validate(self, decode: bool = False) -> None:
        """Check that the sample is complete and consistent.

        Checks: required top-level fields; meta.json core keys and their types; key == ids in meta;
        joints [F, J, 3] and apose_joints [J, 3] float32 with J = len(joint_names); cameras.json
        decodes to V cameras of the sample resolution; an A-pose image per view and a frame and a
        pose map per (view, frame); depth/mask either complete or absent; no unknown or
        out-of-range fields; every PNG of the right size and mode (read from the PNG header only).

        Args:
            decode: also decode every image in full, which finds truncated or corrupt image data that
                a header check cannot (what the job runner does before a sample enters a tar).

        Raises:
            SampleFormatError: listing every problem found (also in ``.problems``).
        """
        problems = _SampleChecker(self, decode=decode).problems()
        if problems:
            listing = "\n  - ".join(problems)
            raise SampleFormatError(
                f"sample {self.key!r} does not follow the Character4D sample contract "
                f"({len(problems)} problem(s)):\n  - {listing}",
                problems,
            )


