"""Tests of character4d.format: names, layout, encoding, validation, shards and folders."""

from __future__ import annotations

import hashlib
import io
import json
import os
import tarfile
import warnings
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from character4d.cameras import RigConfig, rig_cameras
from character4d.format import (
    Sample,
    SampleFormatError,
    ShardWriter,
    apose_name,
    build_sample,
    depth_name,
    encode_json,
    encode_npy,
    encode_png,
    export_folders,
    field_to_path,
    frame_name,
    mask_name,
    open_samples,
    parse_key,
    path_to_field,
    pose_name,
    read_folder_sample,
    sample_key,
    sanitize_id,
    write_folder_sample,
)
from tests.character4d.fake_sample import make_fake_sample


def _write_shard(path: Path, samples: list[Sample]) -> Path:
    with ShardWriter(path) as writer:
        for sample in samples:
            writer.write(sample)
    return path


# ---------------------------------------------------------------------------- keys and names


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("Alice v2", "Alice_v2"),
        ("walk.cycle", "walk_cycle"),
        ("__x__", "x"),
        ("a__b", "a_b"),
        ("Samba Dancing (1)", "Samba_Dancing_1"),
        ("run-fast", "run-fast"),
    ],
)
def test_sanitize_id(name, expected):
    assert sanitize_id(name) == expected


def test_sanitize_id_non_ascii_gets_a_hash_suffix():
    digest = hashlib.sha256("Café".encode()).hexdigest()[:8]
    assert sanitize_id("Café") == f"Caf-{digest}"
    assert sanitize_id("キャラ") == hashlib.sha256("キャラ".encode()).hexdigest()[:8]
    assert sanitize_id("キャラ1") != sanitize_id("モデル1")


def test_sanitize_id_rejects_empty():
    with pytest.raises(ValueError, match="name"):
        sanitize_id("...")


def test_key_round_trip_and_rejections():
    assert sample_key("Alice_v2", "walk") == "Alice_v2__walk"
    assert parse_key("Alice_v2__walk") == ("Alice_v2", "walk")
    for bad in ("a.b__c", "abc", "a___b", "a__b__c", "__b", ""):
        with pytest.raises(SampleFormatError, match="key"):
            parse_key(bad)
    with pytest.raises(ValueError, match="character_id"):
        sample_key("a.b", "c")
    with pytest.raises(ValueError, match="motion_id"):
        sample_key("a", "b_")


def test_field_names():
    assert apose_name(3) == "apose.v03.png"
    assert frame_name(20, 24) == "v20.f024.png"
    assert pose_name(0, 7) == "pose.v00.f007.png"
    assert depth_name(1, 2) == "depth.v01.f002.png"
    assert mask_name(1, 2) == "mask.v01.f002.png"
    with pytest.raises(ValueError, match="v"):
        frame_name(100, 0)
    with pytest.raises(ValueError, match="f"):
        pose_name(0, -1)


@pytest.mark.parametrize(
    ("field", "path"),
    [
        ("meta.json", "meta.json"),
        ("cameras.json", "cameras.json"),
        ("joints.npy", "joints.npy"),
        ("apose_joints.npy", "apose_joints.npy"),
        ("apose.v05.png", "apose/view05.png"),
        ("v03.f007.png", "motion/view03/007.png"),
        ("pose.v20.f024.png", "pose/view20/024.png"),
        ("depth.v00.f000.png", "depth/view00/000.png"),
        ("mask.v01.f100.png", "mask/view01/100.png"),
    ],
)
def test_field_path_mapping(field, path):
    assert field_to_path(field) == path
    assert path_to_field(path) == field
    assert path_to_field(Path(path)) == field


@pytest.mark.parametrize("name", ["v3.f7.png", "image.png", "pose.v00.png", "motion/view00/000.png"])
def test_field_to_path_rejects_unknown(name):
    with pytest.raises(SampleFormatError, match="not a sample field"):
        field_to_path(name)


