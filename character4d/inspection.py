"""``character4d inspect``: what a character or motion file holds and how its skeleton maps.

(Named ``inspection`` so that it never shadows the standard library's ``inspect``.)
"""

from __future__ import annotations

from pathlib import Path

import numpy as np


def inspect_file(path: str | Path) -> tuple[str, bool]:
    """Import a file in a fresh Blender scene and describe it.

    Args:
        path: a character or motion file.

    Returns:
        (report text, ok) where ok is False when the file cannot be used (the report says why).
    """
    from character4d.assets import AssetError, map_bones, read_vrm_humanoid
    from character4d.blender.character import armature_bones, import_file, mesh_vertices_world, reset_scene
    from character4d.bvh import bvh_fps
    from character4d.skeleton import describe_mapping

    path = Path(path)
    lines = [f"== {path}"]
    try:
        reset_scene()
        objects = import_file(path)
    except AssetError as exc:
        return "\n".join(lines + [f"ERROR: {exc}"]), False
    import bpy

    meshes = [o for o in objects if o.type == "MESH"]
    armatures = [o for o in objects if o.type == "ARMATURE"]
    nverts = sum(len(m.data.vertices) for m in meshes)
    lines.append(f"objects: {len(objects)} ({len(meshes)} meshes, {nverts} vertices; {len(armatures)} armatures)")
    if meshes and nverts:
        v = mesh_vertices_world(meshes)
        size = v.max(0) - v.min(0)
        lines.append(f"mesh extent (x, y, z): {np.round(size, 3).tolist()} file units")
    if not armatures:
        lines.append("skeleton: none (a character would be auto-rigged; a motion cannot be used)")
        return "\n".join(lines), bool(meshes and nverts)
    arm = max(armatures, key=lambda a: len(a.data.bones))
    names, parents = armature_bones(arm)
    lines.append(f"armature {arm.name!r}: {len(names)} bones")
    anim = arm.animation_data.action if arm.animation_data else None
    if anim is not None:
        start, end = anim.frame_range
        # The BVH importer does not touch the scene's frame rate; the file's frame time is the truth.
        fps = (bvh_fps(path) if path.suffix.lower() == ".bvh" else None) or (
            bpy.context.scene.render.fps / bpy.context.scene.render.fps_base)
        lines.append(f"animation {anim.name!r}: frames {start:g}-{end:g} at {fps:g} fps")
    else:
        lines.append("animation: none")
    vrm = read_vrm_humanoid(path) if path.suffix.lower() in (".vrm", ".glb", ".gltf") else None
    if vrm is not None:
        lines.append(f"VRM humanoid ({vrm[0]}): {len(vrm[1])} bones declared in the file")
    # The same mapping the renderer uses (a complete VRM table wins over name matching).
    try:
        mapping = map_bones(names, parents, path)
    except AssetError as exc:
        lines += [describe_mapping(names, parents), f"ERROR: {exc}"]
        return "\n".join(lines), False
    if mapping.convention in ("vrm0", "vrm1"):
        lines.append(f"convention: {mapping.convention} (from the file's humanoid table)")
        lines += [f"  {c:<24} {mapping.bones[c]}" for c in sorted(mapping.bones)]
    else:
        lines.append(describe_mapping(names, parents))
    return "\n".join(lines), True
