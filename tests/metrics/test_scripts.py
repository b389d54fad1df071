"""The metric launchers run end to end on tiny settings (as subprocesses: nothing imports scripts/)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


def _run(*args: str, env_home: Path | None = None) -> subprocess.CompletedProcess:
    import os

    env = dict(os.environ)
    if env_home is not None:
        env["CHARACTERBENCH_HOME"] = str(env_home)
    return subprocess.run([sys.executable, *args], capture_output=True, text=True, cwd=REPO, env=env, timeout=300)


def test_fetch_weights_status_reports_missing(tmp_path):
    proc = _run("scripts/fetch_weights.py", "--status", env_home=tmp_path)
    assert proc.returncode == 1
    assert proc.stdout.count("MISSING") == 3 and str(tmp_path) in proc.stdout


def test_bench_without_weights_says_how_to_fetch(tmp_path):
    proc = _run("scripts/bench/metrics_throughput.py", "--device", "cpu", env_home=tmp_path)
    assert proc.returncode == 1 and "characterbench weights fetch" in proc.stderr


@pytest.mark.weights
def test_bench_runs_on_cpu(tmp_path):
    from metrics.weights import FETCH_COMMAND, weights_status

    status = weights_status(names=["i3d_kinetics400", "lpips_alex"], verify=False)
    if not all(s.ok for s in status.values()):
        pytest.skip(f"weights not fetched; run `{FETCH_COMMAND}`")
    out = tmp_path / "bench.json"
    proc = _run(
        "scripts/bench/metrics_throughput.py", "--device", "cpu", "--i3d-batch", "1", "--image-batch", "1",
        "--image-size", "64", "--warmup", "0", "--iters", "1", "--json", str(out),
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    rows = json.loads(out.read_text())["rows"]
    assert [r["unit"] for r in rows] == ["clips/s", "images/s", "images/s"]
    assert all(r["throughput"] > 0 for r in rows)


def test_bootstrap_bench_runs_and_both_routes_agree():
    proc = _run("scripts/bench/eval_bootstrap.py", "--samples", "3", "--resamples", "20", "--before-resamples", "5")
    assert proc.returncode == 0, proc.stderr
    rows = [line.split() for line in proc.stdout.splitlines() if line.startswith(("fvd_", "fv4d"))]
    assert [r[0] for r in rows] == ["fvd_f", "fvd_v", "fvd_d", "fv4d"] and all(r[-1] == "True" for r in rows)
