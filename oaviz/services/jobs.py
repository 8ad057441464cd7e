"""Long work as jobs: the same `oaviz …` command a user would type, in its own process.

A job is a run folder. ``job.json`` (written here) records what was started
(argv, pid, start time, kind, expected output); the command itself appends
progress events to ``events.jsonl`` (format in the training contract: start /
step / epoch / end / error) and its stdout+stderr go to ``log.txt``. Everything
a page shows is read back from those files, so any number of app sessions (or
a restarted server) see the same jobs, and a job never runs inside a
Streamlit rerun.

Status rules, in order: ``cancelled`` when job.json says so; ``finished`` /
``failed`` from an end / error event; ``running`` while the process lives;
otherwise the exit code decides (0 → finished) and, when it is unknown, a job
that promised events but wrote no end event has ``failed`` (it crashed or was
killed), while one without events is ``finished`` only if its output exists.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from oaviz.data.errors import DataError
from oaviz.paths import REPO_ROOT, runs_dir

JOB_FILE = "job.json"
EVENTS_FILE = "events.jsonl"
LOG_FILE = "log.txt"
STATUSES = ("running", "finished", "failed", "cancelled")
# A run started from the command line (no job.json, so no pid) counts as running
# while its events keep coming; after this long without one it is reported failed.
STALE_AFTER_S = 600.0
# Progress of commands that print "rendered 120/1800 images" instead of writing events (oaviz synth).
_LOG_PROGRESS = re.compile(r"rendered (\d+)/(\d+)")

# Popen objects of jobs started by this process: polling them reaps finished
# children (a zombie still answers kill(pid, 0)) and yields their exit codes.
_PROCS: dict[str, subprocess.Popen] = {}
# path -> (inode, bytes parsed, events): growing event logs are parsed incrementally.
_EVENTS_CACHE: dict[str, tuple[int, int, list[dict]]] = {}


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


# ----------------------------------------------------------------- files
def read_events(path: str | os.PathLike) -> list[dict]:
    """Events of a JSON-lines file; a partial or corrupt line (a writer mid-append) is skipped.

    Polling pages call this every few seconds on growing files, so only the bytes
    appended since the last call are parsed (cached by path, inode and size).
    """
    p = Path(path)
    try:
        st = p.stat()
    except OSError:
        return []
    key = str(p.resolve())
    cached = _EVENTS_CACHE.get(key)
    if cached is not None and cached[0] == st.st_ino and cached[1] <= st.st_size:
        _, offset, events = cached
        if offset == st.st_size:
            return list(events)
    else:
        offset, events = 0, []
    with p.open("rb") as f:
        f.seek(offset)
        chunk = f.read()
    end = chunk.rfind(b"\n") + 1  # parse complete lines only; a partial last line waits for its newline
    events = events + _parse_lines(chunk[:end])
    _EVENTS_CACHE[key] = (st.st_ino, offset + end, events)
    if len(_EVENTS_CACHE) > 256:
        _EVENTS_CACHE.pop(next(iter(_EVENTS_CACHE)))
    return list(events)


def _parse_lines(data: bytes) -> list[dict]:
    out = []
    for line in data.decode("utf-8", errors="replace").splitlines():
        line = line.strip()
        if not line:
            continue
        try:
            ev = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(ev, dict) and "event" in ev:
            out.append(ev)
    return out


def _write_json(path: Path, data: dict) -> None:
    """Atomic JSON write (temp name + rename): readers never see half a file."""
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w") as f:
            json.dump(data, f, indent=2)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _read_job_file(run_dir: Path) -> dict:
    p = run_dir / JOB_FILE
    if not p.is_file():
        return {}
    try:
        return json.loads(p.read_text())
    except (json.JSONDecodeError, OSError):
        return {}


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
def _proc_start_ticks(pid: int) -> int | None:
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
        now_ticks = _proc_start_ticks(pid)
        if now_ticks is not None and now_ticks != start_ticks:
            return False  # the pid was reused by another process
    return True


def _poll(run_dir: Path, info: dict) -> tuple[bool, int | None]:
    """(alive, exit_code) of a job's process; the exit code is None when unknown."""
    proc = _PROCS.get(str(run_dir))
    if proc is not None:
        code = proc.poll()
        if code is None:
            return True, None
        if info.get("exit_code") is None:
            info["exit_code"] = code
            info["ended"] = info.get("ended") or time.time()
            _write_json(run_dir / JOB_FILE, info)
        return False, code
    if info.get("exit_code") is not None:
        return False, int(info["exit_code"])
    pid = info.get("pid")
    if not pid:
        return False, None
    return _pid_alive(int(pid), info.get("pid_start_ticks")), None


