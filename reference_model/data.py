"""Training data over character4d samples: clips, pose maps, reference images and cameras, per stage.

One training example is built from one character4d sample (one character x one motion, all views and
frames), through ``character4d.format`` only:

- **stage "2d"** (pose-conditioned image-to-video): one view of the rig, ``num_frames`` consecutive frames
  (``frame_stride`` apart), that view's pose maps, and a reference image. As in the paper (and the
  released ``CharacterDataset``), the reference is a frame drawn at random from the clip, with its own pose
  map, so the model does not learn to copy a fixed first frame.
- **stage "multiview"**: view 0 plus ``num_views - 1`` other views drawn at random (view 0 is always
  present, because inference generates the 21 views in groups that share view 0), each with its clip,
  pose maps and its reference image (the same random frame in every view), plus the cameras.

Optionally (``apose_reference_prob``) the reference is the sample's A-pose render of the view instead,
with an all-black reference pose map: the input a multi-view A-pose stage would hand over at inference.

Images are square renders placed on the model's canvas (``height x width``, e.g. 480 x 720) without
stretching (DESIGN.md 8.2.1): resized to the canvas' shorter side and centred, the margins white for RGB
(RGBA composited on white, as CharacterBench scores it) and black for pose maps; the intrinsics ``Ks`` are
moved with the image, so Plücker rays computed from them hit the same pixels. Images stay uint8 until
they reach the device (:func:`to_model_range` maps them to [-1, 1] there).

Order and resuming: an epoch is a seeded permutation of all samples; the g-th example of the global
stream is epoch ``g // N``, sample ``perm_epoch[g % N]``; rank ``r`` of ``R`` takes ``g = p * R + r``
(disjoint within an epoch), and its batch ``j`` holds ``p = j * B ... j * B + B - 1``. Every random choice
of an example (views, frames, reference) comes from a generator seeded by ``(seed, g)``, so the stream
depends on neither the number of DataLoader workers nor on where it was resumed: ``start_batch`` skips
exactly that many batches.
"""

from __future__ import annotations

import functools
import math
import os
import tarfile
from collections import OrderedDict
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

from character4d.format import Sample, SampleFormatError, open_samples

__all__ = [
    "DataConfig", "SampleIndex", "TrainingStream", "build_example", "canvas_intrinsics", "collate", "place_on_canvas",
    "to_model_range",
]

STAGES = ("2d", "multiview")