@pytest.mark.parametrize("path", ["motion/view00.png", "apose/view0.png", "extra/file.txt", "sub/meta.json"])
def test_path_to_field_rejects_unknown(path):
    with pytest.raises(SampleFormatError, match="relpath"):
        path_to_field(path)


# ---------------------------------------------------------------------------- encoders


@pytest.mark.parametrize(
    ("shape", "dtype", "mode"),
    [((5, 6), np.uint8, "L"), ((5, 6, 3), np.uint8, "RGB"), ((5, 6, 4), np.uint8, "RGBA"), ((5, 6), np.uint16, "I;16")],
)
def test_encode_png_round_trips_through_pil(shape, dtype, mode):
    rng = np.random.default_rng(0)
    array = rng.integers(0, np.iinfo(dtype).max, shape, dtype=dtype)
    with Image.open(io.BytesIO(encode_png(array))) as image:
        assert image.format == "PNG" and image.mode == mode
        np.testing.assert_array_equal(np.array(image), array)


@pytest.mark.parametrize(("shape", "dtype"), [((5, 6, 2), np.uint8), ((5, 6), np.float32), ((5, 6, 3), np.uint16)])
def test_encode_png_rejects_other_arrays(shape, dtype):
    with pytest.raises(ValueError, match="array"):
        encode_png(np.zeros(shape, dtype))


def test_encode_npy_and_json():
    array = np.arange(6, dtype=np.float32).reshape(2, 3)
    np.testing.assert_array_equal(np.load(io.BytesIO(encode_npy(array))), array)
    assert json.loads(encode_json({"b": np.float32(1.5), "a": np.arange(2)})) == {"a": [0, 1], "b": 1.5}
    assert encode_json({"b": 1, "a": 2}) == encode_json({"a": 2, "b": 1})
    with pytest.raises(ValueError):
        encode_json({"x": float("nan")})


# ---------------------------------------------------------------------------- Sample


def _arrays(views=2, frames=3, size=8, joints=4, seed=1):
    rng = np.random.default_rng(seed)
    grid = (views, frames, size, size)
    return {
        "apose_images": rng.integers(0, 256, (views, size, size, 4), dtype=np.uint8),
        "frames": rng.integers(0, 256, (views, frames, size, size, 4), dtype=np.uint8),
        "poses": rng.integers(0, 256, (views, frames, size, size, 3), dtype=np.uint8),
        "depths": np.where(rng.random(grid) < 0.5, np.nan, rng.uniform(1, 6, grid)),
        "masks": rng.random((views, frames, size, size)) < 0.5,
        "joints": rng.normal(size=(frames, joints, 3)),
        "apose_joints": rng.normal(size=(joints, 3)),
    }


def _meta(frames=3, joints=4):
    return {"fps": 24, "joint_names": [f"j{i}" for i in range(joints)], "source_times": [f / 24 for f in range(frames)]}


def _build(key="hero__walk", **overrides):
    arrays = _arrays()
    arrays.update(overrides)
    cameras = rig_cameras(RigConfig(num_views=2, resolution=8)).to_json()
    return build_sample(key, _meta(), cameras, **arrays), arrays


def test_sample_accessors_return_the_encoded_arrays():
    sample, arrays = _build()
    assert (sample.num_views, sample.num_frames, sample.resolution) == (2, 3, 8)
    assert sample.meta["character_id"] == "hero" and sample.meta["motion_id"] == "walk"
    assert sample.joint_names == ["j0", "j1", "j2", "j3"]
    assert sample.joints.dtype == np.float32
    np.testing.assert_array_equal(sample.joints, arrays["joints"].astype(np.float32))
    np.testing.assert_array_equal(sample.apose_joints, arrays["apose_joints"].astype(np.float32))
    for v in range(2):
        np.testing.assert_array_equal(sample.apose(v), arrays["apose_images"][v])
        for f in range(3):
            np.testing.assert_array_equal(sample.frame(v, f), arrays["frames"][v, f])
            np.testing.assert_array_equal(sample.pose(v, f), arrays["poses"][v, f])
            np.testing.assert_array_equal(sample.mask(v, f), arrays["masks"][v, f])
            depth, expected = sample.depth(v, f), arrays["depths"][v, f]
            assert depth.dtype == np.float32
            np.testing.assert_array_equal(np.isnan(depth), np.isnan(expected))
            np.testing.assert_allclose(depth, expected, atol=0.0005 + 1e-6)  # stored in whole millimetres
    assert sample.has_depth and sample.has_mask
    np.testing.assert_allclose(sample.cameras.viewmats, rig_cameras(RigConfig(num_views=2, resolution=8)).viewmats)


