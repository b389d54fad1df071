"""Export to and import from the released CharacterShot layouts (DESIGN.md appendix B), on folders the tests write."""

from __future__ import annotations

import os
import re
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from character4d.cameras import RigConfig, rig_cameras
from character4d.cli import main
from character4d.format import ShardWriter, open_samples
from tests.character4d.fake_sample import make_fake_sample

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".JPG", ".JPEG", ".PNG")


@pytest.fixture
def shard(tmp_path) -> Path:
    path = tmp_path / "src.tar"
    with ShardWriter(path) as writer:
        for key in ("ann__walk", "bob__jump"):
            writer.write(make_fake_sample(key, views=3, frames=2, size=16, seed=len(key)))
    return path


def _png(path: Path) -> np.ndarray:
    with Image.open(path) as image:
        assert image.mode == "RGB"
        return np.asarray(image)


def _released_finetune_reads(root: Path, seq: str) -> tuple[list[list[str]], list[str]]:
    """The file selection of the released finetune code (datasets/i2v_dataset.py, prepare_multiview_cache.py):
    view folders sorted as strings with view0 first, frames sorted by int(stem), the pose path derived
    from the view-0 frame path by dropping 'viewN/' and replacing binded_motion with binded_pose."""
    video_path = os.path.join(root, "render_results/binded_motion/", seq)
    video_dirs = sorted(os.path.join(video_path, f) for f in os.listdir(video_path) if "view" in f)
    assert "view0" in video_dirs[0]
    frames = [sorted((os.path.join(d, f) for f in os.listdir(d) if os.path.splitext(f)[1] in IMAGE_EXTENSIONS),
                     key=lambda p: int(Path(p).stem)) for d in video_dirs]
    poses = [re.sub(r"view\d+/", "", p.replace("binded_motion", "binded_pose")) for p in frames[0]]
    return frames, poses


def test_export_charactershot_train(shard, tmp_path, capsys):
    root = tmp_path / "Gaojunyao" / "Character4D"
    assert main(["export", str(shard), "--layout", "charactershot-train", "--out", str(root)]) == 0
    assert main(["export", str(shard), "--layout", "folders", "--out", str(tmp_path / "folders")]) == 0
    assert sorted(s.key for s in open_samples(tmp_path / "folders")) == ["ann__walk", "bob__jump"]
    assert "exported 2 samples" in capsys.readouterr().out
    assert (root / "train.txt").read_text().splitlines() == ["ann__walk", "bob__jump"]
    for sample in open_samples(shard):
        frames, poses = _released_finetune_reads(root, sample.key)
        assert [Path(views[0]).parent.name for views in frames] == ["view0", "view1", "view2"]
        for v, views in enumerate(frames):
            assert [Path(p).name for p in views] == ["0.png", "1.png"]
            for f, path in enumerate(views):
                rgba = sample.frame(v, f).astype(np.float64)
                on_white = rgba[..., :3] * rgba[..., 3:] / 255 + 255 * (1 - rgba[..., 3:] / 255)
                assert np.array_equal(_png(Path(path)), np.rint(on_white).astype(np.uint8))
        for f, path in enumerate(poses):
            assert np.array_equal(_png(Path(path)), sample.pose(0, f))  # the front view's pose map
    with pytest.raises(FileExistsError):
        from character4d.charactershot_layouts import export_charactershot_train

        export_charactershot_train(shard, root, keys=["ann__walk"])


def test_export_charactershot_inference(shard, tmp_path):
    root = tmp_path / "examples" / "4d"
    assert main(["export", str(shard), "--layout", "charactershot-inference", "--out", str(root),
                 "--key", "bob__jump"]) == 0
    (sample,) = open_samples(shard, keys=["bob__jump"])
    images = sorted((root / "images" / "bob__jump").iterdir(), key=lambda p: int(p.stem[4:]))
    assert [p.name for p in images] == ["view0.png", "view1.png", "view2.png"]
    for v, path in enumerate(images):
        canvas = _png(path)
        assert canvas.shape == (480, 720, 3)
        assert (canvas[:, :120] == 255).all() and (canvas[:, 600:] == 255).all()  # white margins
        rgba = Image.fromarray(sample.apose(v)).convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        expected = np.asarray(Image.alpha_composite(white, rgba).convert("RGB").resize((480, 480), Image.LANCZOS))
        assert np.abs(canvas[:, 120:600].astype(int) - expected).max() <= 1
    poses = sorted((root / "poses" / "bob__jump").iterdir(), key=lambda p: int(p.stem))
    assert [p.name for p in poses] == ["0.png", "1.png"]
    pose = _png(poses[1])
    assert pose.shape == (480, 720, 3) and (pose[:, :120] == 0).all() and (pose[:, 600:] == 0).all()
    expected = np.asarray(Image.fromarray(sample.pose(0, 1)).resize((480, 480), Image.LANCZOS))
    assert np.array_equal(pose[:, 120:600], expected)


