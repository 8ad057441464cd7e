"""Valid small inputs of every kind the importers read, from a seeded generator (no files shipped, no downloads).

Each function takes a ``numpy.random.Generator`` and returns bytes: what the mutators in ``mutate.py`` then break.
"""

from __future__ import annotations

import io
import tempfile
from pathlib import Path

import numpy as np
from PIL import Image

from tests.unit.dicom_fixtures import jpeg2000_zero_length_box, phantom, write_dicom

PICTURE_FORMATS = ("PNG", "PNG", "PNG", "JPEG", "TIFF", "BMP")
SUFFIX = {"PNG": ".png", "JPEG": ".jpg", "TIFF": ".tif", "BMP": ".bmp"}


def knee_like(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    """uint8 [h, w]: a bright band with noise, so percentiles and the left/right halves differ."""
    img = rng.integers(20, 80, (h, w)).astype(np.uint8)
    img[h // 4: 3 * h // 4, w // 3: 2 * w // 3] = rng.integers(150, 255)
    return img


def picture(rng: np.random.Generator, fmt: str | None = None) -> tuple[bytes, str]:
    """(bytes, suffix) of a small greyscale-ish picture in a random mode the format allows."""
    fmt = fmt or str(rng.choice(PICTURE_FORMATS))
    h, w = (int(v) for v in rng.integers(8, 48, 2))
    base = knee_like(rng, h, w)
    modes = {"PNG": ["L", "L", "I;16", "RGB", "RGBA", "P", "LA", "1"], "JPEG": ["L", "RGB", "CMYK"],
             "TIFF": ["L", "I;16", "F", "RGB", "LAB", "CMYK", "I"], "BMP": ["L", "RGB", "P", "1"]}[fmt]
    mode = str(rng.choice(modes))
    if mode == "I;16":
        im = Image.fromarray(base.astype(np.uint16) * 257)
    elif mode in ("F", "I"):
        im = Image.fromarray(base.astype(np.float32 if mode == "F" else np.int32) * 3, mode=mode)
    elif mode == "LAB":
        im = Image.merge("LAB", [Image.fromarray(base)] * 3)
    else:
        im = Image.fromarray(base).convert(mode)
    buf = io.BytesIO()
    im.save(buf, format=fmt)
    return buf.getvalue(), SUFFIX[fmt]


def dicom(rng: np.random.Generator) -> bytes:
    """A small single-frame DICOM: random photometric, spacing tag, rescale, window, side, compression."""
    h, w = (int(v) for v in rng.integers(24, 64, 2))
    px = phantom(h, w, bone_at=str(rng.choice(["right", "left"])))
    kind = rng.random()
    with tempfile.TemporaryDirectory() as d:
        if kind < 0.05:
            return jpeg2000_zero_length_box(Path(d) / "x.dcm").read_bytes()
        f = write_dicom(Path(d) / "x.dcm", px, photometric=str(rng.choice(["MONOCHROME2", "MONOCHROME1"])),
                        spacing=[None, ("PixelSpacing", 0.2), ("ImagerPixelSpacing", 0.15), ("PixelSpacing", 0.5)]
                        [int(rng.integers(4))],
                        patient=str(rng.choice(["9000001", "9000002", ""])), laterality=str(rng.choice(["R", "L", ""])),
                        compress=bool(rng.random() < 0.25), rescale=(1.0, -100.0) if rng.random() < 0.3 else None,
                        window=(1500.0, 2500.0) if rng.random() < 0.3 else None)
        if kind > 0.9:   # JPEG 2000: the one compressed syntax this machine can also encode
            import pydicom
            from pydicom.uid import JPEG2000Lossless

            ds = pydicom.dcmread(f)
            try:
                if ds.file_meta.TransferSyntaxUID.is_compressed:
                    ds.decompress()
                ds.compress(JPEG2000Lossless)
                ds.save_as(f, enforce_file_format=True)
            except Exception:  # noqa: BLE001 - openjpeg refuses some small sizes: keep the file as it was
                pass
        return f.read_bytes()


def npz(rng: np.random.Generator) -> bytes:
    """A MedMNIST-style .npz: one to three splits of N×H×W(×C) images with their labels."""
    arrays = {}
    h = int(rng.integers(8, 32))
    channels = [(), (), (1,), (3,)][int(rng.integers(4))]
    for s in ("train", "val", "test"):
        if s != "train" and rng.random() < 0.4:
            continue
        n = int(rng.integers(1, 6))
        arrays[f"{s}_images"] = rng.integers(0, 255, (n, h, h, *channels)).astype(np.uint8)
        labels = rng.integers(0, 5, n)
        arrays[f"{s}_labels"] = labels[:, None] if rng.random() < 0.5 else labels
    buf = io.BytesIO()
    (np.savez_compressed if rng.random() < 0.5 else np.savez)(buf, **arrays)
    return buf.getvalue()


def oai_stem(rng: np.random.Generator) -> str:
    return f"9{int(rng.integers(0, 999_999)):06d}{rng.choice(['L', 'R'])}"
