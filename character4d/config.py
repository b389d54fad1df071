"""Run configuration: one frozen dataclass, shared by the CLI, the job runner and the Blender worker.

`RunConfig` nests the camera rig (`character4d.cameras.RigConfig`, which owns the rig's defaults) and
holds everything else that changes what a run writes. Its JSON form (manifests, ``meta.json``'s
``render_config``, the worker's job file) is flat: the rig's fields appear under their CLI names
(``resolution``, ``num_views``, ``radius``, ``cam_height``, ``fov_deg``, ``elevation_deg``), as in
earlier releases, so older manifests and job files still read.
"""

from __future__ import annotations

import dataclasses
import math
import re
from dataclasses import dataclass, field, fields
from typing import Any

from character4d.cameras import RigConfig

ENGINES = ("cycles", "eevee", "workbench")
POSE_VARIANTS = ("openpose", "charactershot")
ROOT_MOTIONS = ("center", "keep", "in_place")
CODECS = ("png", "webp", "webp-view")
AUTO = "auto"

# Engine defaults chosen with scripts/bench/render_speed.py: Cycles needs few samples once the
# denoiser runs and only the character's screen rectangle is rendered.
DEFAULT_SAMPLES = {"cycles": 8, "eevee": 16, "workbench": 8}
WORKBENCH_AA = (5, 8, 11, 16, 32)  # the sample counts Workbench's anti-aliasing offers

# Flat JSON / CLI name -> RigConfig field. The look-at point is always (0, 0, cam_height): the rig
# looks horizontally at the character's middle (DESIGN.md section 4).
RIG_FIELDS = {
    "resolution": "resolution",
    "num_views": "num_views",
    "radius": "radius",
    "cam_height": "height",
    "fov_deg": "fov_deg",
    "elevation_deg": "elevation_deg",
}


def parse_start(value: Any) -> float | str:
    """Read a ``start`` value: ``"auto"`` (any case) or seconds >= 0.

    Args:
        value: ``"auto"``, a number, or a string holding a number (from the command line).

    Returns:
        ``"auto"`` or the seconds as float.

    Raises:
        ValueError: for anything else (names the accepted forms).
    """
    if isinstance(value, str):
        if value.strip().lower() == AUTO:
            return AUTO
        try:
            value = float(value)
        except ValueError:
            raise ValueError(f"start: expected 'auto' or seconds >= 0, got {value!r}") from None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
        raise ValueError(f"start: expected 'auto' or seconds >= 0, got {value!r}")
    return float(value)


