"""Ground truth: read through ``character4d.format``, indexed once, identified by a manifest hash.

The manifest hash identifies a test set independently of its storage (shards or a folder export
hash alike): SHA-256 over the sorted sample keys and, per sample, the SHA-256 of ``meta.json``,
``cameras.json`` and every RGB(A) image file the benchmark can read (A-pose views and motion
frames or per-view videos). Pose maps, depth and masks do not enter it.
"""

from __future__ import annotations

import hashlib
import io
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from characterbench.protocol import Protocol

_HASHED_FILE = re.compile(r"^(meta\.json|cameras\.json|apose\.v\d+\.\w+|v\d+\.f\d+\.\w+|v\d+\.\w+)$")


class GroundTruthError(ValueError):
    """The ground truth does not fit the protocol (wrong number of views or frames, empty set)."""


@dataclass(frozen=True)
class GroundTruthSample:
    """What validation needs to know of one ground-truth sample.

    Attributes:
        key: ``{character_id}__{motion_id}``.
        num_views: Views of the rig.
        num_frames: Frames of the motion clip.
        frame_size: ``(W, H)`` of the motion frames.
        apose_size: ``(W, H)`` of the A-pose images.
    """

    key: str
    num_views: int
    num_frames: int
    frame_size: tuple[int, int]
    apose_size: tuple[int, int]


@dataclass(frozen=True)
class GroundTruthIndex:
    """The ground truth of an evaluation.

    Attributes:
        path: Where it was read from.
        samples: One entry per sample, in reading order (``open_samples``' deterministic order).
        manifest_hash: ``"sha256:<hex>"`` (see the module docstring).
    """

    path: str
    samples: tuple[GroundTruthSample, ...]
    manifest_hash: str

    @property
    def keys(self) -> tuple[str, ...]:
        """Sample keys in evaluation order."""
        return tuple(s.key for s in self.samples)


def iter_ground_truth(path: str | Path, validate: bool = True) -> Iterator[Any]:
    """Stream ground-truth samples (``character4d.format.Sample``) in ``open_samples``' order.

    Args:
        path: A ``.tar`` shard, a folder of shards, a folder-export root or one sample folder.
        validate: Check every sample against the format contract (the indexing pass does; a later
            pass over the same, already indexed data need not open every image header again).

    Returns:
        An iterator over samples; images are decoded on access only.

    Raises:
        FileNotFoundError: ``path`` does not exist.
    """
    from character4d.format import open_samples

    if not Path(path).exists():
        raise FileNotFoundError(f"ground truth {path} does not exist (expected character4d shards or a folder export)")
    return iter(open_samples(path, validate=validate))


def _image_size(sample: Any, name: str, decode: Any) -> tuple[int, int]:
    from PIL import Image

    data = sample.files.get(name)
    if data is not None:
        with Image.open(io.BytesIO(data)) as img:  # header only
            return img.size
    h, w = decode().shape[:2]
    return w, h


def sample_digest(sample: Any) -> list[tuple[str, str]]:
    """``(file name, sha256 hex)`` of the files of one sample that enter the manifest hash."""
    return sorted(
        (name, hashlib.sha256(data).hexdigest()) for name, data in sample.files.items() if _HASHED_FILE.match(name)
    )


def describe_sample(sample: Any) -> GroundTruthSample:
    """The :class:`GroundTruthSample` of a ``character4d.format.Sample`` (reads image headers only)."""
    from character4d.format import apose_name, frame_name

    return GroundTruthSample(
        key=sample.key,
        num_views=int(sample.num_views),
        num_frames=int(sample.num_frames),
        frame_size=_image_size(sample, frame_name(0, 0), lambda: sample.frame(0, 0)),
        apose_size=_image_size(sample, apose_name(0), lambda: sample.apose(0)),
    )


def index_ground_truth(path: str | Path, protocol: Protocol, progress: bool = False) -> GroundTruthIndex:
    """Read the ground truth once: sample descriptions and the manifest hash.

    Args:
        path: Shards or folder export (see :func:`iter_ground_truth`).
        protocol: Gives the expected rig views and clip frames.
        progress: Show a progress bar.

    Returns:
        The :class:`GroundTruthIndex`.

    Raises:
        GroundTruthError: No samples, duplicate keys, WebP-coded samples (training data, not ground
            truth), or samples whose views/frames differ from the protocol's rig (all such samples listed).
        FileNotFoundError: ``path`` does not exist.
    """
    from tqdm import tqdm

    samples, problems, digests = [], [], {}
    for sample in tqdm(iter_ground_truth(path), desc="index ground truth", unit="sample", disable=not progress):
        info = describe_sample(sample)
        if info.num_views != protocol.rig_num_views or info.num_frames != protocol.clip_num_frames:
            problems.append(
                f"{info.key}: expected {protocol.rig_num_views} views x {protocol.clip_num_frames} frames, "
                f"got {info.num_views} x {info.num_frames}"
            )
        if info.key in digests:
            problems.append(f"{info.key}: sample key appears twice")
        webp = sorted(name for name in sample.files if name.endswith(".webp"))
        if webp:
            # The registered manifest hashes PNG bytes: the same pictures in WebP could never match it.
            problems.append(
                f"{info.key}: {len(webp)} images are WebP-coded (e.g. {webp[0]}); benchmark ground truth is lossless "
                "PNG (character4d render without --codec, or --codec png)"
            )
        samples.append(info)
        digests[info.key] = sample_digest(sample)
    if not samples:
        problems.append("no samples found")
    if problems:
        raise GroundTruthError(f"ground truth {path} does not fit protocol {protocol.version}:\n  " + "\n  ".join(problems))
    return GroundTruthIndex(path=str(path), samples=tuple(samples), manifest_hash=manifest_hash(digests))


def manifest_hash(digests: dict[str, list[tuple[str, str]]]) -> str:
    """Combine per-sample digests (:func:`sample_digest`) into the manifest hash.

    Args:
        digests: ``{sample key: [(file name, sha256 hex), ...]}``.

    Returns:
        ``"sha256:<hex>"``, independent of reading order (keys are sorted).
    """
    manifest = hashlib.sha256()
    for key in sorted(digests):
        manifest.update(f"sample\t{key}\n".encode())
        for name, digest in sorted(digests[key]):
            manifest.update(f"{name}\t{digest}\n".encode())
    return "sha256:" + manifest.hexdigest()
