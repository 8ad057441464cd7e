"""What a job is doing, read back from its run folder: status, progress, ETA, error.

Status rules, in order: ``cancelled`` when job.json says so; ``finished`` /
``failed`` from an end / error event; ``running`` while the process lives;
otherwise the exit code decides (0 → finished) and, when it is unknown, a job
that promised events but wrote no end event has ``failed`` (it crashed or was
killed), while one without events is ``finished`` only if its output exists and
was written after the job started.
A run started from the command line (no job.json, so no pid) counts as running
while its events keep coming.
"""

from __future__ import annotations

import json
import os
import re
import signal
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from oaviz.paths import runs_dir
from oaviz.services.jobs.process import JOB_FILE, log_tail, poll, read_job_file
from oaviz.training.events import EVENTS_FILE, Event, first_event, last_event, read_events

STATUSES = ("running", "finished", "failed", "cancelled")
# A command-line run without an event for this long is reported failed.
STALE_AFTER_S = 600.0
# Progress of commands that print "rendered 120/1800 images" instead of writing events (oaviz synth).
_LOG_PROGRESS = re.compile(r"rendered (\d+)/(\d+)")


@dataclass
class Job:
    """What a page needs to show one job (all read from its run folder)."""

    run_dir: Path
    kind: str                      # "train", "synth", "import", … (first word after `oaviz`)
    title: str
    argv: list[str]
    status: str                    # one of STATUSES
    started: float | None          # unix time
    ended: float | None = None
    pid: int | None = None
    progress: float | None = None  # 0..1, None when unknown
    eta_s: float | None = None
    message: str = ""              # one line for the status column
    error: dict | None = None      # the error event ({"type", "message"}) of a failed job
    exit_code: int | None = None
    output: str | None = None      # checkpoint / cohort folder the job writes
    n_events: int = 0
    owner: str | None = None       # who started it (a visitor's session in the app), from job.json
    extra: dict = field(default_factory=dict)

    @property
    def name(self) -> str:
        return self.run_dir.name

    @property
    def command(self) -> str:
        """The command line as a user would type it ('' when the run folder does not say)."""
        if not self.argv:
            return ""
        args = self.argv[3:] if self.argv[1:3] == ["-m", "oaviz"] else self.argv[1:]
        head = "oaviz" if self.argv[1:3] == ["-m", "oaviz"] else Path(self.argv[0]).name
        return " ".join([head, *(_quote(a) for a in args)])

    @property
    def is_active(self) -> bool:
        return self.status == "running"


def _quote(a: str) -> str:
    return a if re.fullmatch(r"[\w@%+=:,./-]+", a) else "'" + a.replace("'", "'\\''") + "'"


def read_job(run_dir: str | os.PathLike, now: float | None = None) -> Job:
    """The current state of the job in ``run_dir`` (see the module docstring for the rules)."""
    run_dir = Path(run_dir)
    now = time.time() if now is None else now
    info = read_job_file(run_dir)
    events = read_events(run_dir / EVENTS_FILE)
    argv = info.get("argv")
    if argv is None:  # a run started from the command line: argv.json holds its arguments
        argv = _cli_argv(run_dir)
    kind = info.get("kind") or (argv[3] if argv[1:3] == ["-m", "oaviz"] and len(argv) > 3 else "run")
    job = Job(run_dir=run_dir, kind=kind, title=info.get("title") or run_dir.name, argv=list(argv),
              status="running", started=info.get("started"), pid=info.get("pid"), output=info.get("output"),
              n_events=len(events), exit_code=info.get("exit_code"), owner=info.get("owner"))
    if job.started is None and events:
        job.started = events[0].get("t")

    end, err = last_event(events, "end"), last_event(events, "error")
    _fill_progress(job, events, run_dir, now)

    if info:
        alive, code = poll(run_dir, info)
        job.exit_code = code if code is not None else job.exit_code
    else:
        last_t = events[-1].get("t", 0) if events else 0
        alive = bool(events) and now - float(last_t) < STALE_AFTER_S

    if info.get("cancelled"):
        job.status, job.ended = "cancelled", info.get("cancelled")
        job.message = "cancelled" + (" (stopping…)" if alive else "")
    elif end is not None:
        job.status, job.ended = "finished", end.get("t")
        job.progress = 1.0
        job.eta_s = 0.0
        job.output = end.get("checkpoint") or job.output
        job.extra["metrics"] = end.get("metrics") or {}
        job.message = "finished" if end.get("status", "finished") == "finished" else f"finished ({end['status']})"
    elif err is not None:
        job.status, job.ended = "failed", err.get("t")
        job.error = {"type": err.get("type", "Error"), "message": err.get("message", "")}
        job.message = f"{job.error['type']}: {job.error['message']}"
    elif alive:
        job.status = "running"
    else:
        job.ended = info.get("ended") or job.ended
        expects_events = info.get("expects_events", True)
        if job.exit_code == 0 and not expects_events:
            job.status, job.progress, job.message = "finished", 1.0, "finished"
        elif job.exit_code is None and not expects_events and _written_by(job):
            job.status, job.progress, job.message = "finished", 1.0, "finished"
        else:
            job.status = "failed"
            job.error = {"type": "ProcessDied", "message": _death_message(job, run_dir, expects_events)}
            job.message = job.error["message"]
    if job.status in ("failed", "cancelled"):
        job.eta_s = None
    return job


