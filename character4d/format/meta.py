"""The ``meta.json`` document of a sample: `SampleMeta` owns its keys, their types and their checks.

Required keys are what a reader needs to interpret the other fields (ids, counts, fps, joint names, the
source time of every frame). The optional keys are what character4d's renderer records (DESIGN.md
section 5); keys this version does not know are kept in ``extra`` and written back unchanged, so a
newer writer's samples still read.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, fields
from types import MappingProxyType
from typing import Any

from character4d.format.names import MAX_FRAMES, MAX_VIEWS, SampleFormatError, parse_key

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
_MAX_RESOLUTION = 1 << 16


@dataclass(frozen=True)
class SampleMeta:
    """The content of a sample's ``meta.json``.

    Attributes:
        character_id: the character's id (first half of the key).
        motion_id: the motion's id (second half of the key).
        num_views: V, views of the rig.
        num_frames: F, motion frames per view.
        resolution: side of the square images, pixels.
        fps: frame rate of the motion frames.
        joint_names: names of the J joints of ``joints.npy``, in order (``character4d.skeleton.JOINT_NAMES``).
        source_times: F numbers: for each frame, seconds since the first keyframe of the source motion.
        sources: ``{"character": {"name", "sha256"}, "motion": {...}}``: the input files (names, not paths).
        license: licence and attribution of the inputs when known (None: unknown).
        rig: the rig parameters (``Cameras.to_json()["rig"]``).
        renderer: renderer name/version and its settings.
        render_config: the run's ``RunConfig.to_json()``.
        package_version: character4d's version.
        seed: the renderer's random seed.
        source_fps: frame rate of the source motion.
        source_duration: length of the source motion, seconds.
        skeleton: the skeleton mappings used (``{"character": SkeletonMap.to_json(), "motion": ...,
            "character_rigged": bool, "autorig": None or {"quality": float in [0, 1], "checks": {...},
            "warnings": [...], "fingers": "resolved" or "mitten: <reason>"}}``).
        character_height: the character's height after normalisation, metres.
        character_scale: the scale applied to the character file.
        start: how the clip's start was chosen: ``{"requested": "auto" or seconds, "chosen_s": float,
            "lead_in_s": float}``.
        framing: per view and frame whether the character leaves the image: ``{"joint_outside": [V][F] 0/1,
            "silhouette_outside": [V][F] 0/1, "apose_silhouette_outside": [V] 0/1, "clipped": int}``.
        imported_from: for samples made by ``character4d import``: the layout and folder they came from.
        extra: any other keys (kept as they are).
    """

    character_id: str
    motion_id: str
    num_views: int
    num_frames: int
    resolution: int
    fps: float
    joint_names: tuple[str, ...]
    source_times: tuple[float, ...]
    sources: Mapping[str, Any] | None = None
    license: Mapping[str, Any] | None = None
    rig: Mapping[str, Any] | None = None
    renderer: Mapping[str, Any] | None = None
    render_config: Mapping[str, Any] | None = None
    package_version: str | None = None
    seed: int | None = None
    source_fps: float | None = None
    source_duration: float | None = None
    skeleton: Mapping[str, Any] | None = None
    character_height: float | None = None
    character_scale: float | None = None
    start: Mapping[str, Any] | None = None
    framing: Mapping[str, Any] | None = None
    imported_from: Mapping[str, Any] | None = None
    extra: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        object.__setattr__(self, "joint_names", tuple(self.joint_names))
        object.__setattr__(self, "source_times", tuple(self.source_times))
        object.__setattr__(self, "extra", MappingProxyType(dict(self.extra)))
        clash = sorted(set(self.extra) & _FIELD_NAMES)
        if clash:
            raise ValueError(f"extra: {clash} are SampleMeta fields; pass them as such")
        problems = meta_problems(self.to_json())
        if problems:
            raise SampleFormatError(f"meta.json: {'; '.join(problems)}", problems)

    @property
    def key(self) -> str:
        """The sample key ``{character_id}__{motion_id}``."""
        return f"{self.character_id}__{self.motion_id}"

    def to_json(self) -> dict[str, Any]:
        """The ``meta.json`` object: every set field (None ones left out) plus ``extra``."""
        out: dict[str, Any] = dict(self.extra)
        for f in fields(self):
            if f.name == "extra":
                continue
            value = getattr(self, f.name)
            if value is None and f.name not in REQUIRED_META_KEYS:
                continue
            out[f.name] = list(value) if isinstance(value, tuple) else value
        return out

    @classmethod
    def from_json(cls, d: Mapping[str, Any], key: str | None = None) -> SampleMeta:
        """Read a ``meta.json`` object.

        Args:
            d: the decoded JSON object.
            key: the sample's key, when known: the ids must agree with it.

        Returns:
            The meta.

        Raises:
            SampleFormatError: listing every problem (missing required keys, wrong types, ids not matching
                the key, ``source_times`` of the wrong length).
        """
        if not isinstance(d, Mapping):
            raise SampleFormatError(f"meta.json must hold an object, got {type(d).__name__}")
        problems = meta_problems(d, key)
        if problems:
            raise SampleFormatError(f"meta.json: {'; '.join(problems)}", problems)
        known = {k: v for k, v in d.items() if k in _FIELD_NAMES}
        return cls(**known, extra={k: v for k, v in d.items() if k not in _FIELD_NAMES})


_FIELD_NAMES = frozenset(f.name for f in fields(SampleMeta)) - {"extra"}


def _positive_int(meta: Mapping[str, Any], name: str, limit: int, found: list[str]) -> int | None:
    value = meta[name]
    if isinstance(value, bool) or not isinstance(value, int) or not 0 < value <= limit:
        found.append(f"meta.json {name}: expected an integer in [1, {limit}], got {value!r}")
        return None
    return value


def check_meta(meta: Mapping[str, Any], key: str | None = None) -> tuple[list[str], tuple[int, int, int, int] | None]:
    """Every problem of a meta.json object, and (V, F, resolution, J) when the required keys are sound.

    Args:
        meta: the decoded object.
        key: the sample key the ids must match (None: not checked).

    Returns:
        ``(problems, counts)``; ``counts`` is None when a required key is missing or broken.
    """
    found: list[str] = []
    missing = [name for name in REQUIRED_META_KEYS if name not in meta]
    if missing:
        return [f"meta.json lacks required keys: {', '.join(missing)}"], None
    counts = [_positive_int(meta, name, limit, found) for name, limit in
              (("num_views", MAX_VIEWS), ("num_frames", MAX_FRAMES), ("resolution", _MAX_RESOLUTION))]
    fps = meta["fps"]
    if isinstance(fps, bool) or not isinstance(fps, numbers.Real) or not fps > 0:
        found.append(f"meta.json fps: expected a positive number, got {fps!r}")
    names = meta["joint_names"]
    if not isinstance(names, Sequence) or isinstance(names, str) or not all(isinstance(n, str) for n in names):
        found.append("meta.json joint_names: expected a list of strings")
        names = None
    elif len(set(names)) != len(names):
        found.append("meta.json joint_names: names are not unique")
    for name in ("character_id", "motion_id"):
        if not isinstance(meta[name], str):
            found.append(f"meta.json {name}: expected a string, got {meta[name]!r}")
    if key is not None:
        character_id, motion_id = parse_key(key)
        for name, expected in (("character_id", character_id), ("motion_id", motion_id)):
            if meta[name] != expected:
                found.append(f"meta.json {name}: key {key!r} implies {expected!r}, got {meta[name]!r}")
    if None in counts or names is None:
        return found, None
    num_views, num_frames, resolution = counts
    times = meta["source_times"]
    valid = isinstance(times, Sequence) and not isinstance(times, str) and all(
        isinstance(t, numbers.Real) and not isinstance(t, bool) and math.isfinite(t) for t in times
    )
    if not valid or len(times) != num_frames:
        got = f"{len(times)} entries" if isinstance(times, Sequence) else type(times).__name__
        found.append(f"meta.json source_times: expected {num_frames} finite numbers, got {got}")
    return found, (num_views, num_frames, resolution, len(names))


def meta_problems(meta: Mapping[str, Any], key: str | None = None) -> list[str]:
    """The problems :func:`check_meta` finds (an empty list for a sound meta.json)."""
    return check_meta(meta, key)[0]
