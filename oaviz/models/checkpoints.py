"""Checkpoint folders: what one is, which one a name means, its identity, where they are, loading one.

A checkpoint is a folder with ``model.safetensors`` + ``config.json`` (model
type and config, normalisation, cohort fingerprint, metrics, card, oaviz
version); ``oaviz.training.checkpoint.save_checkpoint`` writes them. This is
the one place that resolves a name to a folder (a path, or a bundled
checkpoint's name), hashes a folder (the content identity every cache key
uses), lists the folders the app offers, and loads one (``frozen`` for a
model shared between sessions or a partner model: ``base.load_frozen_model``).
It sits in the models layer because models load their partners.
Nothing here unpickles: weights load with safetensors.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path

import torch

from oaviz.errors import ConfigError
from oaviz.models.base import OAModel, build_model
from oaviz.models.serving import prepare_for_serving
from oaviz.paths import checkpoints_dir, runs_dir

WEIGHTS, CONFIG = "model.safetensors", "config.json"
ZOO_MANIFEST = "zoo.json"        # a model set's folder (oaviz.training.zoo.MANIFEST)


@dataclass
class LoadedCheckpoint:
    model: OAModel
    info: dict
    path: Path


def is_checkpoint(path: str | os.PathLike) -> bool:
    p = Path(path)
    return (p / WEIGHTS).is_file() and (p / CONFIG).is_file()


def resolve_checkpoint(name: str | os.PathLike) -> Path:
    """The checkpoint folder ``name`` means: a path (absolute, or relative to the working directory)
    holding a checkpoint, else a bundled checkpoint's name (``checkpoints_dir() / name``).
    ConfigError when it is neither."""
    p = Path(name).expanduser()
    for cand in (p,) if p.is_absolute() else (p, checkpoints_dir() / p):
        if is_checkpoint(cand):
            return cand
    raise ConfigError(f"{name}: not a checkpoint folder ({CONFIG} + {WEIGHTS}) nor the name of a bundled checkpoint")


# path -> ((file, size, mtime_ns) stamps, digest): a folder is re-hashed only when a file changes.
_HASHES: dict[str, tuple[tuple, str]] = {}


def checkpoint_hash(path: str | os.PathLike) -> str:
    """Content identity of a checkpoint folder: SHA-256 of its weights then its config (16 hex)."""
    p = Path(path).resolve()
    stamps = tuple((n, (p / n).stat().st_size, (p / n).stat().st_mtime_ns) for n in (WEIGHTS, CONFIG))
    known = _HASHES.get(str(p))
    if known is not None and known[0] == stamps:
        return known[1]
    h = hashlib.sha256()
    for name in (WEIGHTS, CONFIG):
        with open(p / name, "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                h.update(block)
    digest = h.hexdigest()[:16]
    _HASHES[str(p)] = (stamps, digest)
    if len(_HASHES) > 256:
        _HASHES.pop(next(iter(_HASHES)))
    return digest


def read_checkpoint_info(path: str | os.PathLike) -> dict:
    """config.json of a checkpoint (no weights loaded)."""
    p = Path(path) / CONFIG
    if not p.is_file():
        raise ConfigError(f"{path}: not a checkpoint (no {CONFIG})")
    try:
        return json.loads(p.read_text())
    except json.JSONDecodeError as e:
        raise ConfigError(f"{p}: invalid JSON ({e})") from None


def load_checkpoint(path: str | os.PathLike, device: str | torch.device = "cpu", *, frozen: bool = False,
                    model_type: str | None = None) -> LoadedCheckpoint:
    """Rebuild the model from config.json and load its safetensors weights, in eval mode.

    ``frozen`` also turns gradients off for good (a model shared between app
    sessions, or a partner model) and prepares it for serving (``serving.prepare_for_serving``:
    faster layouts, the same images; decoded by the services at the hardware's fast precision);
    ``model_type`` refuses a checkpoint of another type.
    """
    from safetensors.torch import load_file

    path = Path(path)
    info = read_checkpoint_info(path)
    if model_type is not None and info.get("model_type") != model_type:
        raise ConfigError(f"{path}: is a {info.get('model_type')!r} checkpoint, expected {model_type!r}")
    model = build_model(info["model_type"], info["config"])
    wfile = path / WEIGHTS
    if not wfile.is_file():
        raise ConfigError(f"{path}: {WEIGHTS} is missing")
    missing, unexpected = model.load_state_dict(load_file(str(wfile), device="cpu"), strict=False)
    if missing or unexpected:
        raise ConfigError(f"{path}: weights do not match the config (missing {missing[:3]}, unexpected {unexpected[:3]})")
    model.to(device).eval()
    if frozen:
        for q in model.parameters():
            q.requires_grad_(False)
        prepare_for_serving(model)
    return LoadedCheckpoint(model, info, path)


# ----------------------------------------------------------------- listing
@dataclass(frozen=True)
class CheckpointEntry:
    """One checkpoint folder as the pickers list it (from a peek at its config.json)."""

    path: Path
    origin: str            # "bundled", "run" or "zoo" (one model of a model set: oaviz train-zoo)
    model_type: str
    preset: str
    summary: str = ""
    mtime: float = field(default=0.0, compare=False)  # when config.json was written
    cohort: str = ""       # name of the cohort it was trained on
    zoo: str = ""          # the zoo folder holding it ("" when it is not part of a model set)

    @property
    def label(self) -> str:
        if self.origin == "zoo":
            return f"{self.path.parent.name} · {self.preset} · trained on {self.cohort or '?'}"   # the zoo entry
        where = "bundled" if self.origin == "bundled" else f"run {self.path.parent.name}"
        return f"{self.path.name if self.origin == 'bundled' else self.model_type} · {self.preset} · {where}"


def _peek(path: Path, origin: str, zoo: str = "") -> CheckpointEntry | None:
    try:
        cfg = json.loads((path / CONFIG).read_text())
        mtime = (path / CONFIG).stat().st_mtime
    except (OSError, json.JSONDecodeError):
        return None
    if not isinstance(cfg, dict):
        return None
    card = cfg.get("card") if isinstance(cfg.get("card"), dict) else {}
    cohort = cfg.get("cohort") if isinstance(cfg.get("cohort"), dict) else {}
    return CheckpointEntry(path=path, origin=origin, model_type=str(cfg.get("model_type", "unknown")),
                           preset=str(cfg.get("preset", "?")), summary=str(card.get("summary", "")), mtime=mtime,
                           cohort=Path(str(cohort.get("path", ""))).name, zoo=zoo)


def scan_checkpoints(root: str | os.PathLike, origin: str = "run") -> list[CheckpointEntry]:
    """Checkpoints directly below ``root`` or in a run folder's ``checkpoint/`` (hidden folders
    skipped), in name order; a zoo folder (``zoo.json``, oaviz train-zoo) gives each of its models'
    ``<model>/checkpoint`` with origin "zoo"."""
    r = Path(root)
    if not r.is_dir():
        return []
    out = []
    for d in sorted(r.iterdir()):
        if not d.is_dir() or d.name.startswith("."):
            continue
        if (d / ZOO_MANIFEST).is_file():
            out += [e for m in sorted(d.iterdir()) if m.is_dir() and is_checkpoint(m / "checkpoint")
                    and (e := _peek(m / "checkpoint", "zoo", zoo=str(d)))]
            continue
        for cand in (d / "checkpoint", d):  # a run folder holds its checkpoint in checkpoint/
            if is_checkpoint(cand) and (e := _peek(cand, origin)):
                out.append(e)
                break
    return out


def list_checkpoints(bundled_root: str | os.PathLike | None = None,
                     runs_root: str | os.PathLike | None = None) -> list[CheckpointEntry]:
    """Bundled checkpoints (by name), then checkpoints of runs (newest first)."""
    bundled = scan_checkpoints(checkpoints_dir() if bundled_root is None else bundled_root, "bundled")
    runs = scan_checkpoints(runs_dir() if runs_root is None else runs_root, "run")
    return bundled + sorted(runs, key=lambda e: e.mtime, reverse=True)