@dataclass(frozen=True)
class DataConfig:
    """What a training example holds and how it is drawn.

    Attributes:
        root: character4d samples: a render output directory, a folder of ``.tar`` shards, one shard or a
            folder export (anything ``character4d.format.open_samples`` reads).
        stage: ``"2d"`` (one view per example) or ``"multiview"`` (view 0 + ``num_views - 1`` random views).
        height: canvas height in pixels; 480 as CharacterShot trains (DESIGN.md 8.1).
        width: canvas width in pixels; 720 as CharacterShot trains (480 x 480 renders padded to 720 x 480).
        num_frames: target frames per clip; 25 as CharacterShot (7 latent frames with the VAE).
        frame_stride: step between the clip's frames in the sample (1: consecutive).
        num_views: views per multi-view example; 5 as CharacterShot (view 0 + 4).
        views: the rig views examples may use (None: all); stage "2d" draws one of them, "multiview" draws
            its extra views from them (view 0 is always added).
        apose_reference_prob: probability that the reference is the A-pose render (with a black pose map)
            instead of a random frame of the clip; 0 as in the paper's training.
        multiview_pose: ``"front"``: every view is conditioned on view 0's pose maps (the released stage-2
            training, which only has front-view poses); ``"per_view"``: each view gets its own.
        random_start: draw the clip's first frame at random when the sample has more frames than needed
            (otherwise the clip starts at frame 0).
        prompt: the text condition of every example (character4d samples carry no captions).
        batch_size: examples per batch and per rank.
        seed: seeds the epoch permutations and every example's random choices.
        keys: train only on these sample keys (None: every sample under ``root``).
        exclude_keys: leave these samples out (held-out test samples).
        cache_samples: how many samples each worker keeps in memory (0: read each time).
        decode: keep the cached samples decoded on the canvas (fast; for data sets that fit in memory).
    """

    root: str
    stage: str = "2d"
    height: int = 480
    width: int = 720
    num_frames: int = 25
    frame_stride: int = 1
    num_views: int = 5
    views: tuple[int, ...] | None = None
    apose_reference_prob: float = 0.0
    multiview_pose: str = "front"
    random_start: bool = True
    prompt: str = ""
    batch_size: int = 1
    seed: int = 0
    keys: tuple[str, ...] | None = None
    exclude_keys: tuple[str, ...] = ()
    cache_samples: int = 64
    decode: bool = False

    def __post_init__(self) -> None:
        if self.stage not in STAGES:
            raise ValueError(f"DataConfig.stage: expected one of {STAGES}, got {self.stage!r}")
        for name in ("height", "width", "num_frames", "frame_stride", "num_views", "batch_size"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"DataConfig.{name}: expected a positive int, got {value!r}")
        if not 0.0 <= self.apose_reference_prob <= 1.0:
            raise ValueError(f"DataConfig.apose_reference_prob: expected a value in [0, 1], got {self.apose_reference_prob!r}")
        if self.multiview_pose not in ("front", "per_view"):
            raise ValueError(f"DataConfig.multiview_pose: expected 'front' or 'per_view', got {self.multiview_pose!r}")
        if self.views is not None:
            object.__setattr__(self, "views", tuple(int(v) for v in self.views))
            if not self.views:
                raise ValueError("DataConfig.views: expected at least one view or None")
        object.__setattr__(self, "root", os.fspath(self.root))
        if self.keys is not None:
            object.__setattr__(self, "keys", tuple(self.keys))
        object.__setattr__(self, "exclude_keys", tuple(self.exclude_keys))

    @property
    def views_per_example(self) -> int:
        return 1 if self.stage == "2d" else self.num_views

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


# --------------------------------------------------------------------------------------------
# Pixels
# --------------------------------------------------------------------------------------------


def _fit(res: int, height: int, width: int) -> tuple[int, int, int]:
    """Side of the square on the canvas and its top/left offset (centred, never stretched)."""
    side = min(height, width)
    return side, (height - side) // 2, (width - side) // 2


def place_on_canvas(image: np.ndarray, height: int, width: int, background: int) -> np.ndarray:
    """Put a square image on a ``height x width`` canvas: resized to the shorter side, centred, no stretch.

    Args:
        image: ``[R, R, 3]`` or ``[R, R, 4]`` uint8; RGBA is composited on ``background``.
        height: canvas height.
        width: canvas width.
        background: 255 (white, for renders) or 0 (black, for pose maps).

    Returns:
        ``[height, width, 3]`` uint8.

    Raises:
        ValueError: if the image is not square RGB/RGBA uint8.
    """
    if image.dtype != np.uint8 or image.ndim != 3 or image.shape[0] != image.shape[1] or image.shape[2] not in (3, 4):
        raise ValueError(f"image: expected a square [R, R, 3|4] uint8 image, got {image.dtype} {list(image.shape)}")
    if image.shape[2] == 4:
        alpha = image[:, :, 3:4].astype(np.float32) / 255.0
        rgb = image[:, :, :3].astype(np.float32) * alpha + float(background) * (1.0 - alpha)
        image = np.rint(rgb).astype(np.uint8)
    side, top, left = _fit(image.shape[0], height, width)
    if image.shape[0] != side:
        # Area averaging when shrinking (no aliasing of thin pose limbs), bicubic when enlarging.
        resample = Image.Resampling.BOX if image.shape[0] > side else Image.Resampling.BICUBIC
        image = np.asarray(Image.fromarray(image).resize((side, side), resample))
    canvas = np.full((height, width, 3), background, dtype=np.uint8)
    canvas[top : top + side, left : left + side] = image
    return canvas


