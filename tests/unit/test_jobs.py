"""Jobs run as real subprocesses: progress from events, finish, cancel (whole process group), crashes."""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

import pytest

from oaviz.services import jobs

# A stand-in for `oaviz train`: writes events in the contract's format. Modes:
#   ok       1 epoch of 10 steps; stops after step 5 until the file GO exists, then finishes
#   forever  a step every 50 ms until killed; starts a `sleep` child first (to check the group is killed)
#   crash    3 steps, then dies with exit code 3 and no end event
#   error    an error event, then exit code 2
FAKE = r'''
import json, os, subprocess, sys, time
run_dir, mode = sys.argv[1], sys.argv[2]
f = open(os.path.join(run_dir, "events.jsonl"), "a")
def ev(**e):
    e["t"] = time.time(); f.write(json.dumps(e) + "\n"); f.flush()
print("fake trainer starting", flush=True)
if mode == "error":
    ev(event="error", type="DataError", message="cohort has no train split")
    sys.exit(2)
steps = 10**9 if mode == "forever" else 10
ev(event="start", model="fake", epochs=1, steps_per_epoch=10, device="cpu", world_size=1, out="x")
if mode == "forever":
    child = subprocess.Popen(["sleep", "60"])
    open(os.path.join(run_dir, "child.pid"), "w").write(str(child.pid))
for s in range(1, steps + 1):
    ev(event="step", epoch=0, step=s, global_step=s, loss=1.0 / s, terms={"mse": 0.5 / s}, images_per_s=100.0,
       eta_s=(10 - s) * 1.0)
    if mode == "crash" and s == 3:
        print("about to fall over", flush=True)
        os._exit(3)
    if mode == "ok" and s == 5:
        while not os.path.exists(os.path.join(run_dir, "GO")):
            time.sleep(0.02)
    if mode == "forever":
        time.sleep(0.05)
ev(event="epoch", epoch=0, train={"total": 0.3}, val={"total": 0.4}, elapsed_s=1.0, eta_s=0.0)
ev(event="end", status="finished", checkpoint=os.path.join(run_dir, "checkpoint"), metrics={"val_total": 0.4})
'''


@pytest.fixture()
def fake(tmp_path) -> Path:
    p = tmp_path / "fake_train.py"
    p.write_text(FAKE)
    return p


def _start(fake: Path, tmp_path: Path, mode: str) -> tuple[jobs.Job, Path]:
    run = tmp_path / "runs" / f"fake-{mode}"
    job = jobs.start_command([sys.executable, str(fake), str(run), mode], run, kind="train", title=f"fake {mode}")
    return job, run


def _wait(run: Path, pred, timeout: float = 20.0) -> jobs.Job:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job = jobs.read_job(run)
        if pred(job):
            return job
        time.sleep(0.05)
    raise AssertionError(f"timed out; last state {job.status} progress={job.progress} message={job.message}")


def _gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    try:  # a zombie (dead, not reaped by a parent that is itself gone) counts as gone
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[-1].split()[0] in ("Z", "X")
    except OSError:
        return True


def test_progress_then_finish(fake, tmp_path):
    job, run = _start(fake, tmp_path, "ok")
    assert job.status == "running" and job.pid and job.kind == "train"
    assert json.loads((run / "job.json").read_text())["argv"][1] == str(fake)

    half = _wait(run, lambda j: j.n_events >= 6)  # start + 5 steps, then the fake waits for GO
    assert half.status == "running"
    assert half.progress == pytest.approx(0.5)   # global_step 5 / (1 epoch × 10 steps)
    assert 0 < half.eta_s <= 5.0                  # the event's 5 s, less the time since it was written
    curve = jobs.loss_curve(run)
    assert list(curve["global_step"]) == [1, 2, 3, 4, 5]
    assert curve["loss"].tolist() == pytest.approx([1, 1 / 2, 1 / 3, 1 / 4, 1 / 5])
    assert curve["term:mse"].iloc[-1] == pytest.approx(0.1)

    (run / "GO").touch()
    done = _wait(run, lambda j: j.status != "running")
    assert done.status == "finished" and done.progress == 1.0 and done.eta_s == 0.0
    assert done.output == str(run / "checkpoint")
    assert done.extra["metrics"] == {"val_total": 0.4}
    assert done.exit_code == 0
    assert "fake trainer starting" in jobs.log_tail(run)
    ep = jobs.epoch_curve(run)
    assert set(zip(ep["split"], ep["value"])) == {("train", 0.3), ("val", 0.4)}


