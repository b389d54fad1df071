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


def test_ray_driver_fans_out_one_task_per_shard(tmp_path, monkeypatch):
    """A stand-in `ray` module records the tasks; each must call render() on its own slice."""
    import types

    calls = []

    def remote(**opts):
        def wrap(fn):
            class Task:
                @staticmethod
                def remote(*args):
                    calls.append(args)
                    return {"shard": [args[4], args[5]], "done": [], "skipped": [], "failed": {}}
            return Task
        return wrap

    fake = types.SimpleNamespace(is_initialized=lambda: True, init=lambda: None, remote=remote, get=lambda refs: refs)
    monkeypatch.setitem(sys.modules, "ray", fake)
    from character4d.config import RenderConfig
    from character4d.ray_driver import render_with_ray

    out = render_with_ray(None, None, tmp_path, RenderConfig(), 3)
    assert [c[4:6] for c in calls] == [(0, 3), (1, 3), (2, 3)]
    assert [o["shard"] for o in out] == [[0, 3], [1, 3], [2, 3]]


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
