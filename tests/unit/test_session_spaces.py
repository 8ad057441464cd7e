"""The demo's per-visitor spaces: removed (their jobs cancelled first) once their session is gone."""

from __future__ import annotations

import os
import time

import pytest

from oaviz.errors import DataError
from oaviz.services import jobs, session_spaces


@pytest.fixture()
def home(tmp_path, monkeypatch):
    monkeypatch.setenv("OAVIZ_HOME", str(tmp_path))
    return tmp_path


def _space(sid: str, age_s: float) -> None:
    root = session_spaces.cohorts_root(sid, create=True)
    (root / "upload").mkdir()
    t = time.time() - age_s
    os.utime(session_spaces.space_dir(sid) / session_spaces.HEARTBEAT, (t, t))


def test_sweep_removes_ended_sessions_and_keeps_live_and_recent_ones(home):
    _space("gone", age_s=600)
    _space("alive", age_s=600)
    _space("just-left", age_s=5)         # may still reconnect (disconnected-session TTL)
    job = jobs.start_command(["sleep", "60"], home / "runs" / "r1", kind="synth", expects_events=False, owner="gone")
    other = jobs.start_command(["sleep", "60"], home / "runs" / "r2", kind="synth", expects_events=False,
                               owner="alive")
    try:
        removed = session_spaces.sweep(lambda sid: sid == "alive", grace_s=120)
        assert removed == ["gone"]
        assert sorted(p.name for p in session_spaces.sessions_dir().iterdir()) == ["alive", "just-left"]
        assert jobs.read_job(job.run_dir).status == "cancelled"      # the ended visitor's job is stopped
        assert jobs.read_job(other.run_dir).status == "running"
    finally:
        for j in jobs.running_jobs(home / "runs"):
            jobs.cancel(j.run_dir, grace_s=1)


def test_a_session_id_cannot_name_a_folder_outside_the_spaces(home):
    for bad in ("..", "a/b", "", "x" * 65):
        with pytest.raises(DataError):
            session_spaces.space_dir(bad)