def test_sample_from_nested_lists_equals_stacked_arrays():
    stacked, arrays = _build()
    nested = {name: [list(view) if value.ndim > 4 or name in ("depths", "masks") else view for view in value]
              for name, value in arrays.items() if name not in ("joints", "apose_joints")}
    listed, _ = _build(**nested)
    assert dict(listed.files) == dict(stacked.files)


def test_sample_without_optional_maps():
    sample, _ = _build(depths=None, masks=None)
    assert not sample.has_depth and not sample.has_mask
    sample.validate()


def test_build_sample_rejects_bad_inputs():
    poses = [[np.zeros((8, 8, 3), np.uint8)] * 3 for _ in range(2)]
    poses[1][2] = np.zeros((8, 8, 4), np.uint8)
    with pytest.raises(ValueError, match=r"poses\[1\]\[2\]"):
        _build(poses=poses)
    with pytest.raises(ValueError, match="depths"):
        _build(depths=np.full((2, 3, 8, 8), 70.0))
    with pytest.raises(ValueError, match="num_frames"):
        arrays = _arrays()
        cameras = rig_cameras(RigConfig(num_views=2, resolution=8)).to_json()
        build_sample("a__b", {**_meta(), "num_frames": 5}, cameras, **arrays)


def test_key_with_a_dot_is_rejected():
    with pytest.raises(SampleFormatError, match="no dots"):
        Sample("hero.v2__walk", {})
    with pytest.raises(SampleFormatError, match="key"):
        make_fake_sample(key="hero.v2__walk")


def test_validate_lists_every_problem():
    good = make_fake_sample()
    files = dict(good.files)
    del files[pose_name(1, 2)]
    del files[mask_name(0, 0)]
    files["joints.npy"] = encode_npy(np.zeros((2, 7, 3), np.float32))
    files[frame_name(0, 1)] = encode_png(np.zeros((16, 16, 3), np.uint8))
    files["v05.f000.png"] = files[frame_name(0, 0)]
    files["notes.txt"] = b"hello"
    with pytest.raises(SampleFormatError) as info:
        Sample("c0__m0", files).validate()
    problems = "\n".join(info.value.problems)
    assert len(info.value.problems) == 6
    culprits = ("pose.v01.f002.png", "mask.v00.f000.png", "joints.npy", "v00.f001.png", "v05.f000.png", "notes.txt")
    for expected in culprits:
        assert expected in problems


def test_validate_checks_meta_and_key():
    good = make_fake_sample()
    meta = dict(good.meta)
    meta["character_id"] = "other"
    del meta["fps"]
    files = {**good.files, "meta.json": encode_json(meta)}
    with pytest.raises(SampleFormatError, match="fps"):
        Sample("c0__m0", files).validate()
    meta["fps"] = 30
    with pytest.raises(SampleFormatError, match="character_id"):
        Sample("c0__m0", {**good.files, "meta.json": encode_json(meta)}).validate()


def test_sample_is_immutable_comparable_and_picklable():
    import pickle

    sample = make_fake_sample()
    with pytest.raises(TypeError):
        sample.files["meta.json"] = b"{}"
    with pytest.raises(ValueError, match="read-only"):
        sample.joints[0, 0, 0] = 1.0
    copy = pickle.loads(pickle.dumps(sample))
    assert copy == sample and copy is not sample and copy.num_frames == 3