def test_cancel_kills_the_process_group(fake, tmp_path):
    job, run = _start(fake, tmp_path, "forever")
    _wait(run, lambda j: j.n_events >= 3 and (run / "child.pid").exists())
    child = int((run / "child.pid").read_text())
    t0 = time.monotonic()
    out = jobs.cancel(run, grace_s=5)
    assert time.monotonic() - t0 < 5  # SIGTERM was enough, no wait for the SIGKILL fallback
    assert out.status == "cancelled"
    assert _gone(job.pid)
    deadline = time.monotonic() + 5
    while not _gone(child) and time.monotonic() < deadline:  # the `sleep` child got the signal too
        time.sleep(0.05)
    assert _gone(child)
    assert jobs.read_job(run).status == "cancelled"  # stays cancelled, not "failed"
    assert jobs.cancel(run).status == "cancelled"     # cancelling twice is harmless


def test_crash_without_end_event_is_failed(fake, tmp_path):
    _, run = _start(fake, tmp_path, "crash")
    job = _wait(run, lambda j: j.status != "running")
    assert job.status == "failed"
    assert job.exit_code == 3
    assert job.error["type"] == "ProcessDied"
    assert "exited with code 3" in job.error["message"] and "about to fall over" in job.error["message"]
    assert job.progress == pytest.approx(0.3)


def test_error_event_is_shown(fake, tmp_path):
    _, run = _start(fake, tmp_path, "error")
    job = _wait(run, lambda j: j.status != "running")
    assert job.status == "failed"
    assert job.error == {"type": "DataError", "message": "cohort has no train split"}


def test_dead_pid_seen_from_another_server_process(fake, tmp_path):
    """Without our Popen handle (as after an app restart) a dead pid is still detected — here a zombie,
    which answers kill(pid, 0) until its parent reaps it."""
    job, run = _start(fake, tmp_path, "crash")
    proc = jobs._PROCS.pop(str(run))  # forget the handle; keep the child unreaped
    try:
        deadline = time.monotonic() + 20
        while not _gone(job.pid) and time.monotonic() < deadline:
            time.sleep(0.02)
        state = jobs.read_job(run)
        assert state.status == "failed" and state.exit_code is None
        assert "the process is gone without an end event" in state.error["message"]
    finally:
        proc.wait()
    assert jobs.read_job(run).status == "failed"


def test_command_line_runs_without_job_file(tmp_path):
    """Run folders written by `oaviz train` typed in a terminal are listed too (no pid: judged by events)."""
    now = time.time()
    done = tmp_path / "beta_vae-20260101-000000"
    done.mkdir()
    (done / "argv.json").write_text(json.dumps(["train", "beta_vae", "--data", "c", "--out", "o"]))
    lines = [{"t": now - 100, "event": "start", "epochs": 2, "steps_per_epoch": 5},
             {"t": now - 50, "event": "end", "status": "finished", "checkpoint": "o", "metrics": {}}]
    (done / "events.jsonl").write_text("".join(json.dumps(e) + "\n" for e in lines))
    live = tmp_path / "vaesim-20260101-000001"
    live.mkdir()
    lines = [{"t": now - 20, "event": "start", "epochs": 2, "steps_per_epoch": 5},
             {"t": now - 1, "event": "step", "global_step": 3, "loss": 0.5, "eta_s": 30.0}]
    (live / "events.jsonl").write_text("".join(json.dumps(e) + "\n" for e in lines) + '{"t": 1, "event": "st')
    stale = tmp_path / "cnn-20260101-000002"
    stale.mkdir()
    (stale / "events.jsonl").write_text(json.dumps({"t": now - 3600, "event": "start", "epochs": 1,
                                                     "steps_per_epoch": 1}) + "\n")

    listed = {j.name: j for j in jobs.list_jobs(tmp_path)}
    assert listed[done.name].status == "finished" and listed[done.name].kind == "train"
    assert listed[done.name].command == "oaviz train beta_vae --data c --out o"
    assert listed[live.name].status == "running"          # the partial last line is ignored
    assert listed[live.name].progress == pytest.approx(0.3)
    assert listed[stale.name].status == "failed"
    assert listed[stale.name].command == ""  # no argv.json: nothing to show, nothing to crash on
    assert [j.name for j in jobs.list_jobs(tmp_path)][0] == live.name  # newest first


def test_train_args_follow_the_cli_contract(tmp_path):
    args = jobs.train_args("beta_vae", "/c", "/r/checkpoint", "/r", preset="demo", epochs=3, max_images=100,
                           overrides={"beta": 2})
    assert args[:2] == ["train", "beta_vae"]
    pairs = dict(zip(args[2::2], args[3::2]))
    assert pairs == {"--data": "/c", "--out": "/r/checkpoint", "--preset": "demo", "--device": "auto",
                     "--run-dir": "/r", "--epochs": "3", "--max-images": "100", "--set": "beta=2"}


