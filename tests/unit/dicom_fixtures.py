"""DICOM files written by the tests themselves with pydicom (no downloads)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pydicom
from pydicom.dataset import FileDataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, RLELossless, SecondaryCaptureImageStorage, generate_uid


def phantom(h: int = 300, w: int = 260, bone_at: str = "right") -> np.ndarray:
    """uint16 image: dark background, a bright 'bone' block on one side (asymmetric on purpose)."""
    img = np.full((h, w), 200, np.uint16)
    yy, xx = np.mgrid[:h, :w]
    img += (20 * np.sin(xx / 7.0) + 20).astype(np.uint16)  # texture so percentiles differ
    if bone_at == "right":
        img[h // 4: 3 * h // 4, w // 2: w // 2 + w // 5] = 3000
    else:
        img[h // 4: 3 * h // 4, w // 2 - w // 5: w // 2] = 3000
    return img


def write_dicom(path: Path, pixels: np.ndarray, *, photometric: str = "MONOCHROME2",
                spacing: tuple[str, float] | None = ("PixelSpacing", 0.2), patient: str = "9000001",
                laterality: str = "R", compress: bool = False, rescale: tuple[float, float] | None = None,
                with_pixels: bool = True, window: tuple[float, float] | None = None) -> Path:
    """Write a single-frame greyscale DICOM; MONOCHROME1 stores the inverted values."""
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = SecondaryCaptureImageStorage
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = FileDataset(str(path), {}, file_meta=meta, preamble=b"\0" * 128)
    ds.SOPClassUID = SecondaryCaptureImageStorage
    ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
    ds.PatientID = patient
    ds.Modality = "CR"
    ds.ImageLaterality = laterality
    ds.StudyDescription = "KNEE AP"
    if with_pixels:
        stored = pixels.max() + pixels.min() - pixels if photometric == "MONOCHROME1" else pixels
        ds.Rows, ds.Columns = stored.shape
        ds.SamplesPerPixel = 1
        ds.PhotometricInterpretation = photometric
        ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 0
        if rescale:
            ds.RescaleSlope, ds.RescaleIntercept = rescale
        if window:
            ds.WindowCenter, ds.WindowWidth = window
        if spacing:
            setattr(ds, spacing[0], [spacing[1], spacing[1]])
        ds.PixelData = stored.astype(np.uint16).tobytes()
        if compress:
            ds.compress(RLELossless)
    path.parent.mkdir(parents=True, exist_ok=True)
    ds.save_as(path, enforce_file_format=True)
    return path


def bundled_dicoms() -> list[Path]:
    """pydicom's own test files that ship inside the package (never the downloadable ones)."""
    base = Path(pydicom.__file__).parent / "data" / "test_files"
    names = ["CT_small.dcm", "MR_small.dcm", "rtplan.dcm"]
    return [base / n for n in names if (base / n).is_file()]


def jpeg2000_zero_length_box(path: Path) -> Path:
    """A ~600-byte JPEG 2000 DICOM whose codestream opens with the JP2 signature box followed by a box of
    length 0: pydicom's ``get_j2k_parameters`` steps through boxes by their length and never moves on."""
    from pydicom.encaps import encapsulate
    from pydicom.uid import JPEG2000Lossless

    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = SecondaryCaptureImageStorage
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = JPEG2000Lossless
    ds = FileDataset(str(path), {}, file_meta=meta, preamble=b"\0" * 128)
    ds.SOPClassUID, ds.SOPInstanceUID = SecondaryCaptureImageStorage, meta.MediaStorageSOPInstanceUID
    ds.PatientID, ds.Modality = "9000001", "CR"
    ds.Rows = ds.Columns = 64
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 12, 11, 0
    ds.PixelData = encapsulate([b"\x00\x00\x00\x0cjP  \r\n\x87\n" + b"\x00\x00\x00\x00ftyp" + b"\0" * 16])
    ds["PixelData"].VR = "OB"
    path.parent.mkdir(parents=True, exist_ok=True)
    ds.save_as(path, enforce_file_format=True)
    return path