@dataclass(frozen=True)
class RunConfig:
    """Everything that changes what a render run writes (pixels and their encoding).

    Attributes:
        rig: the camera rig (DESIGN.md section 4; its defaults are the Character4D / CharacterShot
            template: 21 views, 3.5 m, 0.7 m, 39.5978 degrees, 512 px). The rig always looks at
            (0, 0, cam_height).
        num_frames: frames per motion clip; 25, as in Character4D.
        fps: output frame rate; 25 frames at 15 fps cover 1.67 s, about one gait cycle.
        start: where the clip starts in the source motion: "auto" skips a leading calibration pose
            (T-pose or static frames) and takes the window with the most motion; a number is seconds
            since the first keyframe (0 = the file's first frame, the behaviour of earlier releases).
        engine: "cycles" (default: also the fastest on CPU, see docs/benchmarks.md), "eevee" or "workbench".
        samples: samples per pixel (Cycles/EEVEE) or anti-aliasing samples (Workbench); None = the
            engine default (Cycles 8 with the denoiser, EEVEE 16, Workbench 8).
        denoise: run OpenImageDenoise after Cycles.
        seed: Cycles noise seed.
        depth: also write depth maps (16-bit PNG, millimetres).
        mask: also write binary masks.
        hands: draw hand keypoints into the pose maps (when the skeleton has fingers).
        pose_variant: "openpose" (DWPose/ControlNet look) or "charactershot" (thin limbs, R/B swapped,
            as the released CharacterShot data).
        apose_arm_deg: arm angle below horizontal of the A-pose renders (40, the VRoid A-pose).
        height: exact character height in metres; None keeps it within 1.6-1.9 m.
        root_motion: "center" (hips motion relative to the clip mean), "keep" (relative to the first
            frame) or "in_place" (no horizontal hips motion: the character stays on the Z axis).
        face_front: turn each motion so the character faces view 0 on average over the clip.
        threads: CPU threads Blender may use (0: all cores); set it when several renders share a node.
        codec: encoding of the RGBA frames, A-pose images and pose maps: "png" (lossless PNG per image,
            what the benchmark's ground truth uses), "webp" (lossless WebP per image) or "webp-view"
            (one lossless animated WebP per view for the motion frames and for the pose maps). WebP
            keeps every visible pixel; the colour under fully transparent pixels is stored as 0. Depth
            and masks stay PNG.
        png_level: zlib level 0-9 the PNGs are re-encoded with; None keeps the renderer's PNGs
            (Blender's fast setting, byte-identical to earlier releases). 9 is the smallest and slowest
            (see docs/benchmarks.md for the sizes).
    """

    rig: RigConfig = field(default_factory=RigConfig)
    num_frames: int = 25
    fps: float = 15.0
    start: float | str = AUTO
    engine: str = "cycles"
    samples: int | None = None
    denoise: bool = True
    seed: int = 0
    depth: bool = False
    mask: bool = False
    hands: bool = False
    pose_variant: str = "openpose"
    apose_arm_deg: float = 40.0
    height: float | None = None
    root_motion: str = "center"
    face_front: bool = True
    threads: int = 0
    codec: str = "png"
    png_level: int | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.rig, RigConfig):
            raise TypeError(f"rig: expected a character4d.cameras.RigConfig, got {type(self.rig).__name__}")
        if tuple(self.rig.target) != (0.0, 0.0, float(self.rig.height)):
            raise ValueError(f"rig.target: the render rig looks at (0, 0, cam_height), got {self.rig.target}")
        object.__setattr__(self, "start", parse_start(self.start))
        for name, allowed in (("engine", ENGINES), ("pose_variant", POSE_VARIANTS), ("root_motion", ROOT_MOTIONS),
                              ("codec", CODECS)):
            if getattr(self, name) not in allowed:
                raise ValueError(f"{name}: expected one of {allowed}, got {getattr(self, name)!r}")
        if isinstance(self.num_frames, bool) or not isinstance(self.num_frames, int) or self.num_frames < 1:
            raise ValueError(f"num_frames: expected a positive integer, got {self.num_frames!r}")
        if self.fps <= 0:
            raise ValueError(f"fps: expected > 0, got {self.fps}")
        if self.samples is not None and self.samples < 1:
            raise ValueError(f"samples: expected >= 1, got {self.samples}")
        if self.engine == "workbench" and self.samples is not None and self.samples not in WORKBENCH_AA:
            raise ValueError(f"samples: Workbench anti-aliasing takes one of {WORKBENCH_AA}, got {self.samples}")
        if self.threads < 0:
            raise ValueError(f"threads: expected >= 0 (0: all cores), got {self.threads}")
        if self.height is not None and self.height <= 0:
            raise ValueError(f"height: expected > 0 metres, got {self.height}")
        level = self.png_level
        if level is not None and (isinstance(level, bool) or not isinstance(level, int) or not 0 <= level <= 9):
            raise ValueError(f"png_level: expected an integer in [0, 9], got {self.png_level!r}")

    # The rig's fields, read through the config as the Blender layer and older code do.
    resolution = property(lambda self: self.rig.resolution, doc="Image side in pixels (``rig.resolution``).")
    num_views = property(lambda self: self.rig.num_views, doc="Cameras on the orbit (``rig.num_views``).")
    radius = property(lambda self: self.rig.radius, doc="Orbit radius, metres (``rig.radius``).")
    cam_height = property(lambda self: self.rig.height, doc="Camera and look-at height, metres (``rig.height``).")
    fov_deg = property(lambda self: self.rig.fov_deg, doc="Field of view, degrees (``rig.fov_deg``).")
    elevation_deg = property(lambda self: self.rig.elevation_deg, doc="Camera elevation, degrees.")

    @property
    def effective_samples(self) -> int:
        """Samples actually used (the engine default when ``samples`` is None)."""
        return self.samples if self.samples is not None else DEFAULT_SAMPLES[self.engine]

    def replace(self, **changes: Any) -> RunConfig:
        """A copy with some fields changed; rig fields may be given flat (``resolution=64``)."""
        return RunConfig.from_json({**self.to_json(), **changes})

    def to_json(self) -> dict[str, Any]:
        """Plain, flat JSON form (manifests, meta.json, the worker's job file)."""
        flat = {name: getattr(self.rig, rig_name) for name, rig_name in RIG_FIELDS.items()}
        for f in fields(self):
            if f.name != "rig":
                flat[f.name] = getattr(self, f.name)
        return flat

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> RunConfig:
        """Inverse of `to_json`; absent keys take their defaults, unknown keys are an error naming them.

        Raises:
            ValueError: for unknown keys or invalid values.
        """
        own = {f.name for f in fields(cls)} - {"rig"}
        known = own | set(RIG_FIELDS)
        unknown = sorted(set(d) - known)
        if unknown:
            raise ValueError(f"unknown run config keys {unknown}; known: {sorted(known)}")
        rig_args = {RIG_FIELDS[k]: d[k] for k in RIG_FIELDS if k in d}
        if "height" in rig_args:
            rig_args["target"] = (0.0, 0.0, float(rig_args["height"]))
        rig = dataclasses.replace(RigConfig(), **rig_args)
        return cls(rig=rig, **{k: v for k, v in d.items() if k in own})


