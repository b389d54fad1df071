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


def encode_png(array: np.ndarray) -> bytes:
    """Encode an image as PNG (fast zlib level 1: the shards are dominated by PNG encode time).

    Args:
        array: uint8 [H, W] (L), [H, W, 1] (L), [H, W, 3] (RGB), [H, W, 4] (RGBA), or uint16 [H, W]
            (16-bit greyscale, used for depth in millimetres).

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
    Image.fromarray(np.ascontiguousarray(array)).save(buffer, format="PNG", compress_level=1)
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


