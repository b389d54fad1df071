"""The orbiting camera rig and the camera conventions of Character4D (numpy only).

World space is Blender's: Z up, metres, characters stand on z = 0 and face -Y (DESIGN.md section 4).
Two camera conventions are stored side by side, because the renderer and the learning code disagree:

- Blender/OpenGL camera-to-world (``c2w_blender``): camera axes x right, y up, z back (the camera looks
  along its -z axis). This is what Blender's ``camera.matrix_world`` holds and what NeRF-style
  ``transforms.json`` files (the released CharacterShot template among them) store.
- OpenCV world-to-camera (``viewmats``) + intrinsics ``Ks``: camera axes x right, y down, z forward.
  This is what gsplat and most learning code expect.

Pixel coordinates: (0, 0) is the top-left corner of the top-left pixel, so pixel centres lie at
half-integers and the principal point of a centred camera is (W / 2, H / 2).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any, Mapping, Sequence

import numpy as np

__all__ = [
    "CONVENTION",
    "Cameras",
    "RigConfig",
    "blender_c2w_to_opencv_w2c",
    "camera_centers",
    "intrinsics",
    "opencv_w2c_to_blender_c2w",
    "project",
    "rig_cameras",
]

# Written into every cameras.json so that a reader never has to guess the axes.
CONVENTION: dict[str, str] = {
    "world": "Blender world: right-handed, Z up, metres; characters stand on z=0 and face -Y",
    "c2w_blender": "camera-to-world 4x4, Blender/OpenGL camera axes: x right, y up, z back (looks along -z)",
    "w2c_opencv": "world-to-camera 4x4, OpenCV camera axes: x right, y down, z forward (looks along +z)",
    "K": "OpenCV 3x3 intrinsics in pixels for the w2c_opencv camera",
    "pixels": "(0,0) is the top-left corner of the top-left pixel; pixel centres are at +0.5",
    "azimuth": "degrees from -Y towards +X (counter-clockwise seen from +Z); view 0 sees the character's front",
}

# Flips camera y and z: Blender/OpenGL (y up, z back) <-> OpenCV (y down, z forward). Its own inverse.
_GL_TO_CV = np.diag([1.0, -1.0, -1.0, 1.0])


@dataclass(frozen=True)
class RigConfig:
    """Parameters of a horizontal-orbit camera rig (DESIGN.md section 4).

    Camera k sits at azimuth ``phi_k = k * 360 / num_views`` degrees, measured from -Y towards +X, on an
    orbit of ``radius`` around the point ``(target[0], target[1], height)``, raised by ``elevation_deg``:
    ``position = (target_x, target_y, height) + radius * (sin phi cos e, -cos phi cos e, sin e)``.
    Every camera looks at ``target`` with world +Z as up and no roll. With the defaults (``height`` equal
    to the target's z) this is ``target + radius * (...)``: the Character4D / CharacterShot template
    (zero pitch at elevation 0). SV3D-style rigs use ``fov_deg=33.8, elevation_deg=10``.

    Attributes:
        num_views: Number of cameras on the orbit.
        radius: Distance of every camera from the orbit centre, metres.
        height: Z of the orbit centre, metres.
        fov_deg: Field of view in degrees, along the larger image side (square images by default).
        elevation_deg: Elevation of the orbit above the horizontal plane, degrees, in (-90, 90).
        resolution: Width and height of the (square) images, pixels.
        target: World point that every camera looks at.
    """

    num_views: int = 21
    radius: float = 3.5
    height: float = 0.7
    fov_deg: float = 39.5978
    elevation_deg: float = 0.0
    resolution: int = 512
    target: tuple[float, float, float] = (0.0, 0.0, 0.7)

    def __post_init__(self) -> None:
        if not _is_positive_int(self.num_views):
            raise ValueError(f"RigConfig.num_views: expected a positive int, got {self.num_views!r}")
        if not _is_positive_int(self.resolution):
            raise ValueError(f"RigConfig.resolution: expected a positive int, got {self.resolution!r}")
        if not (math.isfinite(self.radius) and self.radius > 0):
            raise ValueError(f"RigConfig.radius: expected a finite value > 0, got {self.radius!r}")
        if not math.isfinite(self.height):
            raise ValueError(f"RigConfig.height: expected a finite value, got {self.height!r}")
        if not (0.0 < self.fov_deg < 180.0):
            raise ValueError(f"RigConfig.fov_deg: expected a value in (0, 180), got {self.fov_deg!r}")
        if not (-90.0 < self.elevation_deg < 90.0):
            # At +-90 degrees the view direction is parallel to world up and the roll is undefined.
            raise ValueError(f"RigConfig.elevation_deg: expected a value in (-90, 90), got {self.elevation_deg!r}")
        target = tuple(float(t) for t in np.asarray(self.target, dtype=np.float64).reshape(-1))
        if len(target) != 3 or not all(math.isfinite(t) for t in target):
            raise ValueError(f"RigConfig.target: expected 3 finite numbers, got {self.target!r}")
        # Normalise lists (e.g. from JSON) to a tuple so that configs compare and hash equal.
        object.__setattr__(self, "target", target)
        object.__setattr__(self, "num_views", int(self.num_views))
        object.__setattr__(self, "resolution", int(self.resolution))

    @property
    def azimuths_deg(self) -> np.ndarray:
        """Azimuth of every camera in degrees, ``[V]`` float64."""
        return np.arange(self.num_views, dtype=np.float64) * (360.0 / self.num_views)

    @property
    def positions(self) -> np.ndarray:
        """World position of every camera, ``[V, 3]`` float64."""
        phi = np.deg2rad(self.azimuths_deg)
        elev = math.radians(self.elevation_deg)
        centre = np.array([self.target[0], self.target[1], self.height])
        offsets = np.stack(
            [np.sin(phi) * math.cos(elev), -np.cos(phi) * math.cos(elev), np.full_like(phi, math.sin(elev))], axis=-1
        )
        return centre + self.radius * offsets


def _is_positive_int(value: Any) -> bool:
    return not isinstance(value, bool) and isinstance(value, (int, np.integer)) and value >= 1


def _look_at_blender(positions: np.ndarray, target: np.ndarray) -> np.ndarray:
    """Blender camera-to-world matrices of cameras at ``positions`` looking at ``target``, +Z up, no roll.

    Args:
        positions: ``[V, 3]`` camera centres.
        target: ``[3]`` point looked at.

    Returns:
        ``[V, 4, 4]`` float64 camera-to-world, camera axes x right, y up, z back.

    Raises:
        ValueError: if a camera coincides with the target or looks straight up or down.
    """
    forward = target[None, :] - positions
    dist = np.linalg.norm(forward, axis=-1, keepdims=True)
    if np.any(dist < 1e-9):
        raise ValueError("camera position coincides with the target: the view direction is undefined")
    forward = forward / dist
    world_up = np.array([0.0, 0.0, 1.0])
    right = np.cross(forward, world_up)
    right_norm = np.linalg.norm(right, axis=-1, keepdims=True)
    if np.any(right_norm < 1e-9):
        raise ValueError("a camera looks straight along world Z: its roll is undefined")
    right = right / right_norm
    up = np.cross(right, forward)
    c2w = np.zeros((positions.shape[0], 4, 4))
    c2w[:, :3, 0] = right
    c2w[:, :3, 1] = up
    c2w[:, :3, 2] = -forward  # Blender cameras look along their -z axis.
    c2w[:, :3, 3] = positions
    c2w[:, 3, 3] = 1.0
    return c2w


def _check_mat4(name: str, mats: Any) -> np.ndarray:
    arr = np.asarray(mats, dtype=np.float64)
    if arr.ndim < 2 or arr.shape[-2:] != (4, 4):
        raise ValueError(f"{name}: expected shape [..., 4, 4], got {arr.shape}")
    return arr


def blender_c2w_to_opencv_w2c(c2w: np.ndarray) -> np.ndarray:
    """Convert Blender/OpenGL camera-to-world matrices to OpenCV world-to-camera matrices.

    Args:
        c2w: ``[..., 4, 4]`` camera-to-world, camera axes x right, y up, z back.

    Returns:
        ``[..., 4, 4]`` float64 world-to-camera, camera axes x right, y down, z forward.

    Raises:
        ValueError: if the trailing shape is not ``(4, 4)``.
    """
    c2w = _check_mat4("c2w", c2w)
    return np.linalg.inv(c2w @ _GL_TO_CV)


def opencv_w2c_to_blender_c2w(w2c: np.ndarray) -> np.ndarray:
    """Convert OpenCV world-to-camera matrices to Blender/OpenGL camera-to-world matrices.

    Args:
        w2c: ``[..., 4, 4]`` world-to-camera, camera axes x right, y down, z forward.

    Returns:
        ``[..., 4, 4]`` float64 camera-to-world, camera axes x right, y up, z back.

    Raises:
        ValueError: if the trailing shape is not ``(4, 4)``.
    """
    w2c = _check_mat4("w2c", w2c)
    return np.linalg.inv(w2c) @ _GL_TO_CV


def intrinsics(fov_deg: float, width: int, height: int) -> np.ndarray:
    """OpenCV intrinsics of a centred pinhole camera with square pixels.

    The field of view applies to the larger image side, which is Blender's ``sensor_fit='AUTO'`` rule:
    for square and landscape images it is the horizontal fov, for portrait images the vertical one.

    Args:
        fov_deg: Field of view in degrees along the larger side, in (0, 180).
        width: Image width in pixels.
        height: Image height in pixels.

    Returns:
        ``[3, 3]`` float64 ``K`` with ``fx = fy = max(W, H) / (2 tan(fov / 2))`` and principal point
        ``(W / 2, H / 2)`` (pixel centres at +0.5).

    Raises:
        ValueError: if the fov is outside (0, 180) or a size is not a positive int.
    """
    if not (0.0 < float(fov_deg) < 180.0):
        raise ValueError(f"fov_deg: expected a value in (0, 180), got {fov_deg!r}")
    for name, size in (("width", width), ("height", height)):
        if not _is_positive_int(size):
            raise ValueError(f"{name}: expected a positive int, got {size!r}")
    focal = 0.5 * max(width, height) / math.tan(math.radians(fov_deg) / 2.0)
    return np.array([[focal, 0.0, width / 2.0], [0.0, focal, height / 2.0], [0.0, 0.0, 1.0]])


def project(points: np.ndarray, viewmat: np.ndarray, K: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Project world points into a pinhole camera.

    Args:
        points: ``[N, 3]`` world positions (NaN rows stay NaN).
        viewmat: ``[4, 4]`` OpenCV world-to-camera.
        K: ``[3, 3]`` OpenCV intrinsics.

    Returns:
        ``uv [N, 2]`` pixel coordinates ((0, 0) = top-left pixel's corner, pixel centres at +0.5), NaN for
        points at or behind the camera plane, where the pinhole model would mirror them into the image;
        ``depth [N]`` the camera-space z (distance along the optical axis; <= 0 means behind).

    Raises:
        ValueError: on wrong shapes.
    """
    points = np.asarray(points, dtype=np.float64)
    if points.ndim != 2 or points.shape[1] != 3:
        raise ValueError(f"points: expected shape [N, 3], got {points.shape}")
    viewmat = np.asarray(viewmat, dtype=np.float64)
    if viewmat.shape != (4, 4):
        raise ValueError(f"viewmat: expected shape [4, 4], got {viewmat.shape}")
    K = np.asarray(K, dtype=np.float64)
    if K.shape != (3, 3):
        raise ValueError(f"K: expected shape [3, 3], got {K.shape}")
    cam = points @ viewmat[:3, :3].T + viewmat[:3, 3]
    depth = cam[:, 2]
    pix = cam @ K.T
    with np.errstate(divide="ignore", invalid="ignore"):
        uv = pix[:, :2] / pix[:, 2:3]
    uv[~(depth > 0)] = np.nan
    return uv, depth


def camera_centers(viewmats: np.ndarray) -> np.ndarray:
    """World positions of cameras given their world-to-camera matrices.

    Args:
        viewmats: ``[V, 4, 4]`` (or ``[..., 4, 4]``) rigid world-to-camera matrices, any camera axes.

    Returns:
        ``[V, 3]`` (``[..., 3]``) float64 centres ``-R^T t``.

    Raises:
        ValueError: if the trailing shape is not ``(4, 4)``.
    """
    viewmats = _check_mat4("viewmats", viewmats)
    rot = viewmats[..., :3, :3]
    trans = viewmats[..., :3, 3]
    return -np.einsum("...ji,...j->...i", rot, trans)


def _readonly(arr: np.ndarray) -> np.ndarray:
    arr = np.array(arr, dtype=np.float64, copy=True)
    arr.flags.writeable = False
    return arr


@dataclass(frozen=True, eq=False)
class Cameras:
    """A set of pinhole cameras in both conventions (arrays are read-only float64 copies).

    Attributes:
        c2w_blender: ``[V, 4, 4]`` camera-to-world, Blender/OpenGL axes (x right, y up, z back).
        viewmats: ``[V, 4, 4]`` world-to-camera, OpenCV axes (x right, y down, z forward).
        Ks: ``[V, 3, 3]`` OpenCV intrinsics in pixels.
        width: Image width in pixels.
        height: Image height in pixels.
        azimuths_deg: ``[V]`` azimuth of each view in degrees (from -Y towards +X).
        view_indices: ``[V]`` index of each view in the rig it came from (0..V-1 unless ``select`` was used).
        rig: The rig that generated the cameras, if any.
    """

    c2w_blender: np.ndarray
    viewmats: np.ndarray
    Ks: np.ndarray
    width: int
    height: int
    azimuths_deg: np.ndarray
    view_indices: np.ndarray | None = None
    rig: RigConfig | None = field(default=None)

    def __post_init__(self) -> None:
        c2w = _readonly(self.c2w_blender)
        if c2w.ndim != 3 or c2w.shape[1:] != (4, 4):
            raise ValueError(f"Cameras.c2w_blender: expected shape [V, 4, 4], got {c2w.shape}")
        num = c2w.shape[0]
        checks = (
            ("viewmats", self.viewmats, (num, 4, 4)),
            ("Ks", self.Ks, (num, 3, 3)),
            ("azimuths_deg", self.azimuths_deg, (num,)),
        )
        for name, value, shape in checks:
            arr = _readonly(value)
            if arr.shape != shape:
                raise ValueError(f"Cameras.{name}: expected shape {list(shape)}, got {list(arr.shape)}")
            object.__setattr__(self, name, arr)
        object.__setattr__(self, "c2w_blender", c2w)
        indices = np.arange(num) if self.view_indices is None else np.array(self.view_indices, dtype=np.int64)
        if indices.shape != (num,):
            raise ValueError(f"Cameras.view_indices: expected shape [{num}], got {list(indices.shape)}")
        indices.flags.writeable = False
        object.__setattr__(self, "view_indices", indices)
        for name in ("width", "height"):
            size = getattr(self, name)
            if not _is_positive_int(size):
                raise ValueError(f"Cameras.{name}: expected a positive int, got {size!r}")
            object.__setattr__(self, name, int(size))
        # The two conventions are redundant on purpose (both go to disk); refuse a pair that disagrees.
        # The tolerance admits float32 sources (Blender's matrix_world) but not a wrong axis convention.
        if not np.allclose(blender_c2w_to_opencv_w2c(c2w), self.viewmats, atol=1e-4):
            raise ValueError("Cameras: viewmats and c2w_blender describe different cameras")

    @property
    def num_views(self) -> int:
        """Number of cameras ``V``."""
        return int(self.c2w_blender.shape[0])

    @property
    def centers(self) -> np.ndarray:
        """``[V, 3]`` world positions of the cameras."""
        return np.array(self.c2w_blender[:, :3, 3])

    def select(self, indices: Sequence[int] | np.ndarray) -> "Cameras":
        """A subset of the views, in the given order (``view_indices`` keeps the original numbers).

        Args:
            indices: ``[K]`` positions into this camera set (0 <= i < V).

        Returns:
            ``Cameras`` with ``K`` views and the same image size and rig.

        Raises:
            ValueError: if an index is out of range or not an integer.
        """
        idx = np.asarray(indices)
        if idx.ndim != 1 or (idx.size and not np.issubdtype(idx.dtype, np.integer)):
            raise ValueError(f"indices: expected a 1-D sequence of ints, got {indices!r}")
        idx = idx.astype(np.int64)
        bad = idx[(idx < 0) | (idx >= self.num_views)]
        if bad.size:
            raise ValueError(f"indices: expected values in [0, {self.num_views}), got {bad.tolist()}")
        return Cameras(
            c2w_blender=self.c2w_blender[idx],
            viewmats=self.viewmats[idx],
            Ks=self.Ks[idx],
            width=self.width,
            height=self.height,
            azimuths_deg=self.azimuths_deg[idx],
            view_indices=self.view_indices[idx],
            rig=self.rig,
        )

    def to_json(self) -> dict[str, Any]:
        """The ``cameras.json`` document (plain JSON types).

        Returns:
            ``{"convention": {...}, "width", "height", "rig": {RigConfig fields} | None,
            "views": [{"index", "azimuth_deg", "K", "w2c_opencv", "c2w_blender", "width", "height"}, ...]}``.
        """
        views = [
            {
                "index": int(self.view_indices[k]),
                "azimuth_deg": float(self.azimuths_deg[k]),
                "K": self.Ks[k].tolist(),
                "w2c_opencv": self.viewmats[k].tolist(),
                "c2w_blender": self.c2w_blender[k].tolist(),
                "width": self.width,
                "height": self.height,
            }
            for k in range(self.num_views)
        ]
        rig = None
        if self.rig is not None:
            rig = asdict(self.rig)
            rig["target"] = list(rig["target"])
        return {"convention": dict(CONVENTION), "width": self.width, "height": self.height, "rig": rig, "views": views}

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> "Cameras":
        """Read a ``cameras.json`` document written by :meth:`to_json`.

        Args:
            d: The parsed JSON object.

        Returns:
            The ``Cameras`` it describes.

        Raises:
            ValueError: if a key is missing or unknown, the views disagree on the image size, or the two
                conventions stored for a view describe different cameras.
        """
        for key in ("width", "height", "views"):
            if key not in d:
                raise ValueError(f"cameras.json: expected key {key!r}, got keys {sorted(d)}")
        views = d["views"]
        if not views:
            raise ValueError("cameras.json: expected at least one view in 'views', got none")
        width, height = int(d["width"]), int(d["height"])
        for k, view in enumerate(views):
            missing = [key for key in ("K", "w2c_opencv", "c2w_blender") if key not in view]
            if missing:
                raise ValueError(f"cameras.json views[{k}]: expected keys {missing}, got keys {sorted(view)}")
            size = (int(view.get("width", width)), int(view.get("height", height)))
            if size != (width, height):
                raise ValueError(f"cameras.json views[{k}]: expected size {(width, height)}, got {size}")
        rig = d.get("rig")
        if rig is not None:
            unknown = sorted(set(rig) - set(RigConfig.__dataclass_fields__))
            if unknown:
                raise ValueError(f"cameras.json rig: expected RigConfig fields, got unknown keys {unknown}")
        return cls(
            c2w_blender=np.array([v["c2w_blender"] for v in views], dtype=np.float64),
            viewmats=np.array([v["w2c_opencv"] for v in views], dtype=np.float64),
            Ks=np.array([v["K"] for v in views], dtype=np.float64),
            width=width,
            height=height,
            azimuths_deg=np.array([v.get("azimuth_deg", np.nan) for v in views], dtype=np.float64),
            view_indices=np.array([v.get("index", k) for k, v in enumerate(views)], dtype=np.int64),
            rig=None if rig is None else RigConfig(**rig),
        )


def rig_cameras(cfg: RigConfig = RigConfig()) -> Cameras:
    """Build the cameras of a rig.

    Args:
        cfg: The rig parameters.

    Returns:
        ``Cameras`` with ``cfg.num_views`` square ``cfg.resolution`` views, view k at azimuth
        ``k * 360 / num_views`` degrees, all looking at ``cfg.target``.

    Raises:
        TypeError: if ``cfg`` is not a ``RigConfig``.
        ValueError: if a camera coincides with the target or looks straight up or down.
    """
    if not isinstance(cfg, RigConfig):
        raise TypeError(f"cfg: expected a RigConfig, got {type(cfg).__name__}")
    c2w = _look_at_blender(cfg.positions, np.asarray(cfg.target, dtype=np.float64))
    K = intrinsics(cfg.fov_deg, cfg.resolution, cfg.resolution)
    return Cameras(
        c2w_blender=c2w,
        viewmats=blender_c2w_to_opencv_w2c(c2w),
        Ks=np.broadcast_to(K, (cfg.num_views, 3, 3)),
        width=cfg.resolution,
        height=cfg.resolution,
        azimuths_deg=cfg.azimuths_deg,
        rig=cfg,
    )