# ----------------------------------------------------------------- starting
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


def start_command(cmd: list[str], run_dir: str | os.PathLike, *, kind: str, title: str | None = None,
                  output: str | os.PathLike | None = None, expects_events: bool = True,
                  env: dict[str, str] | None = None, cwd: str | os.PathLike | None = None) -> Job:
    """Start ``cmd`` in its own session (process group) with ``run_dir`` as its run folder.

    stdout and stderr go to ``run_dir/log.txt``. ``expects_events`` says whether
    the command writes ``events.jsonl`` (so a death without an end event is a crash).
    Returns at once; the process outlives the caller's rerun.
    """
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    if (run_dir / JOB_FILE).exists():
        raise DataError("this run folder already holds a job", run_dir)
    info = {
        "kind": kind, "title": title or kind, "argv": [str(a) for a in cmd], "pid": None,
        "started": time.time(), "output": str(output) if output is not None else None,
        "expects_events": bool(expects_events), "exit_code": None,
    }
    _write_json(run_dir / JOB_FILE, info)
    full_env = {**os.environ, **(env or {}), "PYTHONUNBUFFERED": "1"}
    with open(run_dir / LOG_FILE, "ab") as log:
        try:
            proc = subprocess.Popen(
                info["argv"], stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                cwd=str(cwd) if cwd is not None else str(REPO_ROOT), env=full_env, start_new_session=True,
            )
        except OSError as e:
            info.update(exit_code=127, ended=time.time(), start_error=str(e))
            _write_json(run_dir / JOB_FILE, info)
            raise DataError(f"could not start {cmd[0]!r}: {e}", run_dir) from None
    _PROCS[str(run_dir)] = proc
    info["pid"] = proc.pid
    info["pid_start_ticks"] = _proc_start_ticks(proc.pid)
    _write_json(run_dir / JOB_FILE, info)
    return read_job(run_dir)


def start_oaviz(args: list[str], run_dir: str | os.PathLike, **kwargs) -> Job:
    """Start ``oaviz ARGS…`` (as ``python -m oaviz``, the interpreter of this app) as a job."""
    return start_command([sys.executable, "-m", "oaviz", *map(str, args)], run_dir, **kwargs)


def train_args(model: str, cohort: str | os.PathLike, out: str | os.PathLike, run_dir: str | os.PathLike, *,
               preset: str = "demo", epochs: int | None = None, batch_size: int | None = None,
               device: str = "auto", seed: int | None = None, max_images: int | None = None,
               overrides: dict[str, object] | None = None) -> list[str]:
    """Arguments of `oaviz train` (without the leading `oaviz`) for the given choices."""
    args = ["train", model, "--data", str(cohort), "--out", str(out), "--preset", preset,
            "--device", device, "--run-dir", str(run_dir)]
    if epochs is not None:
        args += ["--epochs", str(int(epochs))]
    if batch_size is not None:
        args += ["--batch-size", str(int(batch_size))]
    if seed is not None:
        args += ["--seed", str(int(seed))]
    if max_images is not None:
        args += ["--max-images", str(int(max_images))]
    for k, v in (overrides or {}).items():
        args += ["--set", f"{k}={v}"]
    return args


