"""Tests of character4d.jobs: job list, slicing, resumable shard output."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tarfile
import textwrap
import time
from pathlib import Path

import pytest

from character4d.format import open_samples
from character4d.jobs import (
    ConfigMismatchError,
    Job,
    collect_inputs,
    make_jobs,
    manifest_name,
    parse_shard,
    part_name,
    run_jobs,
    select_shard,
)
from tests.character4d.fake_sample import make_fake_sample

REPO = Path(__file__).resolve().parents[2]


def _touch(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"")
    return path


def _jobs(num_characters: int, num_motions: int) -> list[Job]:
    characters = [Path(f"chars/c{i}.vrm") for i in range(num_characters)]
    motions = [Path(f"motions/m{i}.fbx") for i in range(num_motions)]
    return make_jobs(characters, motions)


class _FakeRenderer:
    """Counts calls by writing a marker file per call, like a render that leaves files behind."""

    def __init__(self, calls_dir: Path, fail: set[str] = frozenset()) -> None:
        self.calls_dir, self.fail = calls_dir, fail
        calls_dir.mkdir(parents=True, exist_ok=True)

    def __call__(self, job: Job, staging_dir: Path):
        assert staging_dir.is_dir() and not any(staging_dir.iterdir())
        (staging_dir / "scratch.png").write_bytes(b"intermediate")
        marker = self.calls_dir / f"{job.key}.{len(list(self.calls_dir.glob(job.key + '.*')))}"
        marker.write_text("called")
        if job.key in self.fail:
            raise ValueError(f"cannot retarget {job.motion_path}")
        return make_fake_sample(job.key, views=2, frames=2, size=8, seed=len(job.key))

    def calls(self, key: str) -> int:
        return len(list(self.calls_dir.glob(key + ".*")))


def _tar_keys(path: Path) -> list[str]:
    with tarfile.open(path) as tar:
        return sorted({name.split(".", 1)[0] for name in tar.getnames()})


# ---------------------------------------------------------------------------- job list


def test_make_jobs_is_sorted_and_deterministic():
    jobs = make_jobs([Path("b/Zed.vrm"), Path("a/alice v2.vrm")], [Path("walk.fbx"), Path("Run.cycle.bvh")])
    assert [j.key for j in jobs] == ["Zed__Run_cycle", "Zed__walk", "alice_v2__Run_cycle", "alice_v2__walk"]
    assert jobs[0] == Job("b/Zed.vrm", "Run.cycle.bvh", "Zed", "Run_cycle", "Zed__Run_cycle")
    assert make_jobs([Path("a/alice v2.vrm"), Path("b/Zed.vrm")], [Path("Run.cycle.bvh"), Path("walk.fbx")]) == jobs


def test_make_jobs_rejects_duplicate_ids_naming_both_files():
    with pytest.raises(ValueError, match=r"a/alice\.vrm.*b/alice\.glb"):
        make_jobs([Path("a/alice.vrm"), Path("b/alice.glb")], [Path("m.fbx")])
    with pytest.raises(ValueError, match="motions"):
        make_jobs([Path("a.vrm")], [])


def test_collect_inputs(tmp_path):
    for name in ("b/x.FBX", "a/y.fbx", "a/deep/z.bvh", "a/skip.txt", ".hidden/h.fbx", "single.bvh"):
        _touch(tmp_path / name)
    found = collect_inputs([tmp_path / "b", tmp_path / "a", tmp_path / "single.bvh", tmp_path / "a"], ["fbx", ".bvh"])
    assert found == [tmp_path / "a/deep/z.bvh", tmp_path / "a/y.fbx", tmp_path / "b/x.FBX", tmp_path / "single.bvh"]
    with pytest.raises(ValueError, match="skip.txt"):
        collect_inputs([tmp_path / "a/skip.txt"], [".fbx"])
    with pytest.raises(FileNotFoundError):
        collect_inputs([tmp_path / "nope"], [".fbx"])


@pytest.mark.parametrize(("text", "expected"), [("0/1", (0, 1)), ("3/4", (3, 4)), (" 2 / 10 ", (2, 10))])
def test_parse_shard(text, expected):
    assert parse_shard(text) == expected


@pytest.mark.parametrize("text", ["4/4", "1/0", "-1/4", "a/b", "3", "1/2/3"])
def test_parse_shard_rejects(text):
    with pytest.raises(ValueError, match="shard"):
        parse_shard(text)


def test_slices_are_disjoint_and_cover_every_job():
    jobs = _jobs(5, 7)
    for n in (1, 3, 8, 40):
        slices = [select_shard(jobs, i, n) for i in range(n)]
        keys = [job.key for part in slices for job in part]
        assert sorted(keys) == [job.key for job in jobs] and len(set(keys)) == len(jobs)
        assert [job.key for job in slices[1 % n]] == [job.key for job in jobs[1 % n :: n]]
    with pytest.raises(ValueError, match="shard"):
        select_shard(jobs, 3, 3)


# ---------------------------------------------------------------------------- run_jobs


def test_run_jobs_packs_parts_and_records_a_failure(tmp_path):
    jobs = _jobs(2, 4)  # 8 jobs; slice 1/2 holds 4 of them
    selected = select_shard(jobs, 1, 2)
    bad = selected[1].key
    render = _FakeRenderer(tmp_path / "calls", fail={bad})
    out = tmp_path / "out"
    summary = run_jobs(jobs, render, out, shard=(1, 2), config={"res": 8}, samples_per_tar=3, progress=False)
    good = [job.key for job in selected if job.key != bad]
    assert summary.done == tuple(good) and summary.skipped == ()
    assert dict(summary.failed) == {bad: f"ValueError: cannot retarget {selected[1].motion_path}"}
    assert not summary.ok
    parts = [part_name(1, 2, 0), part_name(1, 2, 1)]
    assert summary.parts == tuple(parts)
    assert sorted(p.name for p in (out / "shards").iterdir()) == parts
    assert _tar_keys(out / "shards" / parts[0]) == sorted([selected[0].key, selected[2].key])
    assert _tar_keys(out / "shards" / parts[1]) == [selected[3].key]
    assert [s.key for s in open_samples(out)] == [selected[0].key, selected[2].key, selected[3].key]
    manifest = json.loads((out / manifest_name(1, 2)).read_text())
    assert manifest["config"] == {"res": 8} and manifest["shard"] == [1, 2]
    assert manifest["jobs"][bad]["status"] == "failed" and "ValueError" in manifest["jobs"][bad]["reason"]
    assert manifest["jobs"][selected[3].key] | {"seconds": 0} == {
        "status": "done", "part": parts[1], "reason": None, "character": selected[3].character_path,
        "motion": selected[3].motion_path, "seconds": 0, "traceback": None, "attempts": 1,
    }
    assert not any((out / ".staging").iterdir())

    # A re-run renders nothing: done jobs and the recorded failure are skipped.
    again = run_jobs(jobs, render, out, shard=(1, 2), config={"res": 8}, samples_per_tar=3, progress=False)
    assert again.done == () and set(again.skipped) == {job.key for job in selected} and bad in again.failed
    assert all(render.calls(job.key) == 1 for job in selected)

    # Deleting the failure's manifest entry retries it; its packed part is not rewritten.
    before = (out / "shards" / parts[0]).read_bytes()
    del manifest["jobs"][bad]
    (out / manifest_name(1, 2)).write_text(json.dumps(manifest))
    render.fail = set()
    retried = run_jobs(jobs, render, out, shard=(1, 2), config={"res": 8}, samples_per_tar=3, progress=False)
    assert retried.done == (bad,) and retried.ok and retried.parts == (part_name(1, 2, 0, retry=1),)
    assert (out / "shards" / parts[0]).read_bytes() == before
    assert sorted(s.key for s in open_samples(out)) == sorted(job.key for job in selected)


def test_config_mismatch_names_the_keys(tmp_path):
    jobs = _jobs(1, 2)
    render = _FakeRenderer(tmp_path / "calls")
    run_jobs(jobs, render, tmp_path / "out", config={"resolution": 8, "engine": "cycles"}, progress=False)
    with pytest.raises(ConfigMismatchError, match="resolution") as info:
        run_jobs(jobs, render, tmp_path / "out", config={"resolution": 16, "engine": "cycles"}, progress=False)
    assert info.value.keys == ("resolution",)
    config = {"resolution": 8, "engine": "cycles"}
    with pytest.raises(ConfigMismatchError, match="samples_per_tar"):
        run_jobs(jobs, render, tmp_path / "out", config=config, samples_per_tar=2, progress=False)
    with pytest.raises(ConfigMismatchError, match="slice_sha256"):
        run_jobs(_jobs(2, 2), render, tmp_path / "out", config={"resolution": 8, "engine": "cycles"}, progress=False)


def test_run_jobs_folder_format(tmp_path):
    jobs = _jobs(1, 3)
    render = _FakeRenderer(tmp_path / "calls")
    out = tmp_path / "out"
    summary = run_jobs(jobs, render, out, fmt="folders", progress=False)
    assert summary.parts == tuple(job.key for job in jobs)
    assert sorted(p.name for p in out.iterdir() if not p.name.startswith(".")) == sorted(
        [job.key for job in jobs] + [manifest_name(0, 1)]
    )
    assert [s.key for s in open_samples(out)] == [job.key for job in jobs]
    assert run_jobs(jobs, render, out, fmt="folders", progress=False).done == ()


def test_run_jobs_rejects_bad_arguments(tmp_path):
    jobs = _jobs(1, 2)
    render = _FakeRenderer(tmp_path / "calls")
    with pytest.raises(ValueError, match="fmt"):
        run_jobs(jobs, render, tmp_path, fmt="zip")
    with pytest.raises(ValueError, match="shard"):
        run_jobs(jobs, render, tmp_path, shard=(2, 2))
    with pytest.raises(ValueError, match="sorted"):
        run_jobs(jobs[::-1], render, tmp_path)
    with pytest.raises(ValueError, match="config"):
        run_jobs(jobs, render, tmp_path, config={"x": object()})


def test_invalid_returned_sample_is_a_failure(tmp_path):
    jobs = _jobs(1, 2)
    summary = run_jobs(jobs, lambda job, d: make_fake_sample("other__key"), tmp_path / "o", progress=False)
    assert set(summary.failed) == {job.key for job in jobs}
    assert all("render_fn" in reason for reason in summary.failed.values())


def test_keyboard_interrupt_stops_the_run(tmp_path):
    def render(job, staging_dir):
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run_jobs(_jobs(1, 2), render, tmp_path / "o", progress=False)
    assert not list((tmp_path / "o" / ".staging").iterdir())


_SCRIPT = """
import sys, time
from pathlib import Path
from character4d.jobs import make_jobs, run_jobs
from tests.character4d.fake_sample import make_fake_sample