class RenderConfig:
    """The flat constructor of earlier releases: ``RenderConfig(resolution=64, num_views=3, ...)``
    returns the equivalent :class:`RunConfig` (the rig's fields go into its ``rig``)."""

    def __new__(cls, **flat: Any) -> RunConfig:  # type: ignore[misc]
        return RunConfig.from_json(flat)

    from_json = staticmethod(RunConfig.from_json)


def field_docs(cls: type) -> dict[str, str]:
    """The full text of every attribute in a dataclass's ``Attributes:`` docstring section.

    Continuation lines (indented deeper than the attribute) are joined, so the CLI's ``--help`` shows an
    attribute's whole documentation, not its first line.

    Args:
        cls: a class whose docstring has a Google-style ``Attributes:`` section.

    Returns:
        attribute name -> its documentation, whitespace-normalised.
    """
    docs: dict[str, str] = {}
    lines = (cls.__doc__ or "").splitlines()
    inside, indent, current = False, None, None
    for line in lines:
        stripped = line.strip()
        if stripped == "Attributes:":
            inside, indent = True, None
            continue
        if not inside:
            continue
        if not stripped:
            current = None
            continue
        width = len(line) - len(line.lstrip())
        match = re.match(r"^(\w+):\s*(.*)$", stripped)
        if match and (indent is None or width == indent):
            indent, current = width, match.group(1)
            docs[current] = match.group(2)
        elif current is not None and indent is not None and width > indent:
            docs[current] += " " + stripped
        else:
            inside = False
    return docs


PAIRINGS = ("product", "zip")
OUTPUT_FORMATS = ("shards", "folders")


@dataclass(frozen=True)
class RunPlan:
    """How one render call cuts the job list and lays out its output (besides the `RunConfig`).

    Attributes:
        pairing: "product" (every character with every motion) or "zip" (character i with motion i,
            cycling through the shorter list).
        shard: (i, N): render every N-th job of the sorted job list starting at job i (a SLURM array
            maps its task id onto i).
        fmt: "shards" (webdataset tars) or "folders" (one folder per sample).
        samples_per_tar: samples per shard tar; 8 keeps a 512 px tar near 600 MB.
        retry_failed: render again the jobs recorded as failed for a bad input (and crashed jobs that
            used up their attempts).
        max_attempts: attempts a job whose worker crashes (killed, out of memory) gets over all runs.
    """

    pairing: str = "product"
    shard: tuple[int, int] = (0, 1)
    fmt: str = "shards"
    samples_per_tar: int = 8
    retry_failed: bool = False
    max_attempts: int = 3

    def __post_init__(self) -> None:
        if self.pairing not in PAIRINGS:
            raise ValueError(f"pairing: expected one of {PAIRINGS}, got {self.pairing!r}")
        if self.fmt not in OUTPUT_FORMATS:
            raise ValueError(f"fmt: expected one of {OUTPUT_FORMATS}, got {self.fmt!r}")
        shard = tuple(self.shard)
        if len(shard) != 2 or not all(isinstance(x, int) and not isinstance(x, bool) for x in shard) or not (
            shard[1] >= 1 and 0 <= shard[0] < shard[1]
        ):
            raise ValueError(f"shard: expected (i, N) with 0 <= i < N, got {self.shard!r}")
        object.__setattr__(self, "shard", shard)
        for name in ("samples_per_tar", "max_attempts"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name}: expected an integer >= 1, got {value!r}")
