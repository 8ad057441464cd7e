"""The cohort format: one folder per dataset, whatever its source.

Layout of a cohort folder::

    images.npy     uint8 or uint16, N×H×W, opened as a memory map
    metadata.csv   one row per image (see REQUIRED_COLUMNS / OPTIONAL_COLUMNS)
    cohort.json    source, preprocessing, pixel spacing, fingerprint, version
    masks.npy      optional uint8 N×H×W joint-space masks (synthetic cohorts)

A cohort is written to a hidden temporary folder beside its destination and
renamed into place only once every file is complete, so a failed or killed run
never leaves a folder that looks finished.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable

import numpy as np
import pandas as pd

from oaviz import __version__
from oaviz.data.atomic import atomic_folder
from oaviz.errors import DataError

FORMAT_VERSION = 1
REQUIRED_COLUMNS = ("image_id", "subject_id", "visit_month", "side", "label", "kl", "oa", "split")
OPTIONAL_COLUMNS = ("kl_true", "severity", "jsw_mm", "progressor", "landmarks")
SPLITS = ("train", "val", "test")
KL_GRADES = (0, 1, 2, 3, 4)  # Kellgren–Lawrence: 0 none, 1 doubtful, 2 minimal (OA from here), 3 moderate, 4 severe
DEFAULT_SPLIT_FRACTIONS = (0.7, 0.1, 0.2)
SIDES = ("R", "L", "")


@dataclass
class Cohort:
    """A loaded cohort. ``images`` is a read-only memory map (N×H×W)."""

    path: Path
    images: np.ndarray
    metadata: pd.DataFrame
    info: dict
    masks: np.ndarray | None = field(default=None, repr=False)

    def __len__(self) -> int:
        return len(self.metadata)

    @property
    def fingerprint(self) -> str:
        return self.info["fingerprint"]

    @property
    def name(self) -> str:
        return self.path.name

    @property
    def image_size(self) -> tuple[int, int]:
        return tuple(self.images.shape[1:3])  # type: ignore[return-value]

    @property
    def has_kl(self) -> bool:
        """True when the labels are KL grades (so `kl`/`oa` are filled)."""
        return bool(self.metadata["kl"].notna().any())

    def split_indices(self, split: str) -> np.ndarray:
        """Row indices (int64) of one split, in file order."""
        if split not in SPLITS:
            raise DataError(f"unknown split {split!r}; expected one of {SPLITS}", self.path)
        return np.flatnonzero(self.metadata["split"].to_numpy() == split)

    def images_float(self, idx: np.ndarray | slice | None = None) -> np.ndarray:
        """Images scaled to [0, 1] float32, shape [n, H, W]."""
        arr = self.images if idx is None else self.images[idx]
        scale = 65535.0 if self.images.dtype == np.uint16 else 255.0
        return np.asarray(arr, dtype=np.float32) / scale

    def landmarks(self) -> np.ndarray | None:
        """Landmarks as float32 [N, 16, 2] (x, y in pixels), or None when unknown."""
        if "landmarks" not in self.metadata:
            return None
        return np.stack([decode_landmarks(s) for s in self.metadata["landmarks"]])


# ----------------------------------------------------------------- landmarks
def encode_landmarks(points: np.ndarray) -> str:
    """[K, 2] pixel coordinates -> compact 'x y;x y;…' string for metadata.csv."""
    return ";".join(f"{x:.2f} {y:.2f}" for x, y in np.asarray(points, dtype=np.float64))


def decode_landmarks(text: object) -> np.ndarray:
    """Inverse of encode_landmarks; NaNs [16, 2] for a missing value."""
    if not isinstance(text, str) or not text:
        return np.full((16, 2), np.nan, dtype=np.float32)
    return np.array([[float(v) for v in p.split()] for p in text.split(";")], dtype=np.float32)


# ----------------------------------------------------------------- splits
def assign_splits(
    subject_ids: Iterable[object],
    fractions: tuple[float, float, float] = DEFAULT_SPLIT_FRACTIONS,
    seed: int = 0,
) -> np.ndarray:
    """Split by subject: every image of one subject lands in the same split.

    Each subject is placed by a hash of (seed, subject_id), so the assignment is
    deterministic, independent of row order, and stable when subjects are added.
    Returns an object array of 'train' / 'val' / 'test', one per input row.
    """
    if len(fractions) != 3 or min(fractions) < 0 or abs(sum(fractions) - 1) > 1e-6:
        raise DataError(f"split fractions must be three non-negative numbers summing to 1, got {fractions}")
    subjects = pd.Series(list(subject_ids), dtype=str)
    uniq = subjects.unique()
    u = np.array([
        int.from_bytes(hashlib.sha1(f"{seed}:{s}".encode()).digest()[:8], "big") / 2**64 for s in uniq
    ])
    # Rank-based cut points: exact proportions of subjects, not just in expectation.
    order = np.argsort(u, kind="stable")
    n = len(uniq)
    n_train = int(round(fractions[0] * n))
    n_val = int(round(fractions[1] * n))
    labels = np.empty(n, dtype=object)
    labels[order[:n_train]] = "train"
    labels[order[n_train:n_train + n_val]] = "val"
    labels[order[n_train + n_val:]] = "test"
    return subjects.map(dict(zip(uniq, labels))).to_numpy(dtype=object)


# ----------------------------------------------------------------- validation
def validate_metadata(meta: pd.DataFrame, n_images: int, where: object = None) -> pd.DataFrame:
    """Check and normalise a metadata table; returns a cleaned copy."""
    if "oa" not in meta.columns and "kl" in meta.columns:
        meta = meta.assign(oa=None)  # always derived from kl below
    missing = [c for c in REQUIRED_COLUMNS if c not in meta.columns]
    if missing:
        raise DataError(f"metadata is missing column(s) {missing}", where)
    if len(meta) != n_images:
        raise DataError(f"metadata has {len(meta)} rows but there are {n_images} images", where)
    meta = meta.copy().reset_index(drop=True)
    if meta["image_id"].astype(str).duplicated().any():
        dup = meta.loc[meta["image_id"].astype(str).duplicated(), "image_id"].iloc[0]
        raise DataError(f"duplicate image_id {dup!r}", where)
    kl = pd.to_numeric(meta["kl"], errors="coerce")
    bad = meta["kl"].notna() & (kl.isna() | ~kl.isin(KL_GRADES))
    if bad.any():
        row = int(np.flatnonzero(bad.to_numpy())[0])
        raise DataError(f"KL grade {meta['kl'].iloc[row]!r} outside 0–4 (row {row})", where)
    meta["kl"] = kl.astype("Int64")
    meta["oa"] = (meta["kl"] >= 2).astype("Int64").where(meta["kl"].notna())
    bad_split = ~meta["split"].isin(SPLITS)
    if bad_split.any():
        raise DataError(f"split {meta['split'][bad_split].iloc[0]!r} is not one of {SPLITS}", where)
    meta["side"] = meta["side"].fillna("").astype(str)
    bad_side = ~meta["side"].isin(SIDES)
    if bad_side.any():
        raise DataError(f"side {meta['side'][bad_side].iloc[0]!r} is not R, L or empty", where)
    meta["image_id"] = meta["image_id"].astype(str)
    meta["subject_id"] = meta["subject_id"].astype(str)
    leaks = set(meta.loc[meta.split == "train", "subject_id"]) & set(meta.loc[meta.split == "test", "subject_id"])
    if leaks:
        raise DataError(f"subject {sorted(leaks)[0]!r} is in both train and test splits", where)
    return meta


def fingerprint_of(images: np.ndarray, meta_csv_bytes: bytes) -> str:
    """Content hash of a cohort (images + metadata), 16 hex characters."""
    h = hashlib.sha256()
    h.update(str((images.dtype.str, images.shape)).encode())
    flat = np.ascontiguousarray(images).reshape(-1).view(np.uint8)
    step = 1 << 26  # hash in 64 MiB pieces so a memory map is never copied whole
    for i in range(0, flat.size, step):
        h.update(flat[i:i + step].data)
    h.update(meta_csv_bytes)
    return h.hexdigest()[:16]


# ----------------------------------------------------------------- writing
def write_cohort(
    out: str | os.PathLike,
    images: np.ndarray,
    metadata: pd.DataFrame,
    info: dict,
    masks: np.ndarray | None = None,
    overwrite: bool = False,
) -> Path:
    """Write a cohort folder atomically and return its path.

    images: uint8/uint16 [N, H, W]; metadata: one row per image with
    REQUIRED_COLUMNS; info: source-specific keys for cohort.json (``source``,
    ``preprocessing``, ``pixel_spacing_mm`` …). Fingerprint, version and counts
    are added here.
    """
    out = Path(out)
    if images.ndim != 3:
        raise DataError(f"images must be N×H×W, got shape {images.shape}", out)
    if images.dtype not in (np.uint8, np.uint16):
        raise DataError(f"images must be uint8 or uint16, got {images.dtype}", out)
    if masks is not None and masks.shape != images.shape:
        raise DataError(f"masks shape {masks.shape} differs from images {images.shape}", out)
    if out.exists() and not overwrite:
        raise DataError("destination already exists (use overwrite)", out)
    meta = validate_metadata(metadata, len(images), out)
    cols = list(REQUIRED_COLUMNS) + [c for c in meta.columns if c not in REQUIRED_COLUMNS]
    meta = meta[cols]
    meta_bytes = meta.to_csv(index=False).encode()

    with atomic_folder(out) as tmp:
        np.save(tmp / "images.npy", np.ascontiguousarray(images))
        if masks is not None:
            np.save(tmp / "masks.npy", np.ascontiguousarray(masks.astype(np.uint8)))
        (tmp / "metadata.csv").write_bytes(meta_bytes)
        counts = meta["split"].value_counts().to_dict()
        full_info = {
            **info,
            "n_images": int(len(meta)),
            "n_subjects": int(meta["subject_id"].nunique()),
            "image_shape": [int(images.shape[1]), int(images.shape[2])],
            "dtype": images.dtype.name,
            "splits": {s: int(counts.get(s, 0)) for s in SPLITS},
            "fingerprint": fingerprint_of(images, meta_bytes),
            "format_version": FORMAT_VERSION,
            "oaviz_version": __version__,
        }
        (tmp / "cohort.json").write_text(json.dumps(full_info, indent=2, default=_json_default))
    return out


def _json_default(o):
    if isinstance(o, (np.integer,)):
        return int(o)
    if isinstance(o, (np.floating,)):
        return float(o)
    if isinstance(o, np.ndarray):
        return o.tolist()
    if isinstance(o, Path):
        return str(o)
    raise TypeError(f"not JSON serialisable: {type(o).__name__}")


# ----------------------------------------------------------------- reading
def is_cohort(path: str | os.PathLike) -> bool:
    p = Path(path)
    return all((p / f).is_file() for f in ("images.npy", "metadata.csv", "cohort.json"))


def load_cohort(path: str | os.PathLike) -> Cohort:
    """Open a cohort folder; images (and masks) are memory-mapped read-only."""
    p = Path(path)
    if not p.is_dir():
        raise DataError("no such cohort folder", p)
    for f in ("images.npy", "metadata.csv", "cohort.json"):
        if not (p / f).is_file():
            raise DataError(f"not a cohort: {f} is missing", p)
    try:
        info = json.loads((p / "cohort.json").read_text())
    except json.JSONDecodeError as e:
        raise DataError(f"cohort.json is not valid JSON ({e})", p / "cohort.json") from None
    try:
        images = np.load(p / "images.npy", mmap_mode="r", allow_pickle=False)
    except ValueError as e:
        raise DataError(f"images.npy is unreadable ({e})", p / "images.npy") from None
    if images.ndim != 3 or images.dtype not in (np.uint8, np.uint16):
        raise DataError(f"images.npy must be uint8/uint16 N×H×W, got {images.dtype} {images.shape}", p)
    meta = pd.read_csv(p / "metadata.csv", dtype={"image_id": str, "subject_id": str, "side": str},
                       keep_default_na=True)
    meta = validate_metadata(meta, len(images), p / "metadata.csv")
    masks = None
    if (p / "masks.npy").is_file():
        masks = np.load(p / "masks.npy", mmap_mode="r", allow_pickle=False)
    return Cohort(path=p, images=images, metadata=meta, info=info, masks=masks)


def list_cohorts(root: str | os.PathLike) -> list[Path]:
    """Cohort folders directly below ``root`` (hidden temporary folders skipped)."""
    r = Path(root)
    if not r.is_dir():
        return []
    return sorted(d for d in r.iterdir() if d.is_dir() and not d.name.startswith(".") and is_cohort(d))
