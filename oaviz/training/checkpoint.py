"""Checkpoint folders: model.safetensors + config.json, written atomically.

config.json holds the model type and config, normalisation, the cohort's
fingerprint, final metrics, how it was trained, a short model card and the
oaviz version. Nothing here unpickles: weights load with safetensors.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from oaviz import __version__
from oaviz.data.atomic import swap_into_place
from oaviz.models.base import ConfigError, OAModel, build_model, config_to_dict

WEIGHTS, CONFIG = "model.safetensors", "config.json"


@dataclass
class LoadedCheckpoint:
    model: OAModel
    info: dict
    path: Path


def save_checkpoint(model: OAModel, out: str | Path, *, overwrite: bool = True, **meta) -> Path:
    """Write ``out/`` (model.safetensors + config.json) via a temp folder + rename."""
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    info = {"model_type": model.model_type, "config": config_to_dict(model.config), **meta,
            "oaviz_version": __version__}
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.tmp-", dir=out.parent))
    try:
        state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
        save_file(state, str(tmp / WEIGHTS))
        (tmp / CONFIG).write_text(json.dumps(info, indent=2, default=str))
        if out.exists() and not overwrite:
            raise FileExistsError(f"{out} exists")
        swap_into_place(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out


def read_checkpoint_info(path: str | Path) -> dict:
    """config.json of a checkpoint (no weights loaded)."""
    p = Path(path) / CONFIG
    if not p.is_file():
        raise ConfigError(f"{path}: not a checkpoint (no {CONFIG})")
    try:
        return json.loads(p.read_text())
    except json.JSONDecodeError as e:
        raise ConfigError(f"{p}: invalid JSON ({e})") from None


def load_checkpoint(path: str | Path, device: str | torch.device = "cpu") -> LoadedCheckpoint:
    """Rebuild the model from config.json and load its safetensors weights (eval mode)."""
    path = Path(path)
    info = read_checkpoint_info(path)
    model = build_model(info["model_type"], info["config"])
    wfile = path / WEIGHTS
    if not wfile.is_file():
        raise ConfigError(f"{path}: {WEIGHTS} is missing")
    state = load_file(str(wfile), device="cpu")
    missing, unexpected = model.load_state_dict(state, strict=False)
    if missing or unexpected:
        raise ConfigError(f"{path}: weights do not match the config (missing {missing[:3]}, unexpected {unexpected[:3]})")
    model.to(device).eval()
    return LoadedCheckpoint(model, info, path)


def list_checkpoints(root: str | Path) -> list[Path]:
    """Checkpoint folders directly below ``root`` (hidden temp folders skipped)."""
    r = Path(root)
    if not r.is_dir():
        return []
    return sorted(d for d in r.iterdir() if d.is_dir() and not d.name.startswith(".")
                  and (d / CONFIG).is_file() and (d / WEIGHTS).is_file())