def test_missing_field_accessor_names_the_field():
    sample = Sample("a__b", {})
    with pytest.raises(SampleFormatError, match="meta.json"):
        sample.num_views
    with pytest.raises(SampleFormatError, match="v00.f000.png"):
        sample.frame(0, 0)


def test_fake_sample_full_rig_is_valid_and_deterministic():
    sample = make_fake_sample(views=21, frames=25, size=8)
    assert (sample.num_views, sample.num_frames) == (21, 25)
    assert dict(make_fake_sample(seed=3).files) == dict(make_fake_sample(seed=3).files)
    assert dict(make_fake_sample(seed=3).files) != dict(make_fake_sample(seed=4).files)


# ---------------------------------------------------------------------------- shards and folders


def test_shard_folder_round_trip_keeps_every_byte(tmp_path):
    samples = [make_fake_sample("a__m", seed=1), make_fake_sample("b__m", seed=2)]
    shard = _write_shard(tmp_path / "s-0000.tar", samples)
    assert not (tmp_path / "s-0000.tar.tmp").exists()
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # reading must be quiet (no shardshuffle warnings)
        from_shard = list(open_samples(shard))
    assert [s.key for s in from_shard] == ["a__m", "b__m"]
    for original, read in zip(samples, from_shard):
        assert dict(read.files) == dict(original.files)
    exported = export_folders(shard, tmp_path / "folders")
    assert exported == [tmp_path / "folders" / "a__m", tmp_path / "folders" / "b__m"]
    assert (tmp_path / "folders" / "a__m" / "motion" / "view02" / "001.png").is_file()
    from_folders = list(open_samples(tmp_path / "folders"))
    assert [dict(s.files) for s in from_folders] == [dict(s.files) for s in samples]
    single = list(open_samples(tmp_path / "folders" / "b__m"))
    assert [s.key for s in single] == ["b__m"]


def test_shard_is_a_plain_webdataset(tmp_path):
    import webdataset as wds

    sample = make_fake_sample("a__m", seed=1)
    shard = _write_shard(tmp_path / "s.tar", [sample])
    decoded = list(wds.WebDataset(str(shard), shardshuffle=False).decode("rgb8"))
    assert len(decoded) == 1 and decoded[0]["__key__"] == "a__m"
    np.testing.assert_array_equal(decoded[0][frame_name(1, 2)], sample.frame(1, 2)[..., :3])
    np.testing.assert_array_equal(decoded[0]["joints.npy"], sample.joints)
    assert decoded[0]["meta.json"]["num_views"] == 3
    pil = next(iter(wds.WebDataset(str(shard), shardshuffle=False).decode("pil")))
    assert pil[apose_name(0)].size == (16, 16)


def test_shard_writer_is_atomic_and_ordered(tmp_path):
    path = tmp_path / "x.tar"
    with pytest.raises(RuntimeError, match="boom"):
        with ShardWriter(path) as writer:
            writer.write(make_fake_sample("a__m"))
            raise RuntimeError("boom")
    assert list(tmp_path.iterdir()) == []
    with pytest.raises(ValueError, match="increasing"):
        with ShardWriter(path) as writer:
            writer.write(make_fake_sample("b__m"))
            writer.write(make_fake_sample("a__m"))
    assert list(tmp_path.iterdir()) == []
    _write_shard(path, [make_fake_sample("a__m")])
    with pytest.raises(FileExistsError):
        ShardWriter(path).__enter__()
    with pytest.raises(ValueError, match="tar"):
        ShardWriter(tmp_path / "x.tgz")


def test_shards_are_reproducible(tmp_path):
    samples = [make_fake_sample("a__m")]
    first = _write_shard(tmp_path / "1.tar", samples).read_bytes()
    assert _write_shard(tmp_path / "2.tar", samples).read_bytes() == first


