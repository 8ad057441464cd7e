"""Progress events: one JSON object per line in a run folder's events.jsonl.

The one writer (``EventLog``, used by `oaviz train` and `oaviz probe`) and the
one reader (``read_events``, used by the tests and by the jobs service that
polls growing logs). Every event has ``t`` (unix time) and ``event``, one of
``KINDS``:

    start   epochs, steps_per_epoch (progress = global_step / (epochs × steps_per_epoch)), …
    step    epoch, global_step, loss, terms, eta_s, …
    epoch   epoch (complete), train {term: mean}, val {term: mean}, eta_s, …
    end     status, checkpoint / out, metrics, seconds
    error   type, message
"""

from __future__ import annotations

import json
import math
import time
from pathlib import Path
from typing import Any, Literal, get_args

EVENTS_FILE = "events.jsonl"
EventKind = Literal["start", "step", "epoch", "end", "error"]
KINDS: tuple[str, ...] = get_args(EventKind)
Event = dict[str, Any]  # {"t": float, "event": EventKind, **fields}

# path -> (inode, bytes parsed, events): growing logs are parsed incrementally.
_PARSED: dict[str, tuple[int, int, list[Event]]] = {}


class EventLog:
    """Appends events (flushed per line). Disabled on non-zero DDP ranks. ``listener``, when given, is
    called with every event written (``oaviz train-zoo`` turns a model's progress into the zoo's)."""

    def __init__(self, path: str | Path, enabled: bool = True, listener=None):
        self.path = Path(path)
        self.enabled = enabled
        self.listener = listener
        if enabled:
            self.path.parent.mkdir(parents=True, exist_ok=True)

    def write(self, event: EventKind, **fields) -> None:
        if event not in KINDS:
            raise ValueError(f"unknown event {event!r}; events are {KINDS}")
        if not self.enabled:
            return
        rec = {"t": round(time.time(), 3), "event": event, **fields}
        with open(self.path, "a") as f:
            f.write(json.dumps(rec, default=_clean) + "\n")
        if self.listener is not None:
            self.listener(rec)


def _clean(o):
    try:
        v = float(o)
    except (TypeError, ValueError):
        return str(o)
    return v if math.isfinite(v) else None


def read_events(path: str | Path) -> list[Event]:
    """The complete events of a log; a partial last line (a writer mid-append) or a corrupt line is skipped.

    Pollers call this every few seconds on growing files, so only the bytes
    appended since the last call are parsed (cached by path, inode and size).
    """
    p = Path(path)
    try:
        st = p.stat()
    except OSError:
        return []
    key = str(p.resolve())
    known = _PARSED.get(key)
    if known is not None and known[0] == st.st_ino and known[1] <= st.st_size:
        _, offset, events = known
        if offset == st.st_size:
            return list(events)
    else:
        offset, events = 0, []
    with p.open("rb") as f:
        f.seek(offset)
        chunk = f.read()
    end = chunk.rfind(b"\n") + 1  # complete lines only; a partial last line waits for its newline
    events = events + _parse_lines(chunk[:end])
    _PARSED[key] = (st.st_ino, offset + end, events)
    if len(_PARSED) > 256:
        _PARSED.pop(next(iter(_PARSED)))
    return list(events)


def first_event(path: str | Path) -> Event | None:
    """The first event of a log, reading one line only (for sorting many run folders)."""
    try:
        with open(path, "rb") as f:
            found = _parse_lines(f.readline())
    except OSError:
        return None
    return found[0] if found else None


def last_event(events: list[Event], *kinds: str) -> Event | None:
    """The latest event of one of ``kinds``."""
    return next((e for e in reversed(events) if e["event"] in kinds), None)


def _parse_lines(data: bytes) -> list[Event]:
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
