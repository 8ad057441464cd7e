"""Untrusted files through the readers: no hang, no unbounded decode, every failure a DataError naming the file."""

from __future__ import annotations

import io
import time

import numpy as np
import pydicom
import pytest
from PIL import Image

from oaviz.data import dicom_decode
from oaviz.data.readers import read_image
from oaviz.errors import DataError

from .dicom_fixtures import jpeg2000_zero_length_box, phantom, write_dicom


# ----------------------------------------------------------------- decoding that cannot hang
def test_a_jpeg2000_zero_length_box_is_refused_at_once(tmp_path):
    """This 600-byte file hung a server thread forever in pydicom's get_j2k_parameters."""
    f = jpeg2000_zero_length_box(tmp_path / "hang.dcm")
    t0 = time.monotonic()
    with pytest.raises(DataError, match=r"hang\.dcm: JPEG 2000 data has a zero-length box at byte 12"):
        read_image(f)
    assert time.monotonic() - t0 < 3


def test_a_decoder_that_loops_is_stopped_by_the_child_time_limit(tmp_path, monkeypatch):
    """Without the known-bad check the very same file reaches the decoder: the child is killed on time."""
    monkeypatch.setattr(dicom_decode, "_zero_length_jp2_box", lambda frame: None)
    monkeypatch.setattr(dicom_decode, "DECODE_TIMEOUT_S", 2.0)
    f = jpeg2000_zero_length_box(tmp_path / "hang.dcm")
    t0 = time.monotonic()
    with pytest.raises(DataError, match=r"hang\.dcm: decoding the compressed pixel data took over 2 s"):
        read_image(f)
    assert time.monotonic() - t0 < 6


def test_compressed_pixels_are_decoded_in_a_child_and_match(tmp_path, monkeypatch):
    calls = []
    real = dicom_decode.decode_in_child
    monkeypatch.setattr(dicom_decode, "decode_in_child", lambda *a, **k: calls.append(1) or real(*a, **k))
    px = phantom(40, 30)
    plain = read_image(write_dicom(tmp_path / "a.dcm", px)).pixels
    rle = read_image(write_dicom(tmp_path / "b.dcm", px, compress=True)).pixels
    assert calls == [1] and np.array_equal(plain, rle)


def _declaring(path, **fields):
    """A valid small DICOM whose header is then edited to declare ``fields``."""
    write_dicom(path, phantom(40, 40))
    ds = pydicom.dcmread(path)
    for k, v in fields.items():
        setattr(ds, k, v)
    ds.save_as(path)
    return path


def test_sizes_are_checked_from_the_header_before_any_decode(tmp_path, monkeypatch):
    import pydicom.pixels

    monkeypatch.setattr(pydicom.pixels, "pixel_array", lambda *a, **k: pytest.fail("decoded before the check"))
    f = _declaring(tmp_path / "frames.dcm", NumberOfFrames=200_000, Rows=4000, Columns=4000)
    with pytest.raises(DataError, match=r"frames\.dcm: header declares 200000 frame\(s\) of 4000×4000×1 at 16 bits "
                                        r"= 5960\.5 GiB, over the 4 GiB limit"):
        read_image(f)
    with pytest.raises(DataError, match=r"header declares 7 sample\(s\) per pixel"):
        read_image(_declaring(tmp_path / "s.dcm", SamplesPerPixel=7))
    with pytest.raises(DataError, match=r"DICOM is 10000×10000 pixels, over the 60,000,000 limit"):
        read_image(_declaring(tmp_path / "big.dcm", Rows=10000, Columns=10000))
    with pytest.raises(DataError, match=r"header declares 1 sample\(s\) per pixel of 3 bits"):   # numpy: no 'uint3'
        read_image(_declaring(tmp_path / "b.dcm", BitsAllocated=3))
    with pytest.raises(DataError, match=r"frames of 7000×7000×3 at 64 bits = 1122 MiB, over the 256 MiB limit"):
        read_image(_declaring(tmp_path / "f.dcm", Rows=7000, Columns=7000, SamplesPerPixel=3, BitsAllocated=64))


