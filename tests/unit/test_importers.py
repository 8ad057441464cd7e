"""Importers and readers: happy paths checked on pixels, and every bad input."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from oaviz.cli import main as cli
from oaviz.data.cohort import load_cohort
from oaviz.data.errors import DataError
from oaviz.data.importers import import_csv, import_dicom, parse_side, parse_visit
from oaviz.data.npz_import import import_npz
from oaviz.data.kl_folders import import_kl_folders
from oaviz.data.readers import MAX_PIXELS, preprocess_any, read_image

from .dicom_fixtures import bundled_dicoms, phantom, write_dicom


def png(path, arr):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(arr).save(path)
    return path


def right_half_brighter(img) -> bool:
    h, w = img.shape
    return img[:, w // 2:].mean() > img[:, : w // 2].mean()


# ----------------------------------------------------------------- DICOM
def test_monochrome1_and_2_agree_bone_bright(tmp_path):
    p = phantom()
    a = read_image(write_dicom(tmp_path / "m2.dcm", p, photometric="MONOCHROME2"))
    b = read_image(write_dicom(tmp_path / "m1.dcm", p, photometric="MONOCHROME1"))
    assert "MONOCHROME1 inverted" in b.steps
    np.testing.assert_allclose(a.pixels, b.pixels)
    assert a.pixels.max() == 3000  # the bone is the brightest thing in both


def test_compressed_equals_uncompressed(tmp_path):
    p = phantom()
    a = read_image(write_dicom(tmp_path / "raw.dcm", p))
    b = read_image(write_dicom(tmp_path / "rle.dcm", p, compress=True))
    np.testing.assert_array_equal(a.pixels, b.pixels)


def test_two_pixel_spacings_same_physical_size(tmp_path):
    """The same 60 mm bone imaged at 0.2 and 0.3 mm/px spans the same pixels after resampling."""
    fine = phantom(450, 390)  # 0.2 mm/px
    coarse = np.asarray(Image.fromarray(fine.astype(np.float32), mode="F").resize((260, 300)), np.float32)
    a = preprocess_any(write_dicom(tmp_path / "a.dcm", fine, spacing=("PixelSpacing", 0.2)), 200)
    b = preprocess_any(write_dicom(tmp_path / "b.dcm", coarse.astype(np.uint16), spacing=("ImagerPixelSpacing", 0.3)), 200)
    wa, wb = (a > 128).sum(1).max(), (b > 128).sum(1).max()
    assert abs(int(wa) - int(wb)) <= 2
    assert read_image(tmp_path / "b.dcm").spacing_tag == "ImagerPixelSpacing"


def test_rescale_and_window(tmp_path):
    p = phantom()
    r = read_image(write_dicom(tmp_path / "r.dcm", p, rescale=(2.0, -100.0)))
    assert r.pixels.max() == 2 * 3000 - 100
    w = read_image(write_dicom(tmp_path / "w.dcm", p, window=(1500, 1000)))
    assert "VOI LUT" in w.steps and w.pixels.max() <= 65535


def test_dicom_without_pixels_and_garbage(tmp_path):
    with pytest.raises(DataError, match="no pixel data") as e:
        read_image(write_dicom(tmp_path / "np.dcm", phantom(), with_pixels=False))
    assert "np.dcm" in str(e.value)
    (tmp_path / "junk.dcm").write_bytes(b"this is not dicom" * 20)
    with pytest.raises(DataError, match="DICOM"):
        read_image(tmp_path / "junk.dcm")


@pytest.mark.parametrize("path", bundled_dicoms(), ids=lambda p: p.name)
def test_pydicom_bundled_files(path):
    try:
        r = read_image(path)
    except DataError as e:  # e.g. an RT plan: no pixel data, which must be said clearly
        assert "pixel data" in e.reason
        return
    assert r.pixels.ndim == 2 and np.isfinite(r.pixels).all()
    assert preprocess_any(path, 64).shape == (64, 64)


def test_import_dicom_oai_labels_and_left_flip(tmp_path):
    src = tmp_path / "dicom"
    write_dicom(src / "V00" / "r.dcm", phantom(bone_at="right"), patient="9001", laterality="R")
    write_dicom(src / "V00" / "l.dcm", phantom(bone_at="left"), patient="9001", laterality="L",
                photometric="MONOCHROME1")
    write_dicom(src / "V01" / "r.dcm", phantom(bone_at="right"), patient="9001", laterality="R")
    write_dicom(src / "V01" / "nolabel.dcm", phantom(), patient="9999", laterality="R")
    labels = tmp_path / "kl.csv"
    pd.DataFrame({"ID": ["9001", "9001"], "SIDE": ["1: Right", "2: Left"],
                  "V00XRKL": ["2", "0"], "V01XRKL": ["3", ""]}).to_csv(labels, index=False)
    rep = import_dicom(src, tmp_path / "out", labels=labels, size=128)
    assert rep.n_imported == 3 and len(rep.skipped) == 1 and "no label row" in rep.skipped[0][1]
    c = load_cohort(tmp_path / "out")
    m = c.metadata.set_index("image_id")
    assert m.loc["V00/r.dcm", "kl"] == 2 and m.loc["V01/r.dcm", "visit_month"] == 12
    assert m.loc["V00/l.dcm", "side"] == "L" and m.loc["V00/l.dcm", "kl"] == 0
    # the left knee (bone on the left, MONOCHROME1) ends up like the right one: bone bright, on the right
    for i in range(len(c)):
        assert right_half_brighter(c.images[i])
    assert c.info["spacing_source_counts"] == {"PixelSpacing": 3}


def test_import_dicom_path_column_and_escape(tmp_path):
    src = tmp_path / "d"
    write_dicom(src / "a.dcm", phantom())
    labels = tmp_path / "l.csv"
    pd.DataFrame({"path": ["a.dcm", "../outside.dcm", "a.dcm"], "KL": [1, 2, 7]}).to_csv(labels, index=False)
    with pytest.raises(DataError, match="escapes"):
        import_dicom(src, tmp_path / "o", labels=labels, on_error="stop")
    assert not (tmp_path / "o").exists()
    rep = import_dicom(src, tmp_path / "o", labels=labels)
    assert rep.n_imported == 1
    reasons = " ".join(r for _, r in rep.skipped)
    assert "escapes" in reasons and "outside 0–4" in reasons


# ----------------------------------------------------------------- PNG layouts
def kl_tree(root, n=2):
    rng = np.random.default_rng(0)
    for split in ("train", "val", "test", "auto_test"):
        for g in range(5):
            for i in range(n):
                a = rng.integers(0, 255, (40, 50), dtype=np.uint8)
                a[:, 25:] = 250  # right half bright
                png(root / split / str(g) / f"{split}{g}_{i}.png", a)
    return root


def test_import_kl_folders_keeps_split_and_grade(tmp_path):
    root = kl_tree(tmp_path / "kl")
    rep = import_kl_folders(root, tmp_path / "out", size=64)
    c = load_cohort(rep.out)
    assert len(c) == 4 * 5 * 2 and c.images.shape[1:] == (64, 64)
    m = c.metadata
    assert (m.kl == m.image_id.str.split("/").str[1].astype(int)).all()
    assert set(m.split) == {"train", "val", "test"} and (m.source_split == "auto_test").sum() == 10
    assert right_half_brighter(c.images[0])


def test_import_kl_folders_reads_oai_subject_and_side_from_the_file_names(tmp_path):
    """Files named as the public dataset's (OAI id + side): both knees of a person are one subject, sides are
    recorded, left knees are mirrored to the right orientation, and a subject in two splits is reported."""
    root = tmp_path / "kl"
    rng = np.random.default_rng(1)

    def knee(side):          # bone bright on the medial half: image right for R, left for L (as acquired)
        a = rng.integers(0, 60, (40, 50), dtype=np.uint8)
        (a[:, 25:] if side == "R" else a[:, :25])[:] = 250
        return a
    files = {"train/0/9003175L.png": "L", "train/2/9003175R.png": "R", "train/1/9011053R.png": "R",
             "val/3/9011053L.png": "L",                    # the same person in train and val
             "test/4/9022222L.png": "L", "auto_test/4/9022222L.png": "L", "test/0/notoai.png": ""}
    for rel, side in files.items():
        png(root / rel, knee(side or "R"))
    rep = import_kl_folders(root, tmp_path / "out", size=32)
    c = load_cohort(rep.out)
    m = c.metadata.set_index("image_id")
    assert m.loc["train/0/9003175L", "subject_id"] == m.loc["train/2/9003175R", "subject_id"] == "9003175"
    assert m.loc["train/0/9003175L", "side"] == "L" and m.loc["train/2/9003175R", "side"] == "R"
    assert m.loc["test/0/notoai", "subject_id"] == "test/notoai" and m.loc["test/0/notoai", "side"] == ""
    assert m.loc["auto_test/4/9022222L", "split"] == "test" and m.loc["auto_test/4/9022222L", "kl"] == 4
    for i in range(len(c)):                          # every knee, left ones mirrored: medial at image right
        assert right_half_brighter(c.images[i]), c.metadata.image_id[i]
    assert c.info["subjects_in_two_splits"] == 1 and c.info["subjects_in_two_splits_examples"] == ["9011053"]
    # the person in train and val goes wholly to val (a test image never moves into training)
    assert m.loc["train/1/9011053R", "split"] == m.loc["val/3/9011053L", "split"] == "val"
    assert m.loc["train/1/9011053R", "source_split"] == "train"
    assert "left sides flipped to right" in c.info["preprocessing"] and "OAI subject id" in c.info["subjects"]
    assert any("9011053" in w for w in rep.warnings)
    kept = load_cohort(import_kl_folders(root, tmp_path / "asis", size=32, flip_left=False).out)
    assert not right_half_brighter(kept.images[list(kept.metadata.image_id).index("train/0/9003175L")])


def test_bad_files_skipped_or_stop(tmp_path):
    root = kl_tree(tmp_path / "kl", n=1)
    (root / "train" / "0" / "empty.png").write_bytes(b"")
    (root / "train" / "1" / "notimage.png").write_bytes(b"hello, I am text" * 10)
    good = (root / "train" / "2" / "train2_0.png").read_bytes()
    (root / "train" / "3" / "trunc.png").write_bytes(good[: len(good) // 2])
    rep = import_kl_folders(root, tmp_path / "o1")
    reasons = {w.split("/")[-1]: r for w, r in rep.skipped}
    assert "0 bytes" in reasons["empty.png"]
    assert "not an image" in reasons["notimage.png"]
    assert "truncated" in reasons["trunc.png"]
    assert rep.n_imported == 20
    with pytest.raises(DataError, match="empty.png"):
        import_kl_folders(root, tmp_path / "o2", on_error="stop")
    assert not (tmp_path / "o2").exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".o2")]


def test_decompression_bomb_refused(tmp_path):
    side = int(np.sqrt(MAX_PIXELS)) + 200
    p = tmp_path / "bomb.png"
    Image.new("L", (side, side)).save(p, optimize=True)
    assert p.stat().st_size < 2_000_000  # tiny file, huge image
    with pytest.raises(DataError, match="decompression bomb"):
        read_image(p)


def test_import_csv_manifest(tmp_path):
    png(tmp_path / "img" / "a.png", np.tile(np.linspace(0, 255, 60, dtype=np.uint8), (60, 1)))
    png(tmp_path / "img" / "b.png", np.tile(np.linspace(255, 0, 60, dtype=np.uint8), (60, 1)))
    man = tmp_path / "m.csv"
    pd.DataFrame({"path": ["img/a.png", "img/b.png", "img/missing.png", "/etc/passwd"], "kl": [0, 3, 1, 2],
                  "subject": ["s1", "s2", "s3", "s4"], "side": ["R", "L", "R", "R"]}).to_csv(man, index=False)
    rep = import_csv(man, tmp_path / "out", size=32)
    assert rep.n_imported == 2 and len(rep.skipped) == 2
    c = load_cohort(tmp_path / "out")
    assert right_half_brighter(c.images[0]) and right_half_brighter(c.images[1])  # b was L: flipped
    assert list(c.metadata.oa) == [0, 1]
    bad = tmp_path / "bad.csv"
    pd.DataFrame({"file": ["img/a.png"], "kl": [1]}).to_csv(bad, index=False)
    with pytest.raises(DataError, match="missing column 'path'"):
        import_csv(bad, tmp_path / "o2")


def test_import_npz_medmnist_style(tmp_path):
    rng = np.random.default_rng(0)
    f = tmp_path / "pneumonia.npz"
    np.savez(f, train_images=rng.integers(0, 255, (12, 28, 28), dtype=np.uint8),
             train_labels=rng.integers(0, 2, (12, 1)), test_images=rng.integers(0, 255, (4, 28, 28, 3), dtype=np.uint8),
             test_labels=rng.integers(0, 2, (4, 1)))
    c = load_cohort(import_npz(f, tmp_path / "o").out)
    assert len(c) == 16 and c.metadata.kl.isna().all() and set(c.metadata.label) <= {0, 1}
    assert set(c.metadata.split) == {"train", "test"}
    with pytest.raises(DataError, match="outside 0–4"):
        g = tmp_path / "k.npz"
        np.savez(g, train_images=np.zeros((2, 8, 8), np.uint8), train_labels=np.array([1, 6]))
        import_npz(g, tmp_path / "o3", labels_are="kl")
    obj = tmp_path / "obj.npz"
    np.savez(obj, train_images=np.array([object()], dtype=object), train_labels=np.array([0]))
    with pytest.raises(DataError, match="pickle"):
        import_npz(obj, tmp_path / "o4")


def test_parsers():
    assert [parse_side(v) for v in ("1", "2", "1: Right", "2: Left", "L", "right", "?")] == ["R", "L", "R", "L", "L", "R", ""]
    assert [parse_visit(v) for v in ("V00", "V01", "V03", "V05", "V06", "24", "M48")] == [0, 12, 24, 36, 48, 24, 48]
    with pytest.raises(DataError, match="cannot read visit 'yesterday'"):
        parse_visit("yesterday")


def test_cli_import(tmp_path, capsys):
    root = kl_tree(tmp_path / "kl", n=1)
    (root / "train" / "0" / "empty.png").write_bytes(b"")
    assert cli(["import", "kl-folders", str(root), "--out", str(tmp_path / "o"), "--size", "32"]) == 0
    cap = capsys.readouterr()
    assert "skipped 1 file" in cap.out and "empty.png" in cap.err
    assert cli(["import", "kl-folders", str(root), "--out", str(tmp_path / "o2"), "--on-error", "stop"]) == 2
    assert cli(["import", "dicom", str(root), "--out", str(tmp_path / "o3")]) == 2  # --labels missing


def test_a_reader_library_error_skips_that_file_and_never_aborts_the_import(tmp_path, monkeypatch):
    """A non-DataError from a reader (pydicom/Pillow raise ValueError, IndexError, ZeroDivisionError, …)
    becomes a DataError naming the file: skipped with --on-error skip, a DataError with stop."""
    import oaviz.data.kl_folders as klf

    root = kl_tree(tmp_path / "kl", n=1)
    real = klf.preprocess_picture

    def flaky(raw, size):
        if raw.pixels.shape == (12, 12):        # only the file below has this size
            raise ZeroDivisionError("float division by zero")
        return real(raw, size)
    png(root / "train" / "0" / "broken.png", np.full((12, 12), 90, np.uint8))
    monkeypatch.setattr(klf, "preprocess_picture", flaky)
    rep = import_kl_folders(root, tmp_path / "o", size=32)
    reasons = {w.split("/")[-1]: r for w, r in rep.skipped}
    assert reasons["broken.png"] == "could not read it (ZeroDivisionError: float division by zero)"
    assert rep.n_imported == 20
    with pytest.raises(DataError, match=r"broken\.png: could not read it \(ZeroDivisionError"):
        import_kl_folders(root, tmp_path / "o2", size=32, on_error="stop")
    assert not (tmp_path / "o2").exists()


def test_kl_folders_never_read_a_file_through_a_folder_symlink_that_leads_outside(tmp_path):
    root = kl_tree(tmp_path / "kl", n=1)
    outside = tmp_path / "elsewhere"
    png(outside / "secret.png", np.full((40, 50), 200, np.uint8))
    (root / "train" / "4").rename(tmp_path / "moved")
    (root / "train" / "4").symlink_to(outside, target_is_directory=True)   # a grade folder pointing out
    rep = import_kl_folders(root, tmp_path / "o", size=32)
    reasons = {w.split("/")[-1]: r for w, r in rep.skipped}
    assert "outside the source folder" in reasons["secret.png"]
    assert "train/4/secret" not in set(load_cohort(rep.out).metadata.image_id)


def test_an_absurd_pixel_spacing_is_refused_before_anything_is_allocated(tmp_path):
    """A small DICOM declaring 100 mm pixels asked the resampler for tens of GB; now a DataError."""
    from oaviz.data.readers import MAX_RESAMPLED_PIXELS, preprocess_dicom, read_image

    f = write_dicom(tmp_path / "huge.dcm", phantom(300, 260), spacing=("PixelSpacing", 100.0))
    raw = read_image(f)
    with pytest.raises(DataError, match=r"huge\.dcm: resampling 260×300 pixels of 100 mm to 0\.4 mm would make "
                                        r"65000×75000, over the 16,000,000-pixel limit"):
        preprocess_dicom(raw, 224, 0.4)
    assert MAX_RESAMPLED_PIXELS == 16_000_000


@pytest.mark.parametrize("slope", [0.0, float("nan"), float("inf")])
def test_a_rescale_slope_that_blanks_the_image_is_a_data_error(tmp_path, slope):
    from oaviz.data.readers import read_image

    f = write_dicom(tmp_path / "s.dcm", phantom(40, 40), rescale=(slope, 0.0))
    with pytest.raises(DataError, match=r"s\.dcm: pixel values are (not finite|all equal) after the modality LUT"):
        read_image(f)


def _npz_with_header_only(path, name, shape, dtype="|u1"):
    """An .npz whose member declares ``shape`` but carries no data (what a zip bomb looks like to the reader)."""
    import io
    import zipfile

    buf = io.BytesIO()
    np.lib.format.write_array_header_1_0(buf, {"descr": dtype, "fortran_order": False, "shape": shape})
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as z:
        z.writestr(f"{name}.npy", buf.getvalue())
        lab = io.BytesIO()
        np.save(lab, np.zeros(2, np.int64))
        z.writestr("train_labels.npy", lab.getvalue())
    return path


def test_npz_sizes_and_dtypes_are_checked_from_the_headers_before_loading(tmp_path):
    bomb = _npz_with_header_only(tmp_path / "bomb.npz", "train_images", (200_000, 224, 224))
    assert bomb.stat().st_size < 2_000
    with pytest.raises(DataError, match=r"bomb\.npz: the arrays would decompress to 9\.3 GiB, over the 1 GiB limit"):
        import_npz(bomb, tmp_path / "o")
    rec = _npz_with_header_only(tmp_path / "rec.npz", "train_images", (2, 4, 4), dtype=[("a", "<f4"), ("b", "<i2")])
    with pytest.raises(DataError, match=r"rec\.npz: array 'train_images' has dtype .* only plain numbers"):
        import_npz(rec, tmp_path / "o")
    (tmp_path / "junk.npz").write_bytes(b"PK\x03\x04 not really a zip")
    with pytest.raises(DataError, match=r"junk\.npz: not a readable \.npz"):
        import_npz(tmp_path / "junk.npz", tmp_path / "o")
    assert not (tmp_path / "o").exists()


def test_one_duplicate_manifest_row_is_skipped_not_fatal(tmp_path):
    png(tmp_path / "a.png", np.full((40, 50), 120, np.uint8))
    png(tmp_path / "b.png", np.full((40, 50), 60, np.uint8))
    man = tmp_path / "m.csv"
    pd.DataFrame({"path": ["a.png", "b.png", "a.png"], "kl": [0, 2, 3]}).to_csv(man, index=False)
    rep = import_csv(man, tmp_path / "o", size=32)
    assert rep.n_imported == 2
    assert rep.skipped == [(f"{man}:row 4", "duplicate of row 2 (same path 'a.png')")]
    assert load_cohort(rep.out).metadata.set_index("image_id").loc["a.png", "kl"] == 0   # the first row wins


def test_a_truncated_npz_member_is_reported_as_such_not_as_pickled_objects(tmp_path):
    import io
    import zipfile

    full = io.BytesIO()
    np.save(full, np.zeros((4, 16, 16), np.uint8))
    lab = io.BytesIO()
    np.save(lab, np.zeros(4, np.int64))
    p = tmp_path / "cut.npz"
    with zipfile.ZipFile(p, "w") as z:
        z.writestr("train_images.npy", full.getvalue()[:-100])     # the header is whole, the data is not
        z.writestr("train_labels.npy", lab.getvalue())
    with pytest.raises(DataError, match=r"cut\.npz: 'train' arrays: could not read it \(") as e:
        import_npz(p, tmp_path / "o")
    assert "pickle" not in str(e.value)