def canvas_intrinsics(Ks: np.ndarray, res: int, height: int, width: int) -> np.ndarray:
    """Intrinsics of square ``res`` renders after :func:`place_on_canvas`.

    Pixel coordinates have (0, 0) at the top-left corner (character4d.cameras), so resizing by ``s`` scales
    ``fx, fy, cx, cy`` by ``s`` exactly and the offset adds to ``cx, cy``.

    Args:
        Ks: ``[V, 3, 3]`` intrinsics of the renders.
        res: render side in pixels.
        height: canvas height.
        width: canvas width.

    Returns:
        ``[V, 3, 3]`` float64.
    """
    side, top, left = _fit(res, height, width)
    out = np.array(Ks, dtype=np.float64, copy=True)
    out[..., :2, :] *= side / res
    out[..., 0, 2] += left
    out[..., 1, 2] += top
    return out


def _to_tensor(images: Sequence[np.ndarray]) -> torch.Tensor:
    """``[N] x [H, W, 3]`` uint8 -> ``[N, 3, H, W]`` uint8 (kept as bytes: 4x less to move to the device)."""
    return torch.from_numpy(np.ascontiguousarray(np.stack(images).transpose(0, 3, 1, 2)))


def to_model_range(images: torch.Tensor) -> torch.Tensor:
    """uint8 images in [0, 255] -> float in [-1, 1] (the range the codecs take), on the images' device.

    Args:
        images: any shape, uint8.

    Returns:
        float32 tensor of the same shape.
    """
    return images.float().div_(127.5).sub_(1.0)


# --------------------------------------------------------------------------------------------
# Sample index
# --------------------------------------------------------------------------------------------


def _tar_sources(root: Path) -> list[Path] | None:
    if root.is_file():
        return [root]
    for folder in (root, root / "shards"):
        tars = sorted(p for p in folder.glob("*.tar") if not p.name.startswith(".")) if folder.is_dir() else []
        if tars:
            return tars
    return None


def _tar_keys(path: Path) -> list[str]:
    # Only the tar headers are read (members of an uncompressed tar are skipped by seeking); a member
    # "{key}.{field}" belongs to sample "key", the webdataset convention character4d.format writes.
    try:
        with tarfile.open(path, "r:") as tar:
            names = tar.getnames()
    except (tarfile.TarError, OSError) as exc:
        raise SampleFormatError(f"{path}: not a readable tar shard ({exc})") from exc
    return sorted({name.split(".", 1)[0] for name in names if "." in name and not name.startswith(".")})


