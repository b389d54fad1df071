"""Encoders of the sample's fields: PNG images, ``.npy`` arrays, strict JSON, 16-bit depth."""

from __future__ import annotations

import io
import json
import os
from typing import Any

import numpy as np
from PIL import Image

# Depth is stored as uint16 millimetres: 1 mm steps up to 65.535 m, 0 reserved for background.
_DEPTH_MM_PER_M = 1000.0
_DEPTH_MIN_M = 0.001
_DEPTH_MAX_M = 65.535

# Pillow reports 16-bit greyscale PNGs as "I;16" (or "I;16B"/"I" in older releases).
_DEPTH_READ_MODES = ("I;16", "I;16B", "I;16L", "I")


# --------------------------------------------------------------------------------------------
# Encoders
# --------------------------------------------------------------------------------------------


def encode_png(array: np.ndarray, level: int = 1) -> bytes:
    """Encode an image as PNG (by default fast zlib level 1: the shards are dominated by PNG encode time).

    Args:
        array: uint8 [H, W] (L), [H, W, 1] (L), [H, W, 3] (RGB), [H, W, 4] (RGBA), or uint16 [H, W]
            (16-bit greyscale, used for depth in millimetres).
        level: zlib level, 0 (none) to 9 (smallest, slowest).

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
    Image.fromarray(np.ascontiguousarray(array)).save(buffer, format="PNG", compress_level=level)
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
# WebP (lossless, for training data) and re-encoding whole samples
# --------------------------------------------------------------------------------------------

# libwebp's effort, 0-6: 0 writes a 512 px frame in a few milliseconds; higher levels shrink the file
# by ~5-25 % for up to 40x the time (scripts/bench/codec_sizes.py measures both).
WEBP_METHOD = 0


def _webp_ready(array: np.ndarray) -> np.ndarray:
    if not isinstance(array, np.ndarray) or array.dtype != np.uint8 or array.ndim != 3 or array.shape[2] not in (3, 4):
        got = f"{array.dtype} {list(array.shape)}" if isinstance(array, np.ndarray) else type(array).__name__
        raise ValueError(f"array: expected uint8 [H, W, 3] or [H, W, 4], got {got}")
    if array.shape[2] == 4:
        # A fully transparent pixel shows nothing; WebP's animation encoder does not keep its colour, so
        # it is stored as 0 for every WebP form (what the decoder gives back, so round trips are exact).
        array = np.where(array[..., 3:] == 0, 0, array).astype(np.uint8)
    return np.ascontiguousarray(array)


def encode_webp(array: np.ndarray, method: int = WEBP_METHOD) -> bytes:
    """Encode one RGB or RGBA image as lossless WebP.

    Args:
        array: uint8 [H, W, 3] or [H, W, 4] (straight alpha; colour under alpha 0 is stored as 0).
        method: libwebp effort 0 (fast) to 6 (smallest).

    Returns:
        The WebP bytes.

    Raises:
        ValueError: for another dtype or shape.
    """
    buffer = io.BytesIO()
    Image.fromarray(_webp_ready(array)).save(buffer, format="WEBP", lossless=True, quality=100, method=method,
                                             exact=True)
    return buffer.getvalue()


def encode_webp_stack(arrays: list[np.ndarray], method: int = WEBP_METHOD) -> bytes:
    """Encode the frames of one view as one lossless animated WebP.

    Args:
        arrays: F uint8 images [H, W, C], C = 3 or 4, all of one shape.
        method: libwebp effort 0 (fast) to 6 (smallest).

    Returns:
        The WebP bytes; decoding frame f gives back ``arrays[f]`` (RGBA, colour under alpha 0 as 0).

    Raises:
        ValueError: for no frames, another dtype, or frames of different shapes.
    """
    if not arrays:
        raise ValueError("arrays: expected at least one frame")
    images = [_webp_ready(a) for a in arrays]
    if any(im.shape != images[0].shape for im in images):
        raise ValueError(f"arrays: expected frames of one shape, got {sorted({im.shape for im in images})}")
    frames = [Image.fromarray(im) for im in images]
    buffer = io.BytesIO()
    # Frames are coded as differences to the previous one where that is smaller. The reconstruction is
    # exact for every pixel because the colour under alpha 0 is already 0 (with other hidden colours the
    # blending of sub-frames would not give them back): measured 0.67x the size of all key frames for
    # rendered frames, 0.23x for pose maps (scripts/bench/codec_sizes.py).
    frames[0].save(buffer, format="WEBP", save_all=True, append_images=frames[1:], lossless=True, quality=100,
                   method=method, exact=True, duration=_STACK_FRAME_MS, loop=0)
    return buffer.getvalue()


# Every frame of a per-view stack lasts 40 ms. libwebp merges identical consecutive frames into one of
# a longer duration (a character standing still), so readers map frames through the durations.
_STACK_FRAME_MS = 40


def stack_frame_map(data: bytes, still_frames: int = 1) -> list[int]:
    """For an animated WebP: the index in the file of each logical frame (merged frames repeat).

    The durations are read from the file's ANMF chunks (RIFF). When every frame of a view is the same,
    libwebp writes one still image without any duration; it then stands for ``still_frames`` frames
    (the sample's frame count).

    Raises:
        ValueError: if the data is not a RIFF WebP.
    """
    if len(data) < 12 or data[:4] != b"RIFF" or data[8:12] != b"WEBP":
        raise ValueError("not a RIFF WebP file")
    durations, offset = [], 12
    while offset + 8 <= len(data):
        tag, size = data[offset : offset + 4], int.from_bytes(data[offset + 4 : offset + 8], "little")
        if tag == b"ANMF":
            durations.append(int.from_bytes(data[offset + 20 : offset + 23], "little"))
        offset += 8 + size + (size & 1)
    if not durations:  # a still image: every frame the same
        return [0] * still_frames
    mapping = []
    for index, duration in enumerate(durations):
        mapping += [index] * max(1, round(duration / _STACK_FRAME_MS))
    return mapping


def decode_image(data: bytes, channels: int, frame: int | None = None, num_frames: int = 1) -> np.ndarray:
    """Decode PNG or WebP bytes to uint8 [H, W, channels] (RGB -> RGBA adds alpha 255; RGBA -> RGB drops it).

    Args:
        data: the encoded image.
        channels: 3 or 4.
        frame: for an animated WebP, the frame to read.
        num_frames: the frame count a still per-view WebP stands for (see :func:`stack_frame_map`).

    Returns:
        The image.

    Raises:
        OSError, SyntaxError, ValueError, EOFError: for data PIL cannot decode (callers wrap them).
    """
    with Image.open(io.BytesIO(data)) as image:
        if frame is not None:
            mapping = stack_frame_map(data, num_frames)
            if not 0 <= frame < len(mapping):
                raise ValueError(f"frame {frame} outside the image's {len(mapping)} frames")
            image.seek(mapping[frame])
        return np.array(image.convert("RGBA" if channels == 4 else "RGB"))


def decode_stack(data: bytes, channels: int, num_frames: int = 1) -> np.ndarray:
    """Decode every frame of a per-view WebP: uint8 [F, H, W, channels] (``num_frames``: see stack_frame_map)."""
    with Image.open(io.BytesIO(data)) as image:
        decoded: dict[int, np.ndarray] = {}
        mapping = stack_frame_map(data, num_frames)
        for index in mapping:
            if index not in decoded:
                image.seek(index)
                decoded[index] = np.array(image.convert("RGBA" if channels == 4 else "RGB"))
        return np.stack([decoded[index] for index in mapping])
