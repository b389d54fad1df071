"""Lossless training-data codecs (PNG levels, WebP per image, animated WebP per view) and the run config / CLI."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from character4d.cli import build_parser
from character4d.config import RenderConfig, RunConfig, field_docs, parse_start
from character4d.format import (
    Sample,
    SampleFormatError,
    ShardWriter,
    encode_webp_stack,
    field_to_path,
    open_samples,
    path_to_field,
    read_folder_sample,
    transcode,
    write_folder_sample,
)
from tests.character4d.fake_sample import make_fake_sample


def _visible(rgba: np.ndarray) -> np.ndarray:
    # What a reader can see: colour under fully transparent pixels carries nothing.
    return np.where(rgba[..., 3:] == 0, 0, rgba)


@pytest.mark.parametrize("codec", ["png", "webp", "webp-view"])
def test_codecs_round_trip_through_shards_and_folders(codec, tmp_path):
    original = make_fake_sample("c0__m0", views=2, frames=3, size=16)
    # Noise under alpha 0 too, so the test sees what happens to invisible colour.
    files = dict(original.files)
    coded = transcode(Sample.from_files(original.key, files), codec, png_level=9)
    with ShardWriter(tmp_path / "s.tar") as writer:
        writer.write(coded)
    (read,) = open_samples(tmp_path / "s.tar")
    write_folder_sample(read, tmp_path / "folders")
    back = read_folder_sample(tmp_path / "folders" / original.key)
    back.validate(decode=True)
    for v in range(2):
        assert np.array_equal(_visible(back.apose(v)), _visible(original.apose(v)))
        for f in range(3):
            assert np.array_equal(_visible(back.frame(v, f)), _visible(original.frame(v, f)))
            assert np.array_equal(back.pose(v, f), original.pose(v, f))
            assert np.array_equal(back.mask(v, f), original.mask(v, f))
            assert np.allclose(back.depth(v, f), original.depth(v, f), equal_nan=True)
    names = set(coded.files)
    expected = {"png": "v01.f002.png", "webp": "v01.f002.webp", "webp-view": "v01.webp"}[codec]
    assert expected in names and "depth.v01.f002.png" in names
    if codec == "webp-view":
        assert "pose.v01.webp" in names and not any(n.startswith("v01.f") for n in names)


def test_png_level_changes_size_not_pixels():
    sample = make_fake_sample("c0__m0", views=1, frames=2, size=64, solid=True)
    small, fast = transcode(sample, "png", png_level=9), transcode(sample, "png", png_level=0)
    assert sum(map(len, small.files.values())) < sum(map(len, fast.files.values()))
    assert np.array_equal(small.frame(0, 1), fast.frame(0, 1))
    with Image.open(io.BytesIO(fast.files["v00.f001.png"])) as image:
        assert image.format == "PNG"


def test_per_view_stack_paths_and_validation():
    assert field_to_path("v03.webp") == "motion/view03.webp" and path_to_field("motion/view03.webp") == "v03.webp"
    assert field_to_path("pose.v03.webp") == "pose/view03.webp"
    assert path_to_field("apose/view01.webp") == "apose.v01.webp"
    sample = transcode(make_fake_sample("c0__m0", views=1, frames=3, size=8), "webp-view")
    files = dict(sample.files)
    # A stack with the wrong number of frames, and a frame stored twice.
    files["v00.webp"] = encode_webp_stack([sample.frame(0, 0), sample.frame(0, 1)])
    files["pose.v00.f001.png"] = make_fake_sample("c0__m0", views=1, frames=3, size=8).files["pose.v00.f001.png"]
    with pytest.raises(SampleFormatError) as info:
        Sample.from_files(sample.key, files)
    text = str(info.value)
    assert "v00.webp: expected 3 frame(s), got 2" in text and "stored twice" in text


def test_full_decode_finds_a_truncated_png():
    sample = make_fake_sample("c0__m0", views=1, frames=1, size=32)
    files = dict(sample.files)
    files["v00.f000.png"] = files["v00.f000.png"][:-40]
    damaged = Sample.from_files(sample.key, files, validate=False)
    damaged.validate()  # the header is intact
    with pytest.raises(SampleFormatError, match="v00.f000.png"):
        damaged.validate(decode=True)


def test_run_config_nests_the_rig_and_round_trips():
    cfg = RenderConfig(resolution=64, num_views=3, cam_height=1.0, start="AUTO", codec="webp")
    assert isinstance(cfg, RunConfig) and cfg.rig.resolution == 64 and cfg.rig.target == (0.0, 0.0, 1.0)
    assert cfg.resolution == 64 and cfg.num_views == 3 and cfg.start == "auto"
    assert RunConfig.from_json(cfg.to_json()) == cfg
    assert cfg.replace(start=1.5).start == 1.5
    assert RunConfig().rig == __import__("character4d.cameras", fromlist=["RigConfig"]).RigConfig()
    with pytest.raises(ValueError, match="unknown run config keys"):
        RunConfig.from_json({"resolutoin": 64})
    for bad in ("soon", -1, float("nan")):
        with pytest.raises(ValueError, match="start"):
            parse_start(bad)
    with pytest.raises(ValueError, match="png_level"):
        RunConfig(png_level=10)


def test_help_shows_each_fields_full_doc():
    docs = field_docs(RunConfig)
    assert "in_place" in docs["root_motion"] and docs["png_level"].endswith("for the sizes).")
    render = next(a for a in build_parser()._subparsers._actions if a.dest == "command").choices["render"]
    text = " ".join(render.format_help().split())
    assert '"in_place" (no horizontal hips motion: the character stays on the Z axis)' in text
    assert "--start auto|SECONDS" in text and "(default: auto)" in text
    assert "Z of the orbit centre, metres" in text  # --cam-height, from RigConfig's own docs
    args = build_parser().parse_args(["render", "--out", "o", "--start", "2.5", "--no-face-front", "--views", "3"])
    assert (args.start, args.face_front, args.num_views) == (2.5, False, 3)


def test_a_still_view_keeps_its_frame_count():
    # libwebp merges identical consecutive frames; the reader expands them again from their durations.
    sample = make_fake_sample("c0__m0", views=1, frames=4, size=8, solid=True, depth=False, mask=False)
    files = dict(sample.files)
    still = [sample.frame(0, 0)] * 4
    files.update({f"v00.f00{f}.png": files["v00.f000.png"] for f in range(4)})
    coded = transcode(Sample.from_files(sample.key, files), "webp-view")
    assert [np.array_equal(coded.frame(0, f), still[f]) for f in range(4)] == [True] * 4


def test_sample_meta_owns_meta_json():
    from character4d.format import SampleMeta, build_sample

    sample = make_fake_sample("c0__m0", views=1, frames=2, size=8)
    meta = sample.sample_meta
    assert (meta.key, meta.num_frames, meta.source_times) == ("c0__m0", 2, (0.0, 1 / 30))
    assert meta.sources["character"]["sha256"] == "0" * 64 and meta.extra == {}
    assert SampleMeta.from_json(meta.to_json()) == meta and meta.to_json() == sample.meta
    # Keys of a newer writer survive a round trip; the renderer's keys are typed fields.
    rendered = {**sample.meta, "start": {"requested": "auto", "chosen_s": 0.4, "lead_in_s": 0.4},
                "framing": {"clipped": 0}, "future_key": [1, 2]}
    typed = SampleMeta.from_json(rendered)
    assert typed.start["chosen_s"] == 0.4 and typed.extra == {"future_key": [1, 2]}
    assert typed.to_json() == rendered
    # A SampleMeta builds a sample directly.
    rebuilt = build_sample("c0__m0", typed, sample._json("cameras.json"), sample.joints, sample.apose_joints,
                           [sample.apose(0)], [[sample.frame(0, 0), sample.frame(0, 1)]],
                           [[sample.pose(0, 0), sample.pose(0, 1)]])
    assert rebuilt.meta == rendered
    with pytest.raises(SampleFormatError) as info:
        SampleMeta.from_json({**sample.meta, "fps": 0, "source_times": [0.0]}, key="c1__m0")
    assert len(info.value.problems) == 3 and "c1__m0" in str(info.value)
    with pytest.raises(SampleFormatError, match="lacks required keys: joint_names"):
        SampleMeta.from_json({k: v for k, v in sample.meta.items() if k != "joint_names"})


def test_run_plan_checks_its_fields():
    from character4d.config import RunPlan

    assert RunPlan(shard=[1, 4]).shard == (1, 4)
    for bad, match in (({"shard": (4, 4)}, "shard"), ({"fmt": "zip"}, "fmt"), ({"pairing": "all"}, "pairing"),
                       ({"max_attempts": 0}, "max_attempts"), ({"samples_per_tar": True}, "samples_per_tar")):
        with pytest.raises(ValueError, match=match):
            RunPlan(**bad)
    render = next(a for a in build_parser()._subparsers._actions if a.dest == "command").choices["render"]
    assert "every N-th job of the sorted job list" in " ".join(render.format_help().split())