class SampleIndex:
    """The samples under a root, by key, each read on demand from its shard (or folder).

    Args:
        root: anything ``character4d.format.open_samples`` reads.
        keys: keep only these samples (None: all).
        cache: samples kept in memory (least recently used dropped first).
        decode: keep samples decoded on the canvas (:class:`DecodedCanvases`) instead of encoded.
        height: canvas height.
        width: canvas width.
        exclude: leave these keys out.

    Raises:
        FileNotFoundError: if ``root`` does not exist.
        SampleFormatError: if no samples are found, or a requested key is missing.
    """

    def __init__(
        self,
        root: str | os.PathLike,
        keys: Sequence[str] | None = None,
        cache: int = 64,
        decode: bool = False,
        height: int = 480,
        width: int = 720,
        exclude: Sequence[str] = (),
    ) -> None:
        self.root = Path(root)
        if not self.root.exists():
            raise FileNotFoundError(f"root: {self.root} does not exist")
        tars = _tar_sources(self.root)
        sources: dict[str, Path] = {}
        if tars is not None:
            for tar in tars:
                for key in _tar_keys(tar):
                    if key in sources:
                        raise SampleFormatError(f"{tar}: sample {key!r} was already found in {sources[key]}")
                    sources[key] = tar
        else:  # folder export or one sample folder: open_samples reads folders by key cheaply
            sources = {sample.key: self.root for sample in open_samples(self.root, validate=False)}
        if keys is not None:
            missing = sorted(set(keys) - sources.keys())
            if missing:
                raise SampleFormatError(f"{self.root}: requested keys not found: {', '.join(missing)}")
            sources = {k: sources[k] for k in keys}
        sources = {k: src for k, src in sources.items() if k not in set(exclude)}
        if not sources:
            raise SampleFormatError(f"{self.root}: no character4d samples found")
        self.keys: list[str] = sorted(sources)
        self._sources = sources
        self._cache: OrderedDict[str, SampleCanvases] = OrderedDict()
        self._cache_size = int(cache)
        self._canvases = DecodedCanvases if decode else SampleCanvases
        self.height, self.width = int(height), int(width)

    def __len__(self) -> int:
        return len(self.keys)

    def load(self, key: str) -> SampleCanvases:
        """The images of sample ``key`` on the canvas (the sample is validated when read)."""
        if key in self._cache:
            self._cache.move_to_end(key)
            return self._cache[key]
        (raw,) = list(open_samples(self._sources[key], keys=[key], validate=True))
        sample = self._canvases(raw, self.height, self.width)
        if self._cache_size > 0:
            self._cache[key] = sample
            while len(self._cache) > self._cache_size:
                self._cache.popitem(last=False)
        return sample


# --------------------------------------------------------------------------------------------
# Examples
# --------------------------------------------------------------------------------------------


def _choose(config: DataConfig, sample: SampleCanvases, rng: np.random.Generator) -> dict[str, Any]:
    """The random choices of one example: views, frames, reference."""
    num_views, num_frames = sample.num_views, sample.num_frames
    allowed = list(range(num_views)) if config.views is None else [v for v in config.views if v < num_views]
    if not allowed:
        raise SampleFormatError(f"sample {sample.key!r}: none of the configured views {config.views} exists ({num_views} views)")
    span = (config.num_frames - 1) * config.frame_stride + 1
    if span > num_frames:
        raise SampleFormatError(
            f"sample {sample.key!r}: has {num_frames} frames, a clip of {config.num_frames} frames with stride "
            f"{config.frame_stride} needs {span}"
        )
    start = int(rng.integers(0, num_frames - span + 1)) if config.random_start else 0
    frames = [start + i * config.frame_stride for i in range(config.num_frames)]
    if config.stage == "2d":
        views = [int(rng.choice(allowed))]
    else:
        others = [v for v in allowed if v != 0]
        if len(others) < config.num_views - 1:
            raise SampleFormatError(
                f"sample {sample.key!r}: needs {config.num_views - 1} views besides view 0, only {len(others)} allowed"
            )
        views = [0] + sorted(int(v) for v in rng.choice(others, size=config.num_views - 1, replace=False))
    apose = bool(rng.random() < config.apose_reference_prob)
    reference_frame = -1 if apose else int(rng.choice(frames))
    return {"views": views, "frames": frames, "reference_frame": reference_frame}


