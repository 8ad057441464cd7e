"""Cohort splits as in-memory tensors at the model's input size, and their batches.

Images are resized once (area interpolation) and kept as float32 in [0, 1];
for the demo sizes a whole cohort is a few hundred MB at most.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch.nn import functional as F

from oaviz.data.cohort import Cohort
from oaviz.data.errors import DataError


# Batch kinds (OAModel.batch_kind) this engine can feed.
BATCH_KINDS = ("images",)


def resize_images(images: np.ndarray, size: int, scale: float, chunk: int = 256) -> torch.Tensor:
    """uint8/uint16 [N,H,W] -> float32 [N,1,size,size] in [0, 1]."""
    out = torch.empty(len(images), 1, size, size)
    for i in range(0, len(images), chunk):
        x = torch.from_numpy(np.asarray(images[i:i + chunk], dtype=np.float32) / scale)[:, None]
        if x.shape[-1] != size or x.shape[-2] != size:
            x = F.interpolate(x, size=(size, size), mode="area" if x.shape[-1] > size else "bilinear",
                              align_corners=None if x.shape[-1] > size else False)
        out[i:i + len(x)] = x
    return out


@dataclass
class SplitTensors:
    """One split's images and labels as tensors; ``rows`` index the cohort's metadata."""

    rows: np.ndarray
    image: torch.Tensor          # [n,1,S,S]
    kl: torch.Tensor             # [n] int64, -1 unknown
    oa: torch.Tensor             # [n] float32, NaN unknown
    label: torch.Tensor          # [n] int64
    landmarks: torch.Tensor      # [n,16,2] in [0,1], NaN unknown

    def __len__(self) -> int:
        return len(self.rows)

    def batch(self, idx, device) -> dict[str, torch.Tensor]:
        idx = torch.as_tensor(idx)
        return {k: getattr(self, k)[idx].to(device) for k in ("image", "kl", "oa", "label", "landmarks")}


def split_tensors(cohort: Cohort, rows: np.ndarray, size: int) -> SplitTensors:
    if len(rows) == 0:
        raise DataError("split is empty", cohort.path)
    m = cohort.metadata.iloc[rows]
    scale = 65535.0 if cohort.images.dtype == np.uint16 else 255.0
    kl = m["kl"].to_numpy(dtype=float, na_value=np.nan)
    oa = m["oa"].to_numpy(dtype=float, na_value=np.nan)
    label = m["label"].to_numpy() if "label" in m else np.full(len(m), -1)
    label = np.nan_to_num(np.asarray(label, dtype=float), nan=-1).astype(np.int64)
    lm = cohort.landmarks()
    h, w = cohort.image_size
    lm = (lm[rows] / np.array([w, h], np.float32)) if lm is not None else np.full((len(rows), 16, 2), np.nan, np.float32)
    return SplitTensors(
        rows=np.asarray(rows), image=resize_images(cohort.images[np.sort(rows)][np.argsort(np.argsort(rows))], size, scale),
        kl=torch.from_numpy(np.nan_to_num(kl, nan=-1).astype(np.int64)),
        oa=torch.from_numpy(oa.astype(np.float32)), label=torch.from_numpy(label),
        landmarks=torch.from_numpy(np.asarray(lm, np.float32)),
    )


def train_val_rows(cohort: Cohort, max_images: int | None, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Train and validation row indices; without a val split, hold out 15 % of train subjects."""
    tr, va = cohort.split_indices("train"), cohort.split_indices("val")
    if len(va) == 0:
        subj = cohort.metadata["subject_id"].to_numpy()[tr]
        uniq = np.unique(subj)
        rng = np.random.default_rng(seed)
        held = set(rng.choice(uniq, max(1, int(round(0.15 * len(uniq)))), replace=False))
        is_val = np.array([s in held for s in subj])
        tr, va = tr[~is_val], tr[is_val]
    if len(tr) == 0:
        raise DataError("the cohort has no training images", cohort.path)
    if max_images and len(tr) > max_images:
        tr = np.sort(np.random.default_rng(seed).choice(tr, max_images, replace=False))
    return tr, va