def test_a_deflated_dataset_is_refused_before_it_is_inflated(tmp_path):
    from pydicom.uid import DeflatedExplicitVRLittleEndian

    f = write_dicom(tmp_path / "d.dcm", phantom(40, 40))
    ds = pydicom.dcmread(f)
    ds.file_meta.TransferSyntaxUID = DeflatedExplicitVRLittleEndian
    ds.save_as(f, enforce_file_format=True)
    with pytest.raises(DataError, match=r"d\.dcm: deflated transfer syntax"):
        read_image(f)


# ----------------------------------------------------------------- odd headers
@pytest.mark.parametrize("value, match", [
    (["0.2"], r"PixelSpacing has 1 value\(s\)"),
    (["0.2", "0.2", "0.2"], r"PixelSpacing has 3 value\(s\)"),
    (["abc", "0.2"], r"PixelSpacing .* is not numeric"),
])
def test_pixel_spacing_with_one_or_non_numeric_values_is_a_data_error(tmp_path, value, match):
    f = write_dicom(tmp_path / "sp.dcm", phantom(40, 40))
    ds = pydicom.dcmread(f)
    ds["PixelSpacing"].VR = "LO" if value[0] == "abc" else "DS"   # a DS refuses text when it is written
    ds.PixelSpacing = value
    buf = io.BytesIO()
    ds.save_as(buf)
    raw = buf.getvalue()
    with pytest.raises(DataError, match=r"sp\.dcm: " + match):
        read_image(raw, name=str(f))


def test_a_broken_modality_lut_is_a_data_error(tmp_path):
    from pydicom.dataset import Dataset

    f = write_dicom(tmp_path / "m.dcm", phantom(40, 40))
    ds = pydicom.dcmread(f)
    item = Dataset()
    item.LUTDescriptor = [4096, 0, 16]
    item.LUTData = b""   # no entries for the 4096 the descriptor promises
    ds.ModalityLUTSequence = [item]
    ds.save_as(f)
    with pytest.raises(DataError, match=r"m\.dcm: "):
        read_image(f)


def test_a_broken_voi_lut_is_a_data_error(tmp_path):
    from pydicom.dataset import Dataset

    f = write_dicom(tmp_path / "v.dcm", phantom(40, 40))
    ds = pydicom.dcmread(f)
    item = Dataset()
    item.LUTDescriptor = [256, 0]   # three values required
    item.LUTData = bytes(512)
    ds.VOILUTSequence = [item]
    ds.save_as(f)
    with pytest.raises(DataError, match=r"v\.dcm: "):
        read_image(f)


def test_an_unknown_vr_is_a_data_error(tmp_path):
    f = write_dicom(tmp_path / "u.dcm", phantom(40, 40))
    raw = f.read_bytes()
    i = raw.index(b"\x08\x00\x60\x00CS")   # explicit VR little endian: group, element, VR
    bad = raw[:i + 4] + b"ZZ" + raw[i + 6:]
    with pytest.raises(DataError, match=r"u\.dcm: "):
        read_image(bad, name=str(f))


# ----------------------------------------------------------------- pictures
def test_a_lab_tiff_is_a_data_error(tmp_path):
    buf = io.BytesIO()
    Image.new("LAB", (32, 32), (50, 10, 10)).save(buf, format="TIFF")
    with pytest.raises(DataError, match=r"lab\.tif: cannot make a greyscale image of its LAB pixels"):
        read_image(buf.getvalue(), name="lab.tif")


def test_a_float_tiff_with_nan_is_a_data_error():
    buf = io.BytesIO()
    a = np.ones((16, 16), np.float32)
    a[3, 3] = np.nan
    Image.fromarray(a, mode="F").save(buf, format="TIFF")
    with pytest.raises(DataError, match=r"nan\.tif: pixel values are not finite"):
        read_image(buf.getvalue(), name="nan.tif")
