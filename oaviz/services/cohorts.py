"""Cohorts for the app: list, ensure the default, filter and browse rows, describe.

Plain Python in, DataFrames / arrays / dataclasses out; no Streamlit. Imports
(from uploads or a server path) live in ``oaviz.services.imports``.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from oaviz.data.cohort import KL_GRADES, Cohort, is_cohort, list_cohorts, load_cohort
from oaviz.errors import DataError
from oaviz.paths import cohorts_dir, default_cohort_dir

# Columns shown when browsing (landmarks are a long string: shown on the image instead).
BROWSE_COLUMNS = ("image_id", "subject_id", "visit_month", "side", "label", "kl", "kl_true", "oa",
                  "severity", "jsw_mm", "progressor", "split")
# Throughput of the synthetic generator on two shared cores (megapixels per second), for estimates.
_SYNTH_MPX_PER_S = 3.0
_SYNTH_OVERHEAD_S = 0.5
INLINE_GENERATION_MAX_S = 4.0  # longer generations run as a job, never inside a page rerun


@dataclass(frozen=True)
class CohortSummary:
    """What the cohort picker shows, read from cohort.json only (no image is opened)."""

    path: Path
    name: str
    n_images: int
    n_subjects: int
    image_shape: tuple[int, int]
    source: str
    joint: str | None
    fingerprint: str
    is_default: bool

    @property
    def label(self) -> str:
        h, w = self.image_shape
        what = self.joint or self.source
        return f"{self.name} · {what} · {self.n_images:,} images · {h}×{w}"


def _summary(path: Path) -> CohortSummary:
    try:
        info = json.loads((path / "cohort.json").read_text())
    except (OSError, json.JSONDecodeError) as e:
        raise DataError(f"cohort.json is unreadable ({e})", path) from None
    shape = info.get("image_shape") or [0, 0]
    return CohortSummary(
        path=path, name=path.name, n_images=int(info.get("n_images", 0)),
        n_subjects=int(info.get("n_subjects", 0)), image_shape=(int(shape[0]), int(shape[1])),
        source=str(info.get("source", "unknown")), joint=info.get("joint"),
        fingerprint=str(info.get("fingerprint", "")), is_default=path.resolve() == default_cohort_dir().resolve(),
    )


def list_available(root: str | os.PathLike | None = None) -> list[CohortSummary]:
    """Cohorts under ``root`` (default: cohorts_dir()), the default synthetic one first."""
    base = Path(root) if root is not None else cohorts_dir()
    out = []
    for p in list_cohorts(base):
        with contextlib.suppress(DataError):  # a broken folder is skipped, not fatal for the picker
            out.append(_summary(p))
    return sorted(out, key=lambda s: (not s.is_default, s.name))


def cohort_fingerprint(path: str | os.PathLike) -> str:
    """Fingerprint from cohort.json (content hash written with the cohort); cheap, for cache keys."""
    return _summary(Path(path)).fingerprint


def ensure_default_cohort(progress=None) -> Path:
    """Create the embedded default synthetic knee cohort if it is missing; return its path.

    A file lock makes concurrent callers (several app sessions or processes) wait
    for one generation instead of racing to write the same folder.
    """
    from oaviz.data.synthetic import default_cohort_config, generate_cohort

    out = default_cohort_dir()
    if is_cohort(out):
        return out
    out.parent.mkdir(parents=True, exist_ok=True)
    with _file_lock(out.parent / f".{out.name}.lock"):
        if not is_cohort(out):  # someone else may have finished while we waited
            generate_cohort(out, progress=progress, **default_cohort_config())
    return out


@contextlib.contextmanager
def _file_lock(path: Path):
    try:
        import fcntl
    except ImportError:  # no flock (Windows): the atomic rename in write_cohort still protects the folder
        yield
        return
    with open(path, "a+") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def open_cohort(path: str | os.PathLike) -> Cohort:
    """Load a cohort (images memory-mapped)."""
    return load_cohort(path)


# ----------------------------------------------------------------- names and generation
def cohort_dir_for(name: str, root: str | os.PathLike | None = None, *, must_be_new: bool = True) -> Path:
    """Folder for a new cohort called ``name`` under ``root``; the name must be a plain folder name."""
    name = name.strip()
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}", name):
        raise DataError(f"cohort name {name!r} must be 1–64 letters, digits, '.', '_' or '-', "
                        "starting with a letter or digit")
    out = (Path(root) if root is not None else cohorts_dir()) / name
    if must_be_new and out.exists():
        raise DataError(f"a cohort called {name!r} already exists; pick another name", out)
    return out


def estimate_generation_s(subjects: int, visits: int, size: int) -> float:
    """Rough wall time of `oaviz synth` for these settings on this kind of machine."""
    return _SYNTH_OVERHEAD_S + subjects * visits * size * size / (_SYNTH_MPX_PER_S * 1e6)


def generation_runs_inline(subjects: int, visits: int, size: int) -> bool:
    """Small cohorts are generated directly; anything longer goes to a job."""
    return estimate_generation_s(subjects, visits, size) <= INLINE_GENERATION_MAX_S


def generate(out: str | os.PathLike, *, joint: str = "knee", subjects: int = 24,
             visits: tuple[int, ...] = (0, 12), size: int = 128, seed: int = 0) -> Path:
    """Generate a (small) synthetic cohort in this process and return its path."""
    from oaviz.data.synthetic import generate_cohort

    return generate_cohort(out, joint=joint, subjects=subjects, visits=tuple(visits), size=size, seed=seed)


# ----------------------------------------------------------------- browsing
def filter_rows(meta: pd.DataFrame, *, kl: list[int] | None = None, split: list[str] | None = None,
                side: list[str] | None = None, visit: list[int] | None = None,
                label: list[str] | None = None) -> pd.DataFrame:
    """Rows matching every given filter (None = no filter on that column); index = global row id.

    ``kl`` may contain ``-1`` for rows without a KL grade.
    """
    mask = np.ones(len(meta), dtype=bool)
    if kl is not None:
        grades = meta["kl"].astype("float64").fillna(-1).to_numpy()
        mask &= np.isin(grades, np.asarray(list(kl), dtype=float))
    if split is not None:
        mask &= meta["split"].isin(list(split)).to_numpy()
    if side is not None:
        mask &= meta["side"].isin(list(side)).to_numpy()
    if visit is not None:
        mask &= meta["visit_month"].isin(list(visit)).to_numpy()
    if label is not None:
        mask &= meta["label"].astype(str).isin([str(v) for v in label]).to_numpy()
    return meta.loc[mask]


def browse_table(rows: pd.DataFrame) -> pd.DataFrame:
    """The columns worth reading in a table, in a fixed order (index kept as row id)."""
    cols = [c for c in BROWSE_COLUMNS if c in rows.columns and (c != "label" or _label_differs(rows))]
    out = rows[cols].copy()
    out.index.name = "row"
    return out


def _label_differs(rows: pd.DataFrame) -> bool:
    # `label` repeats `kl` for KL cohorts; show it only when it carries something else.
    if rows["kl"].isna().all():
        return True
    return not (rows["label"].astype(str) == rows["kl"].astype("string").fillna("")).all()


def paginate(n_rows: int, page: int, per_page: int) -> tuple[int, int, int]:
    """(start, stop, n_pages) of 1-based ``page``, clamped to the pages that exist."""
    if per_page < 1:
        raise DataError(f"per_page must be >= 1, got {per_page}")
    n_pages = max(1, -(-n_rows // per_page))
    page = min(max(1, int(page)), n_pages)
    start = (page - 1) * per_page
    return start, min(start + per_page, n_rows), n_pages


def grade_distribution(meta: pd.DataFrame, label_names: list[str] | None = None) -> pd.DataFrame:
    """Counts per grade and split, with totals and percentages.

    Rows: ``KL 0`` … ``KL 4`` for KL cohorts (every grade listed, even when
    empty), otherwise one row per source label (named from ``label_names``
    when the labels are its indices). Columns: one count per split
    present, ``total`` and ``percent`` (of all images).
    """
    if meta["kl"].notna().any():
        grades = meta["kl"].astype("float64")
        keys = grades.map(lambda g: "unlabelled" if pd.isna(g) else f"KL {int(g)}")
        order = [f"KL {g}" for g in KL_GRADES] + (["unlabelled"] if grades.isna().any() else [])
    else:
        keys = meta["label"].astype(str)
        order = sorted(keys.unique(), key=natural_key)
        if label_names and all(k.isdigit() and int(k) < len(label_names) for k in order):
            names = {k: f"{k} · {label_names[int(k)]}" for k in order}
            keys, order = keys.map(names), [names[k] for k in order]
    table = pd.crosstab(pd.Categorical(keys, categories=order), meta["split"]).reindex(order, fill_value=0)
    splits = [s for s in ("train", "val", "test") if s in table.columns]
    table = table[splits]
    table["total"] = table.sum(axis=1)
    n = int(table["total"].sum())
    table["percent"] = (100.0 * table["total"] / n).round(1) if n else 0.0
    table.index.name = "grade"
    table.columns.name = None
    return table


def natural_key(s: str) -> list:
    """Sort key that orders embedded numbers by value: 'label 2' before 'label 10'."""
    return [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", s)]


def rater_confusion(meta: pd.DataFrame) -> pd.DataFrame | None:
    """Rater KL (rows) × true KL (columns) counts when the cohort knows the truth, else None."""
    if "kl_true" not in meta.columns or meta["kl"].isna().all():
        return None
    ok = meta["kl"].notna() & meta["kl_true"].notna()
    tab = pd.crosstab(meta.loc[ok, "kl"].astype(int), meta.loc[ok, "kl_true"].astype(int))
    tab = tab.reindex(index=list(KL_GRADES), columns=list(KL_GRADES), fill_value=0)
    tab.index.name, tab.columns.name = "rater KL", "true KL"
    return tab


@dataclass
class CohortOverview:
    """Headline numbers of a cohort."""

    n_images: int
    n_subjects: int
    visits: list[int]
    image_shape: tuple[int, int]
    labelled_kl: bool
    oa_fraction: float | None
    rater_disagreement: float | None


def overview(cohort: Cohort) -> CohortOverview:
    m = cohort.metadata
    oa = m["oa"].dropna()
    disagree = None
    if "kl_true" in m.columns and m["kl"].notna().any():
        ok = m["kl"].notna() & m["kl_true"].notna()
        disagree = float((m.loc[ok, "kl"].astype(int) != m.loc[ok, "kl_true"].astype(int)).mean()) if ok.any() else None
    return CohortOverview(
        n_images=len(m), n_subjects=int(m["subject_id"].nunique()),
        visits=sorted(int(v) for v in m["visit_month"].dropna().unique()),
        image_shape=cohort.image_size, labelled_kl=cohort.has_kl,
        oa_fraction=float(oa.astype(int).mean()) if len(oa) else None, rater_disagreement=disagree,
    )


# ----------------------------------------------------------------- images
@dataclass
class ImageRecord:
    """One image for display: pixels in [0, 1] (float32 H×W), its metadata row, and known geometry."""

    row: int
    image: np.ndarray
    metadata: dict
    landmarks: np.ndarray | None     # [16, 2] pixels (x, y) or None
    mask: np.ndarray | None          # uint8 H×W joint-space mask or None


def image_record(cohort: Cohort, row: int) -> ImageRecord:
    """The image at global row ``row`` with its metadata (landmarks decoded, not as a string)."""
    n = len(cohort)
    if not 0 <= int(row) < n:
        raise DataError(f"row {row} is outside the cohort (0–{n - 1})", cohort.path)
    row = int(row)
    meta = cohort.metadata.iloc[row].to_dict()
    landmarks = None
    if "landmarks" in meta:
        from oaviz.data.cohort import decode_landmarks

        pts = decode_landmarks(meta.pop("landmarks"))
        landmarks = None if np.isnan(pts).all() else pts
    meta = {k: (None if _isna(v) else v) for k, v in meta.items()}
    mask = np.asarray(cohort.masks[row]) if cohort.masks is not None else None
    return ImageRecord(row=row, image=cohort.images_float(row), metadata=meta, landmarks=landmarks, mask=mask)


def _isna(v) -> bool:
    try:
        return bool(pd.isna(v))
    except (TypeError, ValueError):
        return False


def thumbnails(cohort: Cohort, rows: list[int] | np.ndarray, size: int = 112) -> list[np.ndarray]:
    """uint8 thumbnails (at most ``size`` px on the long side) of the given rows, in order."""
    from PIL import Image

    out = []
    for r in rows:
        img = cohort.images[int(r)]
        if img.dtype == np.uint16:
            img = (img.astype(np.float32) / 257.0).round().astype(np.uint8)
        img = np.asarray(img)
        h, w = img.shape
        if max(h, w) > size:
            scale = size / max(h, w)
            pil = Image.fromarray(img).resize((max(1, round(w * scale)), max(1, round(h * scale))), Image.LANCZOS)
            img = np.asarray(pil)
        out.append(img)
    return out


def thumbnail_caption(meta_row: pd.Series) -> str:
    """Short caption: grade, side and visit (what a reader scans for)."""
    parts = []
    kl = meta_row.get("kl")
    parts.append(f"KL {int(kl)}" if not _isna(kl) else str(meta_row.get("label", "")))
    if meta_row.get("side"):
        parts.append(str(meta_row["side"]))
    if not _isna(meta_row.get("visit_month")):
        parts.append(f"m{int(meta_row['visit_month'])}")
    return " · ".join(parts)


# ----------------------------------------------------------------- card
def cohort_card(cohort: Cohort) -> dict:
    """cohort.json grouped for display: provenance, geometry, splits and anything else."""
    info = dict(cohort.info)
    prov_keys = ("source", "joint", "generator", "seed", "created", "preprocessing", "importer", "origin",
                 "generation_seconds")
    geo_keys = ("image_shape", "dtype", "pixel_spacing_mm", "pixel_spacing_note", "spacing_source", "fov_mm")
    ann_keys = ("labels", "label_names", "jsw_definition", "landmark_names")
    card = {
        "provenance": {k: info.pop(k) for k in prov_keys if k in info},
        "images": {k: info.pop(k) for k in geo_keys if k in info},
        "annotations": {k: info.pop(k) for k in ann_keys if k in info},
        "counts": {k: info.pop(k) for k in ("n_images", "n_subjects", "splits") if k in info},
        "identity": {k: info.pop(k) for k in ("fingerprint", "format_version", "oaviz_version") if k in info},
    }
    card["other"] = info
    return card


_UNITS = {"mm": "mm", "s": "s", "seconds": "s"}


def card_fields(group: dict, prefix: str = "") -> list[tuple[str, str]]:
    """Flatten one card group into readable (field, value) pairs: nested keys joined by ' › ',
    short lists joined by commas, units pulled out of names ('pixel_spacing_mm' → 'pixel spacing (mm)')."""
    out: list[tuple[str, str]] = []
    for key, value in group.items():
        words = str(key).split("_")
        unit = _UNITS.get(words[-1]) if len(words) > 1 else None
        label = " ".join(words[:-1] if unit else words) + (f" ({unit})" if unit else "")
        label = f"{prefix}{label}"
        if isinstance(value, dict):
            out += card_fields(value, prefix=f"{label} › ")
        elif isinstance(value, (list, tuple)):
            flat = all(not isinstance(v, (dict, list, tuple)) for v in value)
            if flat and len(value) <= 24:
                text = " × ".join(map(str, value)) if label.endswith("shape") else ", ".join(map(str, value))
                out.append((label, text))
            else:
                out.append((label, f"{len(value)} items"))
        elif isinstance(value, float):
            out.append((label, f"{value:.6g}"))
        else:
            out.append((label, "—" if value is None else str(value)))
    return out
