"""scripts/bench/eval_stages.py runs end to end on tiny data (as a subprocess: nothing imports scripts/)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from tests.characterbench.conftest import SIZE

REPO = Path(__file__).resolve().parents[2]


def test_eval_stages_prints_the_stage_table_and_compares_numbers(baselines, gt_shard, tmp_path):
    def run(*extra: str) -> subprocess.CompletedProcess:
        args = ["scripts/bench/eval_stages.py", "--pred", str(baselines["front-view"]), "--gt", str(gt_shard),
                "--metrics", "ssim,psnr", "--bootstrap", "0", "--image-resolution", str(SIZE), "--workers", "1", *extra]
        return subprocess.run([sys.executable, *args], capture_output=True, text=True, cwd=REPO, timeout=300)

    first = run("--json", str(tmp_path / "a.json"))
    assert first.returncode == 0, first.stderr
    for stage in ("index ground truth", "validate + decode predictions", "  ssim", "  psnr", "total (wall)", "load average"):
        assert stage in first.stdout, stage
    record = json.loads((tmp_path / "a.json").read_text())
    assert record["sample_count"] == 2 and record["stage_run"]["wall_s"] > 0
    assert record["stage_seconds"]["scoring (all samples)"] >= record["stage_seconds"]["  ssim"] > 0
    second = run("--reference", str(tmp_path / "a.json"))
    assert second.returncode == 0, second.stderr
    assert "largest relative difference to" in second.stdout and second.stdout.rstrip().endswith(": 0")
