"""Untrusted inputs through the importers and uploads: one expansion budget per upload, and every failure a
DataError naming the file — skipped with on_error="skip", never an abort of the whole import."""

from __future__ import annotations

import io
import os
import struct
import zipfile

import numpy as np
import pytest
from PIL import Image

from oaviz.cli import main as cli
from oaviz.data.budget import ExpansionBudget
from oaviz.data.cohort import load_cohort
from oaviz.data.importers import import_csv, import_dicom
from oaviz.data.npz_import import import_npz
from oaviz.errors import DataError
from oaviz.services import imports

from .dicom_fixtures import phantom, write_dicom


def _zip(members: dict[str, bytes], compression=zipfile.ZIP_STORED) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=compression) as z:
        for name, data in members.items():
            z.writestr(name, data)
    return buf.getvalue()


def _png(value: int = 100, size: int = 16) -> bytes:
    buf = io.BytesIO()
    a = np.full((size, size), value, np.uint8)
    a[: size // 2] = 255 - value
    Image.fromarray(a).save(buf, format="PNG")
    return buf.getvalue()


def _npz(**arrays) -> bytes:
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    return buf.getvalue()


# ----------------------------------------------------------------- one budget per upload
def test_two_zips_share_one_expansion_budget(tmp_path, monkeypatch):
    """Each zip is under the limit alone; together they are not (the limit was per zip)."""
    monkeypatch.setattr(imports, "MAX_EXPANDED_BYTES", 6000)
    a = imports.Upload("a.zip", _zip({"train/0/a.png": b"\0" * 4000}))
    b = imports.Upload("b.zip", _zip({"train/1/b.png": b"\0" * 4000}))
    with pytest.raises(DataError, match=r"b\.zip: archive expands to 3\.9 KiB; with the 3\.9 KiB this import already "
                                        r"expanded that makes 7\.8 KiB, over the limit of 5\.9 KiB per import"):
        imports.import_from_uploads("kl-folders", [a, b], "two", root=tmp_path / "cohorts")
    assert not (tmp_path / "cohorts" / "two").exists()


def test_an_npz_inside_a_zip_draws_on_the_same_budget(tmp_path, monkeypatch):
    npz = _npz(train_images=np.zeros((4, 16, 16), np.uint8), train_labels=np.arange(4))   # 1 KiB of arrays
    monkeypatch.setattr(imports, "MAX_EXPANDED_BYTES", len(npz) + 1000)
    with pytest.raises(DataError, match=r"the \.npz expands to 1\.0 KiB; with the .* this import already expanded"):
        imports.import_from_uploads("npz", [imports.Upload("x.zip", _zip({"x.npz": npz}))], "n", root=tmp_path)
    budget = ExpansionBudget(max_bytes=10_000)
    budget.spend(9_500, "elsewhere", "a zip")
    with pytest.raises(DataError, match=r"the \.npz expands to"):   # the importer itself takes the budget
        import_npz(_write(tmp_path / "x.npz", npz), tmp_path / "out", budget=budget)


def _write(path, data: bytes):
    path.write_bytes(data)
    return path


def test_a_zip_member_larger_than_its_header_says_is_a_data_error(tmp_path):
    d = bytearray(_zip({"train/0/a.png": b"x" * 100_000}, zipfile.ZIP_DEFLATED))
    d[22:26] = struct.pack("<I", 10)                       # local header: uncompressed size
    i = d.index(b"PK\x01\x02")
    d[i + 24:i + 28] = struct.pack("<I", 10)               # central directory: the same
    with pytest.raises(DataError, match=r"lie\.zip: cannot expand the archive \(BadZipFile: Bad CRC-32"):
        imports.import_from_uploads("kl-folders", [imports.Upload("lie.zip", bytes(d))], "lie", root=tmp_path)


@pytest.mark.parametrize("method", [zipfile.ZIP_LZMA, zipfile.ZIP_BZIP2, zipfile.ZIP_DEFLATED, 9, 99])
def test_a_zip_member_whose_stream_is_broken_is_a_data_error(tmp_path, method):
    """LZMAError, OSError ('Invalid data stream'), zlib.error, NotImplementedError (deflate64, AES) escaped
    the upload (found by the fuzz suite, uploads seeds 12 and 50)."""
    data = bytearray(_zip({"train/0/a.png": bytes(range(256)) * 40},
                          method if method in (zipfile.ZIP_LZMA, zipfile.ZIP_BZIP2, zipfile.ZIP_DEFLATED)
                          else zipfile.ZIP_STORED))
    start = 30 + len("train/0/a.png")
    if method in (9, 99):   # deflate64 and AES: methods zipfile cannot read
        for sig in (b"PK\x03\x04", b"PK\x01\x02"):
            i = data.index(sig)
            at = i + (8 if sig == b"PK\x03\x04" else 10)
            data[at:at + 2] = struct.pack("<H", method)
    else:
        data[start + 4:start + 12] = b"\xfe" * 8
    with pytest.raises(DataError, match=r"s\.zip: cannot expand the archive"):
        imports.import_from_uploads("kl-folders", [imports.Upload("s.zip", bytes(data))], "s", root=tmp_path)


@pytest.mark.parametrize("name, match", [("a\0b.png", "NUL or control character"), ("a\x01b.png", "control character"),
                                         ("x" * 300 + ".png", "over 255 bytes")])
def test_upload_and_member_names_with_nul_bytes_or_over_long_are_data_errors(tmp_path, name, match):
    with pytest.raises(DataError, match=match):
        imports.import_from_uploads("dicom", [imports.Upload(name, b"x")], "n", root=tmp_path,
                                    label_file=imports.Upload("l.csv", b"path,kl\n"))
    if "\0" not in name:   # zipfile itself cuts a member name at a NUL
        with pytest.raises(DataError, match=match):
            imports.import_from_uploads("kl-folders", [imports.Upload("k.zip", _zip({f"train/0/{name}": b"x"}))],
                                        "n", root=tmp_path)


def test_an_error_names_the_uploaded_file_not_the_temporary_folder(tmp_path):
    with pytest.raises(DataError) as e:
        imports.import_from_uploads("npz", [imports.Upload("x.npz", b"PK\x03\x04garbage")], "n", root=tmp_path)
    assert str(e.value).startswith("x.npz: not a readable .npz") and "oaviz-upload" not in str(e.value)


# ----------------------------------------------------------------- npz
def test_npz_splits_of_different_sizes_are_resized_to_the_first(tmp_path):
    f = _write(tmp_path / "m.npz", _npz(train_images=np.zeros((3, 28, 28), np.uint8), train_labels=np.arange(3),
                                        test_images=np.full((2, 32, 32), 200, np.uint8), test_labels=np.arange(2)))
    rep = import_npz(f, tmp_path / "out")
    c = load_cohort(rep.out)
    assert len(c) == 5 and c.image_size == (28, 28)
    assert rep.warnings == ["'test_images' are 32×32, resized to the first split's 28×28"]


def test_an_empty_npz_split_is_left_out_with_a_warning(tmp_path):
    f = _write(tmp_path / "m.npz", _npz(train_images=np.zeros((3, 28, 28), np.uint8), train_labels=np.arange(3),
                                        val_images=np.zeros((0, 28, 28), np.uint8), val_labels=np.zeros(0, np.int64)))
    rep = import_npz(f, tmp_path / "out")
    assert rep.n_imported == 3 and rep.warnings == ["'val_images' is empty: no val split"]
    g = _write(tmp_path / "e.npz", _npz(train_images=np.zeros((0, 28, 28), np.uint8), train_labels=np.zeros(0, int)))
    with pytest.raises(DataError, match="no image could be imported"):
        import_npz(g, tmp_path / "out2")


def test_an_npz_member_that_is_not_a_npy_array_is_a_data_error(tmp_path):
    f = tmp_path / "raw.npz"
    with zipfile.ZipFile(f, "w") as z:
        z.writestr("train_images", b"\0" * 5000)          # no .npy suffix: np.load hands back raw bytes
        lab = io.BytesIO()
        np.save(lab, np.arange(2))
        z.writestr("train_labels.npy", lab.getvalue())
    with pytest.raises(DataError, match=r"raw\.npz: 'train_images' is not a \.npy array in the archive"):
        import_npz(f, tmp_path / "out")


def test_npz_images_without_pixels_or_of_a_huge_size_are_data_errors(tmp_path):
    f = _write(tmp_path / "z.npz", _npz(train_images=np.zeros((2, 0, 28), np.uint8), train_labels=np.arange(2)))
    with pytest.raises(DataError, match=r"images without pixels"):
        import_npz(f, tmp_path / "out")
    g = _write(tmp_path / "w.npz", _npz(train_images=np.zeros((1, 1, 70_000_000), np.bool_),
                                        train_labels=np.arange(1)))
    with pytest.raises(DataError, match=r"'train_images' images are 70000000×1 pixels, over the 60,000,000 limit"):
        import_npz(g, tmp_path / "out")


def test_an_npz_with_a_broken_deflate_stream_or_header_text_is_a_data_error(tmp_path):
    """zlib.error and tokenize.TokenError escaped the header reader (found by the fuzz suite, npz 1007, 1084)."""
    buf = io.BytesIO()
    np.save(buf, np.arange(1000))
    npy = buf.getvalue()
    f = tmp_path / "deflate.npz"
    with zipfile.ZipFile(f, "w", compression=zipfile.ZIP_DEFLATED) as z:
        z.writestr("train_images.npy", npy)
    d = bytearray(f.read_bytes())
    start = 30 + len("train_images.npy")            # the member's data follows its local header
    d[start:start + 8] = b"\xff" * 8
    f.write_bytes(bytes(d))
    with pytest.raises(DataError, match=r"deflate\.npz: not a readable \.npz \(error: Error -3"):
        import_npz(f, tmp_path / "out")
    g = tmp_path / "token.npz"
    with zipfile.ZipFile(g, "w") as z:
        z.writestr("train_images.npy", npy.replace(b"'shape': (1000,), }", b"'shape': (1000, }  "))
    with pytest.raises(DataError, match=r"token\.npz: not a readable \.npz \((TokenError|SyntaxError|ValueError)"):
        import_npz(g, tmp_path / "out")


# ----------------------------------------------------------------- CSV, DICOM, sizes
def test_ragged_manifest_rows(tmp_path):
    """A short row is read with its missing fields blank (before: AttributeError on the NaN subject, which
    aborted the import); a long row makes the manifest unreadable: a DataError naming it."""
    for i in range(3):
        (tmp_path / f"{i}.png").write_bytes(_png(40 * i + 10))
    (tmp_path / "m.csv").write_text("path,kl,subject\n0.png,1,a\n1.png\n2.png,2,c\n")
    rep = import_csv(tmp_path / "m.csv", tmp_path / "out", size=16)
    meta = load_cohort(rep.out).metadata
    assert rep.n_imported == 3 and list(meta["subject_id"]) == ["a", "1", "c"] and meta["kl"].isna().sum() == 1
    (tmp_path / "l.csv").write_text("path,kl\n0.png,1\n1.png,2,extra\n")
    with pytest.raises(DataError, match=r"l\.csv: unreadable manifest \(ParserError"):
        import_csv(tmp_path / "l.csv", tmp_path / "out2", size=16)


def test_a_manifest_whose_rows_all_have_a_trailing_field_keeps_its_columns(tmp_path):
    """pandas made the first column the index (the paths), shifting every value one column to the left;
    the row number then became 'path + 2' (TypeError, found by the fuzz suite, csv seed 1058)."""
    for i in range(2):
        (tmp_path / f"{i}.png").write_bytes(_png(40 * i + 10))
    (tmp_path / "m.csv").write_text("path,kl\n0.png,1,\n1.png,3,\n")
    rep = import_csv(tmp_path / "m.csv", tmp_path / "out", size=16)
    meta = load_cohort(rep.out).metadata
    assert list(meta["image_id"]) == ["0.png", "1.png"] and list(meta["kl"].astype(int)) == [1, 3]


def test_dicom_label_paths_with_nul_bytes_are_skipped(tmp_path):
    write_dicom(tmp_path / "src" / "a.dcm", phantom(40, 40))
    (tmp_path / "l.csv").write_text("path,kl\na.dcm,1\nb\0.dcm,2\n")
    rep = import_dicom(tmp_path / "src", tmp_path / "out", labels=tmp_path / "l.csv", size=32)
    assert rep.n_imported == 1 and "null" in rep.skipped[0][1]


def test_a_symlink_loop_named_by_a_labels_table_is_skipped(tmp_path):
    write_dicom(tmp_path / "src" / "a.dcm", phantom(40, 40))
    os.symlink("loop.dcm", tmp_path / "src" / "loop.dcm")
    (tmp_path / "l.csv").write_text("path,kl\na.dcm,1\nloop.dcm,2\n")
    rep = import_dicom(tmp_path / "src", tmp_path / "out", labels=tmp_path / "l.csv", size=32)
    assert rep.n_imported == 1 and "Symlink loop" in rep.skipped[0][1]


@pytest.mark.parametrize("flag, match", [("--spacing=0", "pixel spacing 0.0 mm must be"),
                                         ("--spacing=-1", "pixel spacing -1.0 mm must be"),
                                         ("--spacing=nan", "pixel spacing nan mm must be"),
                                         ("--size=0", "output size 0 must be")])
def test_a_spacing_or_size_no_image_can_have_is_refused_up_front(tmp_path, capsys, flag, match):
    write_dicom(tmp_path / "src" / "a.dcm", phantom(40, 40))
    (tmp_path / "l.csv").write_text("path,kl\na.dcm,1\n")
    code = cli(["import", "dicom", str(tmp_path / "src"), "--out", str(tmp_path / "out"), "--labels",
                str(tmp_path / "l.csv"), flag])
    assert code != 0 and match in capsys.readouterr().err
    assert not (tmp_path / "out").exists()
