"""Writing checkpoint folders: model.safetensors + config.json, atomically.

config.json holds the model type and config, normalisation, the cohort's
fingerprint, final metrics, how it was trained, a short model card and the
oaviz version. Reading, resolving, hashing and listing checkpoints is
``oaviz.models.checkpoints`` (re-exported here for the training layer's callers).
"""

from __future__ import annotations

import json
from pathlib import Path

from safetensors.torch import save_file

from oaviz import __version__
from oaviz.data.atomic import atomic_folder
from oaviz.models.base import OAModel, config_to_dict
from oaviz.models.checkpoints import (  # noqa: F401 (re-exported)
    CONFIG, WEIGHTS, LoadedCheckpoint, load_checkpoint, read_checkpoint_info,
)


def save_checkpoint(model: OAModel, out: str | Path, *, overwrite: bool = True, **meta) -> Path:
    """Write ``out/`` (model.safetensors + config.json) via a temp folder + rename."""
    out = Path(out)
    if out.exists() and not overwrite:
        raise FileExistsError(f"{out} exists")
    info = {"model_type": model.model_type, "config": config_to_dict(model.config), **meta,
            "oaviz_version": __version__}
    with atomic_folder(out) as tmp:
        state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
        save_file(state, str(tmp / WEIGHTS))
        (tmp / CONFIG).write_text(json.dumps(info, indent=2, default=str))
    return out
