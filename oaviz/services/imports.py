"""Imports for the app: a server path or a set of uploaded files → a new cohort.

Thin wrappers over ``oaviz.data.importers`` (the same functions `oaviz import`
runs). Uploads are written to a private temporary folder first — zip archives
expanded with limits on size, member count and compression ratio, and no
member allowed outside the folder — then imported like a server path.
"""

from __future__ import annotations

import importlib
import inspect
import os
import shutil
import tempfile
import zipfile
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from oaviz.errors import DataError
from oaviz.services.cohorts import cohort_dir_for

FORMATS = {
    "kl-folders": "Folders by KL grade (ROOT/{train,val,test,auto_test}/{0..4}/*.png|jpg)",
    "dicom": "DICOM files + a labels CSV (OAI-style ID, SIDE, VISIT, KL, or a column mapping)",
    "npz": "MedMNIST-style .npz ({split}_images, {split}_labels)",
    "csv": "CSV manifest (path, kl[, subject, visit_month, side, split]) + the images it names",
}
_FUNCTIONS = {"kl-folders": ("kl_folders", "import_kl_folders"), "dicom": ("importers", "import_dicom"),
              "npz": ("importers", "import_npz"), "csv": ("importers", "import_csv")}
KL_SPLIT_DIRS = ("train", "val", "test", "auto_test")
# Limits on what an upload may expand to (a zip bomb stops here, not in the importer).
MAX_EXPANDED_BYTES = 4 << 30
MAX_MEMBERS = 200_000
MAX_RATIO = 200


@dataclass
class Upload:
    """One uploaded file: its name as the browser sent it and its bytes."""

    name: str
    data: bytes


@dataclass
class ImportResult:
    path: Path
    n_images: int
    skipped: list[str] = field(default_factory=list)   # "file: reason", as the importer reported them
    warnings: list[str] = field(default_factory=list)


def _importer(fmt: str):
    if fmt not in _FUNCTIONS:
        raise DataError(f"unknown import format {fmt!r}; expected one of {sorted(_FUNCTIONS)}")
    module, name = _FUNCTIONS[fmt]
    return getattr(importlib.import_module(f"oaviz.data.{module}"), name)


def _call(fn, src: Path, out: Path, options: dict):
    """Call an importer with the options it accepts (None = leave the importer's default)."""
    params = inspect.signature(fn).parameters
    accepts_any = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values())
    kwargs = {k: v for k, v in options.items() if v is not None and (accepts_any or k in params)}
    return fn(src, out, **kwargs)


def _result(out: Path, report, staged: Path | None = None) -> ImportResult:
    """What the page shows; file names of uploads are given relative to the upload, not the temp folder."""
    from oaviz.data.cohort import load_cohort

    def clean(text: str) -> str:
        return text.replace(f"{staged}/", "") if staged is not None else text

    raw = getattr(report, "skipped", None) or []
    skipped = [clean(_describe(s)) for s in raw] if isinstance(raw, (list, tuple)) else []
    warnings = [clean(str(w)) for w in (getattr(report, "warnings", None) or [])]
    return ImportResult(path=out, n_images=len(load_cohort(out)), skipped=skipped, warnings=warnings)


def _describe(item) -> str:
    if isinstance(item, str):
        return item
    if isinstance(item, (tuple, list)) and len(item) == 2:
        return f"{item[0]}: {item[1]}"
    return str(item)


def import_from_path(fmt: str, src: str | os.PathLike, name: str, *, labels: str | os.PathLike | None = None,
                     size: int | None = None, labels_are_kl: bool | None = None, on_error: str = "skip",
                     columns: str | dict[str, str] | None = None, root: str | os.PathLike | None = None,
                     _staged: Path | None = None) -> ImportResult:
    """Import ``src`` (a folder, .npz or manifest on this machine) as the new cohort ``name``.

    ``columns`` (DICOM) maps oaviz names to your label columns: a dict or 'KL=grade,ID=patient'.
    """
    src = Path(src).expanduser()
    if not src.exists():
        raise DataError("no such file or folder", src)
    if on_error not in ("skip", "stop"):
        raise DataError(f"on_error must be 'skip' or 'stop', got {on_error!r}")
    out = cohort_dir_for(name, root)
    options = {"size": size, "on_error": on_error}
    fn = _importer(fmt)
    if fmt == "dicom":
        if labels is None:
            raise DataError("a DICOM import needs a labels CSV")
        if isinstance(columns, str):
            from oaviz.data.importers import parse_columns

            columns = parse_columns(columns)
        options.update(labels=Path(labels), columns=columns or None)
    if fmt == "npz" and labels_are_kl is not None:
        options["labels_are"] = "kl" if labels_are_kl else "other"
    report = _call(fn, src, out, options)
    return _result(out, report, _staged)


