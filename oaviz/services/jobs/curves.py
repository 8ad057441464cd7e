"""A training job's curves as tidy frames for the loss plot (read from its events)."""

from __future__ import annotations

import os
from pathlib import Path

import pandas as pd

from oaviz.training.events import EVENTS_FILE, read_events


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
