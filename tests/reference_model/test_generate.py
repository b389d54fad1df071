"""``charactershot generate`` end to end on tiny models: a prediction folder characterbench accepts."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from characterbench.cli import main as characterbench_main
from reference_model.cli import main as charactershot_main
from reference_model.generate import write_prediction
from tests.character4d.fake_sample import make_fake_sample
from tests.reference_model.tiny_models import tiny_pipeline

# 32 px renders on a 48 x 32 canvas: the camera encoder's stride 16 divides both sides.
TINY = ["--height", "32", "--width", "48", "--steps", "1", "--quiet"]


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    path = tmp_path_factory.mktemp("model")
    tiny_pipeline().save_pretrained(path)
    return path


@pytest.fixture(scope="module")
def gt_dir(tmp_path_factory):
    from character4d.format import write_folder_sample

    root = tmp_path_factory.mktemp("gt")
    write_folder_sample(make_fake_sample("alice__walk", views=21, frames=25, size=32, seed=0), root)
    return root


def test_generate_writes_a_folder_characterbench_validates(model_dir, gt_dir, tmp_path, capsys):
    pred = tmp_path / "pred"
    assert charactershot_main(["generate", "--model", str(model_dir), "--sample", str(gt_dir), "--out", str(pred), *TINY]) == 0
    files = sorted(p.relative_to(pred).as_posix() for p in pred.rglob("*.png"))
    assert len(files) == 21 * 25 and files[0] == "alice__walk/view00/frame000.png"
    assert Image.open(pred / "alice__walk" / "view20" / "frame024.png").size == (32, 32)
    assert characterbench_main(["validate", "--pred", str(pred), "--gt", str(gt_dir), "--quiet"]) == 0
    assert "ok:" in capsys.readouterr().out
    # A finished sample is not generated again.
    before = (pred / "alice__walk" / "view00" / "frame000.png").stat().st_mtime_ns
    assert charactershot_main(["generate", "--model", str(model_dir), "--sample", str(gt_dir), "--out", str(pred), *TINY]) == 0
    assert (pred / "alice__walk" / "view00" / "frame000.png").stat().st_mtime_ns == before


def test_generate_from_files_and_bad_inputs(model_dir, tmp_path, capsys):
    from character4d.cameras import RigConfig, rig_cameras
    import json

    rng = np.random.default_rng(0)
    images, poses = tmp_path / "images", tmp_path / "poses"
    images.mkdir()
    poses.mkdir()
    for v in range(3):
        Image.fromarray(rng.integers(0, 255, (32, 32, 3), dtype=np.uint8)).save(images / f"view{v}.png")
    for f in range(10):  # 10 pose maps: the first 9 (1 + 8m) are used
        Image.fromarray(rng.integers(0, 255, (32, 32, 3), dtype=np.uint8)).save(poses / f"{f}.png")
    cams = tmp_path / "cameras.json"
    cams.write_text(json.dumps(rig_cameras(RigConfig(resolution=32)).select([0, 7, 14]).to_json()))
    out = tmp_path / "out"
    argv = ["generate", "--model", str(model_dir), "--images", str(images), "--poses", str(poses),
            "--cameras", str(cams), "--key", "hero__dance", "--out", str(out), "--group-size", "2", *TINY]  # fmt: skip
    assert charactershot_main(argv) == 0
    assert sorted(p.name for p in (out / "hero__dance").iterdir()) == ["view00", "view07", "view14"]
    assert len(list((out / "hero__dance" / "view07").iterdir())) == 9
    capsys.readouterr()
    assert charactershot_main(["generate", "--model", str(tmp_path / "none"), "--images", str(images),
                               "--poses", str(poses), "--out", str(out), *TINY]) == 1  # fmt: skip
    assert "CharacterShot" in capsys.readouterr().err
    assert charactershot_main(["generate", "--model", str(model_dir), "--out", str(out), *TINY]) == 2
    wrong = tmp_path / "cams2.json"
    wrong.write_text(json.dumps(rig_cameras(RigConfig(resolution=32)).select([0, 1]).to_json()))
    argv[argv.index(str(cams))] = str(wrong)
    argv[argv.index("hero__dance")] = "other__key"
    assert charactershot_main(argv) == 1
    assert "2 views for 3 images" in capsys.readouterr().err


def test_write_prediction_crops_the_canvas():
    frames = np.zeros((1, 1, 4, 8, 3), dtype=np.float32)
    frames[..., 2:6, :] = 1.0  # the centred square is white, the padding black
    import tempfile
    from pathlib import Path

    with tempfile.TemporaryDirectory() as d:
        folder = write_prediction(frames, Path(d), "a__b", [5], size=4, height=4, width=8)
        img = np.asarray(Image.open(folder / "view05" / "frame000.png"))
    assert img.shape == (4, 4, 3) and (img == 255).all()
