"""Caps on running jobs (per owner, in total) and one writer per output folder (oaviz.services.jobs.limits)."""

from __future__ import annotations

import json
import threading

import pytest

from oaviz.services import jobs

SLEEP = ["sleep", "60"]


@pytest.fixture()
def runs(tmp_path):
    """A runs folder whose jobs are all cancelled at the end of the test."""
    root = tmp_path / "runs"
    root.mkdir()
    yield root
    jobs.set_policy(None)
    for job in jobs.running_jobs(root):
        jobs.cancel(job.run_dir, grace_s=1)


def _start(root, name, **kw):
    return jobs.start_command(SLEEP, root / name, kind="synth", expects_events=False, **kw)


def test_a_fourth_job_of_one_owner_is_refused_with_a_clear_message(runs):
    caps = jobs.JobLimits(per_owner=3, total=10)
    for i in range(3):
        _start(runs, f"a{i}", owner="visitor-a", limits=caps)
    with pytest.raises(jobs.JobRefused) as e:
        _start(runs, "a3", owner="visitor-a", limits=caps)
    assert str(e.value) == "You already have 3 jobs running; wait for one to finish or cancel it."
    assert not (runs / "a3").exists()                       # the refused job left no run folder
    assert _start(runs, "b0", owner="visitor-b", limits=caps).status == "running"   # another visitor may
    jobs.cancel(runs / "a0", grace_s=1)                      # a cancelled job no longer counts
    assert _start(runs, "a4", owner="visitor-a", limits=caps).status == "running"


def test_the_total_cap_holds_across_owners(runs):
    caps = jobs.JobLimits(per_owner=3, total=2)
    _start(runs, "a0", owner="a", limits=caps)
    _start(runs, "b0", owner="b", limits=caps)
    with pytest.raises(jobs.JobRefused, match="running 2 jobs for all visitors"):
        _start(runs, "c0", owner="c", limits=caps)


def test_a_second_writer_of_one_output_folder_is_refused(runs, tmp_path):
    out = tmp_path / "cohorts" / "mini"
    _start(runs, "synth-1", output=out)
    with pytest.raises(jobs.JobRefused) as e:   # no caps at all: this holds outside the demo too
        _start(runs, "synth-2", output=tmp_path / "cohorts" / ".." / "cohorts" / "mini")
    assert "already writing mini" in str(e.value) and str(tmp_path) not in str(e.value)
    jobs.cancel(runs / "synth-1", grace_s=1)
    assert _start(runs, "synth-3", output=out).status == "running"


def test_simultaneous_starts_cannot_pass_the_cap_together(runs):
    """Eight threads start at once for one owner: exactly three jobs run (check and start are one step)."""
    caps = jobs.JobLimits(per_owner=3)
    results: list[object] = []
    barrier = threading.Barrier(8)

    def click(i):
        barrier.wait()
        try:
            results.append(_start(runs, f"t{i}", owner="a", limits=caps))
        except jobs.JobRefused as e:
            results.append(e)

    threads = [threading.Thread(target=click, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sum(isinstance(r, jobs.Job) for r in results) == 3
    assert len(jobs.running_jobs(runs)) == 3


def test_the_installed_policy_names_the_owner_and_caps(runs):
    jobs.set_policy(lambda: ("visitor-x", jobs.JobLimits(per_owner=1)))
    job = _start(runs, "p0")
    assert json.loads((job.run_dir / "job.json").read_text())["owner"] == "visitor-x"
    assert jobs.read_job(job.run_dir).owner == "visitor-x"
    with pytest.raises(jobs.JobRefused, match="You already have 1 job running"):
        _start(runs, "p1")
