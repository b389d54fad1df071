"""Blender verbs for assets: import any supported file, find its skeleton, normalise, auto-rig.

Only this layer touches bpy. It turns a file into plain data (bone matrices, vertex positions) and hands
the maths to numpy modules (`character4d.skeleton`, `character4d.retarget`).
"""

from __future__ import annotations

import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

# The bpy-free parts live in character4d.assets; they are re-exported here for the Blender verbs' users.
from character4d.assets import (  # noqa: F401
    CHARACTER_SUFFIXES,
    HEIGHT_RANGE,
    MOTION_SUFFIXES,
    AssetError,
    map_bones,
    read_vrm_humanoid,
)
from character4d.autorig import AutoRigError, facing_turn, fit_skeleton
from character4d.retarget import facing_rotation
from character4d.skeleton import BODY_BONES, FINGER_BONES, PARENTS, SkeletonMap

@dataclass
class Character:
    """A character loaded into the current scene.

    Attributes:
        root: empty that carries the normalisation transform; every kept object hangs below it.
        armature: the armature object.
        meshes: mesh objects deformed by the armature.
        mapping: canonical -> bone name.
        rigged: False when the file had no skeleton and we auto-rigged it.
        height: standing height after normalisation (metres).
        scale: factor applied to the file's units.
        autorig: the auto-rig fit's quality, checks and warnings (`RigFit.to_json`); None when rigged.
    """

    root: object
    armature: object
    meshes: list
    mapping: SkeletonMap
    rigged: bool
    height: float
    scale: float
    autorig: dict | None = None


def reset_scene() -> None:
    """Start from an empty scene (no default cube, camera or light)."""
    import bpy

    bpy.ops.wm.read_factory_settings(use_empty=True)


def import_file(path: str | Path) -> list:
    """Import a character or motion file into the current scene.

    Args:
        path: .glb/.gltf/.vrm/.fbx/.obj/.bvh file.

    Returns:
        The objects the import added.

    Raises:
        AssetError: for a missing file, an unsupported suffix, or a file Blender cannot read.
    """
    import bpy

    path = Path(path)
    if not path.is_file():
        raise AssetError(f"{path}: no such file")
    suffix = path.suffix.lower()
    before = set(bpy.data.objects)
    try:
        if suffix in (".glb", ".gltf"):
            bpy.ops.import_scene.gltf(filepath=str(path))
        elif suffix == ".vrm":
            # VRM is a GLB with extra extensions; Blender's glTF importer reads the geometry and skin and
            # ignores them. The humanoid bone map is read separately (read_vrm_humanoid).
            with tempfile.TemporaryDirectory() as tmp:
                copy = Path(tmp) / (path.stem + ".glb")
                shutil.copyfile(path, copy)
                bpy.ops.import_scene.gltf(filepath=str(copy))
        elif suffix == ".fbx":
            bpy.ops.import_scene.fbx(filepath=str(path), use_anim=True, ignore_leaf_bones=False)
        elif suffix == ".obj":
            bpy.ops.wm.obj_import(filepath=str(path))
        elif suffix == ".bvh":
            bpy.ops.import_anim.bvh(filepath=str(path), update_scene_fps=False, update_scene_duration=False)
        else:
            raise AssetError(
                f"{path}: unsupported file type {suffix!r}; expected one of "
                f"{sorted(set(CHARACTER_SUFFIXES + MOTION_SUFFIXES))}"
            )
    except RuntimeError as exc:
        raise AssetError(f"{path}: Blender could not import it ({str(exc).strip().splitlines()[-1]})") from exc
    added = [o for o in bpy.data.objects if o not in before]
    if not added:
        raise AssetError(f"{path}: the file imported no objects (empty or corrupt)")
    return added


def armature_bones(armature) -> tuple[list[str], list[str | None]]:
    """Bone names and parent names of an armature, in Blender's (parents-first) order."""
    bones = armature.data.bones
    return [b.name for b in bones], [b.parent.name if b.parent else None for b in bones]


def _deformed_meshes(armature, objects) -> list:
    out = []
    for obj in objects:
        if obj.type != "MESH":
            continue
        uses = any(m.type == "ARMATURE" and m.object == armature for m in obj.modifiers)
        parented = obj.parent == armature
        if uses or parented:
            out.append(obj)
    return out


