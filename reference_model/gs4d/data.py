"""The views a fit sees: reading a character4d sample (through ``character4d.format``), splits, and packs.

Images stay square with the rig's own intrinsics (never stretched; the research code stretched frames to
800 x 800). A lower resolution is an integer box downsampling of premultiplied RGBA with ``K`` scaled by the
same factor (exact under the pixel-centre-at-+0.5 convention of ``character4d.cameras``).

A *pack* (``.npz``) holds the frames of chosen views, WebP-lossless encoded (RGB zeroed where alpha is 0, so the
image composited on any background is unchanged), plus ``cameras.json``: a compact, exact copy of what a fit
needs, for machines without the full sample.
"""

from __future__ import annotations

import io
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np
import torch
from PIL import Image

from character4d.cameras import Cameras
from character4d.format import Sample, SampleFormatError, open_samples

PACK_SUFFIX = ".npz"


@dataclass(frozen=True)
class ViewSet:
    """Frames of some views of one sample.

    Attributes:
        key: sample key.
        views: ``[V]`` rig view indices.
        frames: ``[F']`` frame indices held (per view the same).
        num_frames: frames of the whole clip.
        images: uint8 ``[V, F', H, W, 4]`` RGBA (straight alpha).
        viewmats: float32 ``[V, 4, 4]`` world-to-camera (OpenCV).
        Ks: float32 ``[V, 3, 3]`` intrinsics at this resolution.
    """

    key: str
    views: tuple[int, ...]
    frames: tuple[int, ...]
    num_frames: int
    images: np.ndarray
    viewmats: np.ndarray
    Ks: np.ndarray

    @property
    def resolution(self) -> int:
        return int(self.images.shape[2])

    def frame_index(self, frame: int) -> int:
        return self.frames.index(frame)

    def targets(self, frame: int, background: Sequence[float], device: str | torch.device) -> tuple[torch.Tensor, torch.Tensor]:
        """``(rgb [V, H, W, 3] composited on background, alpha [V, H, W, 1])`` float32 of one frame."""
        img = torch.from_numpy(self.images[:, self.frame_index(frame)]).to(device).float() / 255.0
        alpha = img[..., 3:4]
        bg = torch.tensor(background, dtype=img.dtype, device=device)
        return img[..., :3] * alpha + (1.0 - alpha) * bg, alpha


