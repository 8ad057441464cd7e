"""Turn what users already have into a cohort folder.

- ``import_kl_folders`` (in ``oaviz.data.kl_folders``): ROOT/{train,val,test,auto_test}/{0..4}/*.png|jpg (the public knee KL layout)
- ``import_dicom``: a folder of DICOM files plus a labels table (OAI conventions understood)
- ``import_npz`` (in ``oaviz.data.npz_import``): MedMNIST-style {split}_images / {split}_labels, loaded without pickle
- ``import_csv``: a manifest ``path, kl[, subject, visit_month, side, split]``

A bad file raises a ``DataError`` naming it; with ``on_error="skip"`` (default)
it is skipped and listed in the report, with ``"stop"`` the import stops. The
cohort is written atomically at the end, so nothing half-written is ever left.
"""

from __future__ import annotations

import re
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from oaviz.data.cohort import KL_GRADES, WRITE_CHUNK, assign_splits, cohort_writer
from oaviz.data.readers import DICOM_SUFFIXES, preprocess_dicom, preprocess_picture, read_image
from oaviz.errors import DataError, as_data_error

ON_ERROR = ("skip", "stop")
OAI_VISIT_MONTHS = {0: 0, 1: 12, 2: 18, 3: 24, 4: 30, 5: 36, 6: 48, 7: 60, 8: 72, 9: 84, 10: 96, 11: 108}


@dataclass
class ImportReport:
    out: Path
    n_imported: int
    skipped: list[tuple[str, str]] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    def summary(self) -> str:
        s = f"imported {self.n_imported} images into {self.out}"
        if self.skipped:
            s += f"; skipped {len(self.skipped)} file(s)"
        return s


class Collector:
    """Accumulates images and metadata rows; applies the on_error policy.

    Images wait in an anonymous temporary file (gone with the process, even after ``kill -9``), not
    in memory, and ``write`` streams them into the cohort with ``cohort_writer``: an import holds one
    image and one chunk, however many files it reads. ``TMPDIR`` says where that file lives.
    """

    def __init__(self, on_error: str):
        if on_error not in ON_ERROR:
            raise DataError(f"on_error must be one of {ON_ERROR}, got {on_error!r}")
        self.on_error = on_error
        self.rows: list[dict] = []
        self.skipped: list[tuple[str, str]] = []
        self.steps: list[str] = []
        self._spool = None           # the temporary file, opened at the first image
        self._image = (None, None)   # (shape, dtype) every image must share

    def fail(self, err: DataError) -> None:
        if self.on_error == "stop":
            raise err
        self.skipped.append((err.where or "?", err.reason))

    def add(self, img: np.ndarray, row: dict) -> None:
        img = np.ascontiguousarray(img)
        if self._spool is None:
            self._spool, self._image = tempfile.TemporaryFile(prefix="oaviz-import-"), (img.shape, img.dtype)
        elif (img.shape, img.dtype) != self._image:
            raise DataError(f"image {row.get('image_id')!r} is {img.dtype} {img.shape}; the others are "
                            f"{self._image[1]} {self._image[0]}")
        self._spool.write(img.data)
        self.rows.append(row)

    def write(self, out, info: dict, overwrite: bool, split_seed: int = 0) -> ImportReport:
        if not self.rows:
            detail = f" ({len(self.skipped)} skipped; first: {self.skipped[0][0]}: {self.skipped[0][1]})" if self.skipped else ""
            raise DataError(f"no image could be imported{detail}", out)
        meta = pd.DataFrame(self.rows)
        if "split" not in meta or meta["split"].isna().any():  # no (complete) source split: by subject
            meta["split"] = assign_splits(meta["subject_id"], seed=split_seed)
        info = {**info, "skipped": len(self.skipped), "skipped_files": self.skipped[:200]}
        (shape, dtype), n = self._image, len(self.rows)
        with self._spool, cohort_writer(out, n, shape, dtype, overwrite=overwrite) as w:
            self._spool.seek(0)
            for i in range(0, n, WRITE_CHUNK):
                chunk = np.empty((min(WRITE_CHUNK, n - i), *shape), dtype)
                self._spool.readinto(chunk.reshape(-1).view(np.uint8))
                w.add(chunk)
            w.finish(meta, info)
        return ImportReport(Path(out), n, self.skipped)