out, calls, delay = Path(sys.argv[1]), Path(sys.argv[2]), float(sys.argv[3])
calls.mkdir(exist_ok=True)

def render(job, staging_dir):
    (calls / f"{job.key}.{time.time_ns()}").write_text("called")
    time.sleep(delay)
    return make_fake_sample(job.key, views=2, frames=2, size=8)

jobs = make_jobs([Path(f"c{i}.vrm") for i in range(2)], [Path(f"m{i}.fbx") for i in range(4)])
run_jobs(jobs, render, out, config={"res": 8}, samples_per_tar=3, progress=False)
"""


def _done_keys(manifest: Path) -> set[str]:
    try:
        entries = json.loads(manifest.read_text())["jobs"]
    except (FileNotFoundError, json.JSONDecodeError):
        return set()
    return {key for key, entry in entries.items() if entry["status"] == "done"}


def test_leftovers_of_this_slice_are_removed_and_others_kept(tmp_path):
    jobs = _jobs(1, 4)
    out = tmp_path / "out"
    mine = [
        _touch(out / "shards" / (part_name(0, 2, 0) + ".tmp")),
        _touch(out / ".staging" / f".{jobs[0].key}.tmp" / "motion" / "view00" / "000.png"),
        _touch(out / ".staging" / f".{jobs[2].key}.render.tmp" / "x.png"),
        _touch(out / (manifest_name(0, 2) + ".tmp")),
    ]
    others = [
        _touch(out / "shards" / (part_name(1, 2, 0) + ".tmp")),
        _touch(out / ".staging" / f".{jobs[1].key}.tmp" / "meta.json"),
    ]
    run_jobs(jobs, _FakeRenderer(tmp_path / "calls"), out, shard=(0, 2), progress=False)
    assert not any(path.exists() for path in mine)
    assert all(path.exists() for path in others)  # another slice may be running right now


@pytest.mark.slow
def test_kill_and_resume(tmp_path):
    script = tmp_path / "render.py"
    script.write_text(textwrap.dedent(_SCRIPT))
    out, calls = tmp_path / "out", tmp_path / "calls"
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    manifest = out / manifest_name(0, 1)
    process = subprocess.Popen([sys.executable, str(script), str(out), str(calls), "0.3"], cwd=REPO, env=env)
    try:
        deadline = time.monotonic() + 60
        while len(_done_keys(manifest)) < 4 and process.poll() is None and time.monotonic() < deadline:
            time.sleep(0.02)
        process.send_signal(signal.SIGKILL)  # mid-run: part 0 packed, job 4 staged, job 5 rendering
    finally:
        process.wait()
    done_before_kill = _done_keys(manifest)
    assert 4 <= len(done_before_kill) < 8, "the kill should land mid-run"
    assert (out / "shards" / part_name(0, 1, 0)).is_file()

    resumed = subprocess.run([sys.executable, str(script), str(out), str(calls), "0"], cwd=REPO, env=env, timeout=120)
    assert resumed.returncode == 0
    characters, motions = [Path(f"c{i}.vrm") for i in range(2)], [Path(f"m{i}.fbx") for i in range(4)]
    all_keys = [job.key for job in make_jobs(characters, motions)]
    tars = sorted((out / "shards").iterdir())
    assert [t.name for t in tars] == [part_name(0, 1, p) for p in range(3)]
    packed = [key for tar in tars for key in _tar_keys(tar)]
    assert sorted(packed) == all_keys  # every job exactly once
    assert sorted(s.key for s in open_samples(out)) == all_keys
    leftovers = [p for p in out.rglob("*") if p.name.endswith(".tmp")]
    assert leftovers == [] and not any((out / ".staging").iterdir())
    counts = {key: len(list(calls.glob(key + ".*"))) for key in all_keys}
    assert all(counts[key] == 1 for key in done_before_kill)  # finished jobs were not rendered again
    assert all(counts[key] in (1, 2) for key in all_keys)  # at most the interrupted job ran twice
    assert _done_keys(manifest) == set(all_keys)