class SampleCanvases:
    """A sample's images on the canvas, decoded on demand (each call decodes its PNGs).

    Args:
        sample: a character4d sample.
        height: canvas height.
        width: canvas width.
    """

    def __init__(self, sample: Sample, height: int, width: int) -> None:
        self.sample, self.key = sample, sample.key
        self.num_views, self.num_frames, self.resolution = sample.num_views, sample.num_frames, sample.resolution
        self.cameras = sample.cameras
        self._white = functools.partial(place_on_canvas, height=height, width=width, background=255)
        self._black = functools.partial(place_on_canvas, height=height, width=width, background=0)

    def frames(self, views: Sequence[int], frames: Sequence[int]) -> torch.Tensor:
        """RGB frames on white, ``[V, F, 3, H, W]`` uint8."""
        return torch.stack([_to_tensor([self._white(self.sample.frame(v, f)) for f in frames]) for v in views])

    def poses(self, views: Sequence[int], frames: Sequence[int]) -> torch.Tensor:
        """Pose maps on black, ``[V, F, 3, H, W]`` uint8."""
        return torch.stack([_to_tensor([self._black(self.sample.pose(v, f)) for f in frames]) for v in views])

    def apose(self, views: Sequence[int]) -> torch.Tensor:
        """A-pose renders on white, ``[V, 3, H, W]`` uint8."""
        return _to_tensor([self._white(self.sample.apose(v)) for v in views])


class DecodedCanvases(SampleCanvases):
    """A sample's images decoded once and kept on the canvas (fast examples for small data sets).

    Memory: ``V x (2 F + 1) x 3 x H x W`` bytes per sample (29 MB for 21 views x 9 frames at 128 x 192).
    """

    def __init__(self, sample: Sample, height: int, width: int) -> None:
        super().__init__(sample, height, width)
        every_view, every_frame = range(self.num_views), range(self.num_frames)
        self._frames = super().frames(every_view, every_frame)
        self._poses = super().poses(every_view, every_frame)
        self._apose = super().apose(every_view)
        self.sample = None  # the encoded bytes are no longer needed

    def frames(self, views: Sequence[int], frames: Sequence[int]) -> torch.Tensor:
        return self._frames[list(views)][:, list(frames)]

    def poses(self, views: Sequence[int], frames: Sequence[int]) -> torch.Tensor:
        return self._poses[list(views)][:, list(frames)]

    def apose(self, views: Sequence[int]) -> torch.Tensor:
        return self._apose[list(views)]


def build_example(config: DataConfig, canvases: SampleCanvases, rng: np.random.Generator) -> dict[str, Any]:
    """One training example from one sample.

    Args:
        config: the data config.
        canvases: the sample's images on the canvas (:class:`SampleCanvases` or :class:`DecodedCanvases`).
        rng: the example's generator (its choices: views, frames, reference).

    Returns:
        A dict: ``key`` (str), ``prompt`` (str), ``views`` [V] int64, ``frames`` [F] int64,
        ``reference_frame`` int64 scalar (-1: the A-pose render), ``video`` [V, F, 3, H, W],
        ``poses`` [V, F, 3, H, W], ``reference`` [V, 3, H, W], ``reference_pose`` [V, 3, H, W] (uint8 RGB,
        white margins for images, black for pose maps; :func:`to_model_range` maps them to [-1, 1]),
        ``viewmats`` [V, 4, 4] (world-to-camera, OpenCV) and ``Ks`` [V, 3, 3] (of the canvas), float32.
        V = 1 for stage "2d".

    Raises:
        SampleFormatError: if the sample has too few frames or views for the config.
    """
    choice = _choose(config, canvases, rng)
    views, frames, ref = choice["views"], choice["frames"], choice["reference_frame"]
    pose_views = [0] * len(views) if (config.stage == "multiview" and config.multiview_pose == "front") else views
    if ref < 0:
        reference = canvases.apose(views)
        reference_pose = torch.zeros_like(reference)  # black: no pose map exists for the A-pose renders
    else:
        reference = canvases.frames(views, [ref])[:, 0]
        reference_pose = canvases.poses(pose_views, [ref])[:, 0]
    cameras = canvases.cameras
    Ks = canvas_intrinsics(cameras.Ks[views], canvases.resolution, config.height, config.width)
    return {
        "key": canvases.key,
        "prompt": config.prompt,
        "views": torch.tensor(views, dtype=torch.int64),
        "frames": torch.tensor(frames, dtype=torch.int64),
        "reference_frame": torch.tensor(ref, dtype=torch.int64),
        "video": canvases.frames(views, frames),
        "poses": canvases.poses(pose_views, frames),
        "reference": reference,
        "reference_pose": reference_pose,
        "viewmats": torch.from_numpy(np.asarray(cameras.viewmats[views], dtype=np.float32)),
        "Ks": torch.from_numpy(Ks.astype(np.float32)),
    }


