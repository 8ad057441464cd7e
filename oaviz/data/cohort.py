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

import contextlib
import hashlib
import json
import mmap
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Iterator

import numpy as np
import pandas as pd

from oaviz import __version__
from oaviz.data.atomic import atomic_folder
from oaviz.errors import DataError

FORMAT_VERSION = 1
REQUIRED_COLUMNS = ("image_id", "subject_id", "visit_month", "side", "label", "kl", "oa", "split")
OPTIONAL_COLUMNS = ("kl_true", "severity", "jsw_mm", "progressor", "progression_cue", "landmarks")
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


# ----------------------------------------------------------------- writing
WRITE_CHUNK = 256  # images per write when a whole array is given (about 13 MB at 224×224 uint8)


class CohortWriter:
    """Streams one cohort's pixels into ``images.npy`` (and ``masks.npy``) chunk by chunk.

    Open it with ``cohort_writer``; ``add`` appends images [B,H,W] (masks alike) with plain file
    writes, never through a memory map, so the process holds one chunk, not the cohort; the
    fingerprint is hashed on the way. ``finish`` checks the count, validates the metadata and writes
    ``metadata.csv`` and ``cohort.json``. The files are those ``np.save`` writes, byte for byte.
    """

    def __init__(self, folder: Path, out: Path, n: int, image_shape: tuple[int, int], dtype, with_masks: bool):
        self.out, self.n, self.shape, self.dtype = out, int(n), tuple(int(s) for s in image_shape), np.dtype(dtype)
        self.count, self.finished, self._folder = 0, False, folder
        header = {"descr": np.lib.format.dtype_to_descr(self.dtype), "fortran_order": False,
                  "shape": (self.n, *self.shape)}
        self._files = {"images": open(folder / "images.npy", "wb")}
        if with_masks:
            self._files["masks"] = open(folder / "masks.npy", "wb")
        for name, f in self._files.items():
            np.lib.format.write_array_header_1_0(f, header if name == "images" else {**header, "descr": "|u1"})
        self._hash = hashlib.sha256(str((self.dtype.str, (self.n, *self.shape))).encode())  # the prefix every cohort fingerprint starts from

    def add(self, images: np.ndarray, masks: np.ndarray | None = None) -> None:
        """Append images [B,H,W] (or one [H,W]) and, when the cohort has masks, their masks."""
        images = np.asarray(images)
        images = images[None] if images.ndim == 2 else images
        if images.ndim != 3 or images.shape[1:] != self.shape or images.dtype != self.dtype:
            raise DataError(f"images must be {self.dtype} B×{self.shape[0]}×{self.shape[1]}, got "
                            f"{images.dtype} {images.shape}", self.out)
        if ("masks" in self._files) != (masks is not None):
            raise DataError("masks must be given with every chunk of a cohort that has masks, and only then", self.out)
        if self.count + len(images) > self.n:
            raise DataError(f"more than the {self.n} images announced", self.out)
        flat = np.ascontiguousarray(images).reshape(-1).view(np.uint8)
        self._files["images"].write(flat.data)
        self._hash.update(flat.data)
        if masks is not None:
            masks = np.asarray(masks)
            masks = masks[None] if masks.ndim == 2 else masks
            if masks.shape != images.shape:
                raise DataError(f"masks shape {masks.shape} differs from images {images.shape}", self.out)
            self._files["masks"].write(np.ascontiguousarray(masks.astype(np.uint8)).data)
        self.count += len(images)

    def finish(self, metadata: pd.DataFrame, info: dict) -> None:
        """Write metadata.csv and cohort.json (fingerprint, version and counts added to ``info``)."""
        if self.count != self.n:
            raise DataError(f"{self.count} images written but {self.n} announced", self.out)
        meta = validate_metadata(metadata, self.n, self.out)
        cols = list(REQUIRED_COLUMNS) + [c for c in meta.columns if c not in REQUIRED_COLUMNS]
        meta_bytes = meta[cols].to_csv(index=False).encode()
        self.close()
        (self._folder / "metadata.csv").write_bytes(meta_bytes)
        self._hash.update(meta_bytes)
        counts = meta["split"].value_counts().to_dict()
        full_info = {
            **info,
            "n_images": int(len(meta)),
            "n_subjects": int(meta["subject_id"].nunique()),
            "image_shape": list(self.shape),
            "dtype": self.dtype.name,
            "splits": {s: int(counts.get(s, 0)) for s in SPLITS},
            "fingerprint": self._hash.hexdigest()[:16],
            "format_version": FORMAT_VERSION,
            "oaviz_version": __version__,
        }
        (self._folder / "cohort.json").write_text(json.dumps(full_info, indent=2, default=_json_default))
        self.finished = True

    def close(self) -> None:
        for f in self._files.values():
            f.close()