def import_from_uploads(fmt: str, files: list[Upload], name: str, *, label_file: Upload | None = None,
                        size: int | None = None, labels_are_kl: bool | None = None, on_error: str = "skip",
                        columns: str | dict[str, str] | None = None,
                        root: str | os.PathLike | None = None) -> ImportResult:
    """Import uploaded files (zips are expanded) as the new cohort ``name``; temporary files are removed."""
    if not files:
        raise DataError("nothing uploaded")
    cohort_dir_for(name, root)  # fail on a bad or taken name before writing anything
    tmp = Path(tempfile.mkdtemp(prefix="oaviz-upload-"))
    try:
        stage = tmp / "files"
        stage.mkdir()
        for f in files:
            _stage(f, stage)
        labels = None
        if label_file is not None:
            labels = tmp / _safe_name(label_file.name)
            labels.write_bytes(label_file.data)
        src = _source_for(fmt, stage)
        return import_from_path(fmt, src, name, labels=labels, size=size, labels_are_kl=labels_are_kl,
                                on_error=on_error, columns=columns, root=root, _staged=stage.resolve())
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _safe_name(name: str) -> str:
    base = PurePosixPath(name.replace("\\", "/")).name
    if base in ("", ".", ".."):
        raise DataError(f"bad upload file name {name!r}")
    return base


def _stage(f: Upload, stage: Path) -> None:
    name = _safe_name(f.name)
    if name.lower().endswith(".zip"):
        _extract_zip(f, stage)
        return
    dest = stage / name
    if dest.exists():
        raise DataError(f"two uploaded files are called {name!r}")
    dest.write_bytes(f.data)


def _extract_zip(f: Upload, stage: Path) -> None:
    """Expand an uploaded zip into ``stage`` with zip-bomb and path-escape checks."""
    import io

    try:
        zf = zipfile.ZipFile(io.BytesIO(f.data))
    except zipfile.BadZipFile:
        raise DataError("not a valid zip archive", f.name) from None
    with zf:
        infos = [i for i in zf.infolist() if not i.is_dir()]
        if len(infos) > MAX_MEMBERS:
            raise DataError(f"archive has {len(infos)} files (limit {MAX_MEMBERS})", f.name)
        total = sum(i.file_size for i in infos)
        if total > MAX_EXPANDED_BYTES:
            raise DataError(f"archive expands to {total / 2**30:.1f} GiB (limit {MAX_EXPANDED_BYTES / 2**30:.0f})", f.name)
        if total > MAX_RATIO * max(1, sum(i.compress_size for i in infos)) and total > (64 << 20):
            raise DataError("archive compression ratio is implausibly high (a zip bomb?)", f.name)
        root = stage.resolve()
        for info in infos:
            parts = PurePosixPath(info.filename.replace("\\", "/")).parts
            if info.filename.startswith(("/", "\\")) or ".." in parts or (parts and ":" in parts[0]):
                raise DataError(f"archive member {info.filename!r} points outside the archive", f.name)
            if parts and (parts[0] == "__MACOSX" or parts[-1].startswith("._")):
                continue  # macOS resource forks are not images
            if (info.external_attr >> 16) & 0o170000 == 0o120000:
                raise DataError(f"archive member {info.filename!r} is a symbolic link", f.name)
            dest = (root / Path(*parts)).resolve()
            if root not in dest.parents:
                raise DataError(f"archive member {info.filename!r} points outside the archive", f.name)
            dest.parent.mkdir(parents=True, exist_ok=True)
            with zf.open(info) as src, open(dest, "wb") as out:
                shutil.copyfileobj(src, out, 1 << 20)


def _source_for(fmt: str, stage: Path) -> Path:
    """Where in the staged uploads the importer should start."""
    if fmt == "kl-folders":
        # The split folders may sit one or two levels down (a zip of the dataset's top folder).
        for cand in [stage, *sorted(p for p in stage.rglob("*") if p.is_dir() and len(p.relative_to(stage).parts) <= 2)]:
            if any((cand / s).is_dir() for s in KL_SPLIT_DIRS):
                return cand
        raise DataError("no train/val/test/auto_test folders found in the upload", "upload")
    if fmt == "npz":
        found = sorted(stage.rglob("*.npz"))
        if len(found) != 1:
            raise DataError(f"upload one .npz file (found {len(found)})", "upload")
        return found[0]
    if fmt == "csv":
        found = sorted(p for p in stage.rglob("*.csv"))
        if len(found) != 1:
            raise DataError(f"upload exactly one manifest .csv with the images (found {len(found)} CSV files)", "upload")
        return found[0]
    return stage  # dicom: the folder of files
