"""Key exchange: the four KECAE outputs for a (KL a, KL b) pair and the discriminator's verdicts.

For a KL 0 knee A and a KL 2 knee B, KECAE decodes each knee's own key and
non-key vectors (the reconstructions) and the exchanged sums: exchanged_a =
A's non-key + B's key (A given B's disease signs: should read as KL 2), and
exchanged_b = B's non-key + A's key (should read as KL 0). The model's own
KL a vs KL b discriminator judges every image; ``|exchanged − recon|`` of the
same knee shows where the key changed it (joint space, osteophytes).
"""

from __future__ import annotations

import os
from pathlib import Path
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch

from oaviz.data.cohort import Cohort
from oaviz.errors import DataError
from oaviz.models.base import Cap
from oaviz.services.model_io import as_checkpoint, as_cohort, eval_mode, model_inputs, require_capability
from oaviz.training.checkpoint import LoadedCheckpoint

OUTPUTS = ("recon_a", "recon_b", "exchanged_a", "exchanged_b")


@dataclass
class ExchangeResult:
    """Images float32 [S, S] in [0, 1] at the model's size; probabilities are P(image shows KL grade_b)."""

    image_a: np.ndarray
    image_b: np.ndarray
    recon_a: np.ndarray
    recon_b: np.ndarray
    exchanged_a: np.ndarray        # A's non-key + B's key
    exchanged_b: np.ndarray        # B's non-key + A's key
    diff_a: np.ndarray             # |exchanged_a − recon_a|
    diff_b: np.ndarray             # |exchanged_b − recon_b|
    p_grade_b: dict[str, float]    # keys image_a, image_b, recon_a, recon_b, exchanged_a, exchanged_b
    grade_a: int
    grade_b: int
    row_a: int | None = None
    row_b: int | None = None
    id_a: str | None = None
    id_b: str | None = None
    kl_a: int | None = None        # the cohort's (rater) grades, when known
    kl_b: int | None = None

    @property
    def flipped(self) -> dict[str, bool]:
        """Whether each exchanged image is judged as the *other* knee's grade (the exchange worked)."""
        return {"exchanged_a": self.p_grade_b["exchanged_a"] >= 0.5, "exchanged_b": self.p_grade_b["exchanged_b"] < 0.5}

    def summary(self) -> dict:
        """JSON-ready: the pair, P(KL grade_b) and P(KL grade_a) of each image, the decisions and flips."""
        ga, gb = self.grade_a, self.grade_b
        return {
            "grade_a": ga, "grade_b": gb,
            "image_a": {"image_id": self.id_a, "row": self.row_a, "kl": self.kl_a},
            "image_b": {"image_id": self.id_b, "row": self.row_b, "kl": self.kl_b},
            "p_grade_b": {k: round(v, 6) for k, v in self.p_grade_b.items()},
            "p_grade_a": {k: round(1.0 - v, 6) for k, v in self.p_grade_b.items()},
            "decision": {k: gb if v >= 0.5 else ga for k, v in self.p_grade_b.items()},
            "flipped": self.flipped,
            "mean_abs_difference": {"a": float(self.diff_a.mean()), "b": float(self.diff_b.mean())},
        }


def require_kecae(checkpoint: str | os.PathLike | LoadedCheckpoint) -> LoadedCheckpoint:
    """The loaded checkpoint if its model can exchange keys; MissingCapability (a ConfigError) otherwise."""
    loaded = as_checkpoint(checkpoint)
    require_capability(loaded, Cap.EXCHANGE, "cannot exchange keys")
    return loaded


@torch.no_grad()
def exchange_images(model, xa: torch.Tensor, xb: torch.Tensor) -> tuple[dict[str, torch.Tensor],
                                                                         dict[str, torch.Tensor]]:
    """(images, P(KL grade_b)) for pairs xa, xb [B, 1, S, S]: images has image_a, image_b and the four
    outputs, each [B, 1, S, S] on the CPU; the probabilities are [B] for each of them."""
    dev = next(model.parameters()).device
    with eval_mode(model):
        xa, xb = xa.to(dev), xb.to(dev)
        out = {"image_a": xa, "image_b": xb, **model.exchange(xa, xb)}
        stacked = torch.cat([out[k] for k in out])
        p = model.discriminator_proba(stacked).float().cpu().view(len(out), -1)
    return {k: v.float().cpu() for k, v in out.items()}, {k: p[i] for i, k in enumerate(out)}


