"""The bpy-free file logic moved out of the Blender layer: VRM humanoid tables, bone mapping, BVH frame
rate, rest-pose directions and leg length, and the import-direction rules (no bpy, no cycle)."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pygltflib
import pytest

from character4d.assets import AssetError, map_bones, read_vrm_humanoid
from character4d.bvh import BvhSkeleton, bvh_fps, write_bvh
from character4d.retarget import canonical_order, leg_length, rest_directions
from character4d.skeleton import REQUIRED_BONES, SkeletonMap

VRM_BONES = ["hips", "spine", "chest", "neck", "head"] + [
    f"{s}{b}" for s in ("left", "right") for b in ("UpperArm", "LowerArm", "Hand", "UpperLeg", "LowerLeg", "Foot")]


def _vrm_file(path, version: int):
    nodes = [pygltflib.Node(name=f"J_{b}") for b in VRM_BONES] + [pygltflib.Node(name="J_thumb")]
    gltf = pygltflib.GLTF2(nodes=nodes, scenes=[pygltflib.Scene(nodes=list(range(len(nodes))))], scene=0)
    if version == 0:
        bones = [{"bone": b, "node": i} for i, b in enumerate(VRM_BONES)]
        bones.append({"bone": "leftThumbIntermediate", "node": len(VRM_BONES)})
        bones.append({"bone": "rightEye", "node": -1})  # VRM 0.x exporters write -1 for absent bones
        gltf.extensions = {"VRM": {"humanoid": {"humanBones": bones}}}
    else:
        bones = {b: {"node": i} for i, b in enumerate(VRM_BONES)}
        bones["leftThumbProximal"] = {"node": len(VRM_BONES)}
        gltf.extensions = {"VRMC_vrm": {"humanoid": {"humanBones": bones}}}
    gltf.save_binary(str(path))
    return path


@pytest.mark.parametrize("version", [0, 1])
def test_vrm_humanoid_tables(tmp_path, version):
    path = _vrm_file(tmp_path / f"c{version}.vrm", version)
    convention, table = read_vrm_humanoid(path)
    assert convention == f"vrm{version}"
    assert table["hips"] == "J_hips" and table["rightFoot"] == "J_rightFoot"
    # VRM 0.x's thumbIntermediate is VRM 1.0's thumbProximal (the canonical name).
    assert table["leftThumbProximal"] == "J_thumb"
    assert "rightEye" not in table
    names = [n.name for n in pygltflib.GLTF2().load_binary(str(path)).nodes]
    mapping = map_bones(names, [None] * len(names), path)
    assert mapping.convention == f"vrm{version}"
    assert all(b in mapping.bones for b in REQUIRED_BONES)


def test_vrm_reader_errors_and_plain_gltf(tmp_path):
    bad = tmp_path / "bad.vrm"
    bad.write_bytes(b"glTF\x02\x00\x00\x00garbage")
    with pytest.raises(AssetError, match="bad.vrm"):
        read_vrm_humanoid(bad)
    plain = tmp_path / "plain.glb"
    pygltflib.GLTF2(nodes=[pygltflib.Node(name="x")]).save_binary(str(plain))
    assert read_vrm_humanoid(plain) is None
    with pytest.raises(AssetError, match="cannot be mapped"):
        map_bones(["x", "y"], [None, "x"], plain)


def test_bvh_fps_reads_the_frame_time(tmp_path):
    skel = BvhSkeleton(("Hips", "Spine"), (-1, 0), np.array([[0, 0, 1.0], [0, 0, 0.1]]), {})
    path = write_bvh(tmp_path / "m.bvh", skel, np.tile(np.eye(3), (3, 2, 1, 1)), np.zeros((3, 3)), fps=24.0)
    assert bvh_fps(path) == pytest.approx(24.0, rel=1e-6)
    path.write_text(path.read_text().replace("Frame Time: ", "Frame Time: -"))
    assert bvh_fps(path) is None


def test_rest_directions_leg_length_and_order():
    # A hand-built skeleton: legs straight down, 0.4 m + 0.45 m; arms along +-X.
    heads = {"hips": np.array([0, 0, 1.0]), "spine": np.array([0, 0, 1.2]),
             "leftUpperLeg": np.array([0.1, 0, 0.95]), "leftLowerLeg": np.array([0.1, 0, 0.55]),
             "leftFoot": np.array([0.1, 0, 0.10]), "rightUpperLeg": np.array([-0.1, 0, 0.95]),
             "rightLowerLeg": np.array([-0.1, 0, 0.55]), "rightFoot": np.array([-0.1, 0, 0.10]),
             "leftUpperArm": np.array([0.2, 0, 1.5]), "leftLowerArm": np.array([0.5, 0, 1.5])}
    dirs = rest_directions(heads)
    np.testing.assert_allclose(dirs["hips"], [0, 0, 1])
    np.testing.assert_allclose(dirs["leftUpperLeg"], [0, 0, -1])
    np.testing.assert_allclose(dirs["leftUpperArm"], [1, 0, 0])
    assert "leftLowerArm" not in dirs  # no mapped child
    assert leg_length(heads) == pytest.approx(0.85)
    order = canonical_order(SkeletonMap("x", {b: b for b in heads}, ()))
    assert order[0] == "hips" and order.index("leftUpperLeg") < order.index("leftLowerLeg") < order.index("leftFoot")


def test_bpy_free_modules_import_without_bpy_and_no_cycle():
    code = ("import sys\n"
            "import character4d.default_data, character4d.assets, character4d.autorig, character4d.clip\n"
            "import character4d.framing, character4d.png_metadata, character4d.retarget, character4d.bvh\n"
            "bad = [m for m in sys.modules if m == 'bpy' or m.startswith('character4d.blender')]\n"
            "print(bad)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
    import re

    import character4d.default_data

    src = open(character4d.default_data.__file__).read()
    assert not re.search(r"^\s*(from|import) character4d\.blender", src, re.MULTILINE)