def _pick_armature(objects, path: Path):
    armatures = [o for o in objects if o.type == "ARMATURE"]
    if not armatures:
        return None
    # Several armatures (props, cameras rigs): keep the one that deforms the most vertices.
    def weight(arm) -> int:
        return sum(len(m.data.vertices) for m in _deformed_meshes(arm, objects)) * 1000 + len(arm.data.bones)

    return max(armatures, key=weight)


def mesh_vertices_world(meshes, evaluated: bool = True) -> np.ndarray:
    """World-space vertex positions of meshes (after modifiers when ``evaluated``).

    Args:
        meshes: mesh objects.
        evaluated: use the depsgraph-evaluated (deformed) meshes.

    Returns:
        [N, 3] float64 positions.
    """
    import bpy

    depsgraph = bpy.context.evaluated_depsgraph_get()
    chunks = []
    for obj in meshes:
        src = obj.evaluated_get(depsgraph) if evaluated else obj
        mesh = src.to_mesh()
        n = len(mesh.vertices)
        co = np.empty(n * 3, dtype=np.float64)
        mesh.vertices.foreach_get("co", co)
        mat = np.array(src.matrix_world, dtype=np.float64)
        chunks.append(co.reshape(n, 3) @ mat[:3, :3].T + mat[:3, 3])
        src.to_mesh_clear()
    return np.concatenate(chunks) if chunks else np.zeros((0, 3))


def bone_heads_world(armature, names, posed: bool) -> np.ndarray:
    """World positions of bone heads (rest or current pose).

    Args:
        armature: armature object.
        names: bone names.
        posed: current pose (True) or rest pose (False).

    Returns:
        [len(names), 3] float64.
    """
    mat = np.array(armature.matrix_world, dtype=np.float64)
    heads = []
    for n in names:
        h = armature.pose.bones[n].head if posed else armature.data.bones[n].head_local
        heads.append(mat[:3, :3] @ np.array(h) + mat[:3, 3])
    return np.array(heads)


def _set_root(objects) -> object:
    """Parent every top-level object under a new empty, keeping world transforms."""
    import bpy

    root = bpy.data.objects.new("c4d_root", None)
    bpy.context.scene.collection.objects.link(root)
    for obj in objects:
        if obj.parent is None and obj is not root:
            mw = obj.matrix_world.copy()
            obj.parent = root
            obj.matrix_parent_inverse = root.matrix_world.inverted()
            obj.matrix_world = mw
    return root


def _apply_root(root, matrix: np.ndarray) -> None:
    import bpy
    import mathutils

    root.matrix_world = mathutils.Matrix(matrix.tolist()) @ root.matrix_world
    bpy.context.view_layer.update()


def _remove_except(keep) -> None:
    """Delete every object not in ``keep``; kept objects whose parent goes keep their world transform.

    Without the re-parenting, a rig under a rotated/scaled root empty (Sketchfab's Y-up root, FBX group
    nodes) would silently lose that transform and render lying down.
    """
    import bpy

    keep = set(keep)
    for obj in keep:
        if obj.parent is not None and obj.parent not in keep:
            world = obj.matrix_world.copy()
            obj.parent = None
            obj.matrix_world = world
    for obj in list(bpy.data.objects):
        if obj not in keep:
            bpy.data.objects.remove(obj, do_unlink=True)


def map_armature(armature, path: Path) -> SkeletonMap:
    """`map_bones` for a Blender armature object."""
    return map_bones(*armature_bones(armature), path)


