"""Progress events: one JSON object per line in the run folder's events.jsonl."""

from __future__ import annotations

import json
import math
import time
from pathlib import Path


class EventLog:
    """Appends events (flushed per line). Disabled on non-zero DDP ranks."""

    def __init__(self, path: str | Path, enabled: bool = True):
        self.path = Path(path)
        self.enabled = enabled
        if enabled:
            self.path.parent.mkdir(parents=True, exist_ok=True)

    def write(self, event: str, **fields) -> None:
        if not self.enabled:
            return
        rec = {"t": round(time.time(), 3), "event": event, **fields}
        with open(self.path, "a") as f:
            f.write(json.dumps(rec, default=_clean) + "\n")


def _clean(o):
    try:
        v = float(o)
    except (TypeError, ValueError):
        return str(o)
    return v if math.isfinite(v) else None


def read_events(path: str | Path) -> list[dict]:
    """All complete events; a partially written last line is ignored."""
    p = Path(path)
    if not p.is_file():
        return []
    out = []
    for line in p.read_text().splitlines():
        try:
            out.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return out
