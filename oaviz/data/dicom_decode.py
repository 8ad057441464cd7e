"""DICOM pixel data decoded under limits, so an upload can neither hang the server nor exhaust its memory.

- Sizes come from the header first: Rows × Columns × frames × samples × bytes per sample must be
  plausible before anything is decoded (only frame 0 is ever decoded).
- Uncompressed pixel data is sliced in-process (no decoder runs).
- Compressed transfer syntaxes (JPEG, JPEG-LS, JPEG 2000, RLE, …) are decoded in a child process with a
  time limit and a memory cap: a decoder or a header parser that loops (pydicom's
  ``get_j2k_parameters`` on a zero-length JP2 box loops forever) costs at most ``DECODE_TIMEOUT_S``.
  The known-bad zero-length box is refused outright, before a child is even started.
- A deflated dataset (the whole file inflated by pydicom without a bound) is refused before parsing.

The child runs ``_child`` of this very module (the same oaviz as the parent): it reads the DICOM bytes on stdin and writes frame 0 as a
``.npy`` on stdout (read back with ``allow_pickle=False``), or one line "Type: message" on stderr.
"""

from __future__ import annotations

import io
import os
import subprocess
import sys
from pathlib import Path

import numpy as np

from oaviz.errors import DataError

MAX_PIXELS = 60_000_000            # per frame: a radiograph is a few thousand pixels a side
MAX_FRAME_BYTES = 256 << 20        # the one frame decoded: Rows × Columns × samples × bytes per sample
MAX_DECLARED_BYTES = 4 << 30       # Rows × Columns × frames × samples × bytes the header declares in all
DECODE_TIMEOUT_S = 8.0             # a real radiograph decodes in well under a second
CHILD_MEMORY_BYTES = 2 << 30       # what the decoding child may allocate on top of its start-up size
DEFLATED_UID = b"1.2.840.10008.1.2.1.99"
_JP2_SIGNATURE = b"\x00\x00\x00\x0cjP  \r\n\x87\n"


def refuse_deflated(data: bytes, where: str) -> None:
    """A deflated dataset would be inflated whole, without a bound, by ``dcmread``: refuse it first."""
    if DEFLATED_UID in data[:4096]:   # the file meta group (always first and uncompressed) names it
        raise DataError("deflated transfer syntax (1.2.840.10008.1.2.1.99) is not accepted: the dataset would be "
                        "inflated without a bound; save it uncompressed or with a compressed pixel syntax", where)


def _header_int(ds, keyword: str, default: int, where: str) -> int:
    v = ds.get(keyword, default)
    try:
        v = default if v is None or v == "" else int(v)
    except (TypeError, ValueError, OverflowError):
        raise DataError(f"header field {keyword} is {v!r}, not a whole number", where) from None
    return v