def collate(examples: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Stack examples into a batch: tensors get a leading B axis, strings become lists."""
    batch: dict[str, Any] = {}
    for name in examples[0]:
        values = [e[name] for e in examples]
        batch[name] = torch.stack(values) if isinstance(values[0], torch.Tensor) else list(values)
    return batch


class TrainingStream(torch.utils.data.IterableDataset):
    """An endless, resumable stream of batches for one rank (see the module docstring for the order).

    Use with ``torch.utils.data.DataLoader(stream, batch_size=None, num_workers=N)``: batching happens
    here, worker ``k`` builds batches ``start_batch + k, start_batch + k + N, ...``, which the DataLoader
    returns in order, so the stream is the same for any N.

    Args:
        config: the data config.
        rank: this process' rank.
        world_size: number of processes.
        start_batch: batches of this rank already consumed (resuming).
        keys: restrict to these sample keys (None: all under ``config.root``).
        index: an already built :class:`SampleIndex` (tests and notebooks); built from ``config`` otherwise.

    Raises:
        ValueError: if ``rank`` is not in ``[0, world_size)``.
    """

    def __init__(
        self,
        config: DataConfig,
        rank: int = 0,
        world_size: int = 1,
        start_batch: int = 0,
        keys: Sequence[str] | None = None,
        index: SampleIndex | None = None,
    ) -> None:
        super().__init__()
        if not 0 <= rank < world_size:
            raise ValueError(f"rank: expected 0 <= rank < world_size = {world_size}, got {rank}")
        self.config = config
        self.rank = rank
        self.world_size = world_size
        self.start_batch = int(start_batch)
        if index is None:
            keys = keys if keys is not None else config.keys
            index = SampleIndex(config.root, keys, config.cache_samples, config.decode, config.height, config.width,
                                exclude=config.exclude_keys)
        self.index = index
        self._perm_epoch, self._perm = -1, np.zeros(0, dtype=np.int64)

    def __len__(self) -> int:
        """Batches per epoch for this rank (the stream itself is endless)."""
        return max(1, math.ceil(len(self.index) / (self.world_size * self.config.batch_size)))

    def _permutation(self, epoch: int) -> np.ndarray:
        if self._perm_epoch != epoch:  # one permutation per epoch, reused by its examples
            self._perm = np.random.default_rng([self.config.seed, 0x5EED, epoch]).permutation(len(self.index))
            self._perm_epoch = epoch
        return self._perm

    def positions(self, batch: int) -> list[int]:
        """Global stream positions ``g`` of this rank's batch ``batch``."""
        b = self.config.batch_size
        return [(batch * b + i) * self.world_size + self.rank for i in range(b)]

    def sample_key(self, g: int) -> str:
        """Key of the sample at global stream position ``g``."""
        n = len(self.index)
        return self.index.keys[int(self._permutation(g // n)[g % n])]

    def example(self, g: int) -> dict[str, Any]:
        """The example at global stream position ``g`` (a pure function of config, index and ``g``)."""
        sample = self.index.load(self.sample_key(g))
        return build_example(self.config, sample, np.random.default_rng([self.config.seed, g]))

    def batch(self, j: int) -> dict[str, Any]:
        """This rank's batch ``j`` (0-based since the start of training)."""
        return collate([self.example(g) for g in self.positions(j)])

    def __iter__(self) -> Iterator[dict[str, Any]]:
        info = torch.utils.data.get_worker_info()
        worker, workers = (0, 1) if info is None else (info.id, info.num_workers)
        j = self.start_batch + worker
        while True:
            yield self.batch(j)
            j += workers
