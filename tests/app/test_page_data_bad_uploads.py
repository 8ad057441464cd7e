"""AppTest of the Data page's upload path on bad files: the message is shown with st.error, never the generic
"This app has encountered an error" box (before, these uploads raised AttributeError and BadZipFile)."""

from __future__ import annotations

import io
import struct
import zipfile

import numpy as np
import pytest

PAGE = "pages/data.py"


def _raw_member_npz() -> bytes:
    """'train_images' stored without the .npy suffix: np.load hands back raw bytes, not an array."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("train_images", b"\0" * 800)
        lab = io.BytesIO()
        np.save(lab, np.arange(2))
        z.writestr("train_labels.npy", lab.getvalue())
    return buf.getvalue()


def _lying_zip() -> bytes:
    """A zip whose headers understate a member's size (the member's CRC then fails)."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_DEFLATED) as z:
        z.writestr("knees/train/0/a.png", b"x" * 50_000)
    d = bytearray(buf.getvalue())
    d[22:26] = struct.pack("<I", 10)
    i = d.index(b"PK\x01\x02")
    d[i + 24:i + 28] = struct.pack("<I", 10)
    return bytes(d)


@pytest.mark.parametrize("fmt, name, data, message", [
    ("npz", "raw.npz", _raw_member_npz(), "raw.npz: 'train_images' is not a .npy array in the archive"),
    ("kl-folders", "knees.zip", _lying_zip(), "knees.zip: cannot expand the archive (BadZipFile"),
])
def test_a_bad_upload_shows_its_message_not_the_generic_error_box(open_page, app_home, tmp_path, monkeypatch,
                                                                  fmt, name, data, message):
    import shutil

    home = tmp_path / "home"
    shutil.copytree(app_home / "cohorts", home / "cohorts")
    monkeypatch.setenv("OAVIZ_HOME", str(home))
    at = open_page(PAGE)
    at.session_state["data.tab"] = "Import"
    at.run()
    next(r for r in at.radio if r.label == "Format").set_value(fmt).run()
    at.text_input(key="data.import.name").set_value("bad-upload")
    at.file_uploader(key="data.import.files").upload(name, data)
    at.run()
    next(b for b in at.button if b.label == "Import").click().run()
    assert not at.exception, [e.value for e in at.exception]
    assert any(e.value.startswith(f"Import failed: {message}") for e in at.error), [e.value for e in at.error]
    assert not (home / "cohorts" / "bad-upload").exists()