def check_sizes(size: int | None = None, spacing_mm: float | None = None) -> None:
    """Refuse an output size or pixel spacing that no image could be made with, before any file is read."""
    if size is not None and not (isinstance(size, (int, np.integer)) and 8 <= size <= 4096):
        raise DataError(f"output size {size!r} must be a whole number of pixels from 8 to 4096")
    if spacing_mm is not None and not (isinstance(spacing_mm, (int, float)) and np.isfinite(spacing_mm)
                                       and 0.01 <= spacing_mm <= 10):
        raise DataError(f"pixel spacing {spacing_mm!r} mm must be a number from 0.01 to 10")


def _inside(root: Path, rel: str, where: str) -> Path:
    """Resolve ``rel`` under ``root``; a path that escapes the root is refused."""
    p = Path(rel)
    if p.is_absolute():
        raise DataError(f"absolute path {rel!r} not allowed (paths are relative to {root})", where)
    full = (root / p).resolve()
    if not full.is_relative_to(root.resolve()):
        raise DataError(f"path {rel!r} escapes the source folder", where)
    return full


def _kl_value(v, where: str) -> int | None:
    if v is None or (isinstance(v, float) and np.isnan(v)) or (isinstance(v, str) and not v.strip()):
        return None
    try:
        f = float(v)
    except (TypeError, ValueError):
        raise DataError(f"KL grade {v!r} is not a number", where) from None
    if f not in KL_GRADES:
        raise DataError(f"KL grade {v!r} outside 0–4", where)
    return int(f)


def parse_side(v) -> str:
    """OAI '1'/'2', '1: Right'/'2: Left', R/L, Right/Left -> 'R'/'L' ('' if unknown)."""
    s = str(v).strip().upper()
    if s in ("1", "1.0", "R", "RIGHT") or s.startswith("1:") or s.startswith("1 ") or "RIGHT" in s:
        return "R"
    if s in ("2", "2.0", "L", "LEFT") or s.startswith("2:") or s.startswith("2 ") or "LEFT" in s:
        return "L"
    return ""


def parse_visit(v) -> int:
    """Visit to months: OAI 'V00','V01','V03'… (0, 12, 24…), 'M12'/'12m', or a number of months."""
    s = str(v).strip().upper()
    m = re.fullmatch(r"V(\d{1,2})", s)
    if m:
        k = int(m.group(1))
        if k not in OAI_VISIT_MONTHS:
            raise DataError(f"unknown OAI visit {v!r}")
        return OAI_VISIT_MONTHS[k]
    m = re.fullmatch(r"M?(\d+)M?", s)
    if m:
        return int(m.group(1))
    raise DataError(f"cannot read visit {v!r} (expected V00, V01… or months)")


# ----------------------------------------------------------------- KL folders
def _read_text_table(path: Path, what: str) -> pd.DataFrame:
    """A CSV as strings (nothing parsed as NA); DataError naming ``what`` when missing or unreadable."""
    if not path.is_file():
        raise DataError(f"{what} not found", path)
    try:   # short (ragged) rows give NaN even with keep_default_na=False: blank them too; index_col=False:
        # when every row has one field more than the header, the first column must not become the index
        return pd.read_csv(path, dtype=str, keep_default_na=False, index_col=False).fillna("")
    except Exception as e:  # noqa: BLE001  (ParserError on ragged rows, UnicodeDecodeError, NUL bytes, …)
        raise DataError(f"unreadable {what} ({type(e).__name__}: {e})", path) from None


