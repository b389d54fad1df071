"""``character4d inspect``: what a character or motion file holds and how its skeleton maps."""

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
    from character4d.blender.character import (
        AssetError,
        armature_bones,
        import_file,
        mesh_vertices_world,
        read_vrm_humanoid,
        reset_scene,
    )
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
    ok = True
    if not armatures:
        lines.append("skeleton: none (a character would be auto-rigged; a motion cannot be used)")
        return "\n".join(lines), bool(meshes and nverts)
    arm = max(armatures, key=lambda a: len(a.data.bones))
    names, parents = armature_bones(arm)
    lines.append(f"armature {arm.name!r}: {len(names)} bones")
    anim = arm.animation_data.action if arm.animation_data else None
    if anim is not None:
        start, end = anim.frame_range
        fps = bpy.context.scene.render.fps / bpy.context.scene.render.fps_base
        lines.append(f"animation {anim.name!r}: frames {start:g}-{end:g} at {fps:g} fps")
    else:
        lines.append("animation: none")
    vrm = read_vrm_humanoid(path) if path.suffix.lower() in (".vrm", ".glb", ".gltf") else None
    if vrm is not None:
        lines.append(f"VRM humanoid ({vrm[0]}): {len(vrm[1])} bones declared in the file")
    report = describe_mapping(names, parents)
    ok = "UNMAPPABLE" not in report
    lines.append(report)
    return "\n".join(lines), ok
