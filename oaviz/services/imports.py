"""Imports for the app: a server path or a set of uploaded files → a new cohort.

Thin wrappers over ``oaviz.data.importers`` (the same functions `oaviz import`
runs). Uploads are written to a private temporary folder first — zip archives
expanded with limits on size, member count and compression ratio, and no
member allowed outside the folder — then imported like a server path. One
``ExpansionBudget`` covers everything one upload decompresses (every zip, the
arrays of an npz), so a bomb split over several archives gains nothing.
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

from oaviz.data.budget import MAX_EXPANDED_BYTES, MAX_FILES, ExpansionBudget
from oaviz.errors import DataError
from oaviz.services.cohorts import cohort_dir_for

FORMATS = {
    "kl-folders": "Folders by KL grade (ROOT/{train,val,test,auto_test}/{0..4}/*.png|jpg)",
    "dicom": "DICOM files + a labels CSV (OAI-style ID, SIDE, VISIT, KL, or a column mapping)",
    "npz": "MedMNIST-style .npz ({split}_images, {split}_labels)",
    "csv": "CSV manifest (path, kl[, subject, visit_month, side, split]) + the images it names",
}
_FUNCTIONS = {"kl-folders": ("kl_folders", "import_kl_folders"), "dicom": ("importers", "import_dicom"),
              "npz": ("npz_import", "import_npz"), "csv": ("importers", "import_csv")}
KL_SPLIT_DIRS = ("train", "val", "test", "auto_test")
# Limits on what an upload may expand to (a zip bomb stops here, not in the importer); the bytes and
# files are one budget for the whole upload (oaviz.data.budget), the ratio is per archive.
MAX_MEMBERS = MAX_FILES
MAX_RATIO = 200
MAX_NAME_BYTES = 255   # one path component, as most file systems allow


def new_budget() -> ExpansionBudget:
    """The budget of one upload or import call (read at call time, so tests can lower the limits)."""
    return ExpansionBudget(MAX_EXPANDED_BYTES, MAX_MEMBERS)


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
                     _staged: Path | None = None, _budget: ExpansionBudget | None = None) -> ImportResult:
    """Import ``src`` (a folder, .npz or manifest on this machine) as the new cohort ``name``.

    ``columns`` (DICOM) maps oaviz names to your label columns: a dict or 'KL=grade,ID=patient'.
    """
    src = Path(src).expanduser()
    if not src.exists():
        raise DataError("no such file or folder", src)
    if on_error not in ("skip", "stop"):
        raise DataError(f"on_error must be 'skip' or 'stop', got {on_error!r}")
    out = cohort_dir_for(name, root)
    options = {"size": size, "on_error": on_error, "budget": _budget or new_budget()}
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
    budget = new_budget()   # one for everything this upload expands
    try:
        stage = tmp / "files"
        stage.mkdir()
        for f in files:
            _stage(f, stage, budget)
        labels = None
        if label_file is not None:
            labels = tmp / _safe_name(label_file.name)
            labels.write_bytes(label_file.data)
        src = _source_for(fmt, stage)
        return import_from_path(fmt, src, name, labels=labels, size=size, labels_are_kl=labels_are_kl,
                                on_error=on_error, columns=columns, root=root, _staged=stage.resolve(),
                                _budget=budget)
    except DataError as e:   # name the uploaded file, not the private temporary folder it was staged in
        staged = f"{(tmp / 'files').resolve()}/"
        where = (e.where or "").replace(staged, "").replace(f"{tmp.resolve()}/", "") or None
        raise DataError(e.reason.replace(staged, ""), where) from None
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _check_part(part: str, where: str) -> None:
    """A file or folder name that this machine can write: no NUL or control characters, not over-long."""
    if any(ord(c) < 32 for c in part):
        raise DataError(f"file name {part!r} contains a NUL or control character", where)
    if len(part.encode("utf-8", "surrogateescape")) > MAX_NAME_BYTES:
        raise DataError(f"file name {part[:40]!r}… is over {MAX_NAME_BYTES} bytes long", where)


def _safe_name(name: str) -> str:
    base = PurePosixPath(name.replace("\\", "/")).name
    if base in ("", ".", ".."):
        raise DataError(f"bad upload file name {name!r}")
    _check_part(base, "upload")
    return base


def _stage(f: Upload, stage: Path, budget: ExpansionBudget | None = None) -> None:
    name = _safe_name(f.name)
    if name.lower().endswith(".zip"):
        _extract_zip(f, stage, budget)
        return
    dest = stage / name
    if dest.exists():
        raise DataError(f"two uploaded files are called {name!r}")
    dest.write_bytes(f.data)


def _extract_zip(f: Upload, stage: Path, budget: ExpansionBudget | None = None) -> None:
    """Expand an uploaded zip into ``stage`` with zip-bomb and path-escape checks; what it expands to
    is drawn from ``budget`` (the upload's), checked from the central directory before anything is written."""
    import io

    try:
        zf = zipfile.ZipFile(io.BytesIO(f.data))
    except Exception as e:  # noqa: BLE001  (BadZipFile, OSError, ValueError, EOFError …)
        raise DataError(f"not a valid zip archive ({type(e).__name__}: {e})", f.name) from None
    budget = budget or new_budget()
    try:
        with zf:
            _extract_members(zf, f.name, stage, budget)
    except DataError:
        raise
    except Exception as e:  # noqa: BLE001  a member's bad CRC, encryption, deflate64, truncation, a broken
        # zlib / bz2 / lzma stream (zlib.error, LZMAError, OSError …); a name the file system refuses
        raise DataError(f"cannot expand the archive ({type(e).__name__}: {e})", f.name) from None


def _extract_members(zf: zipfile.ZipFile, where: str, stage: Path, budget: ExpansionBudget) -> None:
    infos = [i for i in zf.infolist() if not i.is_dir()]
    total = sum(i.file_size for i in infos)
    if total > MAX_RATIO * max(1, sum(i.compress_size for i in infos)) and total > (64 << 20):
        raise DataError("archive compression ratio is implausibly high (a zip bomb?)", where)
    budget.spend(total, where, "archive", files=len(infos))
    root = stage.resolve()
    for info in infos:
        parts = PurePosixPath(info.filename.replace("\\", "/")).parts
        if info.filename.startswith(("/", "\\")) or ".." in parts or (parts and ":" in parts[0]):
            raise DataError(f"archive member {info.filename!r} points outside the archive", where)
        if parts and (parts[0] == "__MACOSX" or parts[-1].startswith("._")):
            continue  # macOS resource forks are not images
        if (info.external_attr >> 16) & 0o170000 == 0o120000:
            raise DataError(f"archive member {info.filename!r} is a symbolic link", where)
        for part in parts:
            _check_part(part, where)
        dest = (root / Path(*parts)).resolve()
        if root not in dest.parents:
            raise DataError(f"archive member {info.filename!r} points outside the archive", where)
        dest.parent.mkdir(parents=True, exist_ok=True)
        with zf.open(info) as src, open(dest, "wb") as out:   # zipfile stops at the declared size
            shutil.copyfileobj(src, out, 1 << 20)              # (a lying header ends in BadZipFile)


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