# ----------------------------------------------------------------- CSV manifest
def import_csv(manifest, out, *, size: int = 224, on_error: str = "skip", overwrite: bool = False,
               spacing_mm: float = 0.4, seed: int = 0) -> ImportReport:
    """A manifest ``path, kl[, subject, visit_month, side, split]`` (paths relative to its folder)."""
    manifest = Path(manifest)
    check_sizes(size, spacing_mm)
    table = _read_text_table(manifest, "manifest")
    table.columns = [c.strip().lower() for c in table.columns]
    for c in ("path", "kl"):
        if c not in table:
            raise DataError(f"manifest is missing column {c!r} (has {list(table.columns)})", manifest)
    root = manifest.parent
    col = Collector(on_error)
    first_row: dict[str, int] = {}
    for i, r in table.iterrows():
        where = f"{manifest}:row {i + 2}"
        try:
            if r["path"] in first_row:   # the image id: one duplicate row must not sink the whole import
                raise DataError(f"duplicate of row {first_row[r['path']]} (same path {r['path']!r})", where)
            first_row[r["path"]] = i + 2
            kl = _kl_value(r["kl"], where)
            f = _inside(root, r["path"], where)
            raw = read_image(f)
            img = preprocess_dicom(raw, size, spacing_mm)[0] if raw.source == "dicom" else preprocess_picture(raw, size)
            side = parse_side(r.get("side", "")) or raw.header.get("laterality", "")
            if side == "L":
                img = img[:, ::-1].copy()
            split = r.get("split", "").strip().lower() or None
            if split is not None and split not in ("train", "val", "test"):
                raise DataError(f"split {split!r} is not train, val or test", where)
            visit = parse_visit(r["visit_month"]) if r.get("visit_month", "").strip() else 0
        except Exception as e:  # noqa: BLE001  (one unreadable file must not abort the import)
            col.fail(as_data_error(e, where))
            continue
        subject = r.get("subject", "").strip() or Path(r["path"]).stem
        col.add(img, {"image_id": r["path"], "subject_id": subject, "visit_month": visit, "side": side,
                      "label": kl, "kl": kl, "split": split})
    info = {"source": "csv", "source_path": str(manifest.resolve()), "labels": "kl",
            "preprocessing": [f"DICOM: resample to {spacing_mm} mm, central ROI, 1–99 % normalisation",
                              f"PNG/JPEG: resized to {size}×{size}", "left sides flipped to right"],
            "pixel_spacing_mm": spacing_mm}
    return col.write(out, info, overwrite, split_seed=seed)


# ----------------------------------------------------------------- DICOM + labels
def _label_table(labels, columns: dict[str, str] | None) -> pd.DataFrame:
    """Normalise a labels CSV to long format: path? | (subject, side, visit_month), kl."""
    p = Path(labels)
    t = _read_text_table(p, "labels table")
    t = t.rename(columns={v: k for k, v in (columns or {}).items()})
    t.columns = [c.strip() for c in t.columns]
    upper = {c.upper(): c for c in t.columns}
    # OAI wide format: V00XRKL, V01XRKL ... -> one row per visit
    wide = [c for c in t.columns if re.fullmatch(r"V\d\dXRKL", c.upper())]
    if wide and "KL" not in upper:
        id_cols = [c for c in t.columns if c not in wide]
        t = t.melt(id_vars=id_cols, value_vars=wide, var_name="_v", value_name="KL")
        t["VISIT"] = t["_v"].str[:3]
        t = t[t["KL"].str.strip() != ""].drop(columns="_v")
        upper = {c.upper(): c for c in t.columns}
    kl_col = upper.get("KL")
    if kl_col is None:
        raise DataError(f"labels table has no KL column (columns: {list(t.columns)}; map one with --columns KL=name)", p)
    out = pd.DataFrame({"kl": t[kl_col]})
    if "PATH" in upper:
        out["path"] = t[upper["PATH"]]
        return out
    need = {"ID": None, "SIDE": None}
    for k in need:
        if k not in upper:
            raise DataError(f"labels table needs a 'path' column or {list(need)} (+ optional VISIT); "
                            f"missing {k!r}", p)
    out["subject"] = t[upper["ID"]].str.strip()
    out["side"] = t[upper["SIDE"]].map(parse_side)
    out["visit_month"] = t[upper["VISIT"]].map(parse_visit) if "VISIT" in upper else 0
    return out


