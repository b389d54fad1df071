"""Prediction folder validation: every problem listed at once, before any metric; and the GT index."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from characterbench.cli import main
from characterbench.groundtruth import GroundTruthError, index_ground_truth
from characterbench.predictions import InvalidPredictionsError, cell_path, read_prediction, validate_predictions
from characterbench.protocol import PROTOCOL_V1
from tests.characterbench.conftest import KEYS, SIZE


@pytest.fixture(scope="module")
def gt_index(gt_shard):
    return index_ground_truth(gt_shard, PROTOCOL_V1)


def test_gt_index_and_manifest_hash_do_not_depend_on_storage(gt_shard, gt_folder, gt_index):
    assert gt_index.keys == KEYS
    assert gt_index.samples[0].frame_size == (SIZE, SIZE) and gt_index.samples[0].num_views == 21
    assert index_ground_truth(gt_folder, PROTOCOL_V1).manifest_hash == gt_index.manifest_hash
    assert gt_index.manifest_hash.startswith("sha256:") and len(gt_index.manifest_hash) == 71


def test_manifest_hash_changes_with_one_frame(gt_folder, gt_index, tmp_path):
    copy = Path(shutil.copytree(gt_folder, tmp_path / "gt"))
    frame = copy / KEYS[1] / "motion" / "view07" / "012.png"
    rgba = np.array(Image.open(frame))
    rgba[0, 0, 0] ^= 1
    Image.fromarray(rgba, "RGBA").save(frame)
    assert index_ground_truth(copy, PROTOCOL_V1).manifest_hash != gt_index.manifest_hash


def test_manifest_hash_ignores_pose_maps(gt_folder, gt_index, tmp_path):
    copy = Path(shutil.copytree(gt_folder, tmp_path / "gt"))
    pose = copy / KEYS[0] / "pose" / "view00" / "000.png"
    Image.fromarray(np.zeros((SIZE, SIZE, 3), np.uint8), "RGB").save(pose)
    assert index_ground_truth(copy, PROTOCOL_V1).manifest_hash == gt_index.manifest_hash


def test_ground_truth_must_fit_the_rig(tmp_path):
    from character4d.format import write_folder_sample
    from tests.character4d.fake_sample import make_fake_sample

    write_folder_sample(make_fake_sample("carl__run", views=5, frames=25, size=16), tmp_path)
    with pytest.raises(GroundTruthError, match="expected 21 views x 25 frames, got 5 x 25"):
        index_ground_truth(tmp_path, PROTOCOL_V1)


def test_webp_coded_ground_truth_is_refused_by_name(tmp_path):
    from character4d.format import ShardWriter, transcode
    from tests.character4d.fake_sample import make_fake_sample

    with ShardWriter(tmp_path / "gt-00000.tar") as writer:
        writer.write(transcode(make_fake_sample("dora__hop", views=21, frames=25, size=8), "webp"))
    with pytest.raises(GroundTruthError, match=r"dora__hop: \d+ images are WebP-coded .* lossless PNG"):
        index_ground_truth(tmp_path / "gt-00000.tar", PROTOCOL_V1)


def test_valid_matrix_folder(baselines, gt_index):
    index = validate_predictions(baselines["ground-truth"], gt_index, PROTOCOL_V1, "multiview")
    assert set(index.files) == set(KEYS) and set(index.layouts.values()) == {"matrix"}
    assert sorted(index.files[KEYS[0]]) == sorted(PROTOCOL_V1.cells())
    apose = validate_predictions(baselines["ground-truth"], gt_index, PROTOCOL_V1, "apose")
    assert sorted(apose.files[KEYS[1]]) == [(v,) for v in range(21)]


def test_full_grid_folder_is_accepted_and_the_protocol_picks(gt_shard, gt_index, tmp_path):
    from character4d.format import open_samples

    for sample in open_samples(gt_shard):
        for v in range(21):
            for f in range(25):
                path = cell_path(tmp_path, sample.key, (v, f))
                path.parent.mkdir(parents=True, exist_ok=True)
                Image.fromarray(sample.frame(v, f)).save(path)
    index = validate_predictions(tmp_path, gt_index, PROTOCOL_V1)
    assert set(index.layouts.values()) == {"full"}
    assert sorted(index.files[KEYS[0]]) == sorted(PROTOCOL_V1.cells())
    # A full grid with one file missing: that file is named.
    (tmp_path / KEYS[0] / "view03" / "frame001.png").unlink()
    with pytest.raises(InvalidPredictionsError) as err:
        validate_predictions(tmp_path, gt_index, PROTOCOL_V1)
    assert [(p.kind, p.path) for p in err.value.problems] == [("missing", f"{KEYS[0]}/view03/frame001.png")]


def _break(root: Path) -> dict[str, str]:
    """Damage a copy of a valid folder in every way at once; returns {relative path: expected kind}."""
    a, b = KEYS
    expected = {}
    (root / a / "view05" / "frame006.png").unlink()
    expected[f"{a}/view05/frame006.png"] = "missing"
    (root / a / "view02" / "notes.txt").write_text("hi")
    expected[f"{a}/view02/notes.txt"] = "extra"
    (root / a / "view25").mkdir()
    (root / a / "view25" / "frame000.png").write_bytes(b"")
    expected[f"{a}/view25/frame000.png"] = "extra"  # view outside the 21-view rig
    (root / "zoe__dance").mkdir()
    expected["zoe__dance"] = "extra"  # no such ground-truth sample
    (root / "results.json").write_text("{}")
    expected["results.json"] = "extra"
    data = (root / b / "view00" / "frame000.png").read_bytes()
    (root / b / "view00" / "frame000.png").write_bytes(data[: len(data) // 2])
    expected[f"{b}/view00/frame000.png"] = "unreadable"
    Image.new("RGB", (SIZE + 1, SIZE)).save(root / b / "view02" / "frame003.png")
    expected[f"{b}/view02/frame003.png"] = "wrong_size"
    Image.new("L", (SIZE, SIZE)).save(root / b / "view07" / "frame009.png")
    expected[f"{b}/view07/frame009.png"] = "bad_mode"
    (root / b / "view09" / "frame012.png").unlink()
    bad = np.full((SIZE, SIZE, 3), 0.5, np.float32)
    bad[3, 4, 1] = np.nan
    np.save(root / b / "view09" / "frame012.npy", bad)
    expected[f"{b}/view09/frame012.npy"] = "nan"
    (root / b / "view12" / "frame015.png").unlink()
    np.save(root / b / "view12" / "frame015.npy", np.full((SIZE, SIZE, 3), 1.5, np.float32))
    expected[f"{b}/view12/frame015.npy"] = "out_of_range"
    np.save(root / b / "view14" / "frame018.npy", np.zeros((SIZE, SIZE, 3), np.uint8))
    expected[f"{b}/view14/frame018.png"] = "duplicate"  # (same cell as frame018.npy)
    shutil.rmtree(root / b / "apose")  # the other task's folder: not a multiview problem
    return expected


def test_every_problem_is_listed_at_once(gt_pred, gt_index):
    expected = _break(gt_pred)
    with pytest.raises(InvalidPredictionsError) as err:
        validate_predictions(gt_pred, gt_index, PROTOCOL_V1, "multiview")
    found = {p.path: p.kind for p in err.value.problems}
    assert found == expected
    message = str(err.value)
    assert f"{len(expected)} problem(s)" in message and "expected layout" in message
    assert f"expected {SIZE}x{SIZE} (HxW, the ground truth's size), got {SIZE}x{SIZE + 1}" in message


def test_missing_sample_and_apose_problems(gt_pred, gt_index):
    shutil.rmtree(gt_pred / KEYS[0])
    (gt_pred / KEYS[1] / "apose" / "view20.png").unlink()
    with pytest.raises(InvalidPredictionsError) as err:
        validate_predictions(gt_pred, gt_index, PROTOCOL_V1, "apose")
    assert [(p.kind, p.path) for p in err.value.problems] == [
        ("missing", KEYS[0]),
        ("missing", f"{KEYS[1]}/apose/view20.png"),
    ]


def test_validate_cli_exits_non_zero_and_prints_every_problem(gt_pred, gt_shard, capsys):
    expected = _break(gt_pred)
    assert main(["validate", "--pred", str(gt_pred), "--gt", str(gt_shard), "--quiet"]) == 1
    err = capsys.readouterr().err
    for path, kind in expected.items():
        assert any(path in line and kind in line for line in err.splitlines()), (path, kind)


def test_validate_cli_ok(baselines, gt_shard, capsys):
    assert main(["validate", "--pred", str(baselines["front-view"]), "--gt", str(gt_shard), "--task", "apose", "--quiet"]) == 0
    assert "ok:" in capsys.readouterr().out


def test_read_prediction_formats(tmp_path):
    rgb = np.random.default_rng(0).integers(0, 256, (4, 4, 3), dtype=np.uint8)
    Image.fromarray(rgb).save(tmp_path / "a.png")
    assert np.array_equal(read_prediction(tmp_path / "a.png"), rgb)
    np.save(tmp_path / "b.npy", rgb / 255.0)
    assert read_prediction(tmp_path / "b.npy").dtype == np.float32
    Image.fromarray(rgb[..., 0]).save(tmp_path / "c.png")
    with pytest.raises(ValueError, match="expected PNG mode"):
        read_prediction(tmp_path / "c.png")


def _png_with_bad_pixel_data(path: Path, size: int) -> None:
    """A PNG whose chunks and CRCs are valid but whose IDAT is not zlib data: verify() passes it."""
    import struct
    import zlib

    def chunk(tag: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data))

    ihdr = struct.pack(">IIBBBBB", size, size, 8, 2, 0, 0, 0)  # RGB, 8 bits
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", b"not zlib data" * 8) + chunk(b"IEND", b""))


def test_undecodable_pixels_and_several_problems_per_file(gt_pred, gt_index, capsys):
    a, b = KEYS
    cells = PROTOCOL_V1.cells()
    bad, two, three = cell_path(gt_pred, a, cells[3]), cell_path(gt_pred, b, cells[10]), cell_path(gt_pred, b, cells[20])
    _png_with_bad_pixel_data(bad, SIZE)
    with Image.open(bad) as img:
        img.verify()  # the header-level check of old let it through
    with pytest.raises(OSError, match=f"{bad.name}: cannot decode"):
        read_prediction(bad)
    Image.new("L", (SIZE + 2, SIZE)).save(two)
    wrong = np.full((SIZE + 1, SIZE, 3), 2.0, np.float32)
    wrong[0, 0, 0] = np.inf
    three.unlink()
    np.save(three.with_suffix(".npy"), wrong)
    with pytest.raises(InvalidPredictionsError) as err:
        validate_predictions(gt_pred, gt_index, PROTOCOL_V1, "multiview")
    rel = [str(p.relative_to(gt_pred)) for p in (bad, two, three.with_suffix(".npy"))]
    found = sorted((p.path, p.kind) for p in err.value.problems)
    assert found == sorted([
        (rel[0], "unreadable"), (rel[1], "bad_mode"), (rel[1], "wrong_size"),
        (rel[2], "nan"), (rel[2], "out_of_range"), (rel[2], "wrong_size"),
    ])


def test_validation_keeps_decoded_pngs_within_its_budget(baselines, gt_index):
    """What validation decoded is what PIL decodes from the file; the reader hands each out once and
    falls back to decoding for the rest; the budget bounds what is kept."""
    root = baselines["ground-truth"]
    index = validate_predictions(root, gt_index, PROTOCOL_V1, "multiview", workers=2, keep_bytes=1 << 30)
    paths = [p for cells in index.files.values() for p in cells.values()]
    assert len(paths) == 2 * 81 and set(index.decoded) == set(paths)
    for path in paths[:5]:
        with Image.open(path) as img:
            assert np.array_equal(index.decoded[path], np.asarray(img))
    fallback = []
    read = index.reader(lambda p: fallback.append(p) or "decoded again")
    first = paths[0]
    kept = index.decoded[first]
    assert read(first) is kept and first not in index.decoded  # handed out once, then forgotten
    assert read(first) == "decoded again" and fallback == [first]
    one = index.decoded[paths[1]].nbytes
    small = validate_predictions(root, gt_index, PROTOCOL_V1, "multiview", workers=2, keep_bytes=one)
    assert len(small.decoded) == 1
    assert validate_predictions(root, gt_index, PROTOCOL_V1, "multiview").decoded == {}  # default: keep none
