"""Every character4d CLI command once, end to end on tiny data; interrupt-and-resume of a real render."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from character4d.cli import main
from character4d.format import open_samples
from tests.character4d.conftest import need_assets

TINY = ["--resolution", "32", "--views", "2", "--frames", "2", "--samples", "1", "--fps", "5"]


@pytest.mark.blender
def test_render_preview_and_default_data(default_data, tmp_path, capsys):
    chars, motions = default_data
    out = tmp_path / "out"
    code = main(["render", "--out", str(out), "--characters", str(chars["cleo"]), str(chars["dax"]),
                 "--motions", str(motions["jump"]), str(motions["wave"]), "--pairing", "zip", "--quiet", *TINY])
    assert code == 0
    assert [s.key for s in open_samples(out)] == ["cleo__jump", "dax__wave"]
    assert "2 rendered" in capsys.readouterr().out
    # Same command again: everything is skipped.
    assert main(["render", "--out", str(out), "--characters", str(chars["cleo"]), str(chars["dax"]),
                 "--motions", str(motions["jump"]), str(motions["wave"]), "--pairing", "zip", "--quiet", *TINY]) == 0
    assert "0 rendered, 2 already done" in capsys.readouterr().out

    assert main(["preview", str(out), "--out", str(tmp_path / "prev"), "--key", "dax__wave"]) == 0
    assert "dax__wave" in capsys.readouterr().out
    png = tmp_path / "prev" / "dax__wave"
    assert any(p.suffix == ".png" for p in png.iterdir()) and any(p.suffix == ".gif" for p in png.iterdir())

    assert main(["default-data"]) == 0
    listed = capsys.readouterr().out.split()
    assert sorted(Path(p).stem for p in listed) == sorted([*chars, *motions])


@pytest.mark.blender
def test_render_folders_and_a_shard_slice(default_data, tmp_path):
    chars, motions = default_data
    out = tmp_path / "folders"
    args = ["render", "--out", str(out), "--characters", str(chars["ada"]), "--motions", str(motions["walk"]),
            str(motions["jump"]), "--format", "folders", "--shard", "1/2", "--quiet", *TINY]
    assert main(args) == 0
    # Sorted job list: ada__jump, ada__walk; slice 1/2 takes the second.
    assert [s.key for s in open_samples(out)] == ["ada__walk"]
    assert (out / "ada__walk" / "motion" / "view01" / "001.png").is_file()


def test_render_rejects_bad_arguments(tmp_path, capsys):
    assert main(["render", "--out", str(tmp_path), "--shard", "3/2"]) == 2
    assert "shard" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["render", "--out", str(tmp_path), "--engine", "povray"])


def test_ray_option_explains_missing_ray(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)  # import ray -> ImportError
    with pytest.raises(ImportError, match="pip install"):
        main(["render", "--out", str(tmp_path), "--ray", "2"])


def test_ray_renders_every_shard_on_a_real_local_cluster(tmp_path, monkeypatch):
    """`--ray 2` on a real local Ray cluster (2 CPUs): one task per shard, relative inputs made absolute.

    The Ray tasks run the real pipeline and job runner; the worker process is the bpy-free stand-in of
    tests/character4d/fake_worker.py (Blender renders are tested elsewhere), so this takes seconds.
    """
    ray = pytest.importorskip("ray")
    repo = Path(__file__).resolve().parents[2]
    control = tmp_path / "control"
    control.mkdir()
    for name in ("chars/ann.glb", "chars/bob.glb", "motions/walk.bvh"):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_bytes(b"stand-in")
    env = {"CHARACTER4D_WORKER_MODULE": "tests.character4d.fake_worker", "C4D_FAKE_WORKER_DIR": str(control),
           "PYTHONPATH": str(repo)}
    monkeypatch.chdir(tmp_path)  # relative paths below; Ray workers run elsewhere
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, runtime_env={"env_vars": env})
    try:
        code = main(["render", "--ray", "2", "--characters", "chars", "--motions", "motions", "--out", "out",
                     "--resolution", "8", "--views", "1", "--frames", "1", "--samples-per-tar", "1"])
    finally:
        ray.shutdown()
    assert code == 0
    assert sorted(p.name for p in (tmp_path / "out").glob("manifest-*")) == [
        "manifest-00000-of-00002.json", "manifest-00001-of-00002.json"]
    assert sorted(s.key for s in open_samples(tmp_path / "out")) == ["ann__walk", "bob__walk"]
    sent = [json.loads(p.read_text()) for p in control.glob("call-*")]
    assert len(sent) == 2 and all(Path(path).is_absolute() for paths in sent for path in paths)


@pytest.mark.blender
def test_inspect_reports_mapping_and_problems(tmp_path, capsys):
    assets = need_assets()
    code = main(["inspect", str(assets / "characters" / "human-male.glb"), str(assets / "motions" / "91_48.fbx")])
    out = capsys.readouterr().out
    assert code == 0
    assert "convention: unreal" in out and "upperarm_l" in out
    assert "convention: cmu" in out and "frames 1-110 at 30 fps" in out
    bad = tmp_path / "broken.fbx"
    bad.write_bytes(b"Kaydara FBX Binary  \x00\x1a\x00" + b"\x00" * 64)
    assert main(["inspect", str(bad)]) == 1
    assert "ERROR" in capsys.readouterr().out


@pytest.mark.blender
def test_inspect_uses_the_vrm_table(default_data, tmp_path, capsys):
    from tests.character4d.test_render_blender import _as_vrm

    chars, _ = default_data
    vrm = _as_vrm(chars["ada"], tmp_path / "ada.vrm", 1)
    assert main(["inspect", str(vrm)]) == 0
    out = capsys.readouterr().out
    assert "convention: vrm1" in out and "bone_0" in out and "UNMAPPABLE" not in out


@pytest.mark.blender
@pytest.mark.slow
def test_kill_mid_shard_and_resume(default_data, tmp_path):
    """kill -9 a real render after the first sample: the re-run renders the rest, no duplicates, no temp files."""
    chars, motions = default_data
    out = tmp_path / "out"
    cmd = [sys.executable, "-m", "character4d.cli", "render", "--out", str(out), "--characters", str(chars["ada"]),
           "--motions", str(motions["walk"]), str(motions["wave"]), str(motions["jump"]),
           "--samples-per-tar", "2", "--quiet", *TINY]
    env = dict(os.environ)
    proc = subprocess.Popen(cmd, env=env, start_new_session=True)
    manifest = out / "manifest-00000-of-00001.json"
    deadline = time.time() + 120
    while time.time() < deadline:
        if manifest.exists() and '"done"' in manifest.read_text():
            break
        time.sleep(0.1)
    os.killpg(proc.pid, signal.SIGKILL)  # the CLI and its Blender worker
    proc.wait()
    done_before = {k for k, e in json.loads(manifest.read_text())["jobs"].items() if e["status"] == "done"}
    assert done_before and len(done_before) < 3

    result = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    assert f"{3 - len(done_before)} rendered, {len(done_before)} already done" in result.stdout
    keys = [s.key for s in open_samples(out)]
    assert keys == sorted(set(keys)) and set(keys) == {"ada__jump", "ada__walk", "ada__wave"}
    leftovers = [p for p in out.rglob("*") if p.name.endswith(".tmp") or ".tmp" in p.name]
    assert not leftovers


@pytest.mark.blender
@pytest.mark.slow
def test_ray_renders_with_blender_workers(default_data, tmp_path):
    """`--ray 2` on a real local cluster with the real Blender worker: tiny renders, same output as --shard."""
    ray = pytest.importorskip("ray")
    chars, motions = default_data
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False,
             runtime_env={"env_vars": {"CHARACTER4D_HOME": os.environ["CHARACTER4D_HOME"]}})
    try:
        code = main(["render", "--ray", "2", "--out", str(tmp_path / "out"), "--characters", str(chars["ada"]),
                     "--motions", str(motions["walk"]), str(motions["wave"]), *TINY])
    finally:
        ray.shutdown()
    assert code == 0
    samples = list(open_samples(tmp_path / "out"))
    assert sorted(s.key for s in samples) == ["ada__walk", "ada__wave"]
    for sample in samples:
        sample.validate(decode=True)
