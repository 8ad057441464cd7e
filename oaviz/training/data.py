"""Cohort splits as in-memory tensors at the model's input size, and their batches.

Images are resized once (area interpolation) and kept as float32 in [0, 1];
for the demo sizes a whole cohort is a few hundred MB at most.

Three batch kinds (``OAModel.batch_kind``):
- ``images``: one image per item (``SplitTensors``);
- ``visit_pairs``: (baseline, next visit) of one subject and side
  (``PairTensors``; keys ``image``, ``image_next``, ``kl_next``, ``progressed``);
- ``grade_pairs``: a KL a image with a KL b image, redrawn every epoch
  (``PairTensors``; keys ``image``, ``image_pair``, ``kl_pair``).
A pair set resizes the union of the images its pairs use once and indexes it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch

from oaviz.data.cohort import Cohort
from oaviz.data.pairs import visit_pairs
from oaviz.data.transforms import resize_images
from oaviz.errors import DataError


# Batch kinds (OAModel.batch_kind) this engine can feed.
BATCH_KINDS = ("images", "visit_pairs", "grade_pairs")
_IMAGE_KEYS = ("image", "kl", "oa", "label", "landmarks")


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
        return {k: getattr(self, k)[idx].to(device) for k in _IMAGE_KEYS}

    def set_epoch(self, epoch: int) -> None:
        """Nothing to redraw: the same images every epoch."""

    def describe(self) -> str:
        return f"{len(self)} images"


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


def train_val_rows(cohort: Cohort, max_images: int | None, seed: int,
                   val_fraction: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
    """Train and validation row indices; without a val split, hold out 15 % of train subjects.

    ``val_fraction`` > 0: at least that share of the train + val subjects validate — held out of train
    when there is no val split, and a val split that is smaller is topped up with train subjects (seeded),
    so a 5-grade classifier is not chosen on a handful of knees per grade.
    """
    tr, va = cohort.split_indices("train"), cohort.split_indices("val")
    if val_fraction > 0:
        tr, va = _top_up_validation(cohort, tr, va, val_fraction, seed)
    elif len(va) == 0:
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


def _top_up_validation(cohort: Cohort, tr: np.ndarray, va: np.ndarray, fraction: float,
                       seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Move whole train subjects (seeded order) into validation until ``fraction`` of all the
    train + val subjects validate (train keeps at least one subject)."""
    subj = cohort.metadata["subject_id"].to_numpy()
    tr_subj, va_subj = pd.unique(subj[tr]), pd.unique(subj[va])
    want = int(round(fraction * (len(tr_subj) + len(va_subj)))) - len(va_subj)
    want = min(want, len(tr_subj) - 1)
    if want <= 0:
        return tr, va
    moved = set(np.random.default_rng(seed).permutation(tr_subj)[:want])
    is_moved = np.array([s in moved for s in subj[tr]])
    return tr[~is_moved], np.sort(np.concatenate([va, tr[is_moved]]))


# ----------------------------------------------------------------- pairs
def pair_seed(seed: int, epoch: int) -> int:
    """A 32-bit seed from (seed, epoch): each epoch's grade pairs differ, and a rerun (or a resume) redraws them."""
    return int(np.random.SeedSequence([int(seed) & 0xFFFFFFFF, int(epoch)]).generate_state(1)[0])


