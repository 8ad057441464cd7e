"""Starting and cancelling jobs: any command in its own session (process group), output to log.txt."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from oaviz.errors import DataError
from oaviz.paths import REPO_ROOT
from oaviz.services.jobs.limits import JobLimits, admit, current_policy, start_lock
from oaviz.services.jobs.process import (
    _PROCS, JOB_FILE, LOG_FILE, poll, proc_start_ticks, read_job_file, signal_group, write_job_file,
)
from oaviz.services.jobs.status import Job, read_job


def start_command(cmd: list[str], run_dir: str | os.PathLike, *, kind: str, title: str | None = None,
                  output: str | os.PathLike | None = None, expects_events: bool = True,
                  env: dict[str, str] | None = None, cwd: str | os.PathLike | None = None,
                  owner: str | None = None, limits: JobLimits | None = None) -> Job:
    """Start ``cmd`` in its own session (process group) with ``run_dir`` as its run folder.

    stdout and stderr go to ``run_dir/log.txt``. ``expects_events`` says whether
    the command writes ``events.jsonl`` (so a death without an end event is a crash).
    ``owner`` (who started it, recorded in job.json) and ``limits`` default to the installed
    policy (``limits.set_policy``); a job over a cap, or writing an ``output`` that a running
    job writes, raises ``JobRefused`` and leaves no run folder behind.
    Returns at once; the process outlives the caller's rerun.
    """
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    if (run_dir / JOB_FILE).exists():
        raise DataError("this run folder already holds a job", run_dir)
    if owner is None and limits is None:
        owner, limits = current_policy()
    with start_lock(run_dir.parent):
        try:
            admit(run_dir.parent, owner=owner, output=output, limits=limits)
        except DataError:
            with contextlib.suppress(OSError):
                run_dir.rmdir()   # the empty folder new_run_dir made; a used one stays
            raise
        return _launch(cmd, run_dir, kind=kind, title=title, output=output, expects_events=expects_events,
                       env=env, cwd=cwd, owner=owner)


def _launch(cmd: list[str], run_dir: Path, *, kind: str, title: str | None, output, expects_events: bool,
            env: dict[str, str] | None, cwd, owner: str | None) -> Job:
    info = {
        "kind": kind, "title": title or kind, "argv": [str(a) for a in cmd], "pid": None,
        "started": time.time(), "output": str(output) if output is not None else None,
        "expects_events": bool(expects_events), "exit_code": None, "owner": owner,
    }
    write_job_file(run_dir, info)
    full_env = {**os.environ, **(env or {}), "PYTHONUNBUFFERED": "1"}
    with open(run_dir / LOG_FILE, "ab") as log:
        try:
            proc = subprocess.Popen(
                info["argv"], stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                cwd=str(cwd) if cwd is not None else str(REPO_ROOT), env=full_env, start_new_session=True,
            )
        except OSError as e:
            info.update(exit_code=127, ended=time.time(), start_error=str(e))
            write_job_file(run_dir, info)
            raise DataError(f"could not start {cmd[0]!r}: {e}", run_dir) from None
    _PROCS[str(run_dir)] = proc
    info["pid"] = proc.pid
    info["pid_start_ticks"] = proc_start_ticks(proc.pid)
    write_job_file(run_dir, info)
    return read_job(run_dir)


def start_oaviz(args: list[str], run_dir: str | os.PathLike, **kwargs) -> Job:
    """Start ``oaviz ARGS…`` (as ``python -m oaviz``, the interpreter of this app) as a job."""
    return start_command([sys.executable, "-m", "oaviz", *map(str, args)], run_dir, **kwargs)


def cancel(run_dir: str | os.PathLike, grace_s: float = 5.0) -> Job:
    """Stop a running job: SIGTERM to its process group, SIGKILL after ``grace_s``; mark it cancelled."""
    run_dir = Path(run_dir)
    info = read_job_file(run_dir)
    if not info:
        raise DataError("not a job started by oaviz (no job.json), cannot cancel", run_dir)
    job = read_job(run_dir)
    if job.status != "running":
        return job
    pid = int(info["pid"])
    info["cancelled"] = time.time()
    write_job_file(run_dir, info)
    signal_group(pid, signal.SIGTERM)
    deadline = time.monotonic() + grace_s
    while time.monotonic() < deadline:
        if not poll(run_dir, info)[0]:
            break
        time.sleep(0.05)
    else:
        signal_group(pid, signal.SIGKILL)
        t_kill = time.monotonic()
        while poll(run_dir, info)[0] and time.monotonic() - t_kill < 2.0:
            time.sleep(0.05)
    return read_job(run_dir)
