"""Procedural humanoid characters built in Blender from code (the embedded default data).

A character is a set of ellipsoids, a cone skirt, open sleeves, a cape sheet and a long-hair volume around the template
skeleton of `character4d.default_data`, skinned with explicit, smoothly blended vertex weights (Blender's
heat weighting fails on disconnected parts, so we do not rely on it here), coloured with Principled
materials, and exported as a GLB with Mixamo bone names. The GLB then goes through the same importer as
any real character.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from character4d.default_data import CharacterSpec, template_skeleton


def _smoothstep(x: np.ndarray) -> np.ndarray:
    x = np.clip(x, 0.0, 1.0)
    return x * x * (3 - 2 * x)


class _Builder:
    """Accumulates parts into one bmesh with material indices and vertex weights."""

    def __init__(self, bpy, bmesh, mathutils, spec: CharacterSpec):
        self.bpy, self.bmesh, self.mu = bpy, bmesh, mathutils
        self.spec = spec
        self.bm = bmesh.new()
        self.deform = self.bm.verts.layers.deform.verify()
        self.groups: dict[str, int] = {}
        self.materials: list[str] = []

    def group(self, bone: str) -> int:
        return self.groups.setdefault(bone, len(self.groups))

    def material(self, name: str) -> int:
        if name not in self.materials:
            self.materials.append(name)
        return self.materials.index(name)

    def _finish(self, verts, material: str, weight_fn) -> None:
        mat = self.material(material)
        faces = {f for v in verts for f in v.link_faces}
        for f in faces:
            f.material_index = mat
            f.smooth = True
        for v in verts:
            for bone, w in weight_fn(np.array(v.co)).items():
                if w > 1e-4:
                    v[self.deform][self.group(bone)] = float(w)

    def ellipsoid(self, center, radii, z_axis, material, weight_fn, segments=(20, 12)) -> None:
        """An ellipsoid with its third radius along ``z_axis``."""
        mu = self.mu
        rot = mu.Vector((0, 0, 1)).rotation_difference(mu.Vector(tuple(z_axis))).to_matrix().to_4x4()
        mat = mu.Matrix.Translation(tuple(center)) @ rot @ mu.Matrix.Diagonal((*radii, 1.0))
        out = self.bmesh.ops.create_uvsphere(self.bm, u_segments=segments[0], v_segments=segments[1],
                                             radius=1.0, matrix=mat)
        self._finish(out["verts"], material, weight_fn)

    def segment(self, a, b, radius, material, weight_fn, flatten=1.0, overlap=0.35) -> None:
        """A capsule-like ellipsoid spanning a -> b."""
        a, b = np.asarray(a, float), np.asarray(b, float)
        length = np.linalg.norm(b - a)
        self.ellipsoid((a + b) / 2, (radius, radius * flatten, length / 2 + radius * overlap), b - a,
                       material, weight_fn)

    def cone(self, top_center, top_radius, bottom_radius, depth, material, weight_fn, segments=28) -> None:
        mu = self.mu
        mat = mu.Matrix.Translation(tuple(np.asarray(top_center) - np.array([0, 0, depth / 2])))
        out = self.bmesh.ops.create_cone(self.bm, cap_ends=False, cap_tris=False, segments=segments,
                                         radius1=bottom_radius, radius2=top_radius, depth=depth, matrix=mat)
        self._finish(out["verts"], material, weight_fn)

    def tube(self, a, b, radius_a, radius_b, material, weight_fn, segments=20) -> None:
        """An open cone from ``a`` (radius_a) to ``b`` (radius_b): a one-sided sleeve."""
        mu = self.mu
        a, b = np.asarray(a, float), np.asarray(b, float)
        rot = mu.Vector((0, 0, 1)).rotation_difference(mu.Vector(tuple(b - a))).to_matrix().to_4x4()
        mat = mu.Matrix.Translation(tuple((a + b) / 2)) @ rot
        # create_cone puts radius1 at -depth/2 (the ``a`` end after the rotation).
        out = self.bmesh.ops.create_cone(self.bm, cap_ends=False, cap_tris=False, segments=segments,
                                         radius1=radius_a, radius2=radius_b, depth=float(np.linalg.norm(b - a)),
                                         matrix=mat)
        self._finish(out["verts"], material, weight_fn)

    def sheet(self, corners_fn, size, material, weight_fn) -> None:
        out = self.bmesh.ops.create_grid(self.bm, x_segments=size[0], y_segments=size[1], size=0.5)
        for v in out["verts"]:
            v.co = self.mu.Vector(tuple(corners_fn(v.co.x + 0.5, v.co.y + 0.5)))
        self._finish(out["verts"], material, weight_fn)


def _blend(bone: str, parent: str | None, a: np.ndarray, b: np.ndarray, band: float = 0.25):
    """Weights for a part along a -> b: fully ``bone`` except a smooth blend with ``parent`` near ``a``."""
    d = b - a
    denom = float(d @ d) or 1.0

    def fn(p: np.ndarray) -> dict[str, float]:
        s = float((p - a) @ d / denom)
        if parent is None:
            return {bone: 1.0}
        w = 0.5 + 0.5 * float(_smoothstep(np.array(s / band)))
        return {bone: w, parent: 1.0 - w}

    return fn


def build_character(spec: CharacterSpec):
    """Build the armature and skinned mesh of ``spec`` in the current (empty) Blender scene.

    Args:
        spec: the character.

    Returns:
        (armature object, mesh object).
    """
    import bmesh
    import bpy
    import mathutils

    names, parents, heads = template_skeleton(spec.height, spec.rest, fingers=True)
    pos = {n: heads[i] for i, n in enumerate(names)}
    px = spec.prefix
    h = spec.height
    tw, lw, hw = spec.widths
    hs = spec.head_scale

    # Armature: tail of a bone = head of its first child; leaf bones point along their parent.
    arm_data = bpy.data.armatures.new(f"{spec.name}_rig")
    arm = bpy.data.objects.new(f"{spec.name}_rig", arm_data)
    bpy.context.scene.collection.objects.link(arm)
    bpy.context.view_layer.objects.active = arm
    bpy.ops.object.mode_set(mode="EDIT")
    first_child = {}
    for n, p in zip(names, parents):
        if p is not None and p not in first_child:
            first_child[p] = n
    first_child["Spine2"] = "Neck"
    edit = {}
    for n, p in zip(names, parents):
        eb = arm_data.edit_bones.new(px + n)
        eb.head = tuple(pos[n])
        if n in first_child:
            tail = pos[first_child[n]]
        else:
            direction = pos[n] - pos[p]
            tail = pos[n] + direction / (np.linalg.norm(direction) + 1e-9) * 0.03 * h
        eb.tail = tuple(tail)
        if p is not None:
            eb.parent = edit[p]
            eb.use_connect = False
        edit[n] = eb
    bpy.ops.object.mode_set(mode="OBJECT")

    b = _Builder(bpy, bmesh, mathutils, spec)
    P = lambda n: pos[n]  # noqa: E731 - short alias keeps the part list readable
    up = np.array([0.0, 0.0, 1.0])
    # Torso.
    b.ellipsoid(P("Hips") + [0, 0, -0.01 * h], np.array([0.105 * tw, 0.08 * tw, 0.075]) * h, up, "bottom",
                lambda p: {"Hips": 1.0})
    b.segment(P("Spine"), P("Spine1"), 0.088 * tw * h, "top", _blend("Spine", "Hips", P("Spine"), P("Spine1")),
              flatten=0.8)
    chest_w = lambda p: {"Spine1": 1 - float(_smoothstep(np.array((p[2] - P("Spine1")[2]) / (P("Neck")[2] - P("Spine1")[2])))),  # noqa: E731
                         "Spine2": float(_smoothstep(np.array((p[2] - P("Spine1")[2]) / (P("Neck")[2] - P("Spine1")[2]))))}
    b.segment(P("Spine1"), P("Neck") - [0, 0, 0.01 * h], 0.1 * tw * h, "top", chest_w, flatten=0.75)
    b.segment(P("Neck"), P("Head"), 0.03 * h, "skin", _blend("Neck", "Spine2", P("Neck"), P("Head")))
    # Head with a face (eyes, nose) so front and back differ, and a hair cap set back from the face.
    hc = P("Head") + np.array([0, 0, 0.062 * h * hs])
    head_r = np.array([0.06, 0.065, 0.075]) * h * hs
    b.ellipsoid(hc, head_r, up, "skin", lambda p: {"Head": 1.0}, segments=(24, 16))
    for side in (-1, 1):
        # Set into the face so they read from the front but do not stick out of the profile.
        b.ellipsoid(hc + np.array([side * 0.022, -0.058, 0.012]) * h * hs, np.array([0.010, 0.006, 0.011]) * h * hs, up,
                    "eyes", lambda p: {"Head": 1.0}, segments=(10, 6))
    b.ellipsoid(hc + np.array([0, -0.064, -0.008]) * h * hs, np.array([0.009, 0.012, 0.014]) * h * hs, up,
                "skin", lambda p: {"Head": 1.0}, segments=(10, 6))
    b.ellipsoid(hc + np.array([0, 0.012, 0.018]) * h * hs, head_r * np.array([1.08, 1.02, 1.0]), up, "hair",
                lambda p: {"Head": 1.0}, segments=(24, 16))
    # Arms and legs.
    for s in ("Left", "Right"):
        b.segment(P(f"{s}Shoulder"), P(f"{s}Arm"), 0.042 * tw * h, "top",
                  _blend(f"{s}Shoulder", "Spine2", P(f"{s}Shoulder"), P(f"{s}Arm")))
        b.segment(P(f"{s}Arm"), P(f"{s}ForeArm"), 0.037 * lw * h, "top",
                  _blend(f"{s}Arm", f"{s}Shoulder", P(f"{s}Arm"), P(f"{s}ForeArm")))
        b.segment(P(f"{s}ForeArm"), P(f"{s}Hand"), 0.03 * lw * h, "skin",
                  _blend(f"{s}ForeArm", f"{s}Arm", P(f"{s}ForeArm"), P(f"{s}Hand")))
        b.segment(P(f"{s}Hand"), P(f"{s}HandMiddle4"), 0.026 * h, "skin",
                  _blend(f"{s}Hand", f"{s}ForeArm", P(f"{s}Hand"), P(f"{s}HandMiddle4"), band=0.15), flatten=0.55)
        b.segment(P(f"{s}UpLeg"), P(f"{s}Leg"), 0.056 * lw * h, "bottom",
                  _blend(f"{s}UpLeg", "Hips", P(f"{s}UpLeg"), P(f"{s}Leg")))
        b.segment(P(f"{s}Leg"), P(f"{s}Foot"), 0.043 * lw * h, "bottom",
                  _blend(f"{s}Leg", f"{s}UpLeg", P(f"{s}Leg"), P(f"{s}Foot")))
        b.segment(P(f"{s}Foot") + [0, 0.02 * h, 0], P(f"{s}Toe_End"), 0.034 * h, "shoes",
                  _blend(f"{s}ToeBase", f"{s}Foot", P(f"{s}ToeBase") - [0, 0.02 * h, 0], P(f"{s}Toe_End")),
                  flatten=0.8)

    def leg_split(p: np.ndarray, u: float, top_bone: str) -> dict[str, float]:
        """Loose clothing: ``top_bone`` at the top, following the nearer thigh further down."""
        left = 0.5 + 0.5 * float(np.clip(p[0] / (0.06 * h), -1, 1))
        u = float(_smoothstep(np.array(u)))
        return {top_bone: 1 - u, "LeftUpLeg": u * left, "RightUpLeg": u * (1 - left)}

    if "skirt" in spec.clothing:
        top_z = P("Hips")[2] + 0.03 * h
        depth = top_z - P("LeftLeg")[2] + 0.02 * h
        b.cone((0, 0, top_z), 0.1 * tw * h, 0.19 * h, depth, "bottom",
               lambda p: leg_split(p, (top_z - p[2]) / depth, "Hips"))
    if "cape" in spec.clothing:
        top, bottom = P("Neck")[2] - 0.02 * h, P("LeftLeg")[2] + 0.05 * h

        def cape(u: float, v: float) -> tuple[float, float, float]:
            z = top + (bottom - top) * v
            half = (0.11 + 0.08 * v) * h
            x = (u - 0.5) * 2 * half
            y = (0.075 + 0.06 * v + 0.03 * (1 - (2 * u - 1) ** 2)) * h
            return (x, y, z)

        def cape_w(p: np.ndarray) -> dict[str, float]:
            v = (top - p[2]) / (top - bottom)
            if v < 0.45:
                w = float(_smoothstep(np.array(v / 0.45)))
                return {"Spine2": 1 - w, "Hips": w}
            return leg_split(p, (v - 0.45) / 0.55 * 0.6, "Hips")

        b.sheet(cape, (10, 14), "accent", cape_w)
    if "sleeves" in spec.clothing:
        # Loose, open sleeves flaring from the shoulder to past the elbow (anime/VRoid outfits).
        for s in ("Left", "Right"):
            shoulder, elbow = P(f"{s}Arm"), P(f"{s}ForeArm")
            start, end = shoulder - 0.05 * (elbow - shoulder), elbow + 0.35 * (elbow - shoulder)
            b.tube(start, end, 0.05 * h, 0.085 * h, "top",
                   _blend(f"{s}ForeArm", f"{s}Arm", elbow - 0.1 * (elbow - shoulder), end, band=0.3))
    if "hair_strands" in spec.clothing:
        # Long hair as VRoid models it: one-sided strand sheets, a curtain down the back and a lock on
        # each side of the face, hanging to the chest.
        top = hc[2] + 0.6 * head_r[2]
        bottom = P("Spine1")[2]

        def hair_w(p: np.ndarray) -> dict[str, float]:
            v = float(_smoothstep(np.array((P("Neck")[2] + 0.02 * h - p[2]) / (0.12 * h))))
            return {"Head": 1 - v, "Spine2": v}

        def curtain(u: float, v: float) -> tuple[float, float, float]:
            angle = np.pi * (u - 0.5) * 1.1  # around the back of the head
            z = top + (bottom - top) * v
            spread = 1.05 + 0.25 * v
            return (spread * head_r[0] * np.sin(angle), hc[1] + spread * head_r[1] * np.cos(angle) + 0.01 * h, z)

        b.sheet(curtain, (12, 16), "hair", hair_w)
        for side in (-1.0, 1.0):
            def lock(u: float, v: float, side=side) -> tuple[float, float, float]:
                z = hc[2] + (P("Spine2")[2] - hc[2]) * v
                return (side * 1.08 * head_r[0] * (1 - 0.15 * v), hc[1] - head_r[1] * (0.5 - 0.6 * u), z)

            b.sheet(lock, (3, 10), "hair", hair_w)
    if "long_hair" in spec.clothing:
        top, bottom = hc[2] + 0.05 * h * hs, P("Spine2")[2] - 0.02 * h

        def hair_w(p: np.ndarray) -> dict[str, float]:
            v = float(_smoothstep(np.array((P("Neck")[2] + 0.02 * h - p[2]) / (0.12 * h))))
            return {"Head": 1 - v, "Spine2": v}

        b.ellipsoid(np.array([0, 0.045 * h, (top + bottom) / 2]),
                    np.array([0.075 * h * hs, 0.035 * h, (top - bottom) / 2]), up, "hair", hair_w)

    mesh = bpy.data.meshes.new(f"{spec.name}_body")
    b.bm.to_mesh(mesh)
    b.bm.free()
    obj = bpy.data.objects.new(f"{spec.name}_body", mesh)
    bpy.context.scene.collection.objects.link(obj)
    by_index = sorted(b.groups.items(), key=lambda kv: kv[1])
    for bone, _ in by_index:
        obj.vertex_groups.new(name=px + bone)
    _normalize_weights(mesh)
    palette = dict(spec.colors)
    palette["eyes"] = (0.03, 0.03, 0.04)
    for name in b.materials:
        mat = bpy.data.materials.new(f"{spec.name}_{name}")
        mat.use_nodes = True
        bsdf = mat.node_tree.nodes.get("Principled BSDF")
        bsdf.inputs["Base Color"].default_value = (*palette[name], 1.0)
        bsdf.inputs["Roughness"].default_value = 0.3 if name == "eyes" else 0.6
        mesh.materials.append(mat)
    obj.parent = arm
    mod = obj.modifiers.new("Armature", "ARMATURE")
    mod.object = arm
    return arm, obj


def _normalize_weights(mesh) -> None:
    """Make every vertex's weights sum to one (blends above were built per part)."""
    for v in mesh.vertices:
        total = sum(g.weight for g in v.groups)
        if total > 0:
            for g in v.groups:
                g.weight = g.weight / total


def build_character_file(spec: CharacterSpec, path: str | Path) -> Path:
    """Build ``spec`` in a fresh Blender scene and export it as a GLB (written atomically).

    Args:
        spec: the character.
        path: output .glb path.

    Returns:
        The path written.
    """
    import bpy

    from character4d.default_data import unique_temp

    path = Path(path)
    bpy.ops.wm.read_factory_settings(use_empty=True)
    build_character(spec)
    tmp = unique_temp(path)  # unique per process: concurrent builds must not share a name
    bpy.ops.export_scene.gltf(filepath=str(tmp), export_format="GLB", export_animations=False,
                              export_skins=True, export_apply=False)
    tmp.replace(path)
    return path
