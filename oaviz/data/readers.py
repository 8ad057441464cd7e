"""Read one radiograph file (PNG, JPEG, DICOM) into a float image, safely.

Every failure is a ``DataError`` naming the file: empty or truncated files,
non-images with an image suffix, DICOM without pixel data, decompression bombs.
DICOM follows the usual display pipeline: modality LUT (rescale slope and
intercept), VOI LUT or window, MONOCHROME1 inversion (pydicom leaves that to
us), then resampling to a fixed pixel spacing. Pixel data is decoded under the limits of
``oaviz.data.dicom_decode`` (sizes from the header first; compressed syntaxes in a time-limited child).
"""

from __future__ import annotations

import io
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from oaviz.data.dicom_decode import MAX_PIXELS, first_frame, refuse_deflated
from oaviz.errors import DataError, as_data_error

# A radiograph is at most a few thousand pixels a side (MAX_PIXELS); anything far larger is
# a decompression bomb (Pillow alone only refuses past 2× its own limit).
IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp"}
DICOM_SUFFIXES = {".dcm", ".dicom", ".dic", ""}


@dataclass
class RawImage:
    """A decoded image: float32 [H, W] (higher = more attenuation) and what was done to it."""

    pixels: np.ndarray
    source: str
    pixel_spacing_mm: float | None = None
    spacing_tag: str | None = None
    header: dict = field(default_factory=dict)
    steps: list[str] = field(default_factory=list)


def _is_dicom_bytes(head: bytes) -> bool:
    return len(head) >= 132 and head[128:132] == b"DICM"


def read_image(src: str | Path | bytes, name: str | None = None) -> RawImage:
    """Decode a PNG/JPEG/DICOM file (path or bytes) into a RawImage."""
    where = name or (str(src) if not isinstance(src, bytes) else "upload")
    if isinstance(src, bytes):
        data = src
    else:
        p = Path(src)
        if not p.is_file():
            raise DataError("file not found", where)
        data = p.read_bytes()
    if len(data) == 0:
        raise DataError("empty file (0 bytes)", where)
    suffix = Path(where).suffix.lower()
    if _is_dicom_bytes(data[:132]) or suffix in (".dcm", ".dicom", ".dic"):
        return read_dicom_bytes(data, where)
    return read_pil_bytes(data, where)


def read_pil_bytes(data: bytes, where: str) -> RawImage:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            im = Image.open(io.BytesIO(data))
            w, h = im.size
            if w * h > MAX_PIXELS:
                raise DataError(f"image is {w}×{h} pixels, over the {MAX_PIXELS:,} limit (decompression bomb?)", where)
            im.load()
    except DataError:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as e:
        raise DataError(f"decompression bomb refused ({e})", where) from None
    except UnidentifiedImageError:
        raise DataError("not an image Pillow can read (wrong suffix or corrupt file)", where) from None
    except Exception as e:  # noqa: BLE001 - Pillow's plugins raise OSError, SyntaxError, struct.error, ZeroDivisionError…
        raise DataError(f"truncated or corrupt image ({type(e).__name__}: {e})", where) from None
    try:
        if im.mode in ("I;16", "I;16B", "I;16L", "I", "F"):
            arr = np.asarray(im, dtype=np.float32)
        else:
            arr = np.asarray(im.convert("L"), dtype=np.float32)
    except Exception as e:  # noqa: BLE001 - e.g. LAB or I;16S: no conversion to greyscale
        raise DataError(f"cannot make a greyscale image of its {im.mode} pixels ({type(e).__name__}: {e})",
                        where) from None
    if arr.ndim != 2 or min(arr.shape) < 8:
        raise DataError(f"unusable image shape {arr.shape}", where)
    if not np.isfinite(arr).all():
        raise DataError("pixel values are not finite (NaN or infinity)", where)
    return RawImage(arr, source=im.format or "image", steps=[f"decoded {im.format} ({im.mode})"])


def read_dicom_bytes(data: bytes, where: str) -> RawImage:
    """Decode a DICOM file; any failure of the header, the decoder or a LUT is a DataError naming it."""
    try:
        return _read_dicom(data, where)
    except DataError:
        raise
    except Exception as e:  # noqa: BLE001 - pydicom raises many types on odd headers (VRs, LUTs, values)
        raise as_data_error(e, where) from None


