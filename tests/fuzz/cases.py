"""One generated bad (or, about one case in six, valid) input per importer, built in a folder of its own.

``build(importer, seed, folder)`` writes what the case needs and returns a thunk that runs the importer on it
exactly as a user would reach it (the API the CLI and the app call). The contract the harness checks: the
thunk returns, or raises ``DataError``; nothing else, within the time and memory bound.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Callable

import numpy as np

from tests.fuzz import mutate as mu
from tests.fuzz import seeds

IMPORTERS = ("images", "kl-folders", "csv", "dicom", "npz", "uploads")
KL_LAYOUT_SPLITS = ("train", "val", "test", "auto_test")


def _bad(rng, p: float = 0.85) -> bool:
    return rng.random() < p


def picture_or_dicom(rng, hostile: bool = True, dicom_p: float = 0.3) -> tuple[bytes, str]:
    """(bytes, suffix) of a picture or DICOM, mutated unless ``hostile`` is False."""
    if rng.random() < dicom_p:
        data, suffix = seeds.dicom(rng), ".dcm"
        if hostile:
            data = mu.dicom_header(rng, data) if rng.random() < 0.6 else mu.mutate_bytes(rng, data)
    else:
        data, suffix = seeds.picture(rng)
        if hostile:
            data = mu.png_header(rng, data) if suffix == ".png" and rng.random() < 0.3 else mu.mutate_bytes(rng, data)
    return data, suffix


def _path_trick(rng, folder: Path, outside: Path, name: str) -> None:
    """Where a file should be: a symlink out of the source, a loop, a FIFO, a folder, an empty file."""
    p = folder / name
    r = rng.random()
    try:
        if r < 0.25:
            os.symlink(outside / "secret.png", p)
        elif r < 0.4:
            os.symlink(p.name, p)                                  # a loop
        elif r < 0.55:
            os.mkfifo(p)                                           # reading it would block forever
        elif r < 0.7:
            p.mkdir()
        elif r < 0.85:
            p.write_bytes(b"")
        else:
            os.symlink(outside, folder / f"linked{rng.integers(99)}")   # a folder symlink leading out
    except OSError:
        pass


def _outside(d: Path, rng) -> Path:
    out = d / "outside"
    out.mkdir(exist_ok=True)
    (out / "secret.png").write_bytes(seeds.picture(rng, "PNG")[0])
    return out


# ----------------------------------------------------------------- per importer
def images_case(rng, d: Path) -> Callable[[], object]:
    from oaviz.data.readers import preprocess_any

    data, suffix = picture_or_dicom(rng, hostile=_bad(rng))
    name = mu.odd_name(rng, suffix) if rng.random() < 0.2 else f"upload{suffix}"
    size = int(rng.choice([64, 64, 128, 224]))
    return lambda: preprocess_any(data, size, name=name, side=str(rng.choice(["", "L", "R"])))


def kl_folder_tree(rng, root: Path, outside: Path | None) -> None:
    for split in rng.choice(KL_LAYOUT_SPLITS + ("extra",), size=int(rng.integers(1, 3)), replace=False):
        for grade in rng.choice(["0", "1", "2", "3", "4", "5", "x"], size=int(rng.integers(1, 3)), replace=False):
            folder = root / str(split) / str(grade)
            folder.mkdir(parents=True, exist_ok=True)
            for k in range(int(rng.integers(1, 4))):
                data, suffix = picture_or_dicom(rng, hostile=_bad(rng, 0.4), dicom_p=0.1)
                suffix = suffix if suffix != ".dcm" else ".png"
                stem = seeds.oai_stem(rng) if rng.random() < 0.7 else f"img{k}"
                name = mu.odd_name(rng, suffix) if rng.random() < 0.1 else stem + suffix
                try:
                    (folder / Path(name).name).write_bytes(data)
                except (OSError, ValueError):
                    pass
            if outside is not None and rng.random() < 0.3:
                _path_trick(rng, folder, outside, f"trick{rng.integers(99)}.png")


def kl_folders_case(rng, d: Path) -> Callable[[], object]:
    from oaviz.data.kl_folders import import_kl_folders

    root = d / "src"
    root.mkdir()
    kl_folder_tree(rng, root, _outside(d, rng))
    size = int(rng.choice([16, 32, 32, 48, 0, 7, 5000])) if rng.random() < 0.1 else 32
    on_error = str(rng.choice(["skip", "skip", "stop"]))
    return lambda: import_kl_folders(root, d / "out", size=size, on_error=on_error)


MANIFEST_VALUES = {
    "kl": ["0", "1", "2", "3", "4", "", "5", "-1", "2.5", "nan", "inf", "x", "1e99", "=HYPERLINK(\"x\")"],
    "subject": ["s1", "s2", "", "a,b", "\"q\"", "x" * 300],
    "visit_month": ["0", "12", "V00", "V03", "V99", "M12", "abc", "1e99", "-12", ""],
    "side": ["R", "L", "1", "2", "Left", "", "X"],
    "split": ["train", "val", "test", "", "TRAIN", "holdout"],
}


def _manifest_text(rng, paths: list[str]) -> str:
    cols = ["path", "kl"] + [c for c in ("subject", "visit_month", "side", "split") if rng.random() < 0.5]
    if rng.random() < 0.05:
        cols.remove(str(rng.choice(["path", "kl"])))
    lines = [",".join(cols)]
    for p in paths:
        row = [p] + [str(rng.choice(MANIFEST_VALUES[c])) if rng.random() < 0.3 else
                     {"kl": str(rng.integers(5)), "subject": f"s{rng.integers(4)}", "visit_month": "0",
                      "side": "R", "split": ""}[c] for c in cols[1:]]
        if "path" not in cols:
            row = row[1:]
        lines.append(",".join(row))
    r = rng.random()
    if r < 0.1:
        lines.append(lines[-1])                                    # a duplicate row
    elif r < 0.2:
        lines.insert(int(rng.integers(1, len(lines) + 1)), "a.png")  # a short (ragged) row
    elif r < 0.3:
        lines.append(lines[-1] + ",extra,fields")                   # a long row
    text = "\n".join(lines) + "\n"
    if rng.random() < 0.1:
        text = "\ufeff" + text.replace("\n", "\r\n")
    return text


def csv_case(rng, d: Path) -> Callable[[], object]:
    from oaviz.data.importers import import_csv

    root = d / "src"
    root.mkdir()
    outside = _outside(d, rng)
    paths = []
    for k in range(int(rng.integers(1, 5))):
        data, suffix = picture_or_dicom(rng, hostile=_bad(rng, 0.4))
        name = f"img{k}{suffix}"
        (root / name).write_bytes(data)
        paths.append(name)
    if rng.random() < 0.4:
        trick = str(rng.choice(["../outside/secret.png", "/etc/hostname", "a\x00b.png", "x" * 300 + ".png",
                                "sub/../../outside/secret.png", "", ".", "missing.png", "loop.png", "fifo.png"]))
        _path_trick(rng, root, outside, "loop.png") if trick == "loop.png" else None
        if trick == "fifo.png":
            os.mkfifo(root / "fifo.png")
        paths.append(trick)
    text = _manifest_text(rng, paths)
    data = text.encode("utf-8") if rng.random() < 0.85 else mu.mutate_bytes(rng, text.encode("latin-1", "replace"))
    (root / "m.csv").write_bytes(data)
    spacing = float(rng.choice([0.4, 0.4, 0.4, 0.0, -1.0, float("nan"), 1e-9, 1e9, 0.01]))
    return lambda: import_csv(root / "m.csv", d / "out", size=32, spacing_mm=spacing,
                              on_error=str(rng.choice(["skip", "skip", "stop"])))


def dicom_tree(rng, root: Path, outside: Path | None) -> str:
    """DICOM files (some mutated) under ``root`` and the text of a labels table for them."""
    rows, oai = [], rng.random() < 0.5
    for k in range(int(rng.integers(1, 4))):
        sub = str(rng.choice(["", "9000001/V00", "9000002/V01", "9000001/12M", "x"]))
        data = seeds.dicom(rng)
        if _bad(rng, 0.6):
            data = mu.dicom_header(rng, data) if rng.random() < 0.6 else mu.mutate_bytes(rng, data)
        f = root / sub / str(rng.choice([f"f{k}.dcm", f"f{k}", f"f{k}.DCM", f"f{k}.txt"]))
        f.parent.mkdir(parents=True, exist_ok=True)
        f.write_bytes(data)
        rows.append(f"{f.relative_to(root)},{rng.integers(5)}")
    if outside is not None and rng.random() < 0.3:
        _path_trick(rng, root, outside, f"trick{rng.integers(99)}.dcm")
    if oai:
        text = "ID,SIDE,VISIT,KL\n" + "".join(f"900000{i},{rng.choice(['R', 'L', '1', '2'])},"
                                              f"{rng.choice(['V00', 'V01', 'V99', '12'])},{rng.integers(6)}\n"
                                              for i in (1, 2))
        if rng.random() < 0.2:
            text = "ID,SIDE,V00XRKL,V01XRKL\n9000001,R,2,\n9000002,L,,x\n"
    else:
        text = "path,kl\n" + "\n".join(rows) + "\n"
        if rng.random() < 0.3:
            text += str(rng.choice(["../outside/secret.png,1", "/etc/hostname,2", "a\x00b.dcm,1", "x" * 300 + ",1",
                                    "f0.dcm", "f0.dcm,1,2,3", ",", "missing.dcm,9"])) + "\n"
    return text


def dicom_case(rng, d: Path) -> Callable[[], object]:
    from oaviz.data.importers import import_dicom, parse_columns

    root = d / "src"
    root.mkdir()
    text = dicom_tree(rng, root, _outside(d, rng))
    data = text.encode() if rng.random() < 0.9 else mu.mutate_bytes(rng, text.encode())
    (d / "labels.csv").write_bytes(data)
    columns = str(rng.choice(["", "", "", "KL=grade", "bad", "=x", "path=file"]))
    spacing = float(rng.choice([0.4, 0.4, 0.4, 0.0, -2.0, float("nan"), 1e-6, 50.0]))
    return lambda: import_dicom(root, d / "out", labels=d / "labels.csv", columns=parse_columns(columns) or None,
                                size=32, spacing_mm=spacing, on_error=str(rng.choice(["skip", "skip", "stop"])))


def npz_bytes(rng, hostile: bool = True) -> bytes:
    data = seeds.npz(rng)
    if not hostile:
        return data
    r = rng.random()
    if r < 0.55:
        return mu.npz_members(rng, data)
    if r < 0.75:
        return mu.zip_structure(rng, data)
    return mu.mutate_bytes(rng, data)


def npz_case(rng, d: Path) -> Callable[[], object]:
    from oaviz.data.npz_import import import_npz

    f = d / "x.npz"
    f.write_bytes(npz_bytes(rng, _bad(rng)))
    labels_are = str(rng.choice(["kl", "other", "other", "grades"]))
    size = [None, None, 32, 0, 16][int(rng.integers(5))]
    return lambda: import_npz(f, d / "out", labels_are=labels_are, size=size)


def _folder_zip(rng, root: Path) -> bytes:
    members = {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*"))
               if p.is_file() and not p.is_symlink()}
    if rng.random() < 0.2:
        members[mu.odd_name(rng, ".png")] = b"x"
    data = mu.zip_bytes(members, rng)
    return mu.zip_structure(rng, data) if rng.random() < 0.3 else (
        mu.mutate_bytes(rng, data) if rng.random() < 0.1 else data)


def uploads_case(rng, d: Path) -> Callable[[], object]:
    """What the Data page sends: ``imports.import_from_uploads`` with browser-named files and zips."""
    from oaviz.services import imports

    fmt = str(rng.choice(["kl-folders", "dicom", "npz", "csv"]))
    tree = d / "tree"
    tree.mkdir()
    files, label_file = [], None
    if fmt == "kl-folders":
        kl_folder_tree(rng, tree / "knees", None)
        files.append(imports.Upload("knees.zip", _folder_zip(rng, tree)))
    elif fmt == "dicom":
        text = dicom_tree(rng, tree, None)
        label_file = imports.Upload(str(rng.choice(["labels.csv", "../l.csv", "l\x00.csv"])), text.encode())
        if rng.random() < 0.5:
            files.append(imports.Upload("dicoms.zip", _folder_zip(rng, tree)))
        else:
            files += [imports.Upload(p.name, p.read_bytes()) for p in tree.rglob("*") if p.is_file()]
    elif fmt == "npz":
        data = npz_bytes(rng, _bad(rng))
        files.append(imports.Upload("x.npz", data) if rng.random() < 0.7 else
                     imports.Upload("x.zip", mu.zip_bytes({"data/x.npz": data}, rng)))
    else:
        for k in range(int(rng.integers(1, 4))):
            data, suffix = picture_or_dicom(rng, hostile=_bad(rng, 0.4))
            (tree / f"img{k}{suffix}").write_bytes(data)
        (tree / "m.csv").write_text(_manifest_text(rng, sorted(p.name for p in tree.iterdir())), "utf-8")
        files.append(imports.Upload("both.zip", _folder_zip(rng, tree)))
    if rng.random() < 0.03:   # a zip bomb: 80 MB of zeros in a ~80 KB archive
        files.append(imports.Upload("bomb.zip", mu.zip_bytes({"knees/train/0/zeros.png": bytes(80 << 20)},
                                                             np.random.default_rng(1))))
    if rng.random() < 0.15:   # a second upload: a duplicate, an odd name, or a second archive
        files.append(imports.Upload(mu.odd_name(rng, str(rng.choice([".png", ".zip", ".npz"]))), rng.bytes(64)))
    name = str(rng.choice(["up", "up", "up", "../escape", "", "a/b", "x" * 300, "con", "é"]))
    return lambda: imports.import_from_uploads(
        fmt, files, name, label_file=label_file, root=d / "cohorts", size=int(rng.choice([32, 32, 64])),
        on_error=str(rng.choice(["skip", "skip", "stop"])), labels_are_kl=bool(rng.random() < 0.5),
        columns=str(rng.choice(["", "KL=kl", "bad"])) or None)


BUILDERS = {"images": images_case, "kl-folders": kl_folders_case, "csv": csv_case, "dicom": dicom_case,
            "npz": npz_case, "uploads": uploads_case}


def build(importer: str, seed: int, folder: Path) -> Callable[[], object]:
    """The case ``seed`` of ``importer``, written under ``folder`` (which must exist and be empty)."""
    rng = np.random.default_rng([IMPORTERS.index(importer), seed])
    return BUILDERS[importer](rng, Path(folder))
