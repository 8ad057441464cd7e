"""Checkpoints for the app: where they are, what each one is (its card), which models can be trained.

A checkpoint is a folder with ``model.safetensors`` + ``config.json`` (see the
training contract). Bundled ones live in ``checkpoints_dir()``; a training job
started from the app writes ``<run folder>/checkpoint``. Listing only peeks at
config.json (no torch import, no weights), so the sidebar can call it on every
rerun; full cards go through ``oaviz.training.checkpoint.read_checkpoint_info``.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path

from oaviz.paths import checkpoints_dir, runs_dir

WEIGHTS = "model.safetensors"
CONFIG = "config.json"


@dataclass(frozen=True)
class CheckpointEntry:
    """One checkpoint folder as the pickers list it."""

    path: Path
    origin: str            # "bundled" or "run"
    model_type: str
    preset: str
    summary: str = ""

    @property
    def label(self) -> str:
        where = "bundled" if self.origin == "bundled" else f"run {self.path.parent.name}"
        return f"{self.path.name if self.origin == 'bundled' else self.model_type} · {self.preset} · {where}"


def is_checkpoint(path: str | os.PathLike) -> bool:
    p = Path(path)
    return (p / WEIGHTS).is_file() and (p / CONFIG).is_file()


def _peek(path: Path, origin: str) -> CheckpointEntry | None:
    try:
        cfg = json.loads((path / CONFIG).read_text())
    except (OSError, json.JSONDecodeError):
        return None
    if not isinstance(cfg, dict):
        return None
    card = cfg.get("card") if isinstance(cfg.get("card"), dict) else {}
    return CheckpointEntry(path=path, origin=origin, model_type=str(cfg.get("model_type", "unknown")),
                           preset=str(cfg.get("preset", "?")), summary=str(card.get("summary", "")))


def list_checkpoints(bundled_root: str | os.PathLike | None = None,
                     runs_root: str | os.PathLike | None = None) -> list[CheckpointEntry]:
    """Bundled checkpoints (sorted by name), then checkpoints of runs (newest first)."""
    bundled = Path(bundled_root) if bundled_root is not None else checkpoints_dir()
    runs = Path(runs_root) if runs_root is not None else runs_dir()
    out: list[CheckpointEntry] = []
    if bundled.is_dir():
        for d in sorted(bundled.iterdir()):
            if d.is_dir() and not d.name.startswith(".") and is_checkpoint(d) and (e := _peek(d, "bundled")):
                out.append(e)
    if runs.is_dir():
        found = []
        for run in runs.iterdir():
            if not run.is_dir() or run.name.startswith("."):
                continue
            for d in (run / "checkpoint", run):
                if is_checkpoint(d) and (e := _peek(d, "run")):
                    found.append((d.stat().st_mtime, e))
                    break
        out += [e for _, e in sorted(found, key=lambda t: t[0], reverse=True)]
    return out


@dataclass
class CheckpointCard:
    """Everything the Models page shows about one checkpoint."""

    entry: CheckpointEntry
    info: dict = field(default_factory=dict)
    error: str | None = None

    @property
    def cohort_name(self) -> str:
        c = self.info.get("cohort") or {}
        return Path(str(c.get("path", ""))).name or str(c.get("source", "")) or "?"

    def row(self) -> dict:
        """One flat row for the checkpoint table."""
        t = self.info.get("training") or {}
        m = self.info.get("metrics") or {}
        norm = self.info.get("normalisation") or {}
        return {
            "checkpoint": self.entry.path.name if self.entry.origin == "bundled" else self.entry.path.parent.name,
            "origin": self.entry.origin,
            "model": self.entry.model_type,
            "preset": self.entry.preset,
            "input": f"{norm.get('image_size')} px" if norm.get("image_size") else "",
            "cohort": self.cohort_name,
            "epochs": t.get("epochs"),
            "train time": format_seconds(t.get("seconds")),
            "metrics": ", ".join(f"{k} {format_value(v)}" for k, v in list(m.items())[:4] if _is_num(v)),
            "error": self.error or "",
        }


def _is_num(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def format_value(v) -> str:
    """Numbers to 4 significant digits, everything else as text ('—' for nothing)."""
    if v is None or v == "":
        return "—"
    return f"{v:.4g}" if isinstance(v, float) else str(v)


def format_seconds(s) -> str:
    """Training time as '0.4 s', '42 s', '3.5 min' or '2.1 h' ('' when unknown)."""
    if not _is_num(s):
        return ""
    s = float(s)
    if s < 10:
        return f"{s:.1f} s"
    return f"{s:.0f} s" if s < 120 else f"{s / 60:.1f} min" if s < 7200 else f"{s / 3600:.1f} h"


def checkpoint_cards(entries: list[CheckpointEntry] | None = None) -> list[CheckpointCard]:
    """Cards of the given (default: all listed) checkpoints; one unreadable card does not hide the others."""
    from oaviz.training.checkpoint import read_checkpoint_info

    cards = []
    for e in list_checkpoints() if entries is None else entries:
        try:
            cards.append(CheckpointCard(entry=e, info=dict(read_checkpoint_info(e.path))))
        except Exception as err:  # shown in the table's error column
            cards.append(CheckpointCard(entry=e, error=f"{type(err).__name__}: {err}"))
    return cards


@dataclass(frozen=True)
class ModelChoice:
    name: str
    description: str
    presets: tuple[str, ...]


def trainable_models() -> list[ModelChoice]:
    """Registered models the training engine can feed, with their presets (empty when the zoo has none yet)."""
    from oaviz.models.base import get_spec, model_names
    from oaviz.training.data import BATCH_KINDS

    out = []
    for name in model_names():
        spec = get_spec(name)
        if spec.model_cls.batch_kind not in BATCH_KINDS:
            continue  # e.g. pair-trained models until the engine feeds pairs
        out.append(ModelChoice(name=name, description=spec.description, presets=tuple(spec.presets)))
    return out
