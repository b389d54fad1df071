"""Crash safety of a render run: crashed vs failed jobs, retries, and a kill at every step of staging and packing."""

from __future__ import annotations

import json
import os
import shutil
import signal
from pathlib import Path

import pytest

import character4d.jobs.runner as runner_module
from character4d.cli import main
from character4d.format import ShardWriter, open_samples
from character4d.jobs import make_jobs, manifest_name, run_jobs
from tests.character4d.fake_sample import make_fake_sample

REPO = Path(__file__).resolve().parents[2]
TINY = ["--resolution", "8", "--views", "1", "--frames", "2", "--quiet"]


@pytest.fixture
def fake_worker(tmp_path, monkeypatch):
    """Inputs, and the bpy-free worker of tests/character4d/fake_worker.py behind the real subprocess path."""
    control = tmp_path / "control"
    control.mkdir()
    monkeypatch.setenv("CHARACTER4D_WORKER_MODULE", "tests.character4d.fake_worker")
    monkeypatch.setenv("C4D_FAKE_WORKER_DIR", str(control))
    monkeypatch.setenv("PYTHONPATH", str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    inputs = tmp_path / "in"
    for name in ("chars/ann.glb", "chars/bob.glb", "motions/walk.bvh"):
        (inputs / name).parent.mkdir(parents=True, exist_ok=True)
        (inputs / name).write_bytes(b"stand-in: the fake worker does not read it")
    return control, inputs


def _calls(control: Path, key: str) -> int:
    return len(list(control.glob(f"call-{key}-*")))


def _render(inputs: Path, out: Path, *extra: str) -> int:
    return main(["render", "--characters", str(inputs / "chars"), "--motions", str(inputs / "motions"),
                 "--out", str(out), *TINY, *extra])


def test_a_sigkilled_worker_is_crashed_and_retried_a_bad_input_is_failed(fake_worker, tmp_path, capsys):
    control, inputs = fake_worker
    out = tmp_path / "out"
    (control / "kill-ann__walk").touch()  # the first attempt's worker is SIGKILLed
    (control / "bad-bob__walk").touch()
    assert _render(inputs, out) == 1
    text = capsys.readouterr().out
    assert "0 rendered" in text and "1 failed (bad input), 1 crashed" in text
    assert "CRASHED ann__walk" in text and "SIGKILL" in text and "FAILED bob__walk" in text
    jobs = json.loads((out / manifest_name(0, 1)).read_text())["jobs"]
    assert jobs["ann__walk"]["status"] == "crashed" and jobs["ann__walk"]["attempts"] == 1
    assert jobs["bob__walk"]["status"] == "failed"

    # The next run retries the crash, not the bad input.
    assert _render(inputs, out) == 1
    assert "1 rendered" in capsys.readouterr().out
    assert (_calls(control, "ann__walk"), _calls(control, "bob__walk")) == (2, 1)
    # --retry-failed retries the bad input too (here it has been fixed meanwhile).
    (control / "bad-bob__walk").unlink()
    assert _render(inputs, out, "--retry-failed") == 0
    assert _calls(control, "bob__walk") == 2
    assert sorted(s.key for s in open_samples(out)) == ["ann__walk", "bob__walk"]
    # Jobs travel with absolute paths.
    sent = json.loads(next(control.glob("call-ann__walk-*")).read_text())
    assert all(Path(p).is_absolute() for p in sent)


def test_a_job_that_keeps_crashing_gets_max_attempts(fake_worker, tmp_path, capsys):
    control, inputs = fake_worker
    out = tmp_path / "out"
    (control / "always-kill-ann__walk").touch()
    for _ in range(4):
        assert _render(inputs, out, "--max-attempts", "3") == 1
    assert _calls(control, "ann__walk") == 3 and _calls(control, "bob__walk") == 1
    assert "CRASHED ann__walk" in capsys.readouterr().out
    (control / "always-kill-ann__walk").unlink()
    assert _render(inputs, out, "--retry-failed") == 0
    assert _calls(control, "ann__walk") == 4


# ---------------------------------------------------------------------------- a kill at every step

_JOBS = make_jobs([Path(f"c{i}.vrm") for i in range(3)], [Path("m0.fbx")])  # 3 jobs; parts of 2


def _run(out: Path, calls: Path, kill_at: int | None) -> None:
    """In a forked child: run the slice, SIGKILLing itself right before the kill_at-th file-system step."""
    counter = [0]

    def step() -> None:
        counter[0] += 1
        if counter[0] == kill_at:
            os.kill(os.getpid(), signal.SIGKILL)

    def wrap(owner, name):
        original = getattr(owner, name)

        def wrapped(*args, **kwargs):
            step()
            return original(*args, **kwargs)

        setattr(owner, name, wrapped)

    # Every write that makes progress durable or visible, and every clean-up: renames, fsyncs (file
    # data, folders, manifests, tars), removals, each sample appended to a tar.
    for owner, name in ((os, "replace"), (os, "rename"), (os, "fsync"), (shutil, "rmtree"), (os, "unlink"),
                        (ShardWriter, "write")):
        wrap(owner, name)

    def render(job, scratch):
        step()
        (calls / f"{job.key}.{os.getpid()}").write_text("called")
        return make_fake_sample(job.key, views=1, frames=1, size=8, depth=False, mask=False)

    run_jobs(_JOBS, render, out, samples_per_tar=2, progress=False)


def _fork(out: Path, calls: Path, kill_at: int | None) -> int:
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        try:
            _run(out, calls, kill_at)
            code = 0
        except BaseException:  # noqa: BLE001
            code = 3
        os._exit(code)
    _, status = os.waitpid(pid, 0)
    return -os.WTERMSIG(status) if os.WIFSIGNALED(status) else os.WEXITSTATUS(status)


def test_kill_at_every_step_of_staging_and_packing_resumes_intact(tmp_path):
    keys = [job.key for job in _JOBS]
    kill_at, killed_runs = 1, 0
    while True:
        out, calls = tmp_path / f"out{kill_at}", tmp_path / f"calls{kill_at}"
        calls.mkdir()
        code = _fork(out, calls, kill_at)
        if code == 0:
            break  # the run finished before reaching step kill_at: every step has been tried
        assert code == -signal.SIGKILL
        killed_runs += 1
        manifest = out / manifest_name(0, 1)
        before = json.loads(manifest.read_text())["jobs"] if manifest.exists() else {}
        done_before = {k for k, e in before.items() if e["status"] == "done"}
        assert _fork(out, calls, None) == 0, f"resume after a kill at step {kill_at} failed"
        # Every sample exactly once, each one decoding in full; nothing temporary left.
        samples = list(open_samples(out))
        assert sorted(s.key for s in samples) == keys, f"kill at step {kill_at}"
        for sample in samples:
            sample.validate(decode=True)
        assert not [p for p in out.rglob("*") if ".tmp" in p.name], f"kill at step {kill_at}"
        assert not any((out / ".staging").iterdir())
        jobs = json.loads(manifest.read_text())["jobs"]
        assert all(e["status"] == "done" for e in jobs.values())
        counts = {key: len(list(calls.glob(key + ".*"))) for key in keys}
        assert all(counts[key] == 1 for key in done_before), f"kill at step {kill_at}: finished job rendered again"
        assert all(1 <= counts[key] <= 2 for key in keys)
        kill_at += 1
    assert killed_runs > 30  # 3 jobs x (render, fsyncs, renames) + manifests + 2 tars + clean-ups


def test_a_damaged_staged_sample_never_enters_a_tar(tmp_path):
    out = tmp_path / "out"
    jobs = _JOBS[:2]

    def render(job, scratch):
        return make_fake_sample(job.key, views=1, frames=1, size=8, depth=False, mask=False)

    # Part of 3 jobs but the slice has 2... render the first job only, leaving it staged.
    def stop_after_first(job, scratch):
        if job.key == jobs[1].key:
            raise KeyboardInterrupt
        return render(job, scratch)

    with pytest.raises(KeyboardInterrupt):
        run_jobs(jobs, stop_after_first, out, samples_per_tar=2, progress=False)
    staged = out / ".staging" / jobs[0].key / "motion" / "view00" / "000.png"
    data = staged.read_bytes()
    staged.write_bytes(data[: len(data) // 2])  # what a power loss without fsync could leave
    summary = run_jobs(jobs, render, out, samples_per_tar=2, progress=False)
    assert jobs[0].key in summary.crashed and "damaged" in summary.crashed[jobs[0].key]
    assert [s.key for s in open_samples(out)] == [jobs[1].key]
    again = run_jobs(jobs, render, out, samples_per_tar=2, progress=False)
    assert again.done == (jobs[0].key,) and again.ok
    for sample in open_samples(out):
        sample.validate(decode=True)
    assert sorted(s.key for s in open_samples(out)) == sorted(j.key for j in jobs)


def test_staged_files_are_fsynced_before_the_rename(tmp_path, monkeypatch):
    from character4d.format import write_folder_sample

    events = []
    real_fsync, real_rename = os.fsync, os.rename
    monkeypatch.setattr(os, "fsync", lambda fd: (events.append("fsync"), real_fsync(fd))[1])
    monkeypatch.setattr(os, "rename", lambda a, b: (events.append("rename"), real_rename(a, b))[1])
    sample = make_fake_sample("a__b", views=1, frames=1, size=8, depth=False, mask=False)
    write_folder_sample(sample, tmp_path)
    # One fsync per file (7 fields) and per folder, all before the one rename; the root after it.
    assert events.index("rename") >= len(sample.files) + 1
    assert events.count("rename") == 1 and events[-1] == "fsync"
    assert runner_module.DEFAULT_MAX_ATTEMPTS == 3


def _children(pid: int) -> list[int]:
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            found.append(int(stat.parent.name))
    return found


@pytest.mark.blender
@pytest.mark.slow
def test_a_blender_worker_killed_with_sigkill_is_retried(default_data, tmp_path):
    """The real worker, SIGKILLed mid-render (as the OOM killer does): crashed, then rendered by the next run."""
    import subprocess
    import sys
    import time

    chars, motions = default_data
    out = tmp_path / "out"
    cmd = [sys.executable, "-m", "character4d.cli", "render", "--out", str(out), "--characters", str(chars["ada"]),
           "--motions", str(motions["wave"]), "--resolution", "32", "--views", "2", "--frames", "2",
           "--samples", "1", "--fps", "5", "--quiet"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline, workers = time.time() + 120, []
    while time.time() < deadline and not workers and proc.poll() is None:
        workers = [c for c in _children(proc.pid) if b"character4d.blender.worker" in
                   Path(f"/proc/{c}/cmdline").read_bytes()] if Path(f"/proc/{proc.pid}").exists() else []
        time.sleep(0.05)
    assert workers, "the render should start a Blender worker"
    os.kill(workers[0], signal.SIGKILL)
    stdout, _ = proc.communicate(timeout=120)
    assert proc.returncode == 1 and "CRASHED ada__wave" in stdout and "SIGKILL" in stdout, stdout
    again = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert again.returncode == 0 and "1 rendered" in again.stdout, again.stdout + again.stderr
    (sample,) = open_samples(out)
    sample.validate(decode=True)


def test_render_codec_option_reaches_the_shards(fake_worker, tmp_path):
    control, inputs = fake_worker
    out = tmp_path / "out"
    assert _render(inputs, out, "--codec", "webp-view") == 0
    samples = list(open_samples(out))
    assert sorted(s.key for s in samples) == ["ann__walk", "bob__walk"]
    for sample in samples:
        assert "v00.webp" in sample.files and "pose.v00.webp" in sample.files and "apose.v00.webp" in sample.files
        sample.validate(decode=True)
        reference = make_fake_sample(sample.key, views=1, frames=2, size=8, depth=False, mask=False)
        for f in range(2):
            visible = reference.frame(0, f) * (reference.frame(0, f)[..., 3:] > 0)
            assert (sample.frame(0, f) == visible).all() and (sample.pose(0, f) == reference.pose(0, f)).all()
    manifest = json.loads((out / manifest_name(0, 1)).read_text())
    assert manifest["config"]["codec"] == "webp-view"