def load_character(path: str | Path, height: float | None = None) -> Character:
    """Import a character, map its skeleton (or auto-rig it) and normalise it.

    Normalisation (DESIGN.md section 4): facing -Y (read from the skeleton: the character's left side
    goes to +X; for an unrigged mesh from its spread arms and its feet, `character4d.autorig.facing_turn`),
    standing height within 1.6-1.9 m (or exactly ``height``), feet on z = 0, hips (the fitted hips when
    auto-rigged) on the Z axis.

    Args:
        path: character file.
        height: exact standing height wanted; None keeps the file's height when within 1.6-1.9 m and
            scales to the nearest bound otherwise.

    Returns:
        The loaded `Character`.

    Raises:
        AssetError: for unreadable files, files without a mesh, empty meshes, unmappable skeletons.
    """
    import bpy

    path = Path(path)
    objects = import_file(path)
    armature = _pick_armature(objects, path)
    if armature is not None:
        meshes = _deformed_meshes(armature, objects)
        if not meshes:
            raise AssetError(f"{path}: the armature {armature.name!r} deforms no mesh")
    else:
        meshes = [o for o in objects if o.type == "MESH"]
        if not meshes:
            raise AssetError(f"{path}: no mesh in the file (a character needs geometry)")
    if sum(len(m.data.vertices) for m in meshes) == 0:
        raise AssetError(f"{path}: the mesh is empty (0 vertices)")
    # Keep the armature's other children (bone-parented props) too; drop cameras, lights, stray meshes.
    keep = set(meshes) | ({armature} if armature else set())
    if armature is not None:
        keep |= {o for o in objects if o.parent == armature}
    _remove_except(keep)
    root = _set_root(list(keep))

    if armature is not None:
        armature.data.pose_position = "REST"
        bpy.context.view_layer.update()
        mapping = map_armature(armature, path)
        rigged = True
    else:
        mapping, rigged = None, False

    # Facing and scale from the rest pose.
    verts = mesh_vertices_world(meshes)
    if rigged:
        lr = bone_heads_world(armature, [mapping.bones["leftUpperLeg"], mapping.bones["rightUpperLeg"],
                                         mapping.bones["leftUpperArm"], mapping.bones["rightUpperArm"]], posed=False)
        left_dir = (lr[0] - lr[1]) + (lr[2] - lr[3])
        rot = facing_rotation(left_dir)
    else:
        # An unrigged file says nothing about its facing: the spread arms and the feet tell.
        try:
            k = facing_turn(*mesh_triangles_world(meshes))
        except AutoRigError as exc:
            raise AssetError(f"{path}: {exc}") from exc
        c, s = np.cos(k * np.pi / 2), np.sin(k * np.pi / 2)
        rot = np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])
    verts = verts @ rot.T
    current = float(verts[:, 2].max() - verts[:, 2].min())
    if current <= 1e-6:
        raise AssetError(f"{path}: the mesh is flat (zero height)")
    if height is not None:
        scale = height / current
    else:
        scale = float(np.clip(current, *HEIGHT_RANGE)) / current
    m = np.eye(4)
    m[:3, :3] = rot * scale
    verts = verts * scale
    if rigged:
        hips = bone_heads_world(armature, [mapping.bones["hips"]], posed=False)[0]
        centre = (rot @ hips)[:2] * scale
    else:
        centre = (verts[:, :2].min(0) + verts[:, :2].max(0)) / 2
    m[:3, 3] = [-centre[0], -centre[1], -verts[:, 2].min()]
    _apply_root(root, m)

    fit = None
    if not rigged:
        armature, mapping, fit = autorig(meshes, root, path)
    armature.data.pose_position = "POSE"
    for pb in armature.pose.bones:
        pb.rotation_mode = "QUATERNION"
    bpy.context.view_layer.update()
    final_h = float(np.ptp(mesh_vertices_world(meshes)[:, 2]))
    return Character(root, armature, meshes, mapping, rigged, final_h, scale,
                     fit.to_json() if fit is not None else None)


# --------------------------------------------------------------------------------------------------
# Auto-rigging of unrigged meshes (the geometry is in character4d.autorig)


def mesh_triangles_world(meshes) -> tuple[np.ndarray, np.ndarray]:
    """World vertex positions and triangles of meshes, all parts in one array pair.

    Returns:
        ([N, 3] float64 positions, [F, 3] int64 vertex indices).
    """
    import bpy

    depsgraph = bpy.context.evaluated_depsgraph_get()
    verts, tris, offset = [], [], 0
    for obj in meshes:
        src = obj.evaluated_get(depsgraph)
        mesh = src.to_mesh()
        mesh.calc_loop_triangles()
        n = len(mesh.vertices)
        co = np.empty(n * 3, dtype=np.float64)
        mesh.vertices.foreach_get("co", co)
        tri = np.empty(len(mesh.loop_triangles) * 3, dtype=np.int64)
        mesh.loop_triangles.foreach_get("vertices", tri)
        mat = np.array(src.matrix_world, dtype=np.float64)
        verts.append(co.reshape(n, 3) @ mat[:3, :3].T + mat[:3, 3])
        tris.append(tri.reshape(-1, 3) + offset)
        offset += n
        src.to_mesh_clear()
    return np.concatenate(verts), np.concatenate(tris)


