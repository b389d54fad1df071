"""Render one (character, motion) sample in Blender: retarget, A-pose and motion renders, joints, pose maps.

`render_sample` writes every field of the sample (named as in `character4d.format`) into a folder; the
job runner turns that folder into a `Sample`. Rendering order is frame-major (all views of a frame, then
the next frame) so Cycles' persistent data reuses one BVH per frame.
"""

from __future__ import annotations

import hashlib
import math
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np

import character4d
from character4d import format as fmt
from character4d.blender.character import (
    Character,
    bone_heads_world,
    load_character,
    mesh_vertices_world,
    reset_scene,
)
from character4d.blender.motion import SampledMotion, bone_rotations_world, sample_motion
from character4d.cameras import Cameras, project, rig_cameras
from character4d.config import RenderConfig
from character4d.framing import framing_record, joints_outside, silhouette_outside
from character4d.png_metadata import strip_png_metadata
from character4d.retarget import (
    canonical_order,
    hips_offsets,
    leg_length,
    rest_alignment,
    rest_directions,
    transfer_rotations,
    world_to_basis,
)
from character4d.skeleton import FACE_POINTS, JOINT_NAMES, PARENTS

# Lights are fixed in the world (not to the camera) so that all views see one consistent scene.
_AMBIENT = (0.9, 0.92, 1.0)