def _written_by(job: Job) -> bool:
    """The job's output exists and was written after the job started: an older folder of the same name
    (a second `oaviz synth` to an existing cohort exits 2 and writes nothing) is not this job's result."""
    if not job.output or not Path(job.output).exists():
        return False
    if job.started is None:
        return True
    return Path(job.output).stat().st_mtime >= float(job.started) - 1.0   # 1 s: coarse file-system clocks


def _cli_argv(run_dir: Path) -> list[str]:
    """argv of a run started by hand, from its argv.json (a list, with or without the program name)."""
    try:
        raw = json.loads((run_dir / "argv.json").read_text())
    except (OSError, json.JSONDecodeError):
        return []
    if isinstance(raw, dict):
        raw = raw.get("argv", [])
    args = [str(a) for a in raw] if isinstance(raw, list) else []
    if args and Path(args[0]).name in ("oaviz", "__main__.py", "-m"):
        args = args[1:]
    if args and args[0] == "oaviz":
        args = args[1:]
    return [sys.executable, "-m", "oaviz", *args] if args else []


def _death_message(job: Job, run_dir: Path, expects_events: bool) -> str:
    tail = [ln for ln in log_tail(run_dir, 20).splitlines() if ln.strip()]
    last = tail[-1].strip() if tail else ""
    if job.exit_code is not None and job.exit_code < 0:
        what = f"killed by signal {signal.Signals(-job.exit_code).name}" if -job.exit_code in signal.valid_signals() \
            else f"killed by signal {-job.exit_code}"
    elif job.exit_code is not None:
        what = f"exited with code {job.exit_code}"
    else:
        what = "the process is gone" + (" without an end event" if expects_events else "")
    return f"{what}" + (f" — last output: {last}" if last else "")


def _fill_progress(job: Job, events: list[Event], run_dir: Path, now: float) -> None:
    """Progress fraction and ETA from the last events (or from the log for event-less commands)."""
    start = last_event(events, "start")  # the last one, after a resume
    last_step = last_event(events, "step", "epoch")
    if start is not None:
        job.extra["start"] = start
        epochs = start.get("epochs") or 0
        spe = start.get("steps_per_epoch") or 0
        total = epochs * spe
        frac = 0.0
        step = next((e for e in reversed(events) if e["event"] == "step" and e.get("global_step") is not None), None)
        if step is not None and total:
            frac = float(step["global_step"]) / total
        epoch_events = [e for e in events if e["event"] == "epoch" and e.get("epoch") is not None]
        if epoch_events and epochs:
            # Epochs may be numbered from 0 or 1; an epoch event means that epoch is complete.
            base = 0 if any(int(e["epoch"]) == 0 for e in epoch_events) else 1
            frac = max(frac, (int(epoch_events[-1]["epoch"]) - base + 1) / epochs)
        job.progress = min(max(frac, 0.0), 1.0)
        if last_step is not None and last_step.get("eta_s") is not None:
            job.eta_s = max(0.0, float(last_step["eta_s"]) - max(0.0, now - float(last_step.get("t", now))))
        return
    if not events:
        found = _LOG_PROGRESS.findall(log_tail(run_dir, 5))
        done, total = map(int, found[-1]) if found else (0, 0)
        if total > 0:
            job.progress = min(done / total, 1.0)
            if job.started and done:
                elapsed = now - float(job.started)
                job.eta_s = elapsed * (total - done) / done


def list_jobs(root: str | os.PathLike | None = None, limit: int | None = None) -> list[Job]:
    """Jobs under ``root`` (default runs_dir()), newest first: folders with job.json or events.jsonl.

    Only the newest ``limit`` folders are read in full (their start time comes from
    job.json, or the first event of a run started from the command line).
    """
    base = Path(root) if root is not None else runs_dir()
    if not base.is_dir():
        return []
    dirs = [d for d in base.iterdir() if d.is_dir() and not d.name.startswith(".")
            and ((d / JOB_FILE).is_file() or (d / EVENTS_FILE).is_file())]
    dirs.sort(key=_started, reverse=True)
    return [read_job(d) for d in (dirs[:limit] if limit else dirs)]


def _started(run_dir: Path) -> float:
    info = read_job_file(run_dir)
    if info.get("started"):
        return float(info["started"])
    first = first_event(run_dir / EVENTS_FILE)
    try:
        return float(first.get("t", 0.0)) if first else 0.0
    except (TypeError, ValueError):
        return 0.0
