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
from oaviz.data.cohort import Cohort, load_cohort, read_rows
from oaviz.models.base import Cap, has_capability
from oaviz.models.checkpoints import checkpoint_hash, load_checkpoint, resolve_checkpoint
from oaviz.data.transforms import resize_images

EMBED_VERSION = 1  # bump when the table's columns or their meaning change (invalidates caches)


@torch.no_grad()
def embed_arrays(model, images: np.ndarray, batch_size: int = 128, with_recon: bool = True):
    """uint8/uint16 images [N,H,W] -> (Z float32 [N,D], recon_error [N] or None).

    A batch at a time (``read_rows``: a cohort's memory map is read, not mapped in), into tables
    allocated once, so memory stays flat as the cohort grows."""
    size = int(model.config.image_size)
    scale = 65535.0 if images.dtype == np.uint16 else 255.0
    dev = next(model.parameters()).device
    can_recon = with_recon and has_capability(model, Cap.RECONSTRUCT)
    Z = np.zeros((len(images), model.embed_dim), np.float32)
    err = np.zeros(len(images), np.float32) if can_recon else None
    for i in range(0, len(images), batch_size):
        x = resize_images(read_rows(images, i, i + batch_size), size, scale).to(dev)
        Z[i:i + len(x)] = model.embed(x).float().cpu().numpy()
        if can_recon:
            err[i:i + len(x)] = ((model.reconstruct(x) - x) ** 2).flatten(1).mean(1).float().cpu().numpy()
    return Z, (err if can_recon and len(images) else None)


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