def start_training(model: str, cohort: str | os.PathLike, *, preset: str = "demo", epochs: int | None = None,
                   batch_size: int | None = None, device: str = "auto", seed: int | None = None,
                   max_images: int | None = None, overrides: dict[str, object] | None = None,
                   root: str | os.PathLike | None = None) -> Job:
    """Start `oaviz train` as a job; the checkpoint goes to ``<run folder>/checkpoint``."""
    run_dir = new_run_dir(model, root)
    out = run_dir / "checkpoint"
    args = train_args(model, cohort, out, run_dir, preset=preset, epochs=epochs, batch_size=batch_size,
                      device=device, seed=seed, max_images=max_images, overrides=overrides)
    title = f"train {model} ({preset}) on {Path(cohort).name}"
    return start_oaviz(args, run_dir, kind="train", title=title, output=out, expects_events=True)


def start_synth(out: str | os.PathLike, *, joint: str = "knee", subjects: int = 600,
                visits: tuple[int, ...] = (0, 12, 24), size: int = 224, seed: int = 0,
                root: str | os.PathLike | None = None) -> Job:
    """Start `oaviz synth` as a job writing the cohort folder ``out``."""
    run_dir = new_run_dir(f"synth-{Path(out).name}", root)
    args = ["synth", "--out", str(out), "--joint", joint, "--subjects", str(int(subjects)),
            "--visits", ",".join(str(int(v)) for v in visits), "--size", str(int(size)), "--seed", str(int(seed))]
    title = f"generate {Path(out).name} ({joint}, {subjects} subjects × {len(visits)} visits, {size} px)"
    return start_oaviz(args, run_dir, kind="synth", title=title, output=out, expects_events=False)


def start_import(kind: str, src: str | os.PathLike, out: str | os.PathLike, *, size: int | None = None,
                 on_error: str = "skip", labels: str | os.PathLike | None = None, columns: str | None = None,
                 labels_are_kl: bool | None = None, root: str | os.PathLike | None = None) -> Job:
    """Start `oaviz import KIND SRC --out OUT …` as a job (a server-side folder can hold thousands of files)."""
    run_dir = new_run_dir(f"import-{Path(out).name}", root)
    args = ["import", kind, str(src), "--out", str(out), "--on-error", on_error]
    if size is not None:
        args += ["--size", str(int(size))]
    if labels is not None:
        args += ["--labels", str(labels)]
    if columns:
        args += ["--columns", columns]
    if labels_are_kl is not None:
        args += ["--labels-are", "kl" if labels_are_kl else "other"]
    title = f"import {Path(out).name} ({kind})"
    return start_oaviz(args, run_dir, kind="import", title=title, output=out, expects_events=False)


# ----------------------------------------------------------------- reading
def read_job(run_dir: str | os.PathLike, now: float | None = None) -> Job:
    """The current state of the job in ``run_dir`` (see the module docstring for the rules)."""
    run_dir = Path(run_dir)
    now = time.time() if now is None else now
    info = _read_job_file(run_dir)
    events = read_events(run_dir / EVENTS_FILE)
    argv = info.get("argv")
    if argv is None:  # a run started from the command line: argv.json holds its arguments
        argv = _cli_argv(run_dir)
    kind = info.get("kind") or (argv[3] if argv[1:3] == ["-m", "oaviz"] and len(argv) > 3 else "run")
    job = Job(run_dir=run_dir, kind=kind, title=info.get("title") or run_dir.name, argv=list(argv),
              status="running", started=info.get("started"), pid=info.get("pid"), output=info.get("output"),
              n_events=len(events), exit_code=info.get("exit_code"))
    if job.started is None and events:
        job.started = events[0].get("t")

    end = next((e for e in reversed(events) if e["event"] == "end"), None)
    err = next((e for e in reversed(events) if e["event"] == "error"), None)
    _fill_progress(job, events, run_dir, now)

    if info:
        alive, code = _poll(run_dir, info)
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
        elif job.exit_code is None and not expects_events and job.output and Path(job.output).exists():
            job.status, job.progress, job.message = "finished", 1.0, "finished"
        else:
            job.status = "failed"
            job.error = {"type": "ProcessDied", "message": _death_message(job, run_dir, expects_events)}
            job.message = job.error["message"]
    if job.status in ("failed", "cancelled"):
        job.eta_s = None
    return job


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


