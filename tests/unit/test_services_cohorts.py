"""Cohort and import services, without Streamlit: listing, filters, grade table, pages, names, uploads."""

from __future__ import annotations

import io
import re
import threading
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from oaviz.data.cohort import load_cohort, write_cohort
from oaviz.data.errors import DataError
from oaviz.services import cohorts, imports


def _cohort(out: Path, kl: list, size: int = 16, label=None) -> Path:
    n = len(kl)
    rng = np.random.default_rng(0)
    meta = pd.DataFrame({
        "image_id": [f"img{i}" for i in range(n)], "subject_id": [f"s{i // 2}" for i in range(n)],
        "visit_month": [12 * (i % 2) for i in range(n)], "side": ["R" if i % 3 else "L" for i in range(n)],
        "label": label if label is not None else kl, "kl": kl, "oa": 0,
        "split": ["train" if i < n - 2 else "test" for i in range(n)],
    })
    meta["kl_true"] = [k if k is not None and not pd.isna(k) else None for k in kl]
    images = rng.integers(0, 255, (n, size, size), dtype=np.uint8)
    return write_cohort(out, images, meta, {"source": "test"})


@pytest.fixture()
def small(tmp_path) -> Path:
    return _cohort(tmp_path / "cohorts" / "small", [0, 0, 1, 2, 2, 2, 3, 4, 0, 1])


def test_filter_rows_combines_filters_and_keeps_row_ids(small):
    meta = load_cohort(small).metadata
    assert list(cohorts.filter_rows(meta).index) == list(range(10))
    two = cohorts.filter_rows(meta, kl=[2])
    assert list(two.index) == [3, 4, 5]
    assert list(cohorts.filter_rows(meta, kl=[2], side=["L"]).index) == [3]
    assert list(cohorts.filter_rows(meta, kl=[0, 1], split=["test"]).index) == [8, 9]
    assert list(cohorts.filter_rows(meta, visit=[12], kl=[2]).index) == [3, 5]
    assert cohorts.filter_rows(meta, kl=[]).empty


def test_grade_distribution_counts(small):
    meta = load_cohort(small).metadata
    t = cohorts.grade_distribution(meta)
    assert list(t.index) == ["KL 0", "KL 1", "KL 2", "KL 3", "KL 4"]
    assert t["total"].tolist() == [3, 2, 3, 1, 1]
    assert t["test"].tolist() == [1, 1, 0, 0, 0]
    assert t["percent"].tolist() == [30.0, 20.0, 30.0, 10.0, 10.0]


def test_grade_distribution_of_non_kl_labels(tmp_path):
    path = _cohort(tmp_path / "c", [None] * 6, label=[0, 1, 1, 2, 10, 2])
    meta = load_cohort(path).metadata
    t = cohorts.grade_distribution(meta)
    assert list(t.index) == ["0", "1", "2", "10"]  # natural order, not "10" before "2"
    assert t["total"].tolist() == [1, 2, 2, 1]
    named = cohorts.grade_distribution(meta, label_names=[f"class{i}" for i in range(11)])
    assert list(named.index)[1] == "1 · class1"


def test_rater_confusion_and_overview(small):
    c = load_cohort(small)
    tab = cohorts.rater_confusion(c.metadata)
    assert tab.shape == (5, 5) and int(np.trace(tab.to_numpy())) == 10  # kl_true == kl here
    ov = cohorts.overview(c)
    assert ov.n_images == 10 and ov.n_subjects == 5 and ov.visits == [0, 12]
    assert ov.oa_fraction == pytest.approx(0.5) and ov.rater_disagreement == 0.0


def test_paginate_clamps():
    assert cohorts.paginate(50, 1, 18) == (0, 18, 3)
    assert cohorts.paginate(50, 3, 18) == (36, 50, 3)
    assert cohorts.paginate(50, 9, 18) == (36, 50, 3)
    assert cohorts.paginate(0, 1, 18) == (0, 0, 1)
    with pytest.raises(DataError, match="per_page must be >= 1, got 0"):
        cohorts.paginate(10, 1, 0)


def test_list_available_puts_the_default_first(tmp_path, monkeypatch):
    monkeypatch.setenv("OAVIZ_HOME", str(tmp_path))
    _cohort(tmp_path / "cohorts" / "aaa", [0, 1, 2, 3])
    _cohort(tmp_path / "cohorts" / "synthetic-knee", [0, 1, 2, 3, 4, 4])
    (tmp_path / "cohorts" / ".half-written.tmp-1").mkdir()
    listed = cohorts.list_available()
    assert [c.name for c in listed] == ["synthetic-knee", "aaa"]
    assert listed[0].is_default and listed[0].n_images == 6 and listed[0].image_shape == (16, 16)
    assert cohorts.cohort_fingerprint(listed[1].path) == load_cohort(listed[1].path).fingerprint


