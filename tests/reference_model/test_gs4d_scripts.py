"""scripts/gs4d_leaderboard.py on tiny data: pack -> fit -> bundle -> unbundle keeps every render and record."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parents[2]


def _script(name: str, path: str):
    spec = importlib.util.spec_from_file_location(name, ROOT / path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_leaderboard_script_round_trip(tmp_path):
    from character4d.format import write_folder_sample
    from tests.reference_model.conftest import make_scene_sample

    board = _script("gs4d_leaderboard", "scripts/gs4d_leaderboard.py")
    assert board._jobs("default:a__b,no_gate", ["a__b", "c__d"]) == [
        ("default", "a__b"), ("no_gate", "a__b"), ("no_gate", "c__d")]
    gt = tmp_path / "gt"
    write_folder_sample(make_scene_sample(16, 25, 21, key="ada__dance"), gt)
    assert board.main(["pack", "--gt", str(gt), "--out", str(tmp_path / "packs")]) == 0
    sets = ["init_points=100", "hull_resolution=16", "coarse_steps=2", "window_steps=1", "final_steps=2",
            "views_per_step=2", "sh_degree=0", "max_gaussians=150"]
    runs = tmp_path / "runs"
    args = ["fit", "--data", str(tmp_path / "packs"), "--runs", str(runs), "--jobs", "default"]
    assert board.main(args + [x for s in sets for x in ("--set", s)]) == 0
    record = json.loads((runs / "default" / "ada__dance" / "fit.json").read_text())
    assert record["iterations"]["total"] == 2 + 6 + 2
    assert board.main(["bundle", "--runs", str(runs), "--out", str(tmp_path / "back")]) == 0
    assert board.main(["unbundle", "--bundles", str(tmp_path / "back"), "--runs", str(tmp_path / "here")]) == 0
    pngs = sorted((runs / "default" / "ada__dance" / "pred").rglob("*.png"))
    assert len(pngs) == 81
    for png in pngs:
        copy = tmp_path / "here" / png.relative_to(runs)
        np.testing.assert_array_equal(np.array(Image.open(png)), np.array(Image.open(copy)))
    assert json.loads((tmp_path / "here" / "default" / "ada__dance" / "fit.json").read_text()) == record
    # The row's viewer page: built from the kept .ply sequence, acceptable to characterbench submit --viewer.
    from characterbench.leaderboard import viewer_problems

    page = board._viewer_page(runs, "default", ["ada__dance"], 64)
    assert page == runs / "default" / "ada__dance" / "viewer.html" and viewer_problems(page) == []
    assert board._viewer_page(tmp_path / "here", "default", ["ada__dance"], 64) is None  # no .ply there


def test_timing_probe_prints_the_final_steps_for_a_budget(tmp_path, capsys):
    from character4d.format import write_folder_sample
    from tests.reference_model.conftest import make_scene_sample

    probe = _script("gs4d_profile", "scripts/bench/gs4d_profile.py")
    write_folder_sample(make_scene_sample(16, 25, 21, key="ada__dance"), tmp_path)
    sets = ["init_points=100", "hull_resolution=16", "sh_degree=0", "max_gaussians=150"]
    args = ["--data", str(tmp_path), "--sample", "ada__dance", "--device", "cpu", "--steps", "3"]
    assert probe.main(args + ["--budget", "1e6"] + [x for s in sets for x in ("--set", s)]) == 0
    lines = capsys.readouterr().out.splitlines()
    many = int(lines[-1].removeprefix("FINAL_STEPS="))
    assert "ms/step" in lines[-2] and many > 1000  # a large budget leaves many final steps


def test_loss_benchmark_prints_a_row_per_size(capsys):
    bench = _script("gs4d_loss", "scripts/bench/gs4d_loss.py")
    assert bench.main(["--sizes", "16,24", "--images", "2", "--repeats", "1"]) == 0
    rows = [line for line in capsys.readouterr().out.splitlines() if line.startswith("| 16 |") or line.startswith("| 24 |")]
    assert len(rows) == 2 and all(float(r.split("|")[2]) > 0 for r in rows)


def test_sample_grid_puts_ground_truth_on_white_beside_the_prediction(tmp_path):
    from character4d.format import open_samples, write_folder_sample
    from tests.reference_model.conftest import make_scene_sample

    gt = tmp_path / "gt"
    write_folder_sample(make_scene_sample(16, 3, 21, key="ada__dance"), gt)
    rgba = next(iter(open_samples(gt))).frame(7, 2).astype(np.float64)
    on_white = np.rint(rgba[..., :3] * rgba[..., 3:] / 255 + 255 * (1 - rgba[..., 3:] / 255)).astype(np.uint8)
    folder = tmp_path / "pred" / "ada__dance" / "view07"
    folder.mkdir(parents=True)
    Image.fromarray(255 - on_white).save(folder / "frame002.png")  # inverted: a prediction unlike the truth
    grid = _script("sample_grid", "scripts/train/sample_grid.py")
    out = tmp_path / "grid.png"
    assert grid.main(["--gt", str(gt), "--pred", str(tmp_path / "pred"), "--keys", "ada__dance", "--views", "7",
                      "--frame", "2", "--cell", "16", "--out", str(out)]) == 0
    image = np.asarray(Image.open(out))
    assert image.shape == (16, 32, 3)
    np.testing.assert_array_equal(image[:, :16], on_white)
    np.testing.assert_array_equal(image[:, 16:], 255 - on_white)
    assert grid.main(["--gt", str(gt), "--pred", str(tmp_path / "pred"), "--keys", "nobody__here",
                      "--out", str(out)]) == 1
