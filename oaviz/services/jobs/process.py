"""A job's process and files: run folders, job.json, log.txt, and whether the process still lives.

Linux /proc is read to tell a zombie or a reused pid from a live job, so a
server restarted after it started a job (no Popen handle) still judges it right.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import time
from pathlib import Path

from oaviz.data.atomic import write_json
from oaviz.errors import DataError
from oaviz.paths import runs_dir

JOB_FILE = "job.json"
LOG_FILE = "log.txt"

# Popen objects of jobs started by this process: polling them reaps finished
# children (a zombie still answers kill(pid, 0)) and yields their exit codes.
_PROCS: dict[str, subprocess.Popen] = {}


# ----------------------------------------------------------------- files
def new_run_dir(prefix: str, root: str | os.PathLike | None = None) -> Path:
    """A fresh run folder ``<root>/<prefix>-YYYYmmdd-HHMMSS[-n]`` (created)."""
    base = Path(root) if root is not None else runs_dir()
    base.mkdir(parents=True, exist_ok=True)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    safe = re.sub(r"[^\w.-]+", "-", prefix).strip("-") or "job"
    for n in range(1000):
        d = base / (f"{safe}-{stamp}" if n == 0 else f"{safe}-{stamp}-{n}")
        try:
            d.mkdir()
            return d
        except FileExistsError:
            continue
    raise DataError("could not create a unique run folder", base)


def read_job_file(run_dir: Path) -> dict:
    """job.json of a run folder ({} when there is none or it cannot be read)."""
    p = run_dir / JOB_FILE
    if not p.is_file():
        return {}
    try:
        return json.loads(p.read_text())
    except (json.JSONDecodeError, OSError):
        return {}


def write_job_file(run_dir: Path, info: dict) -> None:
    write_json(run_dir / JOB_FILE, info)


def log_tail(run_dir: str | os.PathLike, n_lines: int = 40) -> str:
    """Last lines of a job's stdout/stderr (carriage-return progress collapsed)."""
    p = Path(run_dir) / LOG_FILE
    if not p.is_file():
        return ""
    with p.open("rb") as f:
        f.seek(0, os.SEEK_END)
        f.seek(max(0, f.tell() - 64_000))
        text = f.read().decode("utf-8", errors="replace")
    lines = [ln.rsplit("\r", 1)[-1] for ln in text.splitlines()]
    return "\n".join(lines[-n_lines:])


# ----------------------------------------------------------------- processes
def proc_start_ticks(pid: int) -> int | None:
    """Start time of a process in clock ticks since boot (Linux), to tell a reused pid apart."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # Field 2 (comm) may contain spaces; fields after the closing parenthesis are fixed.
    rest = stat.rsplit(")", 1)[-1].split()
    try:
        return int(rest[19])
    except (IndexError, ValueError):
        return None


def _pid_alive(pid: int, start_ticks: int | None) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # exists, belongs to someone else
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[-1].split()[0]
        if state in ("Z", "X"):
            return False  # zombie: finished, not yet reaped by its parent
    except OSError:
        pass
    if start_ticks is not None:
        now_ticks = proc_start_ticks(pid)
        if now_ticks is not None and now_ticks != start_ticks:
            return False  # the pid was reused by another process
    return True


def poll(run_dir: Path, info: dict) -> tuple[bool, int | None]:
    """(alive, exit_code) of a job's process; the exit code is None when unknown.

    A child of this process that has ended is reaped and its exit code recorded in job.json.
    """
    proc = _PROCS.get(str(run_dir))
    if proc is not None:
        code = proc.poll()
        if code is None:
            return True, None
        if info.get("exit_code") is None:
            info["exit_code"] = code
            info["ended"] = info.get("ended") or time.time()
            write_job_file(run_dir, info)
        return False, code
    if info.get("exit_code") is not None:
        return False, int(info["exit_code"])
    pid = info.get("pid")
    if not pid:
        return False, None
    return _pid_alive(int(pid), info.get("pid_start_ticks")), None


def signal_group(pid: int, sig: int) -> None:
    """Send ``sig`` to the job's process group (start_new_session made it the leader), else to the pid."""
    try:
        os.killpg(os.getpgid(pid), sig)
    except (ProcessLookupError, PermissionError):
        try:
            os.kill(pid, sig)
        except (ProcessLookupError, PermissionError):
            pass
