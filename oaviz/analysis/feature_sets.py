"""Frozen feature sets for probes: raw pixels and random N(0, I) features.

A checkpoint's embedding is the third kind; it is computed through the
embedding service's disk cache, so it lives in
``oaviz.services.probe_lab.checkpoint_features`` (analysis may not import
services).
"""

from __future__ import annotations

from dataclasses import dataclass

from pathlib import Path

import numpy as np

from oaviz.data.cohort import Cohort
from oaviz.data.transforms import resize_images

RAW, RANDOM = "raw", "random"


def feature_name(checkpoint: str | Path) -> str:
    """Display name of a checkpoint's feature set: its folder name (e.g. 'beta_vae-demo')."""
    return Path(checkpoint).resolve().name


def raw_pixel_features(cohort: Cohort, size: int = 32, train_idx: np.ndarray | None = None) -> np.ndarray:
    """float32 [N, size*size]: images area-averaged to size×size, standardised per pixel.

    Mean and std come from the training rows only (default: the cohort's train
    split), so the test split never informs the features. Pixels that are
    constant in training get std 1 (they become 0 rather than inf).
    """
    if size < 2:
        raise ValueError(f"size must be >= 2, got {size}")
    scale = 65535.0 if cohort.images.dtype == np.uint16 else 255.0
    X = resize_images(cohort.images, int(size), scale).reshape(len(cohort), -1).numpy()
    tr = cohort.split_indices("train") if train_idx is None else np.asarray(train_idx)
    if len(tr) == 0:
        raise ValueError("no training rows to standardise the pixels with")
    mean = X[tr].mean(0, dtype=np.float64)
    std = X[tr].std(0, dtype=np.float64)
    std[std < 1e-8] = 1.0
    return ((X - mean) / std).astype(np.float32)


@dataclass(frozen=True)
class RandomFeatures:
    """The random N(0, I) baseline as a recipe, not one draw: a probe grid draws a fresh
    [n, dim] matrix for every seed (``draw``), so the seeds' spread includes the draw's."""

    dim: int

    def draw(self, n: int, seed: int) -> np.ndarray:
        return random_features(n, self.dim, 10_000 + int(seed))  # offset: never the grid's subset seed


def random_features(n: int, dim: int, seed: int = 0) -> np.ndarray:
    """float32 [n, dim] drawn from N(0, I): the no-information baseline."""
    if n < 0 or dim < 1:
        raise ValueError(f"need n >= 0 and dim >= 1, got {n}, {dim}")
    return np.random.default_rng(seed).standard_normal((n, dim), dtype=np.float32)