def test_ensure_default_generates_once_under_concurrency(tmp_path, monkeypatch):
    import oaviz.data.synthetic as synthetic

    monkeypatch.setenv("OAVIZ_HOME", str(tmp_path))
    monkeypatch.setattr(synthetic, "default_cohort_config",
                        lambda: {"joint": "knee", "subjects": 3, "visits": (0,), "size": 32, "seed": 0})
    calls = []
    real = synthetic.generate_cohort

    def counting(*a, **k):
        calls.append(1)
        return real(*a, **k)

    monkeypatch.setattr(synthetic, "generate_cohort", counting)
    results = []
    threads = [threading.Thread(target=lambda: results.append(cohorts.ensure_default_cohort())) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(calls) == 1
    assert len(set(results)) == 1 and len(load_cohort(results[0])) == 3
    assert cohorts.ensure_default_cohort() == results[0] and len(calls) == 1


def test_cohort_names(tmp_path):
    assert cohorts.cohort_dir_for("my-knees_2", tmp_path) == tmp_path / "my-knees_2"
    for bad in ("", "../x", "a/b", ".hidden", "x" * 65, "sp ace"):
        with pytest.raises(DataError, match=f"cohort name {re.escape(repr(bad))} must be 1–64 letters"):
            cohorts.cohort_dir_for(bad, tmp_path)
    (tmp_path / "taken").mkdir()
    with pytest.raises(DataError, match="already exists"):
        cohorts.cohort_dir_for("taken", tmp_path)


def test_generation_estimate_decides_inline():
    assert cohorts.generation_runs_inline(20, 2, 64)
    assert not cohorts.generation_runs_inline(600, 3, 224)
    assert cohorts.estimate_generation_s(600, 3, 224) > cohorts.estimate_generation_s(60, 3, 224)


def test_image_record_and_thumbnails(tiny_cohort):
    c = load_cohort(tiny_cohort)
    rec = cohorts.image_record(c, 5)
    assert rec.image.dtype == np.float32 and rec.image.shape == c.image_size
    assert np.allclose(rec.image, c.images[5] / 255.0)
    assert rec.metadata["image_id"] == c.metadata.image_id[5] and "landmarks" not in rec.metadata
    assert rec.landmarks.shape == (16, 2) and rec.mask.shape == c.image_size
    with pytest.raises(DataError, match=rf"row {len(c)} is outside the cohort \(0–{len(c) - 1}\)"):
        cohorts.image_record(c, len(c))
    small = cohorts.thumbnails(c, [0, 3], size=32)
    assert [t.shape for t in small] == [(32, 32), (32, 32)] and small[0].dtype == np.uint8
    same = cohorts.thumbnails(c, [3], size=256)[0]
    assert np.array_equal(same, c.images[3])  # never upscaled
    assert cohorts.thumbnail_caption(c.metadata.iloc[0]).startswith("KL ")


def test_card_fields_are_readable():
    fields = dict(cohorts.card_fields({"pixel_spacing_mm": 0.4, "image_shape": [224, 224],
                                       "generator": {"subjects": 600, "visits": [0, 12]}}))
    assert fields == {"pixel spacing (mm)": "0.4", "image shape": "224 × 224", "generator › subjects": "600",
                      "generator › visits": "0, 12"}


# ----------------------------------------------------------------- uploads
def _zip(members: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        for name, data in members.items():
            z.writestr(name, data)
    return buf.getvalue()


@pytest.mark.parametrize("member", ["../evil.png", "/abs/evil.png", "a/../../evil.png", "C:/evil.png"])
def test_zip_members_cannot_escape(tmp_path, member):
    with pytest.raises(DataError, match="outside the archive"):
        imports._extract_zip(imports.Upload("x.zip", _zip({member: b"x"})), tmp_path)
    assert not (tmp_path.parent / "evil.png").exists()


def test_zip_bomb_and_bad_zip_rejected(tmp_path, monkeypatch):
    with pytest.raises(DataError, match="not a valid zip"):
        imports._extract_zip(imports.Upload("x.zip", b"PK\x03\x04 not really"), tmp_path)
    monkeypatch.setattr(imports, "MAX_EXPANDED_BYTES", 1000)
    with pytest.raises(DataError, match="expands to"):
        imports._extract_zip(imports.Upload("x.zip", _zip({"a.bin": b"\0" * 5000})), tmp_path)


def test_import_from_uploads_stages_and_calls_the_importer(tmp_path, monkeypatch):
    """The wrapper expands the zip, finds the split folders one level down, passes only accepted options."""
    seen = {}

    def fake_import_kl_folders(src, out, *, size=224, on_error="skip", overwrite=False):
        seen.update(src=src, size=size, on_error=on_error, files=sorted(p.name for p in Path(src).rglob("*.png")))
        _cohort(out, [0, 1, 2, 3])
        return type("Report", (), {"skipped": [("train/0/bad.png", "truncated file")]})()

    monkeypatch.setattr(imports, "_importer", lambda fmt: fake_import_kl_folders)
    up = imports.Upload("knees.zip", _zip({"dataset/train/0/a.png": b"1", "dataset/test/2/b.png": b"2",
                                           "__MACOSX/dataset/._a.png": b"junk"}))
    res = imports.import_from_uploads("kl-folders", [up], "uploaded", size=128, labels_are_kl=True,
                                      root=tmp_path / "cohorts")
    assert Path(seen["src"]).name == "dataset" and seen["size"] == 128 and seen["on_error"] == "skip"
    assert seen["files"] == ["a.png", "b.png"]
    assert res.path == tmp_path / "cohorts" / "uploaded" and res.n_images == 4
    assert res.skipped == ["train/0/bad.png: truncated file"]
    assert not Path(seen["src"]).exists()  # the staging folder is gone
    with pytest.raises(DataError, match="already exists"):
        imports.import_from_uploads("kl-folders", [up], "uploaded", root=tmp_path / "cohorts")


def test_import_needs_labels_for_dicom_and_a_known_format(tmp_path):
    with pytest.raises(DataError, match="labels CSV"):
        imports.import_from_path("dicom", tmp_path, "x", root=tmp_path / "c")
    with pytest.raises(DataError, match="unknown import format"):
        imports.import_from_path("tiff", tmp_path, "x", root=tmp_path / "c")
    with pytest.raises(DataError, match="no such file"):
        imports.import_from_path("npz", tmp_path / "missing.npz", "x", root=tmp_path / "c")


def _png(value: int, size: int = 40) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(np.full((size, size), value, dtype=np.uint8)).save(buf, format="PNG")
    return buf.getvalue()


def test_real_kl_folder_upload_with_a_bad_file(tmp_path):
    members = {f"knees/{split}/{kl}/{split}{kl}_{i}.png": _png(40 * kl + i)
               for split in ("train", "test") for kl in (0, 2, 4) for i in range(2)}
    members["knees/train/3/broken.png"] = b"\x89PNG\r\n\x1a\n truncated"
    res = imports.import_from_uploads("kl-folders", [imports.Upload("knees.zip", _zip(members))], "klf", size=32,
                                      root=tmp_path)
    c = load_cohort(res.path)
    assert res.n_images == len(c) == 12 and c.image_size == (32, 32)
    assert sorted(c.metadata["kl"].astype(int).unique()) == [0, 2, 4]
    assert set(c.metadata["split"]) == {"train", "test"}  # the folder layout's split is kept
    assert len(res.skipped) == 1 and res.skipped[0].startswith("knees/train/3/broken.png: ")  # no temp path
    assert "oaviz-upload" not in res.skipped[0]


def test_real_npz_upload_labels_are_kl(tmp_path):
    rng = np.random.default_rng(0)
    arrays = {f"{s}_images": rng.integers(0, 255, (n, 28, 28), dtype=np.uint8) for s, n in (("train", 6), ("test", 3))}
    arrays |= {"train_labels": np.array([[0], [1], [2], [3], [4], [0]]), "test_labels": np.array([[1], [2], [2]])}
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    up = imports.Upload("oa.npz", buf.getvalue())
    res = imports.import_from_uploads("npz", [up], "mnist-kl", labels_are_kl=True, root=tmp_path)
    meta = load_cohort(res.path).metadata
    assert list(meta["kl"].astype(int)) == [0, 1, 2, 3, 4, 0, 1, 2, 2]
    other = imports.import_from_uploads("npz", [up], "mnist-other", labels_are_kl=False, root=tmp_path)
    assert load_cohort(other.path).metadata["kl"].isna().all()
