"""Forward kinematics of the procedural motions on the template skeleton (numpy, for tests).

Independent of Blender and of the retargeter: global rotations are products down the chain of the
spec's local rotations (world axes), positions follow the template's head offsets.
"""

from __future__ import annotations

import numpy as np

from character4d.default_data import MotionSpec, template_skeleton
from character4d.skeleton import map_skeleton


def forward_kinematics(spec: MotionSpec, fps: float, height: float = 1.75, fingers: bool = False
                       ) -> tuple[list[str], np.ndarray]:
    """Template joint positions of ``spec`` for a character ``height`` tall.

    The root offset is scaled with the height, as the retargeter scales hips motion by the leg-length
    ratio (the template's legs scale with its height). ``fingers`` adds the template's finger joints.

    Returns:
        (template bone names, [T, B, 3] positions) sampled at ``fps`` over the spec's duration.
    """
    names, parents, heads = template_skeleton(height=height, rest="T", fingers=fingers)
    t = np.arange(int(round(spec.duration * fps)) + 1) / fps
    rot, root = spec.pose(t)
    root = root * height / 1.75
    glob, pos = {}, {}
    for name, parent, head in zip(names, parents, heads):
        local = rot.get(name, np.broadcast_to(np.eye(3), (len(t), 3, 3)))
        if parent is None:
            glob[name] = local
            pos[name] = head[None] + root
        else:
            glob[name] = glob[parent] @ local
            pos[name] = pos[parent] + glob[parent] @ (head - heads[names.index(parent)])
    return names, np.stack([pos[n] for n in names], axis=1)


def canonical_joints(spec: MotionSpec, fps: float, height: float = 1.75) -> dict[str, np.ndarray]:
    """`forward_kinematics` as canonical bone -> [T, 3] (through the Mixamo name table)."""
    names, pos = forward_kinematics(spec, fps, height)
    _, parents, _ = template_skeleton(fingers=False)
    mapping = map_skeleton(names, parents)
    return {c: pos[:, names.index(n)] for c, n in mapping.bones.items()}
