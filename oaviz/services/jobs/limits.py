"""Who may start a job now: caps on running jobs per owner and in total, one writer per output folder.

``control.start_command`` calls ``admit`` under ``start_lock`` (a lock file in the runs folder
plus a thread lock), so checking the running jobs and writing the new job.json are one step
for every thread and process of a server: two clicks at once cannot both pass a cap, and two
Generate clicks for one cohort folder cannot start two writers.

The owner and the caps come from the caller or from a policy the app installs once
(``set_policy``): the UI knows which visitor is asking, the jobs layer must not import it.
"""

from __future__ import annotations

import fcntl
import os
import threading
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator

from oaviz.errors import DataError
from oaviz.services.jobs.process import JOB_FILE, read_job_file
from oaviz.services.jobs.status import Job, read_job

LOCK_FILE = ".start.lock"


@dataclass(frozen=True)
class JobLimits:
    """At most ``per_owner`` running jobs per owner and ``total`` running jobs in all (None: no cap)."""

    per_owner: int | None = None
    total: int | None = None


class JobRefused(DataError):
    """A job that may not start now: a cap is reached or its output folder is being written."""


Policy = Callable[[], "tuple[str | None, JobLimits | None]"]
_policy: Policy | None = None
_thread_lock = threading.Lock()   # flock is per open file, so threads of one process need their own lock


def set_policy(policy: Policy | None) -> None:
    """Install the function that says who is starting a job and under which caps (the app's UI does)."""
    global _policy
    _policy = policy


def current_policy() -> tuple[str | None, JobLimits | None]:
    """(owner, limits) for a job started now: the installed policy's answer, else (None, None)."""
    return _policy() if _policy is not None else (None, None)


@contextmanager
def start_lock(root: str | os.PathLike) -> Iterator[None]:
    """Exclusive start of a job under ``root`` (the runs folder), across threads and processes."""
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    with _thread_lock, open(root / LOCK_FILE, "a+") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def running_jobs(root: str | os.PathLike) -> list[Job]:
    """Running jobs started by oaviz under ``root`` (``Job.owner`` says whose).

    Only job.json files without an exit code or a cancel mark are read further, so a runs folder
    holding hundreds of finished runs costs one small read each.
    """
    base = Path(root)
    if not base.is_dir():
        return []
    out = []
    for d in base.iterdir():
        if d.name.startswith(".") or not (d / JOB_FILE).is_file():
            continue
        info = read_job_file(d)
        if not info or info.get("cancelled") or info.get("exit_code") is not None:
            continue
        job = read_job(d)
        if job.is_active:
            out.append(job)
    return out


def _same_folder(a: str | os.PathLike, b: str | os.PathLike) -> bool:
    return os.path.realpath(a) == os.path.realpath(b)


def admit(root: str | os.PathLike, *, owner: str | None, output: str | os.PathLike | None,
          limits: JobLimits | None) -> None:
    """Raise ``JobRefused`` (no path in the message: visitors read it) when the job may not start."""
    running = running_jobs(root)
    if output is not None:
        writer = next((j for j in running if j.output and _same_folder(j.output, output)), None)
        if writer is not None:
            raise JobRefused(f"a job is already writing {Path(output).name} ({writer.name}); "
                             "wait for it to finish or cancel it")
    if limits is None:
        return
    if limits.per_owner is not None and owner is not None:
        mine = sum(j.owner == owner for j in running)
        if mine >= limits.per_owner:
            raise JobRefused(f"You already have {mine} job{'s' if mine != 1 else ''} running; "
                             "wait for one to finish or cancel it.")
    if limits.total is not None and len(running) >= limits.total:
        raise JobRefused(f"The server is running {len(running)} jobs for all visitors, its limit; "
                         "try again when one has finished.")
