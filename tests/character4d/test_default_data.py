"""Numpy-only checks of the embedded default motions, the BVH writer/reader and the render config."""

from __future__ import annotations

import numpy as np
import pytest

from character4d.bvh import WORLD_TO_BVH, euler_zxy, matrix_zxy, read_bvh
from character4d.config import RenderConfig
from character4d.default_data import CHARACTERS, MOTIONS, ensure_default_motions, motion_to_bvh, template_skeleton
from character4d.retarget import axis_angle
from character4d.skeleton import map_skeleton


def fk(motion, frame: int) -> dict[str, np.ndarray]:
    """Forward kinematics of a parsed BVH (file axes/units), independent of the writer's code."""
    ch = motion.channels[frame]
    pos = {}
    glob = {}
    k = 0
    for j, name in enumerate(motion.names):
        p = motion.parents[j]
        if p < 0:
            root = ch[0:3]
            k = 3
        rot = matrix_zxy(ch[k:k + 3])
        k += 3
        if p < 0:
            glob[j] = rot
            pos[name] = root
        else:
            glob[j] = glob[p] @ rot
            pos[name] = pos[motion.names[p]] + glob[p] @ motion.offsets[j]
    return pos


def test_euler_zxy_round_trip():
    rng = np.random.default_rng(0)
    angles = rng.uniform(-80, 80, size=(50, 3))
    np.testing.assert_allclose(euler_zxy(matrix_zxy(angles)), angles, atol=1e-9)


def test_world_to_bvh_is_a_rotation_facing_plus_z():
    assert np.linalg.det(WORLD_TO_BVH) == pytest.approx(1.0)
    np.testing.assert_allclose(WORLD_TO_BVH @ [0, -1, 0], [0, 0, 1])  # facing -Y -> BVH facing +Z
    np.testing.assert_allclose(WORLD_TO_BVH @ [0, 0, 1], [0, 1, 0])   # Z up -> Y up


def test_default_motions_are_deterministic_and_mixamo_named(tmp_path):
    a = ensure_default_motions(tmp_path / "a")
    b = ensure_default_motions(tmp_path / "b")
    assert [p.stem for p in a] == sorted(m.name for m in MOTIONS)
    for pa, pb in zip(a, b):
        assert pa.read_bytes() == pb.read_bytes()
        m = read_bvh(pa)
        assert map_skeleton(list(m.names), list(m.parents)).convention == "mixamo"
        assert m.frame_time == pytest.approx(1 / 30, abs=1e-6)
        assert m.channels.shape[0] > 30


def test_walk_swings_the_left_leg_forward_then_back(tmp_path):
    """The file's joint positions (recomputed by plain FK) show a real gait: feet alternate in front."""
    path = motion_to_bvh(next(m for m in MOTIONS if m.name == "walk"), tmp_path / "walk.bvh")
    m = read_bvh(path)
    forward = np.array([0.0, 0.0, 1.0])  # BVH +Z is the character's front
    quarter, three_quarters = 7, 22       # 1 s gait cycle at 30 fps
    d1 = (fk(m, quarter)["LeftFoot"] - fk(m, quarter)["RightFoot"]) @ forward
    d2 = (fk(m, three_quarters)["LeftFoot"] - fk(m, three_quarters)["RightFoot"]) @ forward
    assert d1 > 15 and d2 < -15  # centimetres: left foot ahead, then behind


def test_wave_raises_the_right_hand_to_the_shoulder(tmp_path):
    # Shoulder height, not above the head: higher, the fingers leave the rig's side views (v5).
    path = motion_to_bvh(next(m for m in MOTIONS if m.name == "wave"), tmp_path / "wave.bvh")
    pos = fk(read_bvh(path), 10)
    assert pos["RightHand"][1] > pos["RightArm"][1] - 5.0    # BVH +Y is up (centimetres)
    assert pos["RightHand"][1] > pos["LeftHand"][1] + 30.0
    assert pos["RightHand"][0] < 0 < pos["LeftHand"][0]  # the character's right is -X
    assert pos["LeftHand"][1] < pos["LeftArm"][1]


def test_template_a_pose_lowers_arms():
    names, _, t = template_skeleton(1.7, "T")
    _, _, a = template_skeleton(1.7, "A", arm_drop_deg=40)
    i_arm, i_hand = names.index("LeftArm"), names.index("LeftHand")
    d = a[i_hand] - a[i_arm]
    assert np.degrees(np.arctan2(-d[2], d[0])) == pytest.approx(40)
    np.testing.assert_allclose(t[names.index("Head")], a[names.index("Head")])
    np.testing.assert_allclose(axis_angle([0, 1, 0], 0) @ t[i_arm], t[i_arm])


def test_character_specs_are_distinct_and_one_has_loose_clothing():
    assert len({c.name for c in CHARACTERS}) == len(CHARACTERS) >= 4
    assert len({c.height for c in CHARACTERS}) == len(CHARACTERS)
    assert any(c.clothing for c in CHARACTERS)
    assert {c.rest for c in CHARACTERS} == {"A", "T"}


def test_render_config_validates_and_round_trips():
    cfg = RenderConfig(resolution=64, engine="workbench")
    assert RenderConfig.from_json(cfg.to_json()) == cfg
    assert cfg.effective_samples == 8
    rig = cfg.rig() if callable(cfg.rig) else cfg.rig
    assert rig.num_views == 21 and rig.resolution == 64
    with pytest.raises(ValueError, match="engine"):
        RenderConfig(engine="povray")
    with pytest.raises(ValueError, match="unknown (render|run) config keys"):
        RenderConfig.from_json({"resolutoin": 64})
    with pytest.raises(ValueError, match="fps"):
        RenderConfig(fps=0)