def _fill_progress(job: Job, events: list[dict], run_dir: Path, now: float) -> None:
    """Progress fraction and ETA from the last events (or from the log for event-less commands)."""
    start = next((e for e in reversed(events) if e["event"] == "start"), None)  # the last one, after a resume
    last_step = next((e for e in reversed(events) if e["event"] in ("step", "epoch")), None)
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
    info = _read_job_file(run_dir)
    if info.get("started"):
        return float(info["started"])
    try:
        with open(run_dir / EVENTS_FILE, "rb") as f:
            return float(json.loads(f.readline()).get("t", 0.0))
    except (OSError, ValueError, AttributeError):
        return 0.0


# ----------------------------------------------------------------- cancelling
def cancel(run_dir: str | os.PathLike, grace_s: float = 5.0) -> Job:
    """Stop a running job: SIGTERM to its process group, SIGKILL after ``grace_s``; mark it cancelled."""
    run_dir = Path(run_dir)
    info = _read_job_file(run_dir)
    if not info:
        raise DataError("not a job started by oaviz (no job.json), cannot cancel", run_dir)
    job = read_job(run_dir)
    if job.status != "running":
        return job
    pid = int(info["pid"])
    info["cancelled"] = time.time()
    _write_json(run_dir / JOB_FILE, info)
    _signal_group(pid, signal.SIGTERM)
    deadline = time.monotonic() + grace_s
    while time.monotonic() < deadline:
        if not _poll(run_dir, info)[0]:
            break
        time.sleep(0.05)
    else:
        _signal_group(pid, signal.SIGKILL)
        t_kill = time.monotonic()
        while _poll(run_dir, info)[0] and time.monotonic() - t_kill < 2.0:
            time.sleep(0.05)
    return read_job(run_dir)


def _signal_group(pid: int, sig: int) -> None:
    try:
        os.killpg(os.getpgid(pid), sig)  # start_new_session made the job the leader of its own group
    except (ProcessLookupError, PermissionError):
        try:
            os.kill(pid, sig)
        except (ProcessLookupError, PermissionError):
            pass


# ----------------------------------------------------------------- curves
def loss_curve(run_dir: str | os.PathLike) -> pd.DataFrame:
    """Step losses: one row per step event with ``global_step, epoch, loss`` and one column per term."""
    rows = []
    for e in read_events(Path(run_dir) / EVENTS_FILE):
        if e["event"] == "step" and e.get("loss") is not None:
            row = {"global_step": e.get("global_step"), "epoch": e.get("epoch"), "loss": float(e["loss"])}
            row.update({f"term:{k}": v for k, v in (e.get("terms") or {}).items()})
            rows.append(row)
    return pd.DataFrame(rows, columns=None if rows else ["global_step", "epoch", "loss"])


def epoch_curve(run_dir: str | os.PathLike) -> pd.DataFrame:
    """Epoch summaries in long form: ``epoch, split ('train'|'val'), term, value``."""
    rows = []
    for e in read_events(Path(run_dir) / EVENTS_FILE):
        if e["event"] != "epoch":
            continue
        for split in ("train", "val"):
            for term, value in (e.get(split) or {}).items():
                if isinstance(value, (int, float)):
                    rows.append({"epoch": e.get("epoch"), "split": split, "term": term, "value": float(value)})
    return pd.DataFrame(rows, columns=["epoch", "split", "term", "value"])