def _write_released(root: Path, seq: str, frames: int, size: int, rng: np.random.Generator, views: int = 21) -> dict:
    renders, poses = {}, {}
    for v in range(views):
        folder = root / "render_results" / "binded_motion" / seq / f"view{v}"
        folder.mkdir(parents=True)
        for f in range(frames):
            renders[v, f] = rng.integers(0, 256, (size, size, 3), dtype=np.uint8)
            Image.fromarray(renders[v, f]).save(folder / f"{f}.png")
    folder = root / "render_results" / "binded_pose" / seq
    folder.mkdir(parents=True)
    for f in range(frames):
        poses[f] = rng.integers(0, 256, (size, size, 3), dtype=np.uint8)
        Image.fromarray(poses[f]).save(folder / f"{f}.png")
    (root / "train.txt").write_text(f"{seq}\n")
    return {"renders": renders, "poses": poses}


def test_import_released_layout_and_export_it_back(tmp_path, capsys):
    rng = np.random.default_rng(0)
    released = tmp_path / "Character4D"
    written = _write_released(released, "0042_girl.dance", frames=12, size=8, rng=rng)  # 12 frames: sort by int
    out = tmp_path / "imported"
    assert main(["import", str(released), "--out", str(out), "--fps", "24"]) == 0
    assert "0042_girl_dance__clip" in capsys.readouterr().out
    (sample,) = open_samples(out)
    assert sample.key == "0042_girl_dance__clip" and (sample.num_views, sample.num_frames) == (21, 12)
    template = rig_cameras(RigConfig(resolution=8))
    assert np.allclose(sample.cameras.viewmats, template.viewmats) and np.allclose(sample.cameras.Ks, template.Ks)
    assert np.isnan(sample.joints).all() and sample.meta["imported_from"]["sequence"] == "0042_girl.dance"
    assert sample.fps == 24.0 and sample.meta["source_times"][11] == pytest.approx(11 / 24)
    for (v, f), rgb in written["renders"].items():
        frame = sample.frame(v, f)
        assert np.array_equal(frame[..., :3], rgb) and (frame[..., 3] == 255).all()
    assert np.array_equal(sample.pose(0, 11), written["poses"][11]) and not sample.pose(5, 3).any()
    assert np.array_equal(sample.apose(7), sample.frame(7, 0))

    # Exported back in the training layout, the renders and the front-view pose maps come out unchanged.
    back = tmp_path / "back"
    assert main(["export", str(out), "--layout", "charactershot-train", "--out", str(back)]) == 0
    frames, poses = _released_finetune_reads(back, sample.key)
    by_view = {int(Path(views[0]).parent.name[4:]): views for views in frames}  # string-sorted view folders
    for v in range(21):
        for f in range(12):
            assert np.array_equal(_png(Path(by_view[v][f])), written["renders"][v, f])
    assert all(np.array_equal(_png(Path(p)), written["poses"][f]) for f, p in enumerate(poses))


def test_import_rejects_an_incomplete_sequence(tmp_path, capsys):
    released = tmp_path / "Character4D"
    _write_released(released, "seq1", frames=2, size=8, rng=np.random.default_rng(1), views=20)
    assert main(["import", str(released), "--out", str(tmp_path / "o")]) == 1
    assert "missing view20" in capsys.readouterr().err
    assert main(["import", str(tmp_path / "nothing-here"), "--out", str(tmp_path / "o")]) == 1
    assert not (tmp_path / "o").exists()  # nothing written for bad input
