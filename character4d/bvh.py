"""A small BVH writer/reader (numpy only), used for the embedded default motions.

BVH is Y-up; our world is Z-up with characters facing -Y (DESIGN.md section 4). The writer takes
everything in world axes and converts: BVH (x, y, z) = world (x, z, -y), so a character facing -Y in the
world faces +Z in the file, the usual BVH convention. Rotation channels are written in ZXY order
(R = Rz Rx Ry), the order Mixamo/MotionBuilder exports use.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

# world -> BVH axes: BVH x = world x, BVH y = world z, BVH z = -world y.
WORLD_TO_BVH = np.array([[1.0, 0.0, 0.0], [0.0, 0.0, 1.0], [0.0, -1.0, 0.0]])


@dataclass(frozen=True)
class BvhSkeleton:
    """A joint hierarchy in world axes.

    Attributes:
        names: joint names, parents before children.
        parents: index of each joint's parent (-1 for the root).
        offsets: [J, 3] offset of each joint from its parent in world axes (root: its rest position).
        end_sites: joint index -> [3] end-site offset for leaf joints.
    """

    names: tuple[str, ...]
    parents: tuple[int, ...]
    offsets: np.ndarray
    end_sites: dict[int, np.ndarray]


def euler_zxy(rotations: np.ndarray) -> np.ndarray:
    """Decompose rotation matrices R = Rz(z) Rx(x) Ry(y) into degrees (z, x, y).

    Args:
        rotations: [..., 3, 3] rotation matrices.

    Returns:
        [..., 3] angles in degrees in channel order (Z, X, Y).
    """
    r = rotations
    x = np.arcsin(np.clip(r[..., 2, 1], -1.0, 1.0))
    z = np.arctan2(-r[..., 0, 1], r[..., 1, 1])
    y = np.arctan2(-r[..., 2, 0], r[..., 2, 2])
    return np.degrees(np.stack([z, x, y], axis=-1))


def matrix_zxy(angles_deg: np.ndarray) -> np.ndarray:
    """Rotation matrices from (z, x, y) degrees, R = Rz Rx Ry (inverse of `euler_zxy`).

    Args:
        angles_deg: [..., 3] angles in channel order (Z, X, Y).

    Returns:
        [..., 3, 3] rotation matrices.
    """
    z, x, y = np.moveaxis(np.radians(angles_deg), -1, 0)
    cz, sz, cx, sx, cy, sy = np.cos(z), np.sin(z), np.cos(x), np.sin(x), np.cos(y), np.sin(y)
    one, zero = np.ones_like(z), np.zeros_like(z)
    rz = np.stack([np.stack([cz, -sz, zero], -1), np.stack([sz, cz, zero], -1), np.stack([zero, zero, one], -1)], -2)
    rx = np.stack([np.stack([one, zero, zero], -1), np.stack([zero, cx, -sx], -1), np.stack([zero, sx, cx], -1)], -2)
    ry = np.stack([np.stack([cy, zero, sy], -1), np.stack([zero, one, zero], -1), np.stack([-sy, zero, cy], -1)], -2)
    return rz @ rx @ ry


def write_bvh(
    path: str | Path,
    skeleton: BvhSkeleton,
    local_rotations: np.ndarray,
    root_positions: np.ndarray,
    fps: float,
    scale: float = 100.0,
) -> Path:
    """Write a BVH file.

    Args:
        path: output file.
        skeleton: the hierarchy (world axes, metres).
        local_rotations: [T, J, 3, 3] rotation of each joint relative to its parent, in world axes
            (BVH joints have no rest rotation, so the global rotation is the product down the chain).
        root_positions: [T, 3] root position in world axes, metres.
        fps: frame rate.
        scale: units per metre in the file (100: centimetres, as Mixamo/CMU files use).

    Returns:
        The path written.

    Raises:
        ValueError: on inconsistent shapes.
    """
    num_joints = len(skeleton.names)
    if local_rotations.ndim != 4 or local_rotations.shape[1:] != (num_joints, 3, 3):
        raise ValueError(f"local_rotations must be [T, {num_joints}, 3, 3], got {local_rotations.shape}")
    if root_positions.shape != (local_rotations.shape[0], 3):
        raise ValueError(f"root_positions must be [{local_rotations.shape[0]}, 3], got {root_positions.shape}")
    c = WORLD_TO_BVH
    children: dict[int, list[int]] = {i: [] for i in range(num_joints)}
    for i, p in enumerate(skeleton.parents):
        if p >= 0:
            children[p].append(i)

    def fmt(v: np.ndarray) -> str:
        return " ".join(f"{x:.6f}" for x in (c @ v) * scale)

    lines: list[str] = ["HIERARCHY"]

    def emit(j: int, depth: int) -> None:
        pad = "  " * depth
        kind = "ROOT" if skeleton.parents[j] < 0 else "JOINT"
        lines.append(f"{pad}{kind} {skeleton.names[j]}")
        lines.append(f"{pad}{{")
        lines.append(f"{pad}  OFFSET {fmt(skeleton.offsets[j])}")
        if skeleton.parents[j] < 0:
            lines.append(f"{pad}  CHANNELS 6 Xposition Yposition Zposition Zrotation Xrotation Yrotation")
        else:
            lines.append(f"{pad}  CHANNELS 3 Zrotation Xrotation Yrotation")
        for k in children[j]:
            emit(k, depth + 1)
        if not children[j]:
            end = skeleton.end_sites.get(j, np.array([0.0, 0.0, 0.05]))
            lines.extend([f"{pad}  End Site", f"{pad}  {{", f"{pad}    OFFSET {fmt(end)}", f"{pad}  }}"])
        lines.append(f"{pad}}}")

    emit(skeleton.parents.index(-1), 0)
    # Conjugate into BVH axes, then decompose in the channel order.
    angles = euler_zxy(c @ local_rotations @ c.T)
    pos = (root_positions @ c.T) * scale
    lines += ["MOTION", f"Frames: {len(pos)}", f"Frame Time: {1.0 / fps:.8f}"]
    order = _dfs_order(skeleton.parents, children)
    for t in range(len(pos)):
        values = list(pos[t]) + [a for j in order for a in angles[t, j]]
        lines.append(" ".join(f"{v:.6f}" for v in values))
    path = Path(path)
    path.write_text("\n".join(lines) + "\n")
    return path


def _dfs_order(parents: Sequence[int], children: dict[int, list[int]]) -> list[int]:
    order: list[int] = []

    def visit(j: int) -> None:
        order.append(j)
        for k in children[j]:
            visit(k)

    visit(list(parents).index(-1))
    return order


@dataclass(frozen=True)
class BvhMotion:
    """What `read_bvh` returns, in BVH axes and file units.

    Attributes:
        names: joint names in file (depth-first) order.
        parents: parent index per joint (-1 for the root).
        offsets: [J, 3] offsets.
        frame_time: seconds per frame.
        channels: [T, C] raw channel values.
    """

    names: tuple[str, ...]
    parents: tuple[int, ...]
    offsets: np.ndarray
    frame_time: float
    channels: np.ndarray


def read_bvh(path: str | Path) -> BvhMotion:
    """Parse a BVH file (for tests; Blender's importer does the real work).

    Args:
        path: a .bvh file.

    Returns:
        The parsed hierarchy and channel values.

    Raises:
        ValueError: when the file is not a readable BVH, naming the line.
    """
    tokens = Path(path).read_text().split()
    names: list[str] = []
    parents: list[int] = []
    offsets: list[list[float]] = []
    stack: list[int] = []
    i = 0
    try:
        if tokens[0] != "HIERARCHY":
            raise ValueError("missing HIERARCHY")
        i = 1
        pending = -1
        while tokens[i] != "MOTION":
            tok = tokens[i]
            if tok in ("ROOT", "JOINT"):
                names.append(tokens[i + 1])
                parents.append(stack[-1] if stack else -1)
                pending = len(names) - 1
                i += 2
            elif tok == "End":
                pending = -2
                i += 2
            elif tok == "{":
                stack.append(pending)
                i += 1
            elif tok == "}":
                stack.pop()
                i += 1
            elif tok == "OFFSET":
                if stack[-1] >= 0:
                    offsets.append([float(x) for x in tokens[i + 1 : i + 4]])
                i += 4
            elif tok == "CHANNELS":
                i += 2 + int(tokens[i + 1])
            else:
                raise ValueError(f"unexpected token {tok!r}")
        frames = int(tokens[i + 2])
        frame_time = float(tokens[i + 5])
        values = np.array([float(x) for x in tokens[i + 6 :]], dtype=np.float64)
    except (IndexError, ValueError) as exc:
        raise ValueError(f"{path}: not a readable BVH file ({exc})") from exc
    if frames == 0 or values.size % frames:
        raise ValueError(f"{path}: {values.size} channel values do not split into {frames} frames")
    return BvhMotion(tuple(names), tuple(parents), np.array(offsets), frame_time, values.reshape(frames, -1))


def bvh_fps(path: str | Path) -> float | None:
    """The frame rate in a BVH file's ``Frame Time:`` line, read without parsing the channels.

    Blender's BVH importer keeps the file's frame time on the action's keys but not on the scene, so
    the motion sampler reads it here.

    Args:
        path: a .bvh file.

    Returns:
        Frames per second, or None when the line is missing or the frame time is not positive.
    """
    with open(path, errors="replace") as fh:
        for line in fh:
            if line.strip().lower().startswith("frame time:"):
                dt = float(line.split(":")[1])
                return 1.0 / dt if dt > 0 else None
    return None
