"""Render configuration: one frozen dataclass, shared by the CLI, the job runner and the Blender worker."""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Any

from character4d.cameras import RigConfig

ENGINES = ("cycles", "eevee", "workbench")
POSE_VARIANTS = ("openpose", "charactershot")
ROOT_MOTIONS = ("center", "keep", "in_place")

# Engine defaults chosen with scripts/bench/render_speed.py: Cycles needs few samples once the
# denoiser runs and only the character's screen rectangle is rendered.
DEFAULT_SAMPLES = {"cycles": 8, "eevee": 16, "workbench": 8}
WORKBENCH_AA = (5, 8, 11, 16, 32)  # the sample counts Workbench's anti-aliasing offers


@dataclass(frozen=True)
class RenderConfig:
    """Everything that changes the rendered pixels of a sample.

    Attributes:
        resolution: square image size in pixels.
        num_frames: frames per motion clip.
        fps: output frame rate; 25 frames at 15 fps cover 1.67 s, about one gait cycle.
        start: start offset into the source motion, seconds.
        num_views: cameras on the orbit.
        radius: orbit radius, metres.
        cam_height: camera height, metres (also the look-at height).
        fov_deg: field of view of the square images, degrees.
        elevation_deg: camera elevation above the look-at point, degrees (0 for Character4D).
        engine: "cycles" (default), "eevee" or "workbench".
        samples: samples per pixel (Cycles/EEVEE) or anti-aliasing samples (Workbench); None = default.
        denoise: run OpenImageDenoise after Cycles.
        seed: Cycles noise seed.
        depth: also write depth maps (16-bit PNG, millimetres).
        mask: also write binary masks.
        hands: draw hand keypoints into the pose maps (when the skeleton has fingers).
        pose_variant: "openpose" (DWPose/ControlNet look) or "charactershot" (thin limbs, R/B swapped).
        apose_arm_deg: arm angle below horizontal of the A-pose renders.
        height: exact character height in metres; None keeps it within 1.6-1.9 m.
        root_motion: "center" (hips motion relative to the clip mean), "keep" (relative to the first frame)
            or "in_place" (no horizontal motion).
        face_front: turn each motion so the character faces view 0 on average over the clip.
        threads: CPU threads Blender may use (0: all cores); set it when several renders share a node.
    """

    resolution: int = 512
    num_frames: int = 25
    fps: float = 15.0
    start: float = 0.0
    num_views: int = 21
    radius: float = 3.5
    cam_height: float = 0.7
    fov_deg: float = 39.5978
    elevation_deg: float = 0.0
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

    def __post_init__(self) -> None:
        if self.engine not in ENGINES:
            raise ValueError(f"engine: expected one of {ENGINES}, got {self.engine!r}")
        if self.pose_variant not in POSE_VARIANTS:
            raise ValueError(f"pose_variant: expected one of {POSE_VARIANTS}, got {self.pose_variant!r}")
        if self.root_motion not in ROOT_MOTIONS:
            raise ValueError(f"root_motion: expected one of {ROOT_MOTIONS}, got {self.root_motion!r}")
        for name in ("resolution", "num_frames", "num_views"):
            if int(getattr(self, name)) < 1:
                raise ValueError(f"{name}: expected a positive integer, got {getattr(self, name)!r}")
        if self.fps <= 0:
            raise ValueError(f"fps: expected > 0, got {self.fps}")
        if self.start < 0:
            raise ValueError(f"start: expected >= 0 seconds, got {self.start}")
        if self.samples is not None and self.samples < 1:
            raise ValueError(f"samples: expected >= 1, got {self.samples}")
        if self.engine == "workbench" and self.samples is not None and self.samples not in WORKBENCH_AA:
            raise ValueError(f"samples: Workbench anti-aliasing takes one of {WORKBENCH_AA}, got {self.samples}")
        if self.threads < 0:
            raise ValueError(f"threads: expected >= 0 (0: all cores), got {self.threads}")
        if self.height is not None and self.height <= 0:
            raise ValueError(f"height: expected > 0 metres, got {self.height}")
        self.rig()  # validates the rig fields

    @property
    def effective_samples(self) -> int:
        """Samples actually used (the engine default when ``samples`` is None)."""
        return self.samples if self.samples is not None else DEFAULT_SAMPLES[self.engine]

    def rig(self) -> RigConfig:
        """The camera rig of DESIGN.md section 4 with this config's parameters."""
        return RigConfig(
            num_views=self.num_views, radius=self.radius, height=self.cam_height, fov_deg=self.fov_deg,
            elevation_deg=self.elevation_deg, resolution=self.resolution,
            target=(0.0, 0.0, self.cam_height),
        )

    def to_json(self) -> dict[str, Any]:
        """Plain-JSON form (manifests, meta.json, the worker's job file)."""
        return asdict(self)

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> "RenderConfig":
        """Inverse of `to_json`; unknown keys are an error naming them."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise ValueError(f"unknown render config keys {unknown}; known: {sorted(known)}")
        return cls(**d)