def sha256_file(path: str | Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


# --------------------------------------------------------------------------------------------------
# Scene


def setup_scene(cfg: RenderConfig):
    """Engine, colour management, world light and sun lamps; returns the camera object."""
    import bpy

    scene = bpy.context.scene
    r = scene.render
    r.resolution_x = r.resolution_y = cfg.resolution
    r.resolution_percentage = 100
    if cfg.threads:
        r.threads_mode, r.threads = "FIXED", cfg.threads
    r.film_transparent = True
    r.image_settings.file_format = "PNG"
    r.image_settings.color_mode = "RGBA"
    r.image_settings.color_depth = "8"
    r.image_settings.compression = 15  # speed over size; shards are compressed PNG anyway
    # Fewer metadata fields in the PNGs; strip_png_metadata removes the rest after each render.
    for flag in dir(r):
        if flag.startswith("use_stamp"):
            setattr(r, flag, False)
    scene.view_settings.view_transform = "Standard"  # keeps base colours as authored
    scene.view_settings.look = "None"

    world = bpy.data.worlds.new("c4d_world")
    scene.world = world
    world.use_nodes = True
    bg = world.node_tree.nodes["Background"]
    bg.inputs[0].default_value = (*_AMBIENT, 1.0)
    bg.inputs[1].default_value = 0.55

    def sun(name, energy, elevation_deg, azimuth_deg):
        light = bpy.data.lights.new(name, "SUN")
        light.energy = energy
        light.angle = math.radians(10)
        obj = bpy.data.objects.new(name, light)
        # A sun shines along its -Z; tilt it down from the zenith, then turn to the azimuth.
        obj.rotation_euler = (math.radians(90 - elevation_deg), 0.0, math.radians(azimuth_deg))
        scene.collection.objects.link(obj)

    sun("key", 2.6, 50, -30)   # from the front-left, above
    sun("fill", 0.9, 25, 150)  # softer, from behind on the other side, so backs are not flat

    cam = bpy.data.objects.new("c4d_camera", bpy.data.cameras.new("c4d_camera"))
    scene.collection.objects.link(cam)
    scene.camera = cam
    cam.data.sensor_fit = "AUTO"
    cam.data.angle = math.radians(cfg.fov_deg)
    cam.data.clip_start = 0.05
    cam.data.clip_end = 100.0

    samples = cfg.effective_samples
    if cfg.engine == "cycles":
        r.engine = "CYCLES"
        c = scene.cycles
        c.device = "CPU"
        c.samples = samples
        c.seed = cfg.seed
        c.use_adaptive_sampling = False
        c.max_bounces, c.diffuse_bounces, c.glossy_bounces = 3, 1, 1
        c.transmission_bounces, c.transparent_max_bounces = 1, 4
        c.caustics_reflective = c.caustics_refractive = False
        c.use_denoising = cfg.denoise
        if cfg.denoise:
            c.denoiser = "OPENIMAGEDENOISE"
            c.denoising_input_passes = "RGB_ALBEDO_NORMAL"
            c.denoising_prefilter = "FAST"
            c.denoising_quality = "FAST"
        r.use_persistent_data = True
    elif cfg.engine == "eevee":
        r.engine = "BLENDER_EEVEE"
        scene.eevee.taa_render_samples = samples
    else:
        r.engine = "BLENDER_WORKBENCH"
        shading = scene.display.shading
        shading.light = "STUDIO"
        shading.color_type = "MATERIAL"  # base colours of the materials instead of flat grey
        shading.show_cavity = False
        shading.show_shadows = True
        shading.shadow_intensity = 0.35
        scene.display.render_aa = str(samples)  # RenderConfig only admits Workbench's own sample counts
    return cam


def setup_depth_output(folder: Path):
    """Route Blender's Z pass to a 32-bit EXR through a compositor File Output node.

    Blender cannot hand render passes to Python in background mode, so each render also writes
    ``folder/depth_Depth.exr`` and `read_depth` loads it back.
    """
    import bpy

    scene = bpy.context.scene
    scene.view_layers[0].use_pass_z = True
    tree = bpy.data.node_groups.new("c4d_depth", "CompositorNodeTree")
    scene.compositing_node_group = tree
    layers = tree.nodes.new("CompositorNodeRLayers")
    out = tree.nodes.new("CompositorNodeOutputFile")
    out.directory = str(folder) + "/"
    out.file_name = "depth_"
    out.format.media_type = "IMAGE"
    out.format.file_format = "OPEN_EXR"
    out.format.color_mode = "BW"
    out.format.color_depth = "32"
    out.file_output_items.new("FLOAT", "Depth")
    tree.links.new(layers.outputs["Depth"], out.inputs["Depth"])
    return folder / "depth_Depth.exr"


def read_depth(exr: Path, rgba_png: Path) -> np.ndarray:
    """Depth in metres of the last render, NaN where the character does not cover the pixel.

    Args:
        exr: the EXR written by the node of `setup_depth_output`.
        rgba_png: the matching colour render (its alpha decides foreground; edge pixels mix the
            character's depth with the background's and are dropped below half coverage).

    Returns:
        [H, W] float32 metres.
    """
    import bpy
    from PIL import Image

    img = bpy.data.images.load(str(exr), check_existing=False)
    try:
        w, h = img.size
        px = np.empty(w * h * img.channels, dtype=np.float32)
        img.pixels.foreach_get(px)
    finally:
        bpy.data.images.remove(img)
    depth = px.reshape(h, w, -1)[::-1, :, 0]  # Blender images start at the bottom row
    alpha = np.asarray(Image.open(rgba_png))[..., 3]
    valid = (alpha >= 128) & (depth > 0.001) & (depth < 65.0)
    return np.where(valid, depth, np.nan).astype(np.float32)


def _set_border(scene, uv: np.ndarray, size: int, margin_px: float = 6.0) -> None:
    """Render only the character's screen rectangle (plus a margin): most of a frame is background."""
    r = scene.render
    ok = np.isfinite(uv).all(axis=1)
    if not ok.any():
        r.use_border = False
        return
    lo = np.clip(uv[ok].min(axis=0) - margin_px, 0, size)
    hi = np.clip(uv[ok].max(axis=0) + margin_px, 0, size)
    if (hi - lo).min() < 1:
        r.use_border = False
        return
    r.use_border = True
    r.use_crop_to_border = False
    r.border_min_x, r.border_max_x = lo[0] / size, hi[0] / size
    # Blender's border y runs bottom-up; image rows run top-down.
    r.border_min_y, r.border_max_y = 1.0 - hi[1] / size, 1.0 - lo[1] / size


def render_views(cam, cameras: Cameras, verts: np.ndarray, paths: list[Path],
                 on_image: Callable[[], None] | None = None,
                 depth: tuple[Path, Callable[[int], Path]] | None = None) -> list[bool]:
    """Render the current scene state from each camera into ``paths``.

    Args:
        cam: the scene camera object.
        cameras: the rig.
        verts: [N, 3] current world vertex positions (for the render border).
        paths: output file per view.
        on_image: called after each image (progress).
        depth: (EXR written by the depth node, view -> depth PNG path) to also save depth maps.

    Returns:
        Per view: does part of the silhouette leave the image (`character4d.framing.silhouette_outside`)?
    """
    import bpy
    import mathutils

    scene = bpy.context.scene
    edges = []
    for v, path in enumerate(paths):
        cam.matrix_world = mathutils.Matrix(cameras.c2w_blender[v].tolist())
        uv, z = project(verts, cameras.viewmats[v], cameras.Ks[v])
        edges.append(silhouette_outside(uv, z, cameras.width, cameras.height))
        uv = np.where((z > 0)[:, None], uv, np.nan)
        _set_border(scene, uv, cameras.width)
        scene.render.filepath = str(path)
        bpy.ops.render.render(write_still=True)
        path.write_bytes(strip_png_metadata(path.read_bytes()))
        if depth is not None:
            depth[1](v).write_bytes(fmt.encode_depth(read_depth(depth[0], path)))
        if on_image is not None:
            on_image()
    return edges


# --------------------------------------------------------------------------------------------------
# Posing


def _bone_maps(char: Character):
    arm = char.armature
    names = [b.name for b in arm.data.bones]
    parents = {b.name: (b.parent.name if b.parent else None) for b in arm.data.bones}
    rest = dict(zip(names, bone_rotations_world(arm, names, posed=False)))
    return names, parents, rest


def _rest_dirs(char: Character) -> dict[str, np.ndarray]:
    bones = char.mapping.bones
    heads = bone_heads_world(char.armature, list(bones.values()), posed=False)
    return rest_directions(dict(zip(bones.keys(), heads)))


def _apply_basis(char: Character, basis: dict[str, np.ndarray], frame: int | None,
                 hips_loc: np.ndarray | None = None) -> None:
    """Set (and keyframe, when ``frame`` is given) the basis rotation of every bone."""
    import mathutils

    t = 0 if frame is None else frame
    for name, mats in basis.items():
        pb = char.armature.pose.bones[name]
        pb.rotation_quaternion = mathutils.Matrix(mats[t].tolist()).to_quaternion()
        if frame is not None:
            pb.keyframe_insert("rotation_quaternion", frame=frame)
    if hips_loc is not None:
        pb = char.armature.pose.bones[char.mapping.bones["hips"]]
        pb.location = tuple(hips_loc)
        if frame is not None:
            pb.keyframe_insert("location", frame=frame)


def apose_basis(char: Character, arm_deg: float) -> dict[str, np.ndarray]:
    """Basis rotations that put the character in the canonical A-pose (arms ``arm_deg`` below horizontal)."""
    names, parents, rest = _bone_maps(char)
    m = char.mapping.bones
    a = math.radians(arm_deg)
    want = {}
    for side, sign in (("left", 1.0), ("right", -1.0)):
        d = np.array([sign * math.cos(a), 0.0, -math.sin(a)])
        for b in (f"{side}UpperArm", f"{side}LowerArm"):
            want[b] = d
    tgt_dirs = _rest_dirs(char)
    canon = list(canonical_order(char.mapping))
    align = rest_alignment(want, tgt_dirs, PARENTS, canon)
    world = {m[b]: (align[b] @ rest[m[b]])[None] for b in canon}
    return world_to_basis(world, rest, parents, names)


def retarget_basis(char: Character, motion: SampledMotion, root_motion: str
                   ) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """Basis rotations of every target bone and the hips location, frame by frame.

    Returns:
        (bone name -> [T, 3, 3] basis rotations, [T, 3] hips basis location).
    """
    names, parents, rest = _bone_maps(char)
    m = char.mapping.bones
    common = [b for b in motion.bones if b in m]
    src_idx = [motion.bones.index(b) for b in common]
    tgt_dirs = _rest_dirs(char)
    align = rest_alignment(motion.rest_dirs, tgt_dirs, PARENTS, common)
    world = transfer_rotations(
        motion.rest[src_idx], motion.posed[:, src_idx], np.stack([align[b] for b in common]),
        np.stack([rest[m[b]] for b in common]),
    )
    basis = world_to_basis({m[b]: world[:, i] for i, b in enumerate(common)}, rest, parents, names)

    # Hips: scale the source displacement by the leg-length ratio, then express it in the hips bone's
    # rest frame (Blender's pose location is in the bone's local rest axes, in armature units).
    heads = dict(zip(m.keys(), bone_heads_world(char.armature, list(m.values()), posed=False)))
    offsets = hips_offsets(motion.hips, motion.rest_hips_height, leg_length(heads) / motion.leg_length, root_motion)
    aw = np.array(char.armature.matrix_world)[:3, :3]
    hips_rest_arm = np.array(char.armature.data.bones[m["hips"]].matrix_local)[:3, :3]
    loc = offsets @ np.linalg.inv(aw).T @ hips_rest_arm  # = (R_rest^T A^-1 offset) per frame
    return basis, loc


# --------------------------------------------------------------------------------------------------
# Joints


def face_points_local(char: Character) -> dict[str, np.ndarray]:
    """Nose, eyes and ears as points fixed in the head bone's frame (from the rest-pose head mesh).

    Returns:
        point name -> [4] homogeneous position in the head bone's armature-space rest frame.
    """
    import bpy

    arm = char.armature
    m = char.mapping.bones
    arm.data.pose_position = "REST"
    bpy.context.view_layer.update()
    verts = mesh_vertices_world(char.meshes)
    arm.data.pose_position = "POSE"
    bpy.context.view_layer.update()
    head = bone_heads_world(arm, [m["head"]], posed=False)[0]
    top = float(verts[:, 2].max())
    r = max((top - head[2]) / 2, 0.03)
    zc = head[2] + r
    near = verts[(verts[:, 2] > head[2]) & (np.abs(verts[:, 0] - head[0]) < 0.4 * r)
                 & (np.abs(verts[:, 1] - head[1]) < 2.5 * r)]
    front = float(near[:, 1].min()) if len(near) else head[1] - r
    slab = verts[(np.abs(verts[:, 2] - zc) < 0.3 * r) & (np.abs(verts[:, 1] - head[1]) < 1.5 * r)
                 & (np.abs(verts[:, 0] - head[0]) < 2.0 * r)]
    half_w = float(np.abs(slab[:, 0] - head[0]).max()) if len(slab) else r
    world = {
        "nose": np.array([head[0], front, zc - 0.2 * r]),
        "leftEye": np.array([head[0] + 0.35 * r, front + 0.15 * r, zc + 0.1 * r]),
        "rightEye": np.array([head[0] - 0.35 * r, front + 0.15 * r, zc + 0.1 * r]),
        "leftEar": np.array([head[0] + half_w, head[1], zc]),
        "rightEar": np.array([head[0] - half_w, head[1], zc]),
    }
    for eye in ("leftEye", "rightEye"):
        if eye in m:
            world[eye] = bone_heads_world(arm, [m[eye]], posed=False)[0]
    # Into the head bone's rest frame (armature space), so they follow the posed head.
    aw = np.array(arm.matrix_world)
    rest_head = np.array(arm.data.bones[m["head"]].matrix_local)
    inv = np.linalg.inv(aw @ rest_head)
    return {k: inv @ np.append(p, 1.0) for k, p in world.items()}


def current_joints(char: Character, face_local: dict[str, np.ndarray]) -> np.ndarray:
    """World positions of `JOINT_NAMES` in the current pose (NaN for joints the skeleton lacks).

    Returns:
        [J, 3] float64.
    """
    arm = char.armature
    m = char.mapping.bones
    aw = np.array(arm.matrix_world)
    out = np.full((len(JOINT_NAMES), 3), np.nan)
    head_mat = aw @ np.array(arm.pose.bones[m["head"]].matrix)
    for j, name in enumerate(JOINT_NAMES):
        if name in FACE_POINTS:
            out[j] = (head_mat @ face_local[name])[:3]
        elif name.endswith("Tip"):
            distal = name[: -len("Tip")] + "Distal"
            if distal in m:
                out[j] = aw[:3, :3] @ np.array(arm.pose.bones[m[distal]].tail) + aw[:3, 3]
        elif name in m:
            out[j] = aw[:3, :3] @ np.array(arm.pose.bones[m[name]].head) + aw[:3, 3]
    return out


# --------------------------------------------------------------------------------------------------
# The sample


def render_sample(character: str | Path, motion: str | Path, key: str, cfg: RenderConfig, out: Path,
                  progress: Callable[[int, int], None] | None = None) -> dict:
    """Render one sample's fields into ``out`` (one file per `character4d.format` field).

    Args:
        character: character file.
        motion: motion file.
        key: sample key.
        cfg: render settings.
        out: output folder (created).
        progress: called with (images done, images total).

    Returns:
        The meta.json dict.

    Raises:
        AssetError: for inputs that cannot be used (the message names file and problem).
    """
    import bpy

    from character4d.posemap import PoseStyle, draw_pose_map

    out.mkdir(parents=True, exist_ok=True)
    character, motion = Path(character), Path(motion)
    reset_scene()
    sampled = sample_motion(motion, cfg.num_frames, cfg.fps, cfg.start, cfg.face_front)
    reset_scene()
    char = load_character(character, cfg.height)
    if char.armature.animation_data is not None:
        char.armature.animation_data_clear()
    cam = setup_scene(cfg)
    # `rig` is a RigConfig field of RunConfig (a method of the older RenderConfig).
    cameras = rig_cameras(cfg.rig() if callable(cfg.rig) else cfg.rig)
    views = cameras.num_views
    total = views * (cfg.num_frames + 1)
    done = 0

    def tick() -> None:
        nonlocal done
        done += 1
        if progress is not None:
            progress(done, total)

    depth_exr = setup_depth_output(out.parent / f".{out.name}.depth") if cfg.depth else None
    face_local = face_points_local(char)
    style = PoseStyle(variant=cfg.pose_variant, hands=cfg.hands)

    # A-pose.
    _apply_basis(char, apose_basis(char, cfg.apose_arm_deg), None)
    bpy.context.view_layer.update()
    apose_joints = current_joints(char, face_local)
    apose_edge = render_views(cam, cameras, mesh_vertices_world(char.meshes),
                              [out / fmt.apose_name(v) for v in range(views)], tick)

    # Motion: bake keyframes, then render frame by frame.
    basis, hips_loc = retarget_basis(char, sampled, cfg.root_motion)
    scene = bpy.context.scene
    for f in range(cfg.num_frames):
        _apply_basis(char, basis, f, hips_loc[f])
    scene.frame_start, scene.frame_end = 0, cfg.num_frames - 1
    joints = np.zeros((cfg.num_frames, len(JOINT_NAMES), 3))
    edge = np.zeros((views, cfg.num_frames), dtype=bool)  # silhouette partly outside the image
    for f in range(cfg.num_frames):
        scene.frame_set(f)
        joints[f] = current_joints(char, face_local)
        edge[:, f] = render_views(cam, cameras, mesh_vertices_world(char.meshes),
                     [out / fmt.frame_name(v, f) for v in range(views)], tick,
                     depth=(depth_exr, lambda v, f=f: out / fmt.depth_name(v, f)) if cfg.depth else None)
        for v in range(views):
            pose = draw_pose_map(joints[f], cameras.viewmats[v], cameras.Ks[v], cfg.resolution,
                                 cfg.resolution, style=style)
            (out / fmt.pose_name(v, f)).write_bytes(fmt.encode_png(pose))
    if cfg.mask:
        _write_masks(out, views, cfg.num_frames)

    meta = {
        "character_id": fmt.parse_key(key)[0],
        "motion_id": fmt.parse_key(key)[1],
        # Names and content hashes, not absolute paths or timings: the same inputs must give the same
        # sample bytes wherever they are rendered (the benchmark hashes meta.json with the images).
        "sources": {
            "character": {"name": character.name, "sha256": sha256_file(character)},
            "motion": {"name": motion.name, "sha256": sha256_file(motion)},
        },
        "license": _license_of(character, motion),
        "fps": cfg.fps,
        "num_frames": cfg.num_frames,
        "num_views": views,
        "resolution": cfg.resolution,
        "rig": cameras.to_json()["rig"],
        "renderer": {"blender": bpy.app.version_string, "engine": cfg.engine,
                     "samples": cfg.effective_samples, "denoise": cfg.denoise},
        # Without `threads`: how many cores rendered a sample changes no pixel, and the same job run with
        # and without --ray (which sets it per task) must give the same bytes.
        "render_config": {k: v for k, v in cfg.to_json().items() if k != "threads"},
        "package_version": character4d.__version__,
        "seed": cfg.seed,
        "joint_names": list(JOINT_NAMES),
        "source_times": [float(t) for t in sampled.times],
        "start": {"requested": cfg.start, "chosen_s": sampled.start, "lead_in_s": sampled.lead_in},
        "source_fps": sampled.fps,
        "source_duration": sampled.duration,
        "skeleton": {"character": char.mapping.to_json(), "motion": sampled.mapping.to_json(),
                     "character_rigged": char.rigged, "autorig": char.autorig},
        "framing": framing_record(joints_outside(joints, cameras), edge, apose_edge),
        "character_height": char.height,
        "character_scale": char.scale,
    }
    # SampleMeta owns meta.json: it validates the document (every problem named) before it is written.
    meta = fmt.SampleMeta.from_json(meta, key=key).to_json()
    (out / fmt.META).write_bytes(fmt.encode_json(meta))
    (out / fmt.CAMERAS).write_bytes(fmt.encode_json(cameras.to_json()))
    (out / fmt.JOINTS).write_bytes(fmt.encode_npy(joints.astype(np.float32)))
    (out / fmt.APOSE_JOINTS).write_bytes(fmt.encode_npy(apose_joints.astype(np.float32)))
    return meta


def _write_masks(out: Path, views: int, frames: int) -> None:
    from PIL import Image

    for v in range(views):
        for f in range(frames):
            alpha = np.asarray(Image.open(out / fmt.frame_name(v, f)))[..., 3]
            (out / fmt.mask_name(v, f)).write_bytes(fmt.encode_png(np.where(alpha >= 128, 255, 0).astype(np.uint8)))


def _license_of(character: Path, motion: Path) -> dict | None:
    """Licence notes of the inputs, from the ``<file>.license.json`` beside each (None: unknown).

    When both files carry the same note (the default data), it is the sample's; otherwise each file's
    note (or None) is given separately.
    """
    from character4d.default_data import read_license

    notes = read_license(character), read_license(motion)
    if notes[0] is not None and notes[0] == notes[1]:
        return notes[0]
    if notes == (None, None):
        return None
    return {"character": notes[0], "motion": notes[1]}


if __name__ == "__main__":  # pragma: no cover - use character4d.blender.worker
    sys.exit("run `python -m character4d.blender.worker JOB.json` instead")
