"""A set of 3D Gaussians at one instant, spherical-harmonics colours, and the standard 3DGS ``.ply`` layout.

Parameters follow gsplat's conventions: ``means [N, 3]`` (world, metres), ``quats [N, 4]`` (w, x, y, z,
unit), ``scales [N, 3]`` (linear, metres), ``opacities [N]`` (in [0, 1]), ``sh [N, K, 3]`` with
``K = (degree + 1) ** 2`` real SH coefficients (the DC term first, 3DGS's basis and sign conventions).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

SH_C0 = 0.28209479177387814
_SH_C1 = 0.4886025119029199
_SH_C2 = (1.0925484305920792, -1.0925484305920792, 0.31539156525252005, -1.0925484305920792, 0.5462742152960396)
_SH_C3 = (
    -0.5900435899266435,
    2.890611442640554,
    -0.4570457994644658,
    0.3731763325901154,
    -0.4570457994644658,
    1.445305721320277,
    -0.5900435899266435,
)


@dataclass(frozen=True)
class Gaussians:
    """Gaussians at one time (tensors share a device; no gradients required).

    Attributes:
        means: ``[N, 3]`` centres.
        quats: ``[N, 4]`` unit quaternions (w, x, y, z).
        scales: ``[N, 3]`` standard deviations along the local axes.
        opacities: ``[N]`` in [0, 1].
        sh: ``[N, K, 3]`` SH coefficients, ``K`` a square (1, 4, 9 or 16).
    """

    means: torch.Tensor
    quats: torch.Tensor
    scales: torch.Tensor
    opacities: torch.Tensor
    sh: torch.Tensor

    @property
    def num(self) -> int:
        return int(self.means.shape[0])

    @property
    def sh_degree(self) -> int:
        return int(math.isqrt(self.sh.shape[1])) - 1

    def detach(self) -> "Gaussians":
        return Gaussians(*(t.detach() for t in (self.means, self.quats, self.scales, self.opacities, self.sh)))

    def to(self, device: str | torch.device) -> "Gaussians":
        return Gaussians(*(t.to(device) for t in (self.means, self.quats, self.scales, self.opacities, self.sh)))


def eval_sh(degree: int, sh: torch.Tensor, dirs: torch.Tensor) -> torch.Tensor:
    """Evaluate real spherical harmonics (3DGS basis), plus the 0.5 offset 3DGS adds.

    Args:
        degree: 0..3, at most ``sqrt(K) - 1``.
        sh: ``[..., K, 3]`` coefficients.
        dirs: ``[..., 3]`` unit view directions (camera to Gaussian).

    Returns:
        ``[..., 3]`` colours ``max(SH(dirs) + 0.5, 0)`` (gsplat clamps the same way).
    """
    out = SH_C0 * sh[..., 0, :]
    if degree >= 1:
        x, y, z = dirs[..., 0:1], dirs[..., 1:2], dirs[..., 2:3]
        out = out - _SH_C1 * y * sh[..., 1, :] + _SH_C1 * z * sh[..., 2, :] - _SH_C1 * x * sh[..., 3, :]
        if degree >= 2:
            xx, yy, zz, xy, yz, xz = x * x, y * y, z * z, x * y, y * z, x * z
            out = (
                out
                + _SH_C2[0] * xy * sh[..., 4, :]
                + _SH_C2[1] * yz * sh[..., 5, :]
                + _SH_C2[2] * (2.0 * zz - xx - yy) * sh[..., 6, :]
                + _SH_C2[3] * xz * sh[..., 7, :]
                + _SH_C2[4] * (xx - yy) * sh[..., 8, :]
            )
            if degree >= 3:
                out = (
                    out
                    + _SH_C3[0] * y * (3 * xx - yy) * sh[..., 9, :]
                    + _SH_C3[1] * xy * z * sh[..., 10, :]
                    + _SH_C3[2] * y * (4 * zz - xx - yy) * sh[..., 11, :]
                    + _SH_C3[3] * z * (2 * zz - 3 * xx - 3 * yy) * sh[..., 12, :]
                    + _SH_C3[4] * x * (4 * zz - xx - yy) * sh[..., 13, :]
                    + _SH_C3[5] * z * (xx - yy) * sh[..., 14, :]
                    + _SH_C3[6] * x * (xx - 3 * yy) * sh[..., 15, :]
                )
    return torch.clamp(out + 0.5, min=0.0)


def rgb_to_sh0(rgb: torch.Tensor) -> torch.Tensor:
    """DC coefficient giving colour ``rgb`` (the inverse of degree-0 :func:`eval_sh`)."""
    return (rgb - 0.5) / SH_C0


def quat_to_rotmat(quats: torch.Tensor) -> torch.Tensor:
    """``[N, 4]`` quaternions (w, x, y, z; normalised here) -> ``[N, 3, 3]`` rotation matrices."""
    w, x, y, z = torch.nn.functional.normalize(quats, dim=-1).unbind(-1)
    return torch.stack(
        [
            1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y),
            2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x),
            2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y),
        ],
        dim=-1,
    ).reshape(quats.shape[:-1] + (3, 3))


def covariances(quats: torch.Tensor, scales: torch.Tensor) -> torch.Tensor:
    """``R diag(s^2) R^T``: ``[N, 3, 3]`` world covariances."""
    rot = quat_to_rotmat(quats)
    m = rot * scales[..., None, :]
    return m @ m.transpose(-1, -2)


# -------------------------------------------------------------------------------------------------
# .ply in the standard 3DGS layout (graphdeco-inria/gaussian-splatting save_ply; read by common viewers)
# -------------------------------------------------------------------------------------------------


def ply_property_names(sh_degree: int) -> list[str]:
    """The vertex properties, in order: x y z nx ny nz f_dc_0..2 f_rest_* opacity scale_0..2 rot_0..3.

    ``f_rest_*`` are channel-major (all red coefficients, then green, then blue), as 3DGS writes them.
    """
    rest = 3 * ((sh_degree + 1) ** 2 - 1)
    return (
        ["x", "y", "z", "nx", "ny", "nz", "f_dc_0", "f_dc_1", "f_dc_2"]
        + [f"f_rest_{i}" for i in range(rest)]
        + ["opacity", "scale_0", "scale_1", "scale_2", "rot_0", "rot_1", "rot_2", "rot_3"]
    )


def write_ply(path: str | Path, gaussians: Gaussians) -> Path:
    """Write Gaussians as a binary little-endian ``.ply`` in the standard 3DGS property layout.

    Opacities are stored as logits and scales as logarithms (what 3DGS viewers expect); quaternions as
    (w, x, y, z) in ``rot_0..3``; normals are zero.

    Args:
        path: Output file.
        gaussians: The Gaussians (any device).

    Returns:
        The path written.

    Raises:
        ValueError: if a tensor has the wrong shape.
    """
    g = gaussians.detach().to("cpu")
    n, k = g.num, g.sh.shape[1]
    if g.sh.ndim != 3 or g.sh.shape[2] != 3 or math.isqrt(k) ** 2 != k:
        raise ValueError(f"gaussians.sh: expected [N, K, 3] with K a square, got {list(g.sh.shape)}")
    for name, t, shape in (("means", g.means, (n, 3)), ("quats", g.quats, (n, 4)), ("scales", g.scales, (n, 3)),
                           ("opacities", g.opacities, (n,))):
        if tuple(t.shape) != shape:
            raise ValueError(f"gaussians.{name}: expected {list(shape)}, got {list(t.shape)}")
    opac = g.opacities.double().clamp(1e-7, 1 - 1e-7)
    columns = [
        g.means.double(),
        torch.zeros(n, 3, dtype=torch.float64),
        g.sh[:, 0, :].double(),
        g.sh[:, 1:, :].double().transpose(1, 2).reshape(n, -1),
        torch.log(opac / (1 - opac))[:, None],
        torch.log(g.scales.double().clamp_min(1e-12)),
        torch.nn.functional.normalize(g.quats.double(), dim=-1),
    ]
    data = torch.cat(columns, dim=1).numpy().astype("<f4")
    names = ply_property_names(g.sh_degree)
    header = ["ply", "format binary_little_endian 1.0", f"element vertex {n}"]
    header += [f"property float {name}" for name in names] + ["end_header"]
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as fh:
        fh.write(("\n".join(header) + "\n").encode("ascii"))
        fh.write(np.ascontiguousarray(data).tobytes())
    return path


def read_ply(path: str | Path) -> Gaussians:
    """Read a 3DGS ``.ply`` (binary little-endian, float properties, as :func:`write_ply` and 3DGS write).

    Properties are found by name, so files with extra properties or another order read too.

    Returns:
        The Gaussians on the CPU (opacities through a sigmoid, scales exponentiated, quats normalised).

    Raises:
        ValueError: if the file is not a binary little-endian vertex ``.ply`` with the 3DGS properties.
    """
    path = Path(path)
    blob = path.read_bytes()
    end = blob.find(b"end_header\n")
    if not blob.startswith(b"ply\n") or end < 0:
        raise ValueError(f"{path}: not a .ply file (no 'ply' magic or 'end_header')")
    header = blob[:end].decode("ascii", errors="replace").splitlines()
    if "format binary_little_endian 1.0" not in header:
        raise ValueError(f"{path}: expected 'format binary_little_endian 1.0'")
    count, names = None, []
    for line in header:
        parts = line.split()
        if parts[:2] == ["element", "vertex"]:
            count = int(parts[2])
        elif parts[:1] == ["element"] and count is not None:
            raise ValueError(f"{path}: expected only a vertex element, got {line!r}")
        elif parts[:1] == ["property"]:
            if parts[1] != "float":
                raise ValueError(f"{path}: expected float properties, got {line!r}")
            names.append(parts[2])
    if count is None:
        raise ValueError(f"{path}: no 'element vertex' line")
    body = np.frombuffer(blob, dtype="<f4", offset=end + len(b"end_header\n"), count=count * len(names))
    table = body.reshape(count, len(names)).astype(np.float32)
    col = {name: i for i, name in enumerate(names)}
    required = ["x", "y", "z", "f_dc_0", "f_dc_1", "f_dc_2", "opacity"] + [f"scale_{i}" for i in range(3)]
    missing = [n for n in required + [f"rot_{i}" for i in range(4)] if n not in col]
    if missing:
        raise ValueError(f"{path}: missing 3DGS properties {missing}")
    rest = sorted((n for n in col if n.startswith("f_rest_")), key=lambda n: int(n.split("_")[-1]))
    k = 1 + len(rest) // 3
    if math.isqrt(k) ** 2 != k or len(rest) % 3:
        raise ValueError(f"{path}: {len(rest)} f_rest properties do not make an SH degree")

    def take(keys: list[str]) -> torch.Tensor:
        return torch.from_numpy(table[:, [col[n] for n in keys]].copy())

    dc = take(["f_dc_0", "f_dc_1", "f_dc_2"])[:, None, :]
    sh_rest = take(rest).reshape(count, 3, k - 1).transpose(1, 2) if rest else torch.zeros(count, 0, 3)
    return Gaussians(
        means=take(["x", "y", "z"]),
        quats=torch.nn.functional.normalize(take([f"rot_{i}" for i in range(4)]), dim=-1),
        scales=torch.exp(take([f"scale_{i}" for i in range(3)])),
        opacities=torch.sigmoid(take(["opacity"])[:, 0]),
        sh=torch.cat([dc, sh_rest], dim=1),
    )