def _read_dicom(data: bytes, where: str) -> RawImage:
    import pydicom
    from pydicom.errors import InvalidDicomError
    from pydicom.pixels import apply_modality_lut, apply_voi_lut

    refuse_deflated(data, where)
    try:
        ds = pydicom.dcmread(io.BytesIO(data))
    except InvalidDicomError:
        try:  # files written without the 128-byte preamble
            ds = pydicom.dcmread(io.BytesIO(data), force=True)
        except Exception as e:  # noqa: BLE001 - pydicom raises many types on garbage
            raise DataError(f"not a readable DICOM file ({e})", where) from None
    except Exception as e:  # noqa: BLE001
        raise DataError(f"not a readable DICOM file ({type(e).__name__}: {e})", where) from None
    if "PixelData" not in ds:
        raise DataError("DICOM has no pixel data", where)
    try:   # sizes checked from the header first; compressed data decoded in a time-limited child
        arr = first_frame(ds, data, where)
    except DataError:
        raise
    except Exception as e:  # noqa: BLE001 - decoder errors vary with the transfer syntax
        raise DataError(f"cannot decode DICOM pixel data ({type(e).__name__}: {e})", where) from None
    steps = [f"decoded DICOM ({ds.file_meta.get('TransferSyntaxUID', 'implicit')})"]
    if int(ds.get("NumberOfFrames", 1) or 1) > 1:
        steps.append("first frame of a multi-frame image")
    if arr.ndim != 2:
        raise DataError(f"expected a single-frame greyscale DICOM, got pixel array {arr.shape}", where)
    arr = np.asarray(apply_modality_lut(arr, ds), dtype=np.float32)
    steps.append("modality LUT")
    if not np.isfinite(arr).all() or float(arr.max()) == float(arr.min()):
        # e.g. RescaleSlope 0, NaN or inf: a blank or non-finite image, not a radiograph
        raise DataError(f"pixel values are {'not finite' if not np.isfinite(arr).all() else 'all equal'} after the "
                        f"modality LUT (RescaleSlope {ds.get('RescaleSlope', 1)!s}, "
                        f"RescaleIntercept {ds.get('RescaleIntercept', 0)!s})", where)
    if "WindowCenter" in ds or "VOILUTSequence" in ds:
        arr = np.asarray(apply_voi_lut(arr, ds, prefer_lut=True), dtype=np.float32)
        if not np.isfinite(arr).all():
            raise DataError("pixel values are not finite after the VOI LUT / window", where)
        steps.append("VOI LUT")
    photometric = str(ds.get("PhotometricInterpretation", "MONOCHROME2"))
    if photometric == "MONOCHROME1":  # bright = low values: invert so bone is bright
        arr = arr.max() + arr.min() - arr
        steps.append("MONOCHROME1 inverted")
    spacing, tag = _pixel_spacing(ds, where)
    header = {
        "PatientID": str(ds.get("PatientID", "")),
        "laterality": _laterality(ds),
        "Modality": str(ds.get("Modality", "")),
        "photometric": photometric,
        "StudyDescription": str(ds.get("StudyDescription", "")),
        "SeriesDescription": str(ds.get("SeriesDescription", "")),
        "where": where,
    }
    return RawImage(arr, source="dicom", pixel_spacing_mm=spacing, spacing_tag=tag, header=header, steps=steps)


def _pixel_spacing(ds, where: str) -> tuple[float | None, str | None]:
    """(mm per pixel, tag) from PixelSpacing, else ImagerPixelSpacing; (None, None) when neither is usable.

    A tag that is present must hold two numbers (row, column); one value or text is a DataError.
    Non-positive values skip the tag, as if absent."""
    for t in ("PixelSpacing", "ImagerPixelSpacing"):
        v = ds.get(t)
        if v is None or v == "":
            continue
        values = list(v) if isinstance(v, Sequence) and not isinstance(v, (str, bytes)) else [v]
        try:
            nums = [float(x) for x in values]
        except (TypeError, ValueError):
            raise DataError(f"{t} {v!s} is not numeric (expected row and column spacing in mm)", where) from None
        if len(nums) != 2:
            raise DataError(f"{t} has {len(nums)} value(s) ({v!s}); expected row and column spacing in mm", where)
        if not all(np.isfinite(nums)) or min(nums) <= 0:
            continue
        spacing = nums[0] if abs(nums[0] - nums[1]) <= 1e-6 else float(np.sqrt(nums[0] * nums[1]))
        return spacing, t
    return None, None


def _laterality(ds) -> str:
    """'R', 'L' or '' from ImageLaterality, Laterality, or a description."""
    for t in ("ImageLaterality", "Laterality"):
        v = str(ds.get(t, "")).strip().upper()
        if v in ("R", "L"):
            return v
    text = f" {ds.get('SeriesDescription', '')} {ds.get('StudyDescription', '')} ".upper()
    if "LEFT" in text or " LT " in text or " L " in text:
        return "L"
    if "RIGHT" in text or " RT " in text or " R " in text:
        return "R"
    return ""


# ----------------------------------------------------------------- preprocessing
MAX_RESAMPLED_PIXELS = 16_000_000   # 4000 × 4000 at the target spacing: a 40 cm film at 0.1 mm