@contextlib.contextmanager
def cohort_writer(out: str | os.PathLike, n: int, image_shape: tuple[int, int], dtype=np.uint8,
                  with_masks: bool = False, overwrite: bool = False) -> Iterator[CohortWriter]:
    """A ``CohortWriter`` for ``n`` images of ``image_shape`` in a temporary folder beside ``out``
    (``atomic_folder``): renamed into place once ``finish`` has run, removed on any failure."""
    out = Path(out)
    if np.dtype(dtype) not in (np.uint8, np.uint16):
        raise DataError(f"images must be uint8 or uint16, got {np.dtype(dtype)}", out)
    if out.exists() and not overwrite:
        raise DataError("destination already exists (use overwrite)", out)
    with atomic_folder(out) as tmp:
        w = CohortWriter(tmp, out, n, image_shape, dtype, with_masks)
        try:
            yield w
        finally:
            w.close()
        if not w.finished:
            raise DataError("the cohort was not finished (metadata missing)", out)


def write_cohort(
    out: str | os.PathLike,
    images: np.ndarray,
    metadata: pd.DataFrame,
    info: dict,
    masks: np.ndarray | None = None,
    overwrite: bool = False,
) -> Path:
    """Write a cohort folder atomically and return its path.

    images: uint8/uint16 [N, H, W] (an array or a memory map: written WRITE_CHUNK at a time);
    metadata: one row per image with REQUIRED_COLUMNS; info: source-specific keys for cohort.json
    (``source``, ``preprocessing``, ``pixel_spacing_mm`` …). Fingerprint, version and counts are added
    here. Writers that produce images piece by piece use ``cohort_writer`` directly.
    """
    out = Path(out)
    if images.ndim != 3:
        raise DataError(f"images must be N×H×W, got shape {images.shape}", out)
    if masks is not None and masks.shape != images.shape:
        raise DataError(f"masks shape {masks.shape} differs from images {images.shape}", out)
    with cohort_writer(out, len(images), images.shape[1:], images.dtype, masks is not None, overwrite) as w:
        for i in range(0, len(images), WRITE_CHUNK):
            w.add(images[i:i + WRITE_CHUNK], None if masks is None else masks[i:i + WRITE_CHUNK])
        w.finish(metadata, info)
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


def read_rows(images: np.ndarray, start: int, stop: int) -> np.ndarray:
    """A copy of ``images[start:stop]`` [B,H,W].

    From a cohort's memory map (as ``load_cohort`` opens it) the rows are read with the file's
    read() instead: pages touched through a map stay in the process's resident set, so one pass
    over 50,000 knees would hold 2.5 GB; read() leaves them in the page cache only.
    """
    base = getattr(images, "base", None)
    whole_file = (isinstance(images, np.memmap) and isinstance(base, mmap.mmap) and images.filename
                  and images.flags.c_contiguous and images.offset % mmap.ALLOCATIONGRANULARITY + images.nbytes == len(base))
    if not whole_file:
        return np.array(images[start:stop])
    start, stop, _ = slice(start, stop).indices(len(images))
    out = np.empty((max(stop - start, 0), *images.shape[1:]), dtype=images.dtype)
    row = images.itemsize * int(np.prod(images.shape[1:]))
    with open(images.filename, "rb") as f:
        f.seek(images.offset + start * row)
        if f.readinto(out.reshape(-1).view(np.uint8)) != out.nbytes:
            raise DataError("images.npy is shorter than its header says", images.filename)
    return out


def list_cohorts(root: str | os.PathLike) -> list[Path]:
    """Cohort folders directly below ``root`` (hidden temporary folders skipped)."""
    r = Path(root)
    if not r.is_dir():
        return []
    return sorted(d for d in r.iterdir() if d.is_dir() and not d.name.startswith(".") and is_cohort(d))