def test_synth_job_runs_the_real_command(tmp_path):
    out = tmp_path / "cohorts" / "tiny"
    job = jobs.start_synth(out, subjects=3, visits=(0,), size=32, seed=1, root=tmp_path / "runs")
    assert job.kind == "synth" and "oaviz synth --out" in job.command
    done = _wait(job.run_dir, lambda j: j.status != "running", timeout=120)
    assert done.status == "finished", done.message
    assert done.progress == 1.0
    from oaviz.data.cohort import load_cohort

    assert len(load_cohort(out)) == 3


def test_start_refuses_a_used_run_folder(fake, tmp_path):
    _, run = _start(fake, tmp_path, "error")
    _wait(run, lambda j: j.status != "running")
    with pytest.raises(Exception, match="already holds a job"):
        jobs.start_command([sys.executable, str(fake), str(run), "error"], run, kind="train")


def test_read_events_is_incremental_and_waits_for_complete_lines(tmp_path):
    f = tmp_path / "events.jsonl"
    f.write_text('{"t": 1, "event": "start"}\n{"t": 2, "event": "st')
    assert [e["event"] for e in jobs.read_events(f)] == ["start"]
    with open(f, "a") as out:
        out.write('ep", "global_step": 1}\nnot json\n{"t": 3, "event": "end"}\n')
    assert [e["event"] for e in jobs.read_events(f)] == ["start", "step", "end"]
    assert jobs.read_events(f)[1]["global_step"] == 1
    f.write_text('{"t": 9, "event": "error"}\n')  # rewritten (smaller): parsed again from the start
    assert [e["event"] for e in jobs.read_events(f)] == ["error"]
    assert jobs.read_events(tmp_path / "missing.jsonl") == []


def test_list_jobs_limit_reads_only_the_newest(tmp_path):
    for i in range(5):
        d = tmp_path / f"run-{i}"
        d.mkdir()
        (d / "events.jsonl").write_text(json.dumps({"t": 1000 + i, "event": "start", "epochs": 1,
                                                    "steps_per_epoch": 1}) + "\n")
    assert [j.name for j in jobs.list_jobs(tmp_path, limit=2)] == ["run-4", "run-3"]
    assert len(jobs.list_jobs(tmp_path)) == 5


def test_import_job_runs_the_real_command_and_reports_its_error(tmp_path):
    import io

    import numpy as np

    buf = io.BytesIO()
    np.savez(buf, train_images=np.zeros((4, 28, 28), np.uint8), train_labels=np.array([0, 1, 2, 3]))
    (tmp_path / "ok.npz").write_bytes(buf.getvalue())
    ok = jobs.start_import("npz", tmp_path / "ok.npz", tmp_path / "cohorts" / "ok", labels_are_kl=True,
                           root=tmp_path / "runs")
    assert ok.command.startswith("oaviz import npz ") and "--labels-are kl" in ok.command
    (tmp_path / "bad.npz").write_bytes(b"not a zip at all")
    bad = jobs.start_import("npz", tmp_path / "bad.npz", tmp_path / "cohorts" / "bad", root=tmp_path / "runs")
    ok_done = _wait(ok.run_dir, lambda j: j.status != "running", timeout=120)
    bad_done = _wait(bad.run_dir, lambda j: j.status != "running", timeout=120)
    assert ok_done.status == "finished" and ok_done.progress == 1.0
    from oaviz.data.cohort import load_cohort

    assert list(load_cohort(tmp_path / "cohorts" / "ok").metadata["kl"].astype(int)) == [0, 1, 2, 3]
    assert bad_done.status == "failed" and bad_done.exit_code == 2
    assert "bad.npz" in bad_done.error["message"]  # the command's one-line DataError, from the log
    assert not (tmp_path / "cohorts" / "bad").exists()


def test_a_job_that_wrote_nothing_is_not_finished_because_an_older_output_exists(tmp_path):
    """Seen from another server process (no exit code): a second `oaviz synth` to an existing cohort exits 2
    and writes nothing; the old folder of that name must not make it read as finished."""
    out = tmp_path / "cohorts" / "same"
    out.mkdir(parents=True)
    old = time.time() - 3600
    os.utime(out, (old, old))
    run = tmp_path / "runs" / "synth-again"
    job = jobs.start_command([sys.executable, "-c", "import sys; sys.exit(2)"], run, kind="synth",
                             output=out, expects_events=False)
    proc = jobs._PROCS.pop(str(run))          # as another process would: no Popen handle, no exit code
    proc.wait()
    state = jobs.read_job(run)
    assert state.exit_code is None and state.status == "failed", state
    os.utime(out, None)                       # an output written while the job ran counts
    assert jobs.read_job(run).status == "finished"
    assert job.output == str(out)