def exchange_pair(checkpoint: str | os.PathLike | LoadedCheckpoint, cohort: Cohort | str | os.PathLike,
                  row_kl0: int, row_kl2: int) -> ExchangeResult:
    """The four outputs for cohort rows ``row_kl0`` (the model's grade_a knee) and ``row_kl2`` (grade_b).

    Knees of other grades are allowed (the exchange is then an exploration, not what the model was
    trained on); their cohort grades are in the result.
    """
    loaded = require_kecae(checkpoint)
    c = as_cohort(cohort)
    model = loaded.model
    rows = [int(row_kl0), int(row_kl2)]
    if rows[0] == rows[1]:
        raise DataError("pick two different knees", c.path)
    x = model_inputs(model, c, rows)                 # DataError for rows out of range
    imgs, p = exchange_images(model, x[:1], x[1:])
    a = {k: v[0, 0].numpy() for k, v in imgs.items()}
    meta = c.metadata
    kl = [None if pd.isna(meta["kl"].iloc[r]) else int(meta["kl"].iloc[r]) for r in rows]
    return ExchangeResult(
        image_a=a["image_a"], image_b=a["image_b"], recon_a=a["recon_a"], recon_b=a["recon_b"],
        exchanged_a=a["exchanged_a"], exchanged_b=a["exchanged_b"],
        diff_a=np.abs(a["exchanged_a"] - a["recon_a"]), diff_b=np.abs(a["exchanged_b"] - a["recon_b"]),
        p_grade_b={k: float(v[0]) for k, v in p.items()},
        grade_a=int(model.config.grade_a), grade_b=int(model.config.grade_b),
        row_a=rows[0], row_b=rows[1], id_a=str(meta["image_id"].iloc[rows[0]]),
        id_b=str(meta["image_id"].iloc[rows[1]]), kl_a=kl[0], kl_b=kl[1],
    )


def augmentation_cohort(checkpoint: str | os.PathLike | LoadedCheckpoint, cohort: Cohort | str | os.PathLike,
                        out: str | os.PathLike, n_pairs: int = 200, split: str = "train", seed: int = 0,
                        overwrite: bool = False, batch: int = 32) -> Path:
    """Write a cohort of exchanged images from random (grade_a, grade_b) pairs of ``split``.

    Each pair gives two images: A's non-key + B's key, labelled grade_b, and B's non-key + A's key,
    labelled grade_a (the swap the KECAE loss trains for). Subject ids name both sources, so a
    classifier's split can keep them apart; every image is in the ``train`` split.
    """
    from oaviz.data.cohort import write_cohort

    loaded = require_kecae(checkpoint)
    c = as_cohort(cohort)
    model = loaded.model
    ga, gb = int(model.config.grade_a), int(model.config.grade_b)
    m = c.metadata
    in_split = (m["split"] == split).to_numpy()
    rows_a = np.flatnonzero(in_split & (m["kl"] == ga).fillna(False).to_numpy(dtype=bool))
    rows_b = np.flatnonzero(in_split & (m["kl"] == gb).fillna(False).to_numpy(dtype=bool))
    if not len(rows_a) or not len(rows_b):
        raise DataError(f"the {split} split needs KL {ga} and KL {gb} images (found {len(rows_a)} and {len(rows_b)})",
                        c.path)
    if not 1 <= int(n_pairs) <= 100_000:
        raise DataError(f"n_pairs must be between 1 and 100000, got {n_pairs}")
    rng = np.random.default_rng(seed)
    ia, ib = rng.choice(rows_a, int(n_pairs)), rng.choice(rows_b, int(n_pairs))
    images, rows = [], []
    for i in range(0, len(ia), batch):
        a, b = ia[i:i + batch], ib[i:i + batch]
        imgs, _ = exchange_images(model, model_inputs(model, c, a), model_inputs(model, c, b))
        for k, (ra, rb) in enumerate(zip(a, b)):
            ida, idb = str(m["image_id"].iloc[ra]), str(m["image_id"].iloc[rb])
            images += [imgs["exchanged_a"][k, 0].numpy(), imgs["exchanged_b"][k, 0].numpy()]
            rows += [{"image_id": f"X{i + k:05d}a", "subject_id": f"{ida}+{idb}", "label": gb, "kl": gb},
                     {"image_id": f"X{i + k:05d}b", "subject_id": f"{idb}+{ida}", "label": ga, "kl": ga}]
    meta = pd.DataFrame(rows)
    meta["visit_month"], meta["side"], meta["split"] = 0, "R", "train"
    arr = (np.clip(np.stack(images), 0, 1) * 255 + 0.5).astype(np.uint8)
    info = {"source": "kecae-augmentation", "checkpoint": str(loaded.path), "source_cohort": str(c.path),
            "source_fingerprint": c.fingerprint, "pairs": int(n_pairs), "split": split, "seed": int(seed),
            "preprocessing": [f"KECAE key exchange of KL {ga}/KL {gb} pairs at {arr.shape[1]} px"],
            "pixel_spacing_mm": None}
    return write_cohort(out, arr, meta, info, overwrite=overwrite)