def resample(img: np.ndarray, spacing_mm: float, target_mm: float, where: str = "image") -> np.ndarray:
    """Resize so one pixel is ``target_mm`` (area-averaging when shrinking).

    The output size is checked before anything is allocated: a header whose pixel spacing is
    absurd (a 131 KB file declaring 100 mm pixels would ask for gigabytes) is a DataError."""
    if not (np.isfinite(spacing_mm) and spacing_mm > 0 and np.isfinite(target_mm) and target_mm > 0):
        raise DataError(f"pixel spacing {spacing_mm!r} mm → {target_mm!r} mm is not a positive number", where)
    factor = spacing_mm / target_mm
    h, w = img.shape
    nh, nw = max(1, int(round(h * factor))), max(1, int(round(w * factor)))
    if nh * nw > MAX_RESAMPLED_PIXELS:
        raise DataError(f"resampling {w}×{h} pixels of {spacing_mm:g} mm to {target_mm:g} mm would make "
                        f"{nw}×{nh}, over the {MAX_RESAMPLED_PIXELS:,}-pixel limit (implausible pixel spacing?)", where)
    if (nh, nw) == (h, w):
        return img
    resample_filter = Image.Resampling.BOX if factor < 1 else Image.Resampling.BILINEAR
    return np.asarray(Image.fromarray(img.astype(np.float32), mode="F").resize((nw, nh), resample_filter),
                      dtype=np.float32)


def center_crop_pad(img: np.ndarray, size: int) -> np.ndarray:
    """Central size×size region, padded with the image's minimum where it is smaller."""
    h, w = img.shape
    out = np.full((size, size), float(img.min()), dtype=np.float32)
    y0, x0 = max(0, (h - size) // 2), max(0, (w - size) // 2)
    crop = img[y0:y0 + size, x0:x0 + size]
    oy, ox = (size - crop.shape[0]) // 2, (size - crop.shape[1]) // 2
    out[oy:oy + crop.shape[0], ox:ox + crop.shape[1]] = crop
    return out


def resize_square(img: np.ndarray, size: int) -> np.ndarray:
    """Resize any image to size×size (for sources without a physical spacing)."""
    return resize_to(img, (size, size))


def resize_to(img: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Resize any image [H, W] to ``shape`` (h, w), area-averaging when shrinking."""
    if img.shape == tuple(shape):
        return img.astype(np.float32)
    filt = Image.Resampling.BOX if min(img.shape) > min(shape) else Image.Resampling.BILINEAR
    return np.asarray(Image.fromarray(img.astype(np.float32), mode="F").resize((shape[1], shape[0]), filt),
                      dtype=np.float32)


def percentile_normalise(img: np.ndarray, lo: float = 1.0, hi: float = 99.0) -> np.ndarray:
    """Map the [lo, hi] percentiles to [0, 1] (clipped)."""
    a, b = np.percentile(img, [lo, hi])
    if b <= a:
        return np.zeros_like(img, dtype=np.float32)
    return np.clip((img - a) / (b - a), 0, 1).astype(np.float32)


def to_uint8(img01: np.ndarray) -> np.ndarray:
    return np.round(np.clip(img01, 0, 1) * 255).astype(np.uint8)


def preprocess_dicom(raw: RawImage, size: int, spacing_mm: float = 0.4) -> tuple[np.ndarray, list[str]]:
    """DICOM pipeline after decoding: resample to spacing, central ROI crop, 1–99 % normalisation."""
    img, steps = raw.pixels, list(raw.steps)
    if raw.pixel_spacing_mm:
        img = resample(img, raw.pixel_spacing_mm, spacing_mm, raw.header.get("where", "DICOM"))
        steps.append(f"resampled {raw.pixel_spacing_mm:.4g} → {spacing_mm} mm from {raw.spacing_tag}")
    else:
        steps.append("no pixel spacing in header: not resampled")
    img = center_crop_pad(img, size)
    steps.append(f"central {size}×{size} ROI")
    return to_uint8(percentile_normalise(img)), steps + ["1–99 percentile normalisation"]


def preprocess_picture(raw: RawImage, size: int) -> np.ndarray:
    """PNG/JPEG pipeline: resize to size×size, rescale to 8 bits (keeps the source's windowing)."""
    img = resize_square(raw.pixels, size)
    top = 65535.0 if raw.pixels.max() > 255 else 255.0
    return to_uint8(img / top)


def preprocess_any(src: str | Path | bytes, size: int, name: str | None = None, side: str = "",
                   spacing_mm: float = 0.4) -> np.ndarray:
    """One uploaded or listed file -> uint8 [size, size], as the importers do it (left sides flipped)."""
    raw = read_image(src, name)
    img = preprocess_dicom(raw, size, spacing_mm)[0] if raw.source == "dicom" else preprocess_picture(raw, size)
    side = side or raw.header.get("laterality", "")
    return img[:, ::-1].copy() if side == "L" else img