class PairTensors:
    """Pairs of images of one split as index pairs into one resized image set.

    ``base`` holds the union of the images the pairs can use (resized once);
    ``pairs`` int64 [P, 2] indexes ``base`` (column 0: ``image``, column 1:
    ``image_next`` or ``image_pair``). ``len`` is P. ``image``, ``kl``, ``oa``,
    ``label`` and ``landmarks`` are those of each pair's first image, so
    per-image validation metrics keep working; ``rows`` are the first images'
    cohort rows and ``pair_rows`` [P, 2] both.
    Grade pairs with ``redraw`` are drawn again by ``set_epoch`` with a seed
    from (seed, epoch); visit pairs are fixed.
    """

    def __init__(self, kind: str, base: SplitTensors, pairs: np.ndarray, *, table=None, grades=(0, 2),
                 n_pairs: int | None = None, seed: int = 0, redraw: bool = False):
        if kind not in ("visit_pairs", "grade_pairs"):
            raise ValueError(f"kind must be visit_pairs or grade_pairs, got {kind!r}")
        self.kind, self.base, self.table = kind, base, table
        self.grades, self.n_pairs, self.seed, self.redraw = tuple(grades), n_pairs, int(seed), redraw
        self._set_pairs(pairs)

    def _set_pairs(self, pairs: np.ndarray) -> None:
        self.pairs = np.asarray(pairs, dtype=np.int64).reshape(-1, 2)
        self._pairs_t = torch.from_numpy(self.pairs)
        self._first: dict[str, torch.Tensor] = {}      # first-image tensors, built on first use

    def __len__(self) -> int:
        return len(self.pairs)

    @property
    def rows(self) -> np.ndarray:
        return self.base.rows[self.pairs[:, 0]]

    @property
    def pair_rows(self) -> np.ndarray:
        """Cohort rows [P, 2] of both images of every pair."""
        return self.base.rows[self.pairs]

    def _first_of(self, key: str) -> torch.Tensor:
        if key not in self._first:
            self._first[key] = getattr(self.base, key)[self._pairs_t[:, 0]]
        return self._first[key]

    image = property(lambda self: self._first_of("image"))          # [P,1,S,S]
    kl = property(lambda self: self._first_of("kl"))                # [P] int64, -1 unknown
    oa = property(lambda self: self._first_of("oa"))                # [P] float32, NaN unknown
    label = property(lambda self: self._first_of("label"))          # [P] int64
    landmarks = property(lambda self: self._first_of("landmarks"))  # [P,16,2]

    def batch(self, idx, device) -> dict[str, torch.Tensor]:
        """The first images' keys plus, for visit pairs, ``image_next``, ``kl_next`` and ``progressed``
        (1 when the rater's KL rises, 0 when not, −1 when a grade is unknown) and ``landmarks_next``; for grade pairs
        ``image_pair`` and ``kl_pair``."""
        idx = torch.as_tensor(idx, dtype=torch.long)
        i0, i1 = self._pairs_t[idx, 0], self._pairs_t[idx, 1]
        out = {k: getattr(self.base, k)[i0].to(device) for k in _IMAGE_KEYS}
        kl0, kl1 = self.base.kl[i0], self.base.kl[i1]
        if self.kind == "visit_pairs":
            known = (kl0 >= 0) & (kl1 >= 0)
            out["image_next"] = self.base.image[i1].to(device)
            out["landmarks_next"] = self.base.landmarks[i1].to(device)
            out["kl_next"] = kl1.to(device)
            out["progressed"] = torch.where(known, (kl1 > kl0).long(), torch.full_like(kl0, -1)).to(device)
        else:
            out["image_pair"] = self.base.image[i1].to(device)
            out["kl_pair"] = kl1.to(device)
        return out

    def set_epoch(self, epoch: int) -> None:
        """Grade pairs with ``redraw``: a fresh random pairing for this epoch."""
        if self.redraw:
            self._set_pairs(_draw_grade_pairs(self.base, self.grades, self.n_pairs, pair_seed(self.seed, epoch)))

    def describe(self) -> str:
        if self.kind == "visit_pairs":
            t = self.table
            gaps = sorted({int(g) for g in t["gap_months"]}) if t is not None and len(t) else []
            n_subj = t["subject_id"].nunique() if t is not None else "?"
            return (f"{len(self)} visit pairs (baseline -> follow-up {', '.join(map(str, gaps))} months later) "
                    f"of {n_subj} subjects")
        a, b = self.grades
        kl = self.base.kl.numpy()
        how = "redrawn every epoch" if self.redraw else "fixed"
        return (f"{len(self)} KL {a} / KL {b} pairs ({how}) from {int((kl == a).sum())} KL {a} and "
                f"{int((kl == b).sum())} KL {b} images")