def _visit_from_path(rel: str) -> int | None:
    for part in reversed(Path(rel).parts[:-1]):
        m = re.fullmatch(r"V(\d\d)", part.upper()) or re.fullmatch(r"(\d+)M", part.upper())
        if m:
            return parse_visit(part)
    return None


def import_dicom(src, out, *, labels, columns: dict[str, str] | None = None, size: int = 224,
                 spacing_mm: float = 0.4, on_error: str = "skip", overwrite: bool = False,
                 seed: int = 0) -> ImportReport:
    """A folder of DICOM files + a labels table (``path`` column, or OAI ``ID, SIDE[, VISIT], KL``)."""
    root = Path(src)
    if not root.is_dir():
        raise DataError("source folder not found", root)
    check_sizes(size, spacing_mm)
    table = _label_table(labels, columns)
    col = Collector(on_error)
    spacing_tags: dict[str, int] = {}
    if "path" in table:
        items = []
        for i, r in table.iterrows():
            where = f"{labels}:row {i + 2}"
            try:
                items.append((_inside(root, r["path"], where), r["path"], _kl_value(r["kl"], where), None))
            except Exception as e:  # noqa: BLE001  (a NUL byte, an over-long name, a symlink loop, …)
                col.fail(as_data_error(e, where))
    else:
        key = {(r.subject, r.side, int(r.visit_month)): r.kl for r in table.itertuples()}
        items = []
        inside = root.resolve()
        for f in sorted(root.rglob("*")):
            if not f.is_file() or f.name.startswith(".") or f.suffix.lower() not in DICOM_SUFFIXES:
                continue
            try:
                outside = not f.resolve().is_relative_to(inside)   # through a file or folder symlink
            except (OSError, RuntimeError) as e:   # a symlink loop
                col.fail(as_data_error(e, f))
                continue
            if outside:
                col.fail(DataError("resolves outside the source folder (symlink)", f))
                continue
            items.append((f, str(f.relative_to(root)), None, key))
    for f, rel, kl, key in items:
        try:
            raw = read_image(f)
            if raw.source != "dicom":
                raise DataError("not a DICOM file", f)
            img, steps = preprocess_dicom(raw, size, spacing_mm)
            side = raw.header.get("laterality", "")
            subject = raw.header.get("PatientID", "") or Path(rel).parts[0]
            visit = _visit_from_path(rel) or 0
            if key is not None:
                k = (subject, side, visit)
                if k not in key:
                    raise DataError(f"no label row for ID={subject} SIDE={side or '?'} visit={visit} months", f)
                kl = _kl_value(key[k], str(f))
        except Exception as e:  # noqa: BLE001  (one unreadable file must not abort the import)
            col.fail(as_data_error(e, f))
            continue
        spacing_tags[raw.spacing_tag or "none"] = spacing_tags.get(raw.spacing_tag or "none", 0) + 1
        if side == "L":
            img = img[:, ::-1].copy()
        col.add(img, {"image_id": rel, "subject_id": subject or rel, "visit_month": visit, "side": side,
                      "label": kl, "kl": kl, "split": None})
    info = {"source": "dicom", "source_path": str(root.resolve()), "labels": "kl",
            "preprocessing": ["modality LUT", "VOI LUT when present", "MONOCHROME1 inverted",
                              f"resampled to {spacing_mm} mm", f"central {size}×{size} ROI",
                              "1–99 percentile normalisation", "left sides flipped to right"],
            "pixel_spacing_mm": spacing_mm, "spacing_source_counts": spacing_tags}
    return col.write(out, info, overwrite, split_seed=seed)


def parse_columns(text: str | None) -> dict[str, str]:
    """'KL=grade,ID=patient' -> {'KL': 'grade', 'ID': 'patient'} (oaviz name = your column)."""
    if not text:
        return {}
    out = {}
    for part in text.split(","):
        if "=" not in part:
            raise DataError(f"--columns expects NAME=column pairs, got {part!r}")
        k, v = part.split("=", 1)
        out[k.strip().upper() if k.strip().lower() != "path" else "path"] = v.strip()
    return out

