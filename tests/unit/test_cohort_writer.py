"""The chunked cohort writer: np.save's bytes, the same fingerprint, nothing left on failure, flat memory."""

from __future__ import annotations

import hashlib
import io
import subprocess
import sys
import textwrap

import numpy as np
import pandas as pd
import pytest

from oaviz.data.cohort import cohort_writer, load_cohort, read_rows, write_cohort
from oaviz.data.importers import Collector
from oaviz.errors import DataError


def _meta(n: int) -> pd.DataFrame:
    return pd.DataFrame({"image_id": [f"i{k}" for k in range(n)], "subject_id": [f"s{k // 2}" for k in range(n)],
                         "visit_month": 0, "side": "R", "label": 1, "kl": 1, "oa": 0, "split": "train"})


def _npy(a: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.save(buf, a)
    return buf.getvalue()


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16])
def test_chunks_give_np_save_bytes_and_the_whole_array_fingerprint(tmp_path, dtype):
    rng = np.random.default_rng(0)
    images = rng.integers(0, np.iinfo(dtype).max, (11, 6, 5), dtype=dtype)
    masks = rng.integers(0, 2, images.shape, dtype=np.uint8)
    meta = _meta(11)
    with cohort_writer(tmp_path / "c", 11, (6, 5), dtype, with_masks=True) as w:
        for a, b in ((0, 4), (4, 5), (5, 11)):      # uneven chunks, one of a single image
            w.add(images[a:b], masks[a:b])
        w.finish(meta, {"source": "test"})
    assert (tmp_path / "c" / "images.npy").read_bytes() == _npy(images)
    assert (tmp_path / "c" / "masks.npy").read_bytes() == _npy(masks)
    c = load_cohort(tmp_path / "c")
    # the fingerprint's definition: sha256 of (dtype, shape), every pixel byte, then metadata.csv
    h = hashlib.sha256(str((images.dtype.str, images.shape)).encode())
    h.update(images.tobytes())
    h.update((tmp_path / "c" / "metadata.csv").read_bytes())
    assert c.fingerprint == h.hexdigest()[:16]
    assert write_cohort(tmp_path / "d", images, meta, {"source": "test"}, masks=masks)
    assert load_cohort(tmp_path / "d").fingerprint == c.fingerprint
    assert (tmp_path / "d" / "images.npy").read_bytes() == _npy(images)


def test_a_writer_that_fails_leaves_nothing(tmp_path):
    img = np.zeros((3, 4, 4), np.uint8)
    with pytest.raises(DataError, match="2 images written but 3"):
        with cohort_writer(tmp_path / "short", 3, (4, 4)) as w:
            w.add(img[:2])
            w.finish(_meta(3), {})
    with pytest.raises(DataError, match="more than the 3"):
        with cohort_writer(tmp_path / "long", 3, (4, 4)) as w:
            w.add(img)
            w.add(img[:1])
    with pytest.raises(DataError, match="not finished"):
        with cohort_writer(tmp_path / "unfinished", 3, (4, 4)) as w:
            w.add(img)
    with pytest.raises(DataError, match="uint8 B×4×4"):
        with cohort_writer(tmp_path / "shape", 3, (4, 4)) as w:
            w.add(np.zeros((3, 4, 5), np.uint8))
    with pytest.raises(DataError, match="metadata has 2 rows"):
        with cohort_writer(tmp_path / "meta", 3, (4, 4)) as w:
            w.add(img)
            w.finish(_meta(2), {})
    with pytest.raises(RuntimeError, match="boom"):
        with cohort_writer(tmp_path / "boom", 3, (4, 4)) as w:
            w.add(img[:1])
            raise RuntimeError("boom")
    assert list(tmp_path.iterdir()) == []