def _draw_grade_pairs(base: SplitTensors, grades: tuple[int, int], n: int | None, seed: int) -> np.ndarray:
    """Random (KL a, KL b) pairs [n, 2] of positions in ``base`` (every image of the rarer grade at least once)."""
    kl = base.kl.numpy()
    a, b = np.flatnonzero(kl == grades[0]), np.flatnonzero(kl == grades[1])
    rng = np.random.default_rng(seed)
    n = n or max(len(a), len(b))
    # Permutations first, so that each image of the rarer grade appears before any repeats.
    pick = lambda ix: ix[np.concatenate([rng.permutation(len(ix)) for _ in range(-(-n // len(ix)))])[:n]]  # noqa: E731
    return np.stack([pick(a), pick(b)], axis=1)


def _subject_rows(cohort: Cohort, rows: np.ndarray) -> np.ndarray:
    """Every row of the subjects in ``rows`` (and of their splits): pairs need all visits of a knee."""
    m = cohort.metadata
    mask = (m["subject_id"].isin(pd.unique(m["subject_id"].iloc[rows]))
            & m["split"].isin(pd.unique(m["split"].iloc[rows])))
    return np.flatnonzero(mask.to_numpy())


def visit_pair_tensors(cohort: Cohort, rows: np.ndarray, size: int, horizon_months: int | None = None,
                       max_pairs: int | None = None, seed: int = 0, role: str = "training") -> PairTensors:
    """(baseline, next visit) pairs of the subjects of ``rows``; ``horizon_months`` keeps one gap (None/0: any).

    DataError when the subjects have no follow-up visit (at that gap).
    """
    rows = np.asarray(rows, dtype=np.int64)
    if len(rows) == 0:
        raise DataError(f"the {role} split is empty", cohort.path)
    group = _subject_rows(cohort, rows)
    table = visit_pairs(cohort.metadata.iloc[group])
    table = table[table["gap_months"] > 0]                    # a repeated scan at the same visit is no follow-up
    if len(table) == 0:
        raise DataError(f"no visit pairs in the {role} subjects: the cohort has no follow-up visits (the same "
                        "subject and side seen at two visit months); the diffusion model learns from such pairs",
                        cohort.path)
    if horizon_months:
        gaps = sorted({int(g) for g in table["gap_months"]})
        table = table[table["gap_months"] == int(horizon_months)]
        if len(table) == 0:
            raise DataError(f"no {role} visit pairs {horizon_months} months apart; the gaps between consecutive "
                            f"visits here are {gaps} months (set horizon_months to one of them)", cohort.path)
    table = table.reset_index(drop=True)
    table[["idx_now", "idx_next"]] = group[table[["idx_now", "idx_next"]].to_numpy()]   # positions -> cohort rows
    if max_pairs and len(table) > max_pairs:
        keep = np.sort(np.random.default_rng(seed).choice(len(table), max_pairs, replace=False))
        table = table.iloc[keep].reset_index(drop=True)
    pr = table[["idx_now", "idx_next"]].to_numpy()
    used = np.unique(pr)
    base = split_tensors(cohort, used, size)
    return PairTensors("visit_pairs", base, np.searchsorted(used, pr), table=table, seed=seed)


def grade_pair_tensors(cohort: Cohort, rows: np.ndarray, size: int, grades: tuple[int, int] = (0, 2),
                       max_pairs: int | None = None, seed: int = 0, redraw: bool = True,
                       role: str = "training") -> PairTensors:
    """Random (KL a, KL b) pairs of ``rows`` [n, 2] with n = the larger grade's count (at most ``max_pairs``).

    DataError when ``rows`` lack either grade.
    """
    rows = np.asarray(rows, dtype=np.int64)
    kl = cohort.metadata["kl"].to_numpy(dtype=float, na_value=np.nan)[rows]
    a, b = rows[kl == grades[0]], rows[kl == grades[1]]
    if len(a) == 0 or len(b) == 0:
        raise DataError(f"grade pairs need KL {grades[0]} and KL {grades[1]} images in the {role} split; "
                        f"found {len(a)} and {len(b)}", cohort.path)
    used = np.unique(np.concatenate([a, b]))
    base = split_tensors(cohort, used, size)
    n = max(len(a), len(b))
    n = min(n, max_pairs) if max_pairs else n
    pairs = _draw_grade_pairs(base, grades, n, pair_seed(seed, 0))
    return PairTensors("grade_pairs", base, pairs, grades=grades, n_pairs=n, seed=seed, redraw=redraw)


def training_data(cohort: Cohort, kind: str, config, max_images: int | None, seed: int):
    """(train, val or None) tensors for a model's batch kind at ``config.image_size``.

    ``max_images`` caps training images (``images``) or training pairs (pair kinds). Visit pairs use
    ``config.horizon_months`` when the config has one. A validation split without usable pairs gives None.
    """
    if kind not in BATCH_KINDS:
        raise DataError(f"unknown batch kind {kind!r}; known: {BATCH_KINDS}")
    size = int(config.image_size)
    vf = float(getattr(config, "val_fraction", 0.0))
    if kind == "images":
        tr, va = train_val_rows(cohort, max_images, seed, vf)
        return split_tensors(cohort, tr, size), (split_tensors(cohort, va, size) if len(va) else None)
    tr, va = train_val_rows(cohort, None, seed, vf)  # whole subjects: a pair needs both of its visits
    if kind == "visit_pairs":
        build = lambda rows, cap, role: visit_pair_tensors(  # noqa: E731
            cohort, rows, size, getattr(config, "horizon_months", None), cap, seed, role)
    else:
        grades = (int(getattr(config, "grade_a", 0)), int(getattr(config, "grade_b", 2)))
        build = lambda rows, cap, role: grade_pair_tensors(  # noqa: E731
            cohort, rows, size, grades, cap, seed, redraw=role == "training", role=role)
    train_t = build(tr, max_images, "training")
    try:
        val_t = build(va, None, "validation") if len(va) else None
    except DataError:
        val_t = None          # e.g. no follow-ups among the few validation subjects: train without validation
    return train_t, val_t