def test_zip_pairing(tmp_path):
    from character4d.pipeline import pair_jobs

    chars = [tmp_path / f"{n}.glb" for n in ("a", "b", "c")]
    motions = [tmp_path / f"{n}.bvh" for n in ("x", "y")]
    assert len(pair_jobs(chars, motions)) == 6
    assert [j.key for j in pair_jobs(chars, motions, "zip")] == ["a__x", "b__y", "c__x"]
    with pytest.raises(ValueError, match="pairing"):
        pair_jobs(chars, motions, "random")


def test_strip_png_metadata_keeps_pixels_and_drops_text():
    import io

    from PIL import Image, PngImagePlugin

    from character4d.png_metadata import strip_png_metadata

    info = PngImagePlugin.PngInfo()
    info.add_text("RenderTime", "00:00.67")
    info.add_text("Date", "2026/11/21 05:51:15")
    img = Image.fromarray(np.arange(48, dtype=np.uint8).reshape(4, 4, 3))
    buf = io.BytesIO()
    img.save(buf, format="PNG", pnginfo=info)
    stripped = strip_png_metadata(buf.getvalue())
    back = Image.open(io.BytesIO(stripped))
    assert "RenderTime" not in back.info and "Date" not in back.info
    np.testing.assert_array_equal(np.asarray(back), np.asarray(img))
    with pytest.raises(ValueError, match="not a PNG"):
        strip_png_metadata(b"GIF89a")


def _glb(triangles: np.ndarray, path) -> None:
    """A minimal GLB: one triangle-list primitive with uint16 indices (no positions needed by the rewrite)."""
    import json
    import struct

    body = np.asarray(triangles, np.uint16).tobytes()
    doc = {"asset": {"version": "2.0"}, "buffers": [{"byteLength": len(body)}],
           "bufferViews": [{"buffer": 0, "byteOffset": 0, "byteLength": len(body)}],
           "accessors": [{"bufferView": 0, "componentType": 5123, "count": int(np.size(triangles)), "type": "SCALAR"}],
           "meshes": [{"primitives": [{"attributes": {}, "indices": 0}]}]}
    text = json.dumps(doc).encode()
    text += b" " * (-len(text) % 4)
    chunks = struct.pack("<I4s", len(text), b"JSON") + text + struct.pack("<I4s", len(body), b"BIN\0") + body
    path.write_bytes(struct.pack("<4sII", b"glTF", 2, 12 + len(chunks)) + chunks)


def test_canonical_triangle_order_makes_reordered_meshes_identical(tmp_path):
    from character4d.default_data import canonical_triangle_order

    tris = np.array([[5, 3, 9], [0, 7, 2], [4, 1, 6], [8, 2, 3]])
    shuffled = np.roll(tris[[2, 0, 3, 1]], 1, axis=1)  # other triangle order, each triangle started elsewhere
    _glb(tris, tmp_path / "a.glb")
    _glb(shuffled, tmp_path / "b.glb")
    assert (tmp_path / "a.glb").read_bytes() != (tmp_path / "b.glb").read_bytes()
    for name in ("a.glb", "b.glb"):
        canonical_triangle_order(tmp_path / name)
    assert (tmp_path / "a.glb").read_bytes() == (tmp_path / "b.glb").read_bytes()
    body = (tmp_path / "a.glb").read_bytes()[-tris.size * 2:]  # the BIN chunk ends the file: uint16 indices
    # Written out by hand: each triangle starts at its smallest index, winding kept (5 3 9 -> 3 9 5), sorted.
    np.testing.assert_array_equal(np.frombuffer(body, np.uint16).reshape(-1, 3),
                                  [[0, 7, 2], [1, 6, 4], [2, 3, 8], [3, 9, 5]])
    (tmp_path / "c.glb").write_bytes(b"not a glb at all")
    with pytest.raises(ValueError, match="not a binary glTF"):
        canonical_triangle_order(tmp_path / "c.glb")


@pytest.mark.blender
def test_two_builds_of_a_default_character_differ_at_most_in_a_few_normals(tmp_path):
    """The triangle order and everything but the vertex normals repeat byte for byte; Blender sums a vertex's
    corner normals from several threads, so a few normals still differ in their last bits between builds."""
    pytest.importorskip("bpy")
    import json
    import struct

    from character4d.default_data import build_character

    def chunks(path):
        data = path.read_bytes()
        (n,) = struct.unpack_from("<I", data, 12)
        return json.loads(data[20:20 + n]), data[20 + n + 8:]

    (doc1, bin1), (doc2, bin2) = (chunks(build_character(CHARACTERS[0], tmp_path / f"{i}.glb")) for i in (1, 2))
    assert doc1 == doc2 and len(bin1) == len(bin2)
    normals = {p["attributes"]["NORMAL"] for m in doc1["meshes"] for p in m["primitives"]}
    for i, acc in enumerate(doc1["accessors"]):
        view = doc1["bufferViews"][acc["bufferView"]]
        lo, hi = view.get("byteOffset", 0), view.get("byteOffset", 0) + view["byteLength"]
        if i in normals:
            a, b = (np.frombuffer(x[lo:hi], np.float32) for x in (bin1, bin2))
            assert np.abs(a - b).max() < 1e-4 and (a != b).sum() < 30
        else:
            assert bin1[lo:hi] == bin2[lo:hi], acc
