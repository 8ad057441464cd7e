"""Embed a cohort with a checkpoint: one row per image with its latent code.

Results are cached on disk (``oaviz.data.disk_cache``, scope ``embeddings``) by
(checkpoint content hash, cohort fingerprint) so the app and the CLI never
embed the same cohort twice.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import torch

from oaviz.data import disk_cache
from oaviz.data.cohort import Cohort, load_cohort
from oaviz.models.base import Cap, has_capability
from oaviz.models.checkpoints import checkpoint_hash, load_checkpoint, resolve_checkpoint
from oaviz.data.transforms import resize_images

EMBED_VERSION = 1  # bump when the table's columns or their meaning change (invalidates caches)


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
    """DataFrame: image_id, z_0 … z_{D-1} and, for autoencoders, recon_error; rows in cohort order.

    ``checkpoint`` is a folder or a bundled checkpoint's name.
    """
    c = cohort if isinstance(cohort, Cohort) else load_cohort(cohort)
    path = resolve_checkpoint(checkpoint)

    def compute() -> pd.DataFrame:
        Z, err = embed_arrays(load_checkpoint(path).model, c.images, batch_size)
        df = pd.DataFrame(Z, columns=[f"z_{i}" for i in range(Z.shape[1])])
        df.insert(0, "image_id", c.metadata["image_id"].to_numpy())
        if err is not None:
            df["recon_error"] = err
        return df

    key = {"v": EMBED_VERSION, "checkpoint": checkpoint_hash(path), "cohort": c.fingerprint}
    return disk_cache.cached(key, compute, disk_cache.PARQUET, scope="embeddings", enabled=use_cache)
