"""A small real-style cohort for tests: PNGs laid out as the public knee KL dataset (``train/2/9003175L.png``,
OAI subject id + side in the name) imported with ``oaviz import kl-folders``. Like real knees it has KL grades
and splits but no true KL, no follow-up visits, no landmarks and no joint-space truth."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image


def knee_png(rng: np.random.Generator, kl: int, side: str, size: int = 64) -> np.ndarray:
    """A crude knee radiograph [size, size] uint8: femur above, tibia below, a joint space that narrows with
    the grade (more on the medial side: image right for R, left for L, as acquired), film noise."""
    y = np.arange(size)[:, None] / size
    x = np.arange(size)[None, :] / size
    medial = x > 0.5 if side == "R" else x < 0.5
    gap = 0.09 - 0.015 * kl * np.where(medial, 1.0, 0.4)
    bone = (np.abs(y - 0.5) > gap / 2) & (np.abs(x - 0.5) < 0.35)
    img = 60 + 140 * bone + rng.normal(0, 12, (size, size))
    return np.clip(img, 0, 255).astype(np.uint8)


def kl_folders_tree(root: str | Path, n_subjects: int = 30, grades: tuple[int, ...] = (0, 1, 2, 3, 4),
                    seed: int = 0) -> Path:
    """``root/{train,val,test}/{kl}/{id}{L|R}.png``: both knees of each subject, subjects split 60/20/20."""
    rng = np.random.default_rng(seed)
    root = Path(root)
    for s in range(n_subjects):
        split = "train" if s < 0.6 * n_subjects else "val" if s < 0.8 * n_subjects else "test"
        for side in ("L", "R"):
            kl = int(grades[rng.integers(len(grades))])
            f = root / split / str(kl) / f"{9000000 + 17 * s}{side}.png"
            f.parent.mkdir(parents=True, exist_ok=True)
            Image.fromarray(knee_png(rng, kl, side)).save(f)
    return root


def kl_folders_cohort(tmp: str | Path, name: str = "realknee-mini", **kw) -> Path:
    """The tree imported as a cohort ``tmp/name`` (64 px); returns its folder."""
    from oaviz.data.kl_folders import import_kl_folders

    tmp = Path(tmp)
    tree = kl_folders_tree(tmp / f"{name}-src", **kw)
    return Path(import_kl_folders(tree, tmp / name, size=64).out)
