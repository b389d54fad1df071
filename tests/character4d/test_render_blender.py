"""Tiny end-to-end renders in Blender (64 px, 3 views, 3 frames): what a person would check by eye.

- the character is visible in every view (alpha coverage) and actually moves between frames;
- the projected joints fall inside its silhouette (renders, joints and cameras agree);
- left and right are not swapped in view 0 (a right-arm wave shows on the image's left);
- shards round-trip through webdataset; bad inputs fail clearly and the rest still renders.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from character4d.cameras import project
from character4d.config import RenderConfig
from character4d.format import open_samples
from character4d.skeleton import REQUIRED_BONES
from tests.conftest import shared_assets

pytestmark = pytest.mark.blender

TINY = RenderConfig(resolution=64, num_frames=3, num_views=3, fps=5.0, samples=4)


def _render(chars, motions, out, cfg=TINY):
    from character4d.pipeline import render

    return render([*chars], [*motions], out, cfg, progress=False)


def _dilate(mask: np.ndarray, r: int) -> np.ndarray:
    out = mask.copy()
    for dy in range(-r, r + 1):
        for dx in range(-r, r + 1):
            out |= np.roll(np.roll(mask, dy, 0), dx, 1)
    return out


def check_sample(sample, min_inside=0.9):
    """The checks of the module docstring that hold for any character and motion."""
    cams = sample.cameras
    names = list(sample.joint_names)
    body = [names.index(b) for b in REQUIRED_BONES]
    joints = sample.joints
    assert np.isfinite(joints[:, body]).all()
    for v in range(sample.num_views):
        assert (sample.apose(v)[..., 3] > 0).mean() > 0.01, f"view {v}: A-pose not visible"
        for f in range(sample.num_frames):
            alpha = sample.frame(v, f)[..., 3] > 0
            assert alpha.mean() > 0.01, f"view {v} frame {f}: character not visible"
            uv, depth = project(joints[f, body], cams.viewmats[v], cams.Ks[v])
            px = np.floor(uv).astype(int)
            # The rig sees up to ~1.96 m: a hand raised over a tall character's head may leave the frame.
            # meta.json's framing record must say so exactly when it happens (checked against this
            # projection of the required joints); such frames may have more joints outside.
            inside_img = (px >= 0).all(1) & (px < alpha.shape[0]).all(1)
            flagged = bool(sample.meta["framing"]["joint_outside"][v][f])
            if not inside_img.all():
                assert flagged, f"view {v} frame {f}: joints outside the image but not in meta framing"
            assert flagged or inside_img.mean() >= 0.9, f"view {v} frame {f}: joints outside the image"
            px = px[inside_img]
            hit = _dilate(alpha, 2)[px[:, 1], px[:, 0]]
            assert hit.mean() >= min_inside, (
                f"view {v} frame {f}: only {hit.mean():.0%} of joints inside the silhouette")
            assert sample.pose(v, f).max() > 0, f"view {v} frame {f}: empty pose map"
    # Feet on the ground: the lowest ankle over the clip is at about the A-pose ankle height (not sunk
    # into the floor, not floating), and no ankle goes far below the floor.
    feet = [names.index(b) for b in ("leftFoot", "rightFoot")]
    rest_ankle = float(np.nanmin(sample.apose_joints[feet, 2]))
    lowest = float(np.nanmin(joints[:, feet, 2]))
    assert 0.0 < rest_ankle < 0.2, rest_ankle
    assert abs(lowest - rest_ankle) < 0.08, f"lowest ankle at {lowest:.3f} m, A-pose ankle at {rest_ankle:.3f} m"
    moved = np.abs(joints[-1, body] - joints[0, body]).max()
    assert moved > 0.02, f"joints moved only {moved:.3f} m over the clip"
    diff = np.mean([np.abs(sample.frame(v, 0)[..., 3].astype(int) - sample.frame(v, sample.num_frames - 1)[..., 3])
                    .mean() for v in range(sample.num_views)])
    assert diff > 0.5, "the silhouette does not change between the first and last frame"


@pytest.fixture(scope="module")
def default_run(default_data, tmp_path_factory):
    chars, motions = default_data
    out = tmp_path_factory.mktemp("default_render")
    # Each default character with one default motion (the diagonal keeps the test small).
    summaries = [
        _render([chars[c]], [motions[m]], out / f"{c}_{m}")
        for c, m in (("ada", "walk"), ("bram", "wave"), ("cleo", "jump"), ("dax", "dance"))
    ]
    return out, summaries


def test_default_data_renders_and_passes_visual_checks(default_run):
    out, summaries = default_run
    keys = []
    for s in summaries:
        assert not s.failed, s.failed
        for sample in open_samples(s.manifest.parent / "shards"):
            check_sample(sample)
            meta = sample.meta
            assert meta["render_config"]["resolution"] == 64
            times = meta["source_times"]
            assert len(times) == 3 and times[1] - times[0] == pytest.approx(0.2)
            # --start auto (the default) records what it chose; the default motions have no lead-in.
            assert meta["start"]["chosen_s"] == pytest.approx(times[0]) and meta["start"]["lead_in_s"] == 0.0
            # The default data stays in frame (default data v5), and the record says so per view and frame.
            assert meta["framing"]["clipped"] == 0, meta["framing"]
            assert np.shape(meta["framing"]["joint_outside"]) == np.shape(meta["framing"]["silhouette_outside"]) == (3, 3)
            assert meta["license"]["license"] == "CC0-1.0"
            assert meta["skeleton"]["character"]["convention"] == "mixamo"
            assert 1.6 <= meta["character_height"] <= 1.9
            keys.append(sample.key)
    assert keys == ["ada__walk", "bram__wave", "cleo__jump", "dax__dance"]


def test_right_arm_wave_appears_on_image_left_in_view_0(default_run):
    """bram waves with his right hand; from the front (view 0) his right is the image's left."""
    out, _ = default_run
    sample = next(open_samples(out / "bram_wave" / "shards"))
    alpha = sample.frame(0, 2)[..., 3] > 0
    rows = np.where(alpha.any(1))[0]
    top = alpha[rows[0]: rows[0] + max(3, (rows[-1] - rows[0]) // 6)]  # the raised hand is the highest part
    cols = np.where(top.any(0))[0]
    assert cols.mean() < alpha.shape[1] / 2 - 1, "raised right hand is not on the image's left in view 0"
    # The joints agree: right hand raised to about the shoulder, well above the left hand, which hangs
    # below the shoulders.
    names = list(sample.joint_names)
    j = sample.joints[2]
    assert j[names.index("rightHand"), 2] > j[names.index("rightUpperArm"), 2] - 0.05
    assert j[names.index("rightHand"), 2] > j[names.index("leftHand"), 2] + 0.3
    assert j[names.index("leftHand"), 2] < j[names.index("leftUpperArm"), 2]


def test_front_view_sees_the_face(default_run):
    """The nose keypoint is drawn (visible) in view 0 of the A-pose facing, hidden from behind."""
    from character4d.posemap import coco18_from_joints, keypoint_visibility

    out, _ = default_run
    sample = next(open_samples(out / "ada_walk" / "shards"))
    kp = coco18_from_joints(sample.apose_joints, sample.joint_names)
    centers = sample.cameras.centers
    assert keypoint_visibility(kp, centers[0])[0]          # nose seen from the front
    behind = np.array([0.0, 3.5, 0.7])
    assert not keypoint_visibility(kp, behind)[0]          # ... and not from behind


def test_shard_is_a_plain_webdataset(default_run):
    import webdataset as wds

    out, _ = default_run
    tar = next((out / "ada_walk" / "shards").glob("*.tar"))
    ds = wds.WebDataset(str(tar), shardshuffle=False).decode("rgba8")
    item = next(iter(ds))
    assert item["__key__"] == "ada__walk"
    assert item["v00.f000.png"].shape == (64, 64, 4)
    assert item["pose.v02.f002.png"].shape[:2] == (64, 64)
    assert item["joints.npy"].shape[0] == 3
    assert item["meta.json"]["num_views"] == 3


def test_real_assets_each_character_with_each_cmu_motion(tmp_path):
    assets = shared_assets()
    chars = sorted((assets / "characters").glob("*.glb"))
    motions = sorted((assets / "motions").glob("*.fbx"))
    summary = _render(chars, motions, tmp_path)
    assert not summary.failed, summary.failed
    samples = list(open_samples(tmp_path / "shards"))
    assert len(samples) == len(chars) * len(motions) >= 8
    for sample in samples:
        # Auto-rigged and game meshes are coarse at 64 px; allow one joint in ten to graze the edge.
        check_sample(sample, min_inside=0.85)
        conv = sample.meta["skeleton"]
        assert conv["motion"]["convention"] == "cmu"
        # CMU's takes open with a T-pose frame: --start auto (the default) skips it.
        assert sample.meta["start"]["lead_in_s"] > 0 and sample.meta["source_times"][0] >= sample.meta["start"]["lead_in_s"]
        if sample.key.startswith("model-human"):
            assert conv["character_rigged"] is False and conv["character"]["convention"] == "autorig"
        else:
            assert conv["character"]["convention"] in ("unreal", "mixamo")


def test_bad_inputs_fail_clearly_and_the_rest_renders(default_data, tmp_path):
    from character4d.bvh import BvhSkeleton, write_bvh

    chars, motions = default_data
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "corrupt.glb").write_bytes(b"glTF\x02\x00\x00\x00garbage" + bytes(range(256)))
    (bad / "empty.obj").write_text("# an OBJ with an object and no geometry\no Empty\n")
    # A quadruped: no arms, four legs.
    names = ("root", "spine", "neck", "head", "tail", "front_leg_l", "front_leg_r", "back_leg_l", "back_leg_r")
    parents = (-1, 0, 1, 2, 0, 1, 1, 0, 0)
    offs = np.array([[0, 0, 0.6], [0, -0.3, 0], [0, -0.2, 0.1], [0, -0.1, 0.1], [0, 0.3, 0],
                     [0.1, 0, -0.5], [-0.1, 0, -0.5], [0.1, 0, -0.5], [-0.1, 0, -0.5]])
    skel = BvhSkeleton(names, parents, offs, {})
    rots = np.broadcast_to(np.eye(3), (10, len(names), 3, 3)).copy()
    write_bvh(bad / "quadruped.bvh", skel, rots, np.tile([0, 0, 0.6], (10, 1)), fps=30)
    # A humanoid motion file with a single frame: nothing to animate.
    walk = motions["walk"].read_text().split("MOTION")[0]
    first = motions["walk"].read_text().split("Frame Time:")[1].splitlines()[1]
    (bad / "still.bvh").write_text(walk + f"MOTION\nFrames: 1\nFrame Time: 0.0333333\n{first}\n")

    summary = _render([chars["ada"], bad / "corrupt.glb", bad / "empty.obj"],
                      [motions["walk"], bad / "quadruped.bvh", bad / "still.bvh"], tmp_path / "out")
    assert summary.done == ("ada__walk",)
    reasons = dict(summary.failed)
    assert len(reasons) == 8
    assert "not a readable" in reasons["corrupt__walk"] or "could not import" in reasons["corrupt__walk"]
    assert "empty" in reasons["empty__walk"] or "no mesh" in reasons["empty__walk"] or "no objects" in reasons["empty__walk"]
    assert "leftUpperArm" in reasons["ada__quadruped"]  # names the missing bones
    assert "no animation" in reasons["ada__still"]
    manifest = json.loads(summary.manifest.read_text())
    assert manifest["jobs"]["ada__quadruped"]["status"] == "failed"
    assert [s.key for s in open_samples(tmp_path / "out" / "shards")] == ["ada__walk"]


def _as_vrm(glb: Path, out: Path, version: int) -> Path:
    """Turn a Mixamo-named GLB into a VRM whose bones only the VRM humanoid table can map.

    Bones are renamed to meaningless names; the file's VRM extension says which is which. The VRM 0.x
    variant is also turned to face +Z in glTF (as VRM 0.x models do), which the loader must undo.
    """
    import pygltflib

    from character4d.skeleton import map_skeleton

    gltf = pygltflib.GLTF2().load(str(glb))
    joints = gltf.skins[0].joints
    names = [gltf.nodes[i].name for i in joints]
    mapping = map_skeleton(names).bones
    node_of = {gltf.nodes[i].name: i for i in joints}
    for k, i in enumerate(joints):
        gltf.nodes[i].name = f"bone_{k:03d}"
    if version == 1:
        gltf.extensions = {"VRMC_vrm": {"specVersion": "1.0", "humanoid": {
            "humanBones": {c: {"node": node_of[n]} for c, n in mapping.items()}}}}
        gltf.extensionsUsed = ["VRMC_vrm"]
    else:
        thumbs = {"ThumbMetacarpal": "ThumbProximal", "ThumbProximal": "ThumbIntermediate"}
        bones = []
        for c, n in mapping.items():
            for new, old in thumbs.items():
                if c.endswith(new):
                    c = c[: -len(new)] + old
                    break
            bones.append({"bone": c, "node": node_of[n]})
        gltf.extensions = {"VRM": {"specVersion": "0.0", "humanoid": {"humanBones": bones}}}
        gltf.extensionsUsed = ["VRM"]
        scene_roots = gltf.scenes[gltf.scene or 0].nodes
        for r in scene_roots:  # half turn about glTF's up axis (Y): quaternion (x, y, z, w)
            gltf.nodes[r].rotation = [0.0, 1.0, 0.0, 0.0]
    out.parent.mkdir(parents=True, exist_ok=True)
    gltf.save_binary(str(out))
    return out


@pytest.mark.parametrize("version", [0, 1])
def test_vrm_humanoid_table_maps_and_faces_front(default_data, tmp_path, version):
    from character4d.posemap import coco18_from_joints, keypoint_visibility

    chars, motions = default_data
    vrm = _as_vrm(chars["dax"], tmp_path / "in" / f"dax-vrm{version}.vrm", version)
    summary = _render([vrm], [motions["wave"]], tmp_path / "out")
    assert not summary.failed, summary.failed
    sample = next(open_samples(tmp_path / "out" / "shards"))
    assert sample.meta["skeleton"]["character"]["convention"] == f"vrm{version}"
    check_sample(sample)
    kp = coco18_from_joints(sample.apose_joints, sample.joint_names)
    assert keypoint_visibility(kp, sample.cameras.centers[0])[0], "VRM character does not face view 0"


def test_depth_and_mask(default_data, tmp_path):
    chars, motions = default_data
    cfg = RenderConfig(resolution=64, num_frames=2, num_views=2, fps=5.0, samples=2, depth=True, mask=True)
    summary = _render([chars["bram"]], [motions["walk"]], tmp_path, cfg)
    assert not summary.failed, summary.failed
    sample = next(open_samples(tmp_path / "shards"))
    names = list(sample.joint_names)
    for v in range(2):
        for f in range(2):
            alpha = sample.frame(v, f)[..., 3]
            np.testing.assert_array_equal(sample.mask(v, f), alpha >= 128)
            depth = sample.depth(v, f)
            assert np.isfinite(depth).sum() > 50
            assert np.isnan(depth[alpha < 128]).all()
            # Planar (OpenCV z) depth: the body's surface lies just in front of the hips joint.
            uv, z = project(sample.joints[f, [names.index("hips")]], sample.cameras.viewmats[v],
                            sample.cameras.Ks[v])
            surface = depth[int(uv[0, 1]), int(uv[0, 0])]
            assert z[0] - 0.35 < surface < z[0], (surface, z[0])


def _convert(src: Path, dst: Path) -> Path:
    """Re-export a character with Blender (in a child process, so this one keeps no Blender state)."""
    import subprocess
    import sys

    code = f"""
import bpy
bpy.ops.wm.read_factory_settings(use_empty=True)
bpy.ops.import_scene.gltf(filepath={str(src)!r})
if {dst.suffix!r} == ".fbx":
    bpy.ops.export_scene.fbx(filepath={str(dst)!r}, add_leaf_bones=False, bake_anim=False)
else:
    bpy.ops.wm.obj_export(filepath={str(dst)!r}, export_materials=True)
"""
    dst.parent.mkdir(parents=True, exist_ok=True)
    subprocess.run([sys.executable, "-c", code], check=True, capture_output=True)
    return dst


def test_fbx_character_and_unrigged_obj(default_data, tmp_path):
    """The other ingestion paths: a rigged FBX character, and an OBJ (no skeleton) that gets auto-rigged."""
    chars, motions = default_data
    fbx = _convert(chars["bram"], tmp_path / "in" / "bram-fbx.fbx")
    obj = _convert(chars["dax"], tmp_path / "in" / "dax-obj.obj")
    summary = _render([fbx, obj], [motions["walk"]], tmp_path / "out")
    assert not summary.failed, summary.failed
    samples = {s.key: s for s in open_samples(tmp_path / "out" / "shards")}
    assert samples["bram-fbx__walk"].meta["skeleton"]["character"]["convention"] == "mixamo"
    assert samples["dax-obj__walk"].meta["skeleton"]["character_rigged"] is False
    for sample in samples.values():
        check_sample(sample, min_inside=0.85)


def test_same_inputs_and_seed_give_the_same_images(default_data, tmp_path):
    chars, motions = default_data
    cfg = RenderConfig(resolution=48, num_frames=2, num_views=2, fps=5.0, samples=2)
    a = next(open_samples(_render([chars["cleo"]], [motions["jump"]], tmp_path / "a", cfg).manifest.parent))
    b = next(open_samples(_render([chars["cleo"]], [motions["jump"]], tmp_path / "b", cfg).manifest.parent))
    assert a.files == b.files  # meta.json included: no timings or absolute paths in it


@pytest.mark.parametrize("engine", ["workbench", pytest.param("eevee", marks=pytest.mark.slow)])
def test_preview_engines(default_data, tmp_path, engine):
    """Workbench and EEVEE (software OpenGL here) render coloured, visible characters too."""
    chars, motions = default_data
    cfg = RenderConfig(resolution=48, num_frames=1, num_views=1, engine=engine)
    summary = _render([chars["dax"]], [motions["wave"]], tmp_path, cfg)
    assert not summary.failed, summary.failed
    sample = next(open_samples(tmp_path / "shards"))
    rgba = sample.frame(0, 0)
    visible = rgba[..., 3] > 128
    assert visible.mean() > 0.02
    rgb = rgba[visible][:, :3].astype(int)
    # Not flat grey: the character's materials give clearly different hues.
    assert (rgb.max(axis=1) - rgb.min(axis=1)).mean() > 20
    assert sample.meta["renderer"]["engine"] == engine


def test_rig_under_a_rotated_scaled_root_and_bvh_rooted_at_the_origin(default_data, tmp_path):
    """A GLB whose scene root turns and scales the rig (as Sketchfab exports do), driven by a BVH whose
    root sits at the origin in its rest pose: the character stands upright with its feet on the floor."""
    import pygltflib

    chars, motions = default_data
    gltf = pygltflib.GLTF2().load(str(chars["bram"]))
    scene = gltf.scenes[gltf.scene or 0]
    gltf.nodes.append(pygltflib.Node(name="Sketchfab_model", children=list(scene.nodes),
                                     rotation=[0.7071068, 0.0, 0.0, 0.7071068], scale=[0.01, 0.01, 0.01]))
    scene.nodes = [len(gltf.nodes) - 1]
    # Undo the root's turn inside it, as a Y-up exporter does, so the result stands upright.
    for i in list(gltf.nodes[-1].children):
        gltf.nodes[i].rotation = [-0.7071068, 0.0, 0.0, 0.7071068]
        gltf.nodes[i].scale = [100.0, 100.0, 100.0]
    rooted = tmp_path / "in" / "bram-rooted.glb"
    rooted.parent.mkdir()
    gltf.save_binary(str(rooted))
    text = motions["walk"].read_text()
    first_offset = text.split("OFFSET", 1)[1].splitlines()[0]
    origin = tmp_path / "in" / "walk-origin.bvh"
    origin.write_text(text.replace("OFFSET" + first_offset, "OFFSET 0.000000 0.000000 0.000000", 1))
    summary = _render([rooted], [origin], tmp_path / "out")
    assert not summary.failed, summary.failed
    sample = next(open_samples(tmp_path / "out" / "shards"))
    check_sample(sample)
    names = list(sample.joint_names)
    head, hips = sample.apose_joints[names.index("head")], sample.apose_joints[names.index("hips")]
    assert head[2] > hips[2] + 0.4  # upright