def downsample(images: np.ndarray, factor: int) -> np.ndarray:
    """Box-downsample uint8 RGBA ``[..., H, W, 4]`` by an integer factor, in premultiplied alpha."""
    if factor == 1:
        return images
    *lead, h, w, c = images.shape
    x = images.astype(np.float64).reshape(*lead, h // factor, factor, w // factor, factor, c)
    alpha = x[..., 3:4] / 255.0
    premul = np.concatenate([x[..., :3] * alpha, x[..., 3:4]], axis=-1).mean(axis=(-4, -2))
    a = premul[..., 3:4] / 255.0
    rgb = np.where(a > 0, premul[..., :3] / np.maximum(a, 1e-12), 0.0)
    return np.clip(np.rint(np.concatenate([rgb, premul[..., 3:4]], axis=-1)), 0, 255).astype(np.uint8)


def _factor(native: int, resolution: int | None) -> int:
    if resolution is None or resolution == native:
        return 1
    if resolution <= 0 or native % resolution:
        raise ValueError(f"resolution: expected a divisor of the sample's {native} px, got {resolution}")
    return native // resolution


def _cameras_arrays(cameras: Cameras, views: Sequence[int], factor: int) -> tuple[np.ndarray, np.ndarray]:
    pos = {int(v): i for i, v in enumerate(cameras.view_indices)}
    missing = [v for v in views if v not in pos]
    if missing:
        raise ValueError(f"views: the sample's cameras have no views {missing}")
    idx = [pos[v] for v in views]
    Ks = cameras.Ks[idx].copy()
    Ks[:, :2, :] /= factor
    return cameras.viewmats[idx].astype(np.float32), Ks.astype(np.float32)


def read_sample(data: str | Path, key: str | None) -> Sample:
    """One sample from anything ``character4d.format.open_samples`` reads.

    Raises:
        FileNotFoundError: if ``data`` does not exist.
        SampleFormatError: if the key is not found (the message lists the keys present).
    """
    keys = None if key is None else [key]
    try:
        samples = list(open_samples(data, keys=keys, validate=False))
    except SampleFormatError as exc:
        if key is not None and "requested keys not found" in str(exc):
            present = [s.key for s in open_samples(data, validate=False)]
            raise SampleFormatError(f"{data}: no sample {key!r}; it holds {present}") from exc
        raise
    if key is None and len(samples) != 1:
        raise SampleFormatError(f"{data}: holds {len(samples)} samples {[s.key for s in samples]}; name one with --sample")
    return samples[0]


def load_views(
    source: Sample | str | Path,
    views: Iterable[int],
    frames: Iterable[int] | None = None,
    resolution: int | None = None,
    key: str | None = None,
) -> ViewSet:
    """The frames of ``views`` from a sample, a sample source, or a pack.

    Args:
        source: a :class:`Sample`, a pack (``.npz`` from :func:`write_pack`) or anything ``open_samples`` reads.
        views: rig view indices.
        frames: frame indices (None: all).
        resolution: output side in pixels, a divisor of the sample's (None: native).
        key: the sample key when ``source`` holds several.

    Returns:
        The :class:`ViewSet`.

    Raises:
        ValueError: for views/frames not in the source or a bad resolution.
        SampleFormatError / FileNotFoundError: for unreadable sources.
    """
    views = tuple(int(v) for v in views)
    if isinstance(source, (str, Path)) and str(source).endswith(PACK_SUFFIX):
        return _load_pack(Path(source), views, frames, resolution, key)
    sample = source if isinstance(source, Sample) else read_sample(source, key)
    num_frames = sample.num_frames
    frames = tuple(range(num_frames)) if frames is None else tuple(int(f) for f in frames)
    bad = [f for f in frames if not 0 <= f < num_frames]
    if bad:
        raise ValueError(f"frames: sample {sample.key!r} has {num_frames} frames, got {bad}")
    native = sample.resolution
    factor = _factor(native, resolution)
    images = np.stack([downsample(np.stack([sample.frame(v, f) for f in frames]), factor) for v in views])
    viewmats, Ks = _cameras_arrays(sample.cameras, views, factor)
    return ViewSet(sample.key, views, frames, num_frames, images, viewmats, Ks)


def _encode_webp(rgba: np.ndarray) -> bytes:
    rgba = rgba.copy()
    rgba[rgba[..., 3] == 0, :3] = 0
    buf = io.BytesIO()
    Image.fromarray(rgba, "RGBA").save(buf, "WEBP", lossless=True, quality=100, method=4, exact=True)
    return buf.getvalue()


def write_pack(sample: Sample, path: str | Path, cells: dict[int, Sequence[int] | None]) -> Path:
    """Write a pack of some views' frames of a sample.

    Args:
        sample: the sample.
        path: output ``.npz``.
        cells: view -> frames to keep (None: all frames).

    Returns:
        The path written.
    """
    path = Path(path)
    if not str(path).endswith(PACK_SUFFIX):
        raise ValueError(f"path: a pack must end in {PACK_SUFFIX}, got {path}")
    arrays: dict[str, np.ndarray] = {}
    for v, frames in cells.items():
        for f in range(sample.num_frames) if frames is None else frames:
            arrays[f"v{int(v):02d}f{int(f):03d}"] = np.frombuffer(_encode_webp(sample.frame(v, f)), dtype=np.uint8)
    meta = {"key": sample.key, "num_frames": sample.num_frames, "resolution": sample.resolution}
    arrays["meta_json"] = np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8)
    arrays["cameras_json"] = np.frombuffer(json.dumps(sample.cameras.to_json()).encode(), dtype=np.uint8)
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez(path, **arrays)
    return path


def _load_pack(path: Path, views, frames, resolution, key) -> ViewSet:
    if not path.is_file():
        raise FileNotFoundError(f"data: {path} does not exist")
    with np.load(path) as pack:
        meta = json.loads(pack["meta_json"].tobytes())
        if key is not None and key != meta["key"]:
            raise SampleFormatError(f"{path}: holds sample {meta['key']!r}, not {key!r}")
        cameras = Cameras.from_json(json.loads(pack["cameras_json"].tobytes()))
        frames = tuple(range(meta["num_frames"])) if frames is None else tuple(int(f) for f in frames)
        factor = _factor(meta["resolution"], resolution)
        names = set(pack.files)
        missing = [(v, f) for v in views for f in frames if f"v{v:02d}f{f:03d}" not in names]
        if missing:
            raise ValueError(f"{path}: the pack lacks (view, frame) cells {missing[:6]}{' ...' if len(missing) > 6 else ''}")
        images = np.stack([
            downsample(np.stack([np.array(Image.open(io.BytesIO(pack[f"v{v:02d}f{f:03d}"].tobytes())).convert("RGBA"))
                                 for f in frames]), factor)
            for v in views
        ])
    viewmats, Ks = _cameras_arrays(cameras, views, factor)
    return ViewSet(meta["key"], views, frames, meta["num_frames"], images, viewmats, Ks)
