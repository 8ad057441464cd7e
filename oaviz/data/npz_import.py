"""Import a MedMNIST-style ``.npz`` (``{split}_images`` / ``{split}_labels``) into a cohort, without pickle.

Every array's ``.npy`` header is read first: what the arrays would decompress to is checked (and drawn
from the upload's expansion budget) before any is loaded, and object or record dtypes are refused; then
the images are converted one at a time into the importers' streaming ``Collector``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from oaviz.data.budget import ExpansionBudget
from oaviz.data.importers import Collector, ImportReport, check_sizes
from oaviz.data.readers import MAX_PIXELS, resize_to, to_uint8
from oaviz.errors import DataError, as_data_error

MAX_NPZ_BYTES = 1 << 30   # what an npz's arrays may decompress to, read from their headers before loading


def npz_headers(src: Path) -> dict[str, tuple[tuple[int, ...], np.dtype]]:
    """{array name: (shape, dtype)} of an .npz, read from each member's .npy header without
    decompressing the data; DataError for a file that is not a zip of .npy arrays."""
    import zipfile

    out = {}
    try:
        with zipfile.ZipFile(src) as z:
            for info in z.infolist():
                if not info.filename.endswith(".npy"):
                    continue
                with z.open(info) as f:
                    version = np.lib.format.read_magic(f)
                    read = {(1, 0): np.lib.format.read_array_header_1_0,
                            (2, 0): np.lib.format.read_array_header_2_0}.get(version)
                    if read is None:
                        raise ValueError(f"'{info.filename}' is .npy format {version}, not 1.0 or 2.0")
                    shape, _, dtype = read(f)
                out[info.filename[:-4]] = (tuple(int(d) for d in shape), np.dtype(dtype))
    except FileNotFoundError:
        raise DataError("file not found", src) from None
    except Exception as e:  # noqa: BLE001  (BadZipFile, zlib.error, tokenize.TokenError from a mangled header, …)
        raise DataError(f"not a readable .npz ({type(e).__name__}: {e})", src) from None
    return out


def _check_npz_sizes(src: Path, headers: dict) -> int:
    """Refuse an npz whose arrays are not plain numbers or would decompress past MAX_NPZ_BYTES; the bytes."""
    total = 0
    for name, (shape, dtype) in headers.items():
        if dtype.kind not in "biuf" or dtype.fields is not None:
            raise DataError(f"array '{name}' has dtype {dtype}; only plain numbers are read (no pickled objects, "
                            f"no records)", src)
        total += int(np.prod(shape, dtype=np.float64)) * dtype.itemsize
    if total > MAX_NPZ_BYTES:
        raise DataError(f"the arrays would decompress to {total / 2**30:.1f} GiB, over the "
                        f"{MAX_NPZ_BYTES / 2**30:.0f} GiB limit", src)
    for name, (shape, _) in headers.items():
        if name.endswith("_images") and len(shape) >= 3 and shape[1] * shape[2] > MAX_PIXELS:
            raise DataError(f"'{name}' images are {shape[2]}×{shape[1]} pixels, over the {MAX_PIXELS:,} limit", src)
    return total


def _npz_split(npz, headers: dict, s: str, src: Path) -> tuple[np.ndarray, np.ndarray]:
    """(images N×H×W or N×H×W×C, labels N) of split ``s``, checked; DataError naming the file."""
    for name in (f"{s}_images", f"{s}_labels"):
        if name not in headers:
            raise DataError(f"'{name}' is not a .npy array in the archive", src)
    try:  # arrays load lazily (object arrays were refused from the headers above)
        x, y = npz[f"{s}_images"], npz[f"{s}_labels"]
    except Exception as e:  # noqa: BLE001  (truncated member, bad CRC, unsupported compression, …)
        raise as_data_error(e, f"{src}: '{s}' arrays") from None
    if not (x.ndim == 3 or (x.ndim == 4 and x.shape[-1] in (1, 3))):
        raise DataError(f"'{s}_images' has shape {x.shape}; expected N×H×W or N×H×W×C", src)
    if len(x) and min(x.shape[1:3]) < 1:
        raise DataError(f"'{s}_images' has shape {x.shape}: images without pixels", src)
    y = np.asarray(y)
    if y.ndim == 2 and y.shape[1] == 1:
        y = y[:, 0]
    if y.ndim != 1 or len(y) != len(x):
        raise DataError(f"'{s}_labels' has shape {y.shape}; expected one label per image ({len(x)})", src)
    if not np.issubdtype(y.dtype, np.integer):
        raise DataError(f"'{s}_labels' must be integers, got {y.dtype}", src)
    return x, y


def _grey(im: np.ndarray) -> np.ndarray:
    """One image H×W or H×W×C (C = 1 or 3) as float32 H×W."""
    if im.ndim == 2:
        return im.astype(np.float32)
    return im[..., 0].astype(np.float32) if im.shape[-1] == 1 else im[..., :3].astype(np.float32) @ np.float32(
        [0.299, 0.587, 0.114])


def import_npz(src, out, *, labels_are: str = "other", size: int | None = None, overwrite: bool = False,
               class_names: list[str] | None = None, seed: int = 0,
               budget: ExpansionBudget | None = None) -> ImportReport:
    """MedMNIST-style ``{split}_images`` / ``{split}_labels``; any number of classes.

    ``labels_are="kl"`` fills kl/oa (labels must be 0–4); otherwise only ``label``. What the arrays
    decompress to is drawn from ``budget`` (one per upload; a fresh one when not given).
    """
    src = Path(src)
    if labels_are not in ("kl", "other"):
        raise DataError(f"labels_are must be 'kl' or 'other', got {labels_are!r}")
    check_sizes(size)
    headers = npz_headers(src)
    total = _check_npz_sizes(src, headers)   # from the headers, before any array is decompressed
    (budget or ExpansionBudget()).spend(total, src, "the .npz")
    try:
        npz = np.load(src, allow_pickle=False)
    except FileNotFoundError:
        raise DataError("file not found", src) from None
    except Exception as e:  # noqa: BLE001  (BadZipFile, OSError, ValueError, EOFError …)
        raise DataError(f"not a readable .npz ({type(e).__name__}: {e})", src) from None
    warnings: list[str] = []
    with npz:
        splits = [s for s in ("train", "val", "test") if f"{s}_images" in npz.files]
        if not splits:
            raise DataError(f"no '{{split}}_images' arrays (found {npz.files})", src)
        col = Collector("stop")
        shape = (size, size) if size else None
        for s in splits:
            x, y = _npz_split(npz, headers, s, src)
            if len(x) == 0:
                warnings.append(f"'{s}_images' is empty: no {s} split")
                continue
            if labels_are == "kl" and ((y < 0) | (y > 4)).any():
                bad = int(y[(y < 0) | (y > 4)][0])
                raise DataError(f"KL grade {bad} outside 0–4 in '{s}_labels'", src)
            if shape is None:
                shape = tuple(x.shape[1:3])
            elif x.shape[1:3] != shape and not size:
                warnings.append(f"'{s}_images' are {x.shape[2]}×{x.shape[1]}, resized to the first split's "
                                f"{shape[1]}×{shape[0]}")
            top = 255.0 if float(x.max()) > 1.0 else 1.0
            for i in range(len(x)):   # one image at a time: no float32 copy of the whole split
                im = _grey(x[i]) / top
                if im.shape != shape:
                    im = resize_to(im, shape)
                lab = int(y[i])
                col.add(to_uint8(im), {"image_id": f"{s}-{i}", "subject_id": f"{s}-{i}", "visit_month": 0,
                                       "side": "", "label": lab, "kl": lab if labels_are == "kl" else None,
                                       "split": s})
    info = {"source": "npz", "source_path": str(src.resolve()), "labels": labels_are,
            "label_names": class_names, "preprocessing": ([f"resized to {size}×{size}"] if size else []),
            "pixel_spacing_mm": None}
    report = col.write(out, info, overwrite, split_seed=seed)
    report.warnings += warnings
    return report
