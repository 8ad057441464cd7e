"""Checkpoints for the app: what each one is (its card), which models can be trained.

A checkpoint is a folder with ``model.safetensors`` + ``config.json``; finding,
listing and reading them is ``oaviz.models.checkpoints`` (the listing names are
re-exported here for the pages). Bundled ones live in ``checkpoints_dir()``; a
training job started from the app writes ``<run folder>/checkpoint``. Listing
only peeks at config.json (no weights), so the sidebar can call it on every rerun.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from oaviz.models.checkpoints import (  # noqa: F401 (is_checkpoint: re-exported for the pages)
    CheckpointEntry, is_checkpoint, list_checkpoints, read_checkpoint_info,
)


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
    """A duration or ETA: '4.2 s', '45 s', '3 min 10 s', '1 h 05 min' ('—' when unknown)."""
    if not _is_num(s):
        return "—"
    s = max(0.0, float(s))
    if s < 10:
        return f"{s:.1f} s"
    s = int(round(s))
    if s < 60:
        return f"{s} s"
    if s < 3600:
        return f"{s // 60} min {s % 60:02d} s"
    return f"{s // 3600} h {(s % 3600) // 60:02d} min"


def checkpoint_cards(entries: list[CheckpointEntry] | None = None) -> list[CheckpointCard]:
    """Cards of the given (default: all listed) checkpoints; one unreadable card does not hide the others."""
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