def autorig(meshes, root, path: Path | None = None):
    """Fit the canonical skeleton to unrigged meshes and skin them with Blender's automatic weights.

    The joints come from `character4d.autorig.fit_skeleton` (with finger chains where both hands show
    separate fingers, `RigFit.fingers`); the character is then moved so that the fitted hips stand on
    the Z axis, as a rigged character's are. Falls back to distance-based weights
    for vertices the heat solver leaves unweighted (it fails on disconnected or non-manifold parts,
    which game meshes often have).

    Returns:
        (armature object, SkeletonMap with convention "autorig", `character4d.autorig.RigFit`).

    Raises:
        AssetError: when the fit is doubtful (the message says why).
    """
    import bpy

    verts, tris = mesh_triangles_world(meshes)
    try:
        fit = fit_skeleton(verts, tris)
    except AutoRigError as exc:
        raise AssetError(f"{path}: {exc}" if path is not None else str(exc)) from exc
    shift = np.eye(4)
    shift[:2, 3] = -fit.joints["hips"][:2]
    _apply_root(root, shift)
    joints = {k: v + shift[:3, 3] for k, v in fit.joints.items()}
    arm_data = bpy.data.armatures.new("autorig")
    arm = bpy.data.objects.new("autorig", arm_data)
    bpy.context.scene.collection.objects.link(arm)
    bpy.context.view_layer.objects.active = arm
    bpy.ops.object.mode_set(mode="EDIT")
    bones = BODY_BONES + tuple(b for b in FINGER_BONES if b in joints)
    children = {b: [c for c in bones if PARENTS.get(c) == b] for b in bones}
    edit = {}
    for bone in bones:
        eb = arm_data.edit_bones.new(bone)
        eb.head = tuple(joints[bone])
        kids = [c for c in children[bone] if c in joints and not c.endswith("Shoulder") and "UpperLeg" not in c]
        if bone.endswith("Hand") and f"{bone[:-4]}MiddleProximal" in joints:
            # With fingers, the hand bone ends at the middle knuckle: through the fingers it would take
            # their weights from the finger bones.
            tail = joints[f"{bone[:-4]}MiddleProximal"]
        elif f"{bone}_tail" in joints:
            tail = joints[f"{bone}_tail"]
        elif kids:
            tail = joints[kids[0]]
        else:
            tail = joints[bone] + np.array([0, 0, 0.05])
        if np.linalg.norm(np.asarray(tail) - joints[bone]) < 1e-3:
            tail = joints[bone] + np.array([0, 0, 0.05])
        eb.tail = tuple(tail)
        parent = PARENTS.get(bone)
        if parent is not None:
            eb.parent = edit[parent]
        edit[bone] = eb
    bpy.ops.object.mode_set(mode="OBJECT")
    arm.parent = root
    arm.matrix_parent_inverse = root.matrix_world.inverted()

    for mesh in meshes:
        with bpy.context.temp_override(active_object=arm, object=arm, selected_objects=[mesh, arm],
                                       selected_editable_objects=[mesh, arm]):
            try:
                bpy.ops.object.parent_set(type="ARMATURE_AUTO", keep_transform=True)
            except RuntimeError:
                bpy.ops.object.parent_set(type="ARMATURE_NAME", keep_transform=True)
        _fill_missing_weights(mesh, arm)
    mapping = SkeletonMap("autorig", {b: b for b in bones}, ())
    return arm, mapping, fit


def _fill_missing_weights(mesh, arm) -> None:
    """Give vertices without weights (heat-weighting failures) weights by distance to the bones."""
    names = [b.name for b in arm.data.bones]
    mw = np.array(mesh.matrix_world)
    aw = np.array(arm.matrix_world)
    heads = np.array([aw[:3, :3] @ np.array(b.head_local) + aw[:3, 3] for b in arm.data.bones])
    tails = np.array([aw[:3, :3] @ np.array(b.tail_local) + aw[:3, 3] for b in arm.data.bones])
    groups = {g.index: g.name for g in mesh.vertex_groups}
    for n in names:
        if mesh.vertex_groups.get(n) is None:
            mesh.vertex_groups.new(name=n)
    for v in mesh.data.vertices:
        if any(g.weight > 1e-4 and groups.get(g.group) in names for g in v.groups):
            continue
        p = mw[:3, :3] @ np.array(v.co) + mw[:3, 3]
        seg = tails - heads
        t = np.clip(((p - heads) * seg).sum(1) / np.maximum((seg * seg).sum(1), 1e-9), 0, 1)
        d = np.linalg.norm(heads + seg * t[:, None] - p, axis=1)
        w = np.exp(-(d - d.min()) / 0.02)
        w /= w.sum()
        for i in np.argsort(-w)[:2]:
            if w[i] > 0.05:
                mesh.vertex_groups[names[i]].add([v.index], float(w[i]), "REPLACE")