def check_declared_size(ds, where: str) -> tuple[int, int, int]:
    """(rows, columns, frames) from the header, refused when absurd, before any pixel is decoded."""
    rows, cols = _header_int(ds, "Rows", 0, where), _header_int(ds, "Columns", 0, where)
    frames = _header_int(ds, "NumberOfFrames", 1, where) or 1
    samples = _header_int(ds, "SamplesPerPixel", 1, where)
    bits = _header_int(ds, "BitsAllocated", 16, where)
    if rows < 1 or cols < 1 or frames < 1:
        raise DataError(f"header declares {cols}×{rows} pixels × {frames} frame(s): no image", where)
    if samples not in (1, 3) or bits not in (1, 8, 16, 32, 64):
        raise DataError(f"header declares {samples} sample(s) per pixel of {bits} bits: not an image oaviz reads",
                        where)
    if rows * cols > MAX_PIXELS:
        raise DataError(f"DICOM is {cols}×{rows} pixels, over the {MAX_PIXELS:,} limit", where)
    frame = rows * cols * samples * max(1, bits // 8)
    if frame > MAX_FRAME_BYTES:
        raise DataError(f"header declares frames of {cols}×{rows}×{samples} at {bits} bits = {frame / 2**20:.0f} MiB, "
                        f"over the {MAX_FRAME_BYTES >> 20} MiB limit", where)
    declared = frame * frames
    if declared > MAX_DECLARED_BYTES:
        raise DataError(f"header declares {frames} frame(s) of {cols}×{rows}×{samples} at {bits} bits = "
                        f"{declared / 2**30:.1f} GiB, over the {MAX_DECLARED_BYTES / 2**30:.0f} GiB limit", where)
    return rows, cols, frames


def _zero_length_jp2_box(frame: bytes) -> int | None:
    """Offset of a zero-length JP2 box met before the codestream box (where pydicom would loop), else None."""
    if not frame.startswith(_JP2_SIGNATURE):
        return None
    offset = 12
    while offset + 8 <= len(frame):
        length = int.from_bytes(frame[offset:offset + 4], "big")
        if frame[offset + 4:offset + 8] == b"jp2c":
            return None
        if length == 0:
            return offset
        offset += length
    return None


def first_frame(ds, data: bytes, where: str) -> np.ndarray:
    """Frame 0 of ``ds`` (parsed from ``data``) as decoded by pydicom: [H, W] or [H, W, samples]."""
    from pydicom.pixels import pixel_array
    from pydicom.uid import JPEG2000TransferSyntaxes

    _, _, frames = check_declared_size(ds, where)
    syntax = ds.file_meta.get("TransferSyntaxUID") if hasattr(ds, "file_meta") else None
    if syntax is None or not syntax.is_compressed:
        return pixel_array(ds, index=0)
    if syntax in JPEG2000TransferSyntaxes:
        from pydicom.encaps import get_frame

        try:
            frame = get_frame(ds.PixelData, 0, number_of_frames=frames)
        except Exception:  # noqa: BLE001 - a broken fragment table is the child's to report
            frame = b""
        bad = _zero_length_jp2_box(bytes(frame[:1 << 20]))
        if bad is not None:
            raise DataError(f"JPEG 2000 data has a zero-length box at byte {bad} (a known decoder hang): refused",
                            where)
    return decode_in_child(data, where)


def decode_in_child(data: bytes, where: str, timeout_s: float | None = None) -> np.ndarray:
    """Decode frame 0 of a DICOM file in a child process, killed after ``timeout_s`` seconds."""
    timeout_s = DECODE_TIMEOUT_S if timeout_s is None else timeout_s
    home = str(Path(__file__).resolve().parents[2])   # the folder holding this oaviz package
    env = {**os.environ, "OMP_NUM_THREADS": "1", "OAVIZ_DECODE_MEMORY": str(CHILD_MEMORY_BYTES),
           "PYTHONPATH": os.pathsep.join([home, *filter(None, [os.environ.get("PYTHONPATH")])])}
    code = "import sys; from oaviz.data.dicom_decode import _child; sys.exit(_child())"
    try:
        done = subprocess.run([sys.executable, "-c", code], input=data, capture_output=True, timeout=timeout_s,
                              env=env)
    except subprocess.TimeoutExpired:
        raise DataError(f"decoding the compressed pixel data took over {timeout_s:g} s: stopped (a malformed "
                        "codestream?)", where) from None
    if done.returncode != 0:
        lines = done.stderr.decode("utf-8", "replace").strip().splitlines()
        why = lines[-1][:300] if lines else f"decoder exited with status {done.returncode}"
        raise DataError(f"cannot decode DICOM pixel data ({why})", where)
    try:
        return np.load(io.BytesIO(done.stdout), allow_pickle=False)
    except Exception as e:  # noqa: BLE001
        raise DataError(f"cannot decode DICOM pixel data (no array from the decoder: {e})", where) from None


def _child() -> int:
    """The decoding child: DICOM bytes on stdin → frame 0 as .npy on stdout."""
    import resource

    data = sys.stdin.buffer.read()
    import pydicom
    from pydicom.pixels import pixel_array

    with open("/proc/self/statm") as f:   # virtual size now, in pages
        start = int(f.read().split()[0]) * os.sysconf("SC_PAGE_SIZE")
    cap = start + int(os.environ.get("OAVIZ_DECODE_MEMORY", CHILD_MEMORY_BYTES))
    _, hard = resource.getrlimit(resource.RLIMIT_AS)   # a parent's cap, inherited, can only be lowered
    if hard != resource.RLIM_INFINITY:
        cap = min(cap, hard)
    resource.setrlimit(resource.RLIMIT_AS, (cap, hard))
    try:
        arr = pixel_array(pydicom.dcmread(io.BytesIO(data), force=True), index=0)
        np.save(sys.stdout.buffer, np.ascontiguousarray(arr), allow_pickle=False)
    except MemoryError:
        print(f"MemoryError: decoding needs more than {CHILD_MEMORY_BYTES >> 20} MiB", file=sys.stderr)
        return 3
    except Exception as e:  # noqa: BLE001 - reported to the parent as one line
        print(f"{type(e).__name__}: {str(e).strip()[:300]}", file=sys.stderr)
        return 2
    return 0
