"""Embed a cohort with a checkpoint: one row per image with its latent code.

Results are cached on disk by (checkpoint content hash, cohort fingerprint) so
the app and the CLI never embed the same cohort twice.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from oaviz.data.cohort import Cohort, load_cohort
from oaviz.data.errors import DataError
from oaviz.models.base import Cap, has_capability
from oaviz.paths import home
from oaviz.training.checkpoint import WEIGHTS, load_checkpoint
from oaviz.training.data import resize_images


def checkpoint_hash(path: str | Path) -> str:
    """Content hash of a checkpoint's weights and config (16 hex)."""
    h = hashlib.sha256()
    for name in (WEIGHTS, "config.json"):
        with open(Path(path) / name, "rb") as f:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                h.update(chunk)
    return h.hexdigest()[:16]


@torch.no_grad()
def embed_arrays(model, images: np.ndarray, batch_size: int = 128, with_recon: bool = True):
    """uint8/uint16 images [N,H,W] -> (Z float32 [N,D], recon_error [N] or None)."""
    size = int(model.config.image_size)
    scale = 65535.0 if images.dtype == np.uint16 else 255.0
    dev = next(model.parameters()).device
    zs, errs = [], []
    can_recon = with_recon and has_capability(model, Cap.RECONSTRUCT)
    for i in range(0, len(images), batch_size):
        x = resize_images(images[i:i + batch_size], size, scale).to(dev)
        zs.append(model.embed(x).float().cpu())
        if can_recon:
            errs.append(((model.reconstruct(x) - x) ** 2).flatten(1).mean(1).cpu())
    Z = torch.cat(zs).numpy() if zs else np.zeros((0, model.embed_dim), np.float32)
    return Z, (torch.cat(errs).numpy() if errs else None)


def embed_cohort(checkpoint: str | Path, cohort: Cohort | str | Path, batch_size: int = 128,
                 use_cache: bool = True) -> pd.DataFrame:
    """DataFrame: image_id, z_0 … z_{D-1} and, for autoencoders, recon_error; rows in cohort order."""
    c = cohort if isinstance(cohort, Cohort) else load_cohort(cohort)
    key = f"{checkpoint_hash(checkpoint)}-{c.fingerprint}"
    cache = home() / "cache" / "embeddings" / f"{key}.parquet"
    if use_cache and cache.is_file():
        return pd.read_parquet(cache)
    loaded = load_checkpoint(checkpoint)
    Z, err = embed_arrays(loaded.model, c.images, batch_size)
    df = pd.DataFrame(Z, columns=[f"z_{i}" for i in range(Z.shape[1])])
    df.insert(0, "image_id", c.metadata["image_id"].to_numpy())
    if err is not None:
        df["recon_error"] = err
    if use_cache:
        write_table(df, cache)
    return df


def write_table(df: pd.DataFrame, out: str | Path) -> Path:
    """CSV or parquet by suffix, written to a temp name then renamed."""
    out = Path(out)
    if out.suffix not in (".csv", ".parquet"):
        raise DataError("output must end in .csv or .parquet", out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.tmp-{os.getpid()}")
    try:
        if out.suffix == ".csv":
            df.to_csv(tmp, index=False)
        else:
            df.to_parquet(tmp, index=False)
        tmp.replace(out)
    finally:
        tmp.unlink(missing_ok=True)
    return out
