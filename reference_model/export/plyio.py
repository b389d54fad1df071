"""Read Gaussian-splat ``.ply`` files (binary little-endian, vertex properties only) into numpy arrays.

The standard 3D Gaussian Splatting layout (Kerbl et al. 2023, the one common splat viewers open) stores
per vertex: ``x y z nx ny nz f_dc_0..2 f_rest_0..(3K-1) opacity scale_0..2 rot_0..3`` as float32, with
opacity as a logit, scales as logarithms and ``rot`` as a (w, x, y, z) quaternion.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

_PLY_TYPES = {"float": "f4", "float32": "f4", "double": "f8", "float64": "f8", "uchar": "u1", "uint8": "u1",
              "char": "i1", "int8": "i1", "short": "i2", "int16": "i2", "ushort": "u2", "uint16": "u2",
              "int": "i4", "int32": "i4", "uint": "u4", "uint32": "u4"}
REQUIRED = ("x", "y", "z", "f_dc_0", "f_dc_1", "f_dc_2", "opacity", "scale_0", "scale_1", "scale_2",
            "rot_0", "rot_1", "rot_2", "rot_3")


class PlyError(ValueError):
    """A file is not a readable Gaussian-splat PLY; the message names the file and the problem."""


@dataclass(frozen=True)
class Splats:
    """Gaussians of one ``.ply`` file, as stored (logits and logarithms, not activated).

    Attributes:
        means: [N, 3] centres.
        sh_dc: [N, 3] degree-0 spherical-harmonic colour coefficients.
        opacity_logits: [N].
        log_scales: [N, 3].
        quats: [N, 4] (w, x, y, z), not necessarily unit length.
    """

    means: np.ndarray
    sh_dc: np.ndarray
    opacity_logits: np.ndarray
    log_scales: np.ndarray
    quats: np.ndarray

    def __len__(self) -> int:
        return len(self.means)


def read_splats(path: str | Path) -> Splats:
    """Read a binary little-endian Gaussian-splat PLY.

    Args:
        path: the ``.ply`` file.

    Returns:
        The Gaussians (float32 arrays).

    Raises:
        PlyError: not a PLY, ASCII/big-endian encoding, other elements before the vertices, or a missing
            property of the standard layout (all missing properties are named).
    """
    path = Path(path)
    data = path.read_bytes()
    end = data.find(b"end_header\n")
    if not data.startswith(b"ply\n") or end < 0:
        raise PlyError(f"{path}: not a PLY file (no 'ply' magic or no end_header)")
    header = data[:end].decode("ascii", "replace").splitlines()
    if "format binary_little_endian 1.0" not in header:
        raise PlyError(f"{path}: only binary_little_endian PLY is supported")
    count, fields, element = None, [], None
    for line in header:
        parts = line.split()
        if parts[:1] == ["element"]:
            element = parts[1]
            if element == "vertex":
                count = int(parts[2])
            elif count is None:
                raise PlyError(f"{path}: element {element!r} comes before 'vertex'")
        elif parts[:1] == ["property"] and element == "vertex":
            if parts[1] == "list" or parts[1] not in _PLY_TYPES:
                raise PlyError(f"{path}: unsupported vertex property {' '.join(parts[1:])!r}")
            fields.append((parts[2], "<" + _PLY_TYPES[parts[1]]))
    if count is None:
        raise PlyError(f"{path}: no vertex element")
    names = [n for n, _ in fields]
    missing = [n for n in REQUIRED if n not in names]
    if missing:
        raise PlyError(f"{path}: missing properties of the 3DGS layout: {', '.join(missing)}")
    dtype = np.dtype(fields)
    body = data[end + len(b"end_header\n"):]
    if len(body) < count * dtype.itemsize:
        raise PlyError(f"{path}: truncated ({len(body)} bytes for {count} vertices of {dtype.itemsize} bytes)")
    v = np.frombuffer(body, dtype=dtype, count=count)

    def cols(*keys: str) -> np.ndarray:
        return np.stack([v[k].astype(np.float32) for k in keys], axis=-1)

    return Splats(
        means=cols("x", "y", "z"),
        sh_dc=cols("f_dc_0", "f_dc_1", "f_dc_2"),
        opacity_logits=v["opacity"].astype(np.float32),
        log_scales=cols("scale_0", "scale_1", "scale_2"),
        quats=cols("rot_0", "rot_1", "rot_2", "rot_3"),
    )