def test_read_rows_matches_slicing(tmp_path):
    images = np.arange(7 * 3 * 2, dtype=np.uint16).reshape(7, 3, 2)
    write_cohort(tmp_path / "c", images, _meta(7), {})
    mm = load_cohort(tmp_path / "c").images
    for a, b in ((0, 7), (2, 5), (5, 100), (7, 9)):
        assert np.array_equal(read_rows(mm, a, b), images[a:b])
    assert np.array_equal(read_rows(mm[1:6], 1, 3), images[2:4])   # a slice of the map: plain slicing
    assert np.array_equal(read_rows(images, 1, 3), images[1:3])


def _peak_growth_mb(body: str) -> float:
    """Peak RSS growth (MB) of a fresh interpreter while it runs ``body``; ``grow()`` marks the start."""
    code = textwrap.dedent("""
        import resource, numpy as np
        from oaviz.data.cohort import load_cohort, read_rows, cohort_writer
        from oaviz.data.importers import Collector
        base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        """) + textwrap.dedent(body) + textwrap.dedent("""
        print((resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - base) / 1024)
        """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return float(out.stdout.split()[-1])


def test_import_and_a_pass_over_a_cohort_hold_one_chunk_not_the_cohort(tmp_path):
    """Collector: 1,600 images of 256×256 (105 MB) never sit in memory together; a pass with read_rows
    over the written cohort's memory map keeps its pages out of the process (slicing the map does not)."""
    out = tmp_path / "c"
    grown = _peak_growth_mb(f"""
        import pandas as pd
        col = Collector("stop")
        img = np.zeros((256, 256), np.uint8)
        for k in range(1600):
            img[:] = k % 251
            col.add(img, {{"image_id": str(k), "subject_id": str(k), "visit_month": 0, "side": "", "label": 0,
                          "kl": 0, "split": "train"}})
        col.write({str(out)!r}, {{}}, overwrite=False)
        """)
    assert grown < 40, f"import grew the peak RSS by {grown:.0f} MB for 105 MB of images"
    c = load_cohort(out)
    assert len(c) == 1600 and int(c.images[300, 0, 0]) == 300 % 251
    mapped = _peak_growth_mb(f"""
        mm = load_cohort({str(out)!r}).images
        s = sum(int(np.asarray(mm[i:i + 128]).sum()) for i in range(0, len(mm), 128))
        """)
    if mapped < 60:   # the control: where the kernel reclaims mapped file pages at once, RSS cannot tell
        pytest.skip(f"slicing the map grew the peak RSS by only {mapped:.0f} MB here: nothing to compare with")
    read = _peak_growth_mb(f"""
        mm = load_cohort({str(out)!r}).images
        s = sum(int(read_rows(mm, i, i + 128)[:, 0, 0].sum()) for i in range(0, len(mm), 128))
        """)
    assert read < 40, f"a read_rows pass grew the peak RSS by {read:.0f} MB (slicing the map: {mapped:.0f} MB)"


def test_collector_refuses_an_image_of_another_shape():
    col = Collector("stop")
    col.add(np.zeros((4, 4), np.uint8), {"image_id": "a"})
    with pytest.raises(DataError, match="'b' is uint8 \\(4, 5\\)"):
        col.add(np.zeros((4, 5), np.uint8), {"image_id": "b"})


def test_streamed_generation_writes_what_the_in_memory_arrays_would(tmp_path):
    from oaviz.data.synthetic import SynthConfig, generate_arrays, generate_cohort

    images, masks, meta, info = generate_arrays(SynthConfig(subjects=5, visits=(0, 12), size=48, seed=7))
    generate_cohort(tmp_path / "streamed", subjects=5, visits=(0, 12), size=48, seed=7)
    write_cohort(tmp_path / "whole", images, meta, info, masks=masks)
    for f in ("images.npy", "masks.npy", "metadata.csv"):
        assert (tmp_path / "streamed" / f).read_bytes() == (tmp_path / "whole" / f).read_bytes(), f
    assert load_cohort(tmp_path / "streamed").fingerprint == load_cohort(tmp_path / "whole").fingerprint
