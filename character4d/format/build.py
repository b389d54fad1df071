"""Building a validated sample from arrays (what a renderer calls)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from character4d.format.codecs import (
    WEBP_METHOD,
    _encode_depth,
    encode_json,
    encode_npy,
    encode_png,
    encode_webp,
    encode_webp_stack,
)
from character4d.format.names import (
    APOSE_JOINTS,
    CAMERAS,
    JOINTS,
    MAX_FRAMES,
    MAX_VIEWS,
    META,
    apose_name,
    depth_name,
    frame_name,
    mask_name,
    parse_key,
    _parse_field,
    _stack_field,
    pose_name,
)
from character4d.format.meta import SampleMeta
from character4d.format.sample import Sample



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


def _complete_meta(
    meta: Mapping[str, Any] | SampleMeta, key: str, num_views: int, num_frames: int, resolution: int
) -> dict:
    # Fill what the arrays already say; a conflicting value is an error, never overwritten.
    character_id, motion_id = parse_key(key)
    derived = {
        "character_id": character_id,
        "motion_id": motion_id,
        "num_views": num_views,
        "num_frames": num_frames,
        "resolution": resolution,
    }
    completed = meta.to_json() if isinstance(meta, SampleMeta) else dict(meta)
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
    meta: Mapping[str, Any] | SampleMeta,
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
        meta: meta.json content (a :class:`SampleMeta` or a dict); must hold fps, joint_names and
            source_times (F entries) itself.
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




CODECS = ("png", "webp", "webp-view")


def transcode(sample: Sample, codec: str, png_level: int | None = None, method: int = WEBP_METHOD) -> Sample:
    """Re-encode a sample's RGBA frames, A-pose images and pose maps (depth, masks and the rest unchanged).

    Args:
        sample: any valid sample (PNG or WebP fields).
        codec: "png" (one PNG per image, at ``png_level``), "webp" (one lossless WebP per image) or
            "webp-view" (A-pose images as WebP, and one lossless animated WebP per view for the motion
            frames and one for the pose maps).
        png_level: zlib level for "png" (None: 1).
        method: libwebp effort 0-6 for the WebP codecs.

    Returns:
        The re-encoded, validated sample; every visible pixel decodes as before (WebP stores the colour
        under fully transparent pixels as 0).

    Raises:
        ValueError: for an unknown codec.
    """
    if codec not in CODECS:
        raise ValueError(f"codec: expected one of {CODECS}, got {codec!r}")
    level = 1 if png_level is None else png_level
    views, frames = sample.num_views, sample.num_frames
    colour_kinds = ("apose", "motion", "pose")
    files = {n: d for n, d in sample.files.items() if _kind(n) not in colour_kinds}

    def single(array: np.ndarray, png_name: str) -> None:
        if codec == "png":
            files[png_name] = encode_png(array, level)
        else:
            files[png_name[: -len("png")] + "webp"] = encode_webp(array, method)

    for v in range(views):
        single(sample.apose(v), apose_name(v))
        for kind, read, name in (("motion", sample.frame, frame_name), ("pose", sample.pose, pose_name)):
            images = [read(v, f) for f in range(frames)]
            if codec == "webp-view":
                files[_stack_field(kind, v)] = encode_webp_stack(images, method)
            else:
                for f, image in enumerate(images):
                    single(image, name(v, f))
    return Sample.from_files(sample.key, files, validate=True)


def _kind(name: str) -> str | None:
    parsed = _parse_field(name)
    return None if parsed is None else parsed.kind