def test_open_samples_on_a_shard_directory(tmp_path):
    _write_shard(tmp_path / "s-1.tar", [make_fake_sample("c__m")])
    _write_shard(tmp_path / "s-0.tar", [make_fake_sample("a__m"), make_fake_sample("b__m")])
    (tmp_path / "s-2.tar.tmp").write_bytes(b"partial")
    (tmp_path / ".hidden.tar").write_bytes(b"partial")
    assert [s.key for s in open_samples(tmp_path)] == ["a__m", "b__m", "c__m"]
    assert [s.key for s in open_samples(tmp_path, keys=["c__m", "a__m"])] == ["a__m", "c__m"]
    with pytest.raises(SampleFormatError, match="z__m"):
        list(open_samples(tmp_path, keys=["a__m", "z__m"]))
    # A run_jobs output directory keeps its shards in shards/.
    parent = tmp_path.parent / f"{tmp_path.name}-out"
    (parent / "shards").mkdir(parents=True)
    _write_shard(parent / "shards" / "x.tar", [make_fake_sample("d__m")])
    assert [s.key for s in open_samples(parent)] == ["d__m"]


def test_duplicate_keys_across_shards_are_an_error(tmp_path):
    _write_shard(tmp_path / "s-0.tar", [make_fake_sample("a__m")])
    _write_shard(tmp_path / "s-1.tar", [make_fake_sample("a__m")])
    with pytest.raises(SampleFormatError, match="already read"):
        list(open_samples(tmp_path))


def test_corrupt_tar_names_the_file(tmp_path):
    garbage = tmp_path / "garbage.tar"
    garbage.write_bytes(b"this is not a tar file" * 100)
    with pytest.raises(SampleFormatError, match="garbage.tar"):
        list(open_samples(garbage))
    good = _write_shard(tmp_path / "good.tar", [make_fake_sample("a__m")])
    truncated = tmp_path / "truncated.tar"
    truncated.write_bytes(good.read_bytes()[: good.stat().st_size // 2 + 100])
    with pytest.raises(SampleFormatError, match="truncated.tar"):
        list(open_samples(truncated))


def test_unsorted_foreign_tar_is_rejected(tmp_path):
    path = tmp_path / "foreign.tar"
    with tarfile.open(path, "w") as tar:
        for sample in (make_fake_sample("b__m"), make_fake_sample("a__m")):
            for name, data in sample.files.items():
                info = tarfile.TarInfo(f"{sample.key}.{name}")
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
    with pytest.raises(SampleFormatError, match="sorted"):
        list(open_samples(path))


def test_write_folder_sample_is_atomic_and_never_replaces(tmp_path):
    sample = make_fake_sample("a__m")
    leftover = tmp_path / f".a__m.{os.getpid()}.tmp"  # temporary names are unique per process
    (leftover / "motion").mkdir(parents=True)
    (leftover / "motion" / "junk.png").write_bytes(b"x")
    folder = write_folder_sample(sample, tmp_path)
    assert folder == tmp_path / "a__m" and not leftover.exists()
    assert dict(read_folder_sample(folder).files) == dict(sample.files)
    with pytest.raises(FileExistsError):
        write_folder_sample(sample, tmp_path)


def test_folder_with_a_stray_file_is_rejected(tmp_path):
    folder = write_folder_sample(make_fake_sample("a__m"), tmp_path)
    (folder / ".DS_Store").write_bytes(b"ignored")
    read_folder_sample(folder)
    (folder / "motion" / "notes.txt").write_bytes(b"x")
    with pytest.raises(SampleFormatError, match="notes.txt"):
        read_folder_sample(folder)


def test_open_samples_errors(tmp_path):
    with pytest.raises(FileNotFoundError):
        open_samples(tmp_path / "missing")
    with pytest.raises(SampleFormatError, match="no samples"):
        open_samples(tmp_path)
    _write_shard(tmp_path / "s.tar", [make_fake_sample("a__m")])
    write_folder_sample(make_fake_sample("b__m"), tmp_path)
    with pytest.raises(SampleFormatError, match="both"):
        open_samples(tmp_path)
