"""Mutations that turn a valid input into a hostile one: truncation, byte flips, header field edits, huge
declared sizes, odd dtypes, broken zips, odd names. Every function is seeded by the generator it is given."""

from __future__ import annotations

import io
import re
import struct
import zipfile
import zlib

import numpy as np

HUGE = [0, 1, 0x7FFF, 0xFFFF, 0x7FFFFFFF, 0xFFFFFFFF]


# ----------------------------------------------------------------- bytes
def truncate(rng, data: bytes) -> bytes:
    return data[: int(rng.integers(0, max(1, len(data))))]


def flip(rng, data: bytes) -> bytes:
    b = bytearray(data)
    for _ in range(int(rng.integers(1, 24))):
        if b:
            b[int(rng.integers(len(b)))] = int(rng.integers(256))
    return bytes(b)


def splice_int(rng, data: bytes) -> bytes:
    """Overwrite a 2- or 4-byte word with an extreme value (lengths, sizes, counts)."""
    if len(data) < 8:
        return data
    at = int(rng.integers(0, len(data) - 4))
    v = int(rng.choice(HUGE))
    word = struct.pack("<I" if rng.random() < 0.5 else ">I", v) if rng.random() < 0.7 else struct.pack("<H", v & 0xFFFF)
    return data[:at] + word + data[at + len(word):]


def insert_or_delete(rng, data: bytes) -> bytes:
    at = int(rng.integers(0, len(data) + 1))
    if rng.random() < 0.5:
        return data[:at] + rng.bytes(int(rng.integers(1, 64))) + data[at:]
    return data[:at] + data[at + int(rng.integers(1, 64)):]


BYTE_MUTATIONS = (truncate, flip, splice_int, insert_or_delete)


def mutate_bytes(rng, data: bytes, n: int | None = None) -> bytes:
    for _ in range(int(rng.integers(1, 3)) if n is None else n):
        data = BYTE_MUTATIONS[int(rng.integers(len(BYTE_MUTATIONS)))](rng, data)
    return data


# ----------------------------------------------------------------- PNG
def png_header(rng, data: bytes) -> bytes:
    """Rewrite IHDR (width, height, bit depth, colour type) with a valid CRC: a huge or odd picture."""
    if data[:8] != b"\x89PNG\r\n\x1a\n" or data[12:16] != b"IHDR":
        return mutate_bytes(rng, data)
    w, h, depth, ctype = struct.unpack(">IIBB", data[16:26])
    choice = int(rng.integers(4))
    if choice == 0:
        w, h = int(rng.choice([1, 65535, 100_000, 0x7FFFFFFF])), int(rng.choice([1, 65535, 100_000]))
    elif choice == 1:
        depth = int(rng.choice([1, 2, 4, 8, 16, 3, 32]))
    elif choice == 2:
        ctype = int(rng.choice([0, 2, 3, 4, 6, 1, 7]))
    else:
        w, h = w * 2, h // 2 or 1
    body = b"IHDR" + struct.pack(">IIBB", w, h, depth, ctype) + data[26:29]
    return data[:12] + body + struct.pack(">I", zlib.crc32(body)) + data[33:]


# ----------------------------------------------------------------- DICOM
DICOM_EDITS = {
    "Rows": [0, 1, 65535, 30000], "Columns": [0, 1, 65535, 30000], "BitsAllocated": [0, 1, 7, 12, 32, 64],
    "BitsStored": [0, 1, 17, 64], "HighBit": [0, 31, 99], "SamplesPerPixel": [0, 2, 3, 4],
    "NumberOfFrames": ["0", "1", "2", "1000000", "-1", "abc"], "PixelRepresentation": [1, 2],
    "PixelSpacing": [["0.2"], ["0", "0"], ["-1", "1"], ["1e9", "1e9"], ["1e-9", "1e-9"], ["nan", "nan"],
                     ["inf", "0.2"], ["0.2", "0.2", "0.2"], ["100", "100"]],
    "ImagerPixelSpacing": [["0.1"], ["0", "1"], ["1e5", "1e5"]],
    "RescaleSlope": ["0", "nan", "inf", "-1", "1e300", "1e-300"], "RescaleIntercept": ["nan", "1e308", "-1e308"],
    "WindowCenter": ["0", "nan", "1e308"], "WindowWidth": ["0", "-1", "nan", "1e-30", "1"],
    "PhotometricInterpretation": ["MONOCHROME1", "RGB", "PALETTE COLOR", "YBR_FULL", "", "XYZ"],
    "PlanarConfiguration": [0, 1, 7], "ImageLaterality": ["L", "R", "X", ""],
    "PatientID": ["", "../../x", "a\\b", "x" * 64], "VOILUTFunction": ["SIGMOID", "LINEAR_EXACT", "BOGUS"],
}
LUT_EDITS = ("modality", "voi")
TRANSFER_SYNTAXES = ["1.2.840.10008.1.2", "1.2.840.10008.1.2.1", "1.2.840.10008.1.2.2", "1.2.840.10008.1.2.5",
                     "1.2.840.10008.1.2.4.50", "1.2.840.10008.1.2.4.80", "1.2.840.10008.1.2.4.90",
                     "1.2.840.10008.1.2.4.201", "1.2.840.10008.1.2.1.99", "1.2.3.4"]


def dicom_header(rng, data: bytes) -> bytes:
    """Parse, set one or two header fields to an odd value (or add a broken LUT, or claim another transfer
    syntax), write back. Falls back to byte mutations when the file no longer parses."""
    import pydicom
    from pydicom.dataset import Dataset

    try:
        ds = pydicom.dcmread(io.BytesIO(data), force=True)
        for _ in range(int(rng.integers(1, 3))):
            r = rng.random()
            if r < 0.12:
                item = Dataset()
                n = int(rng.choice([0, 1, 16, 4096, 65535]))
                item.LUTDescriptor = [n, int(rng.choice([0, -5, 100])), int(rng.choice([8, 16, 0, 3]))]
                item.LUTData = rng.bytes(int(rng.choice([0, 2, 2 * n])) % 140_000)
                if rng.random() < 0.5:
                    item.ModalityLUTType = "US"
                setattr(ds, "ModalityLUTSequence" if rng.random() < 0.5 else "VOILUTSequence", [item])
            elif r < 0.2 and hasattr(ds, "file_meta"):
                ds.file_meta.TransferSyntaxUID = str(rng.choice(TRANSFER_SYNTAXES))
            else:
                key = str(rng.choice(list(DICOM_EDITS)))
                values = DICOM_EDITS[key]
                value = values[int(rng.integers(len(values)))]
                try:
                    setattr(ds, key, value)
                except Exception:  # noqa: BLE001 - a value the element's VR refuses: write it as text
                    from pydicom.datadict import tag_for_keyword

                    ds.add_new(tag_for_keyword(key), "LO", value if isinstance(value, (str, list)) else str(value))
        buf = io.BytesIO()
        ds.save_as(buf, enforce_file_format=False)
        out = buf.getvalue()
    except Exception:  # noqa: BLE001 - the generator must never fail: break it at the byte level instead
        return mutate_bytes(rng, data)
    if rng.random() < 0.15:   # an unknown or mismatched VR (explicit VR: two letters after the tag)
        m = [m.start() for m in re.finditer(rb"(?<=\x28\x00..)(US|DS|CS|IS|LO|OB|OW|SQ)", out, re.S)]
        if m:
            at = m[int(rng.integers(len(m)))]
            out = out[:at] + bytes(rng.choice([b"ZZ", b"UN", b"SQ", b"OB", b"\x00\x00"])) + out[at + 2:]
    return out


# ----------------------------------------------------------------- npy / npz
ODD_DTYPES = ["|O", "<c16", "|V8", "[('a', '<i4'), ('b', '<f8')]", ">u2", "<f2", "|b1", "<M8[s]", "<U4", "|S3",
              "<f8", "<i8", ">f4"]


def npy_header(rng, data: bytes) -> bytes:
    """Edit a .npy header's shape, dtype or order in place (same length, padded), or give a huge shape."""
    m = re.search(rb"\{'descr': (.*?), 'fortran_order': (True|False), 'shape': \((.*?)\), \}", data[:512])
    if not m:
        return mutate_bytes(rng, data)
    descr, order, shape = m.group(1), m.group(2), m.group(3)
    r = rng.random()
    if r < 0.4:
        dims = [int(d) for d in shape.split(b",") if d.strip()] or [1]
        i = int(rng.integers(len(dims)))
        dims[i] = int(rng.choice([0, 2**31, 2**40, 10**6, dims[i] + 1, -1]))
        shape = ", ".join(str(d) for d in dims).encode() + (b"," if len(dims) == 1 else b"")
    elif r < 0.8:
        descr = repr(str(rng.choice(ODD_DTYPES))).encode() if rng.random() < 0.7 else b"'<i4'"
        if descr.startswith(b"\"["):
            descr = descr[1:-1]
    else:
        order = b"True" if order == b"False" else b"False"
    head = b"{'descr': " + descr + b", 'fortran_order': " + order + b", 'shape': (" + shape + b"), }"
    old = data[m.start():m.end()]
    pad = len(old) - len(head)
    if pad < 0:
        return data[:m.start()] + head + data[m.end():]   # longer: the stated header length is now wrong
    return data[:m.start()] + head + b" " * pad + data[m.end():]


def npz_members(rng, data: bytes) -> bytes:
    """Rewrite an npz member by member: odd headers, missing or extra members, non-.npy members."""
    try:
        src = zipfile.ZipFile(io.BytesIO(data))
        members = {i.filename: src.read(i) for i in src.infolist()}
    except Exception:  # noqa: BLE001
        return mutate_bytes(rng, data)
    names = list(members)
    r = rng.random()
    if r < 0.45 and names:
        k = names[int(rng.integers(len(names)))]
        members[k] = npy_header(rng, members[k]) if rng.random() < 0.8 else mutate_bytes(rng, members[k])
    elif r < 0.6 and names:
        members.pop(names[int(rng.integers(len(names)))])
    elif r < 0.75 and names:
        k = names[int(rng.integers(len(names)))]
        members[k[:-4] if k.endswith(".npy") else k + ".npy"] = members.pop(k)   # drop or add the suffix
    elif r < 0.85:
        members["notes.txt"] = b"hello"
    else:
        buf = io.BytesIO()
        arr = {0: np.array([{"a": 1}], dtype=object), 1: np.zeros(3, dtype=[("a", "<i4")]),
               2: np.zeros((2, 4, 4), np.complex64), 3: np.zeros((2, 4, 4), ">f8"),
               4: np.zeros((2, 4, 4), np.float16), 5: np.full((2, 4, 4), np.nan)}[int(rng.integers(6))]
        # Writing (never loading) a hostile member: only the object array needs pickle to be written,
        # and the importer must refuse it from its .npy header without unpickling anything.
        np.save(buf, arr, allow_pickle=arr.dtype == object)
        members[str(rng.choice(["train_images.npy", "train_labels.npy", "test_images.npy"]))] = buf.getvalue()
    return zip_bytes(members, rng)


# ----------------------------------------------------------------- zip
def zip_bytes(members: dict[str, bytes], rng=None) -> bytes:
    buf = io.BytesIO()
    comp = zipfile.ZIP_DEFLATED if rng is not None and rng.random() < 0.5 else zipfile.ZIP_STORED
    with zipfile.ZipFile(buf, "w", compression=comp) as z:
        for name, data in members.items():
            z.writestr(name, data)
    return buf.getvalue()


def zip_structure(rng, data: bytes) -> bytes:
    """Break a zip where readers trust it: encryption flag, compression method (deflate64, AES, bzip2…),
    sizes, symlink attributes, name lengths — in the local headers and the central directory alike."""
    b = bytearray(data)
    sites = [m.start() for m in re.finditer(rb"PK\x01\x02", b)]
    locals_ = [m.start() for m in re.finditer(rb"PK\x03\x04", b)]
    if not sites:
        return mutate_bytes(rng, data)
    i = sites[int(rng.integers(len(sites)))]
    r = rng.random()
    if r < 0.2:
        b[i + 8] |= 1                                                  # general purpose flag: encrypted
        for j in locals_:
            b[j + 6] |= 1
    elif r < 0.45:
        method = int(rng.choice([9, 12, 14, 99, 1, 98]))               # deflate64, bzip2, lzma, AES, shrink, ppmd
        b[i + 10:i + 12] = struct.pack("<H", method)
        for j in locals_:
            b[j + 8:j + 10] = struct.pack("<H", method)
    elif r < 0.65:
        size = int(rng.choice(HUGE))
        b[i + 24:i + 28] = struct.pack("<I", size)                     # uncompressed size
        for j in locals_:
            b[j + 22:j + 26] = struct.pack("<I", size)
    elif r < 0.8:
        b[i + 38:i + 42] = struct.pack("<I", 0o120777 << 16)           # external attributes: a symlink
    else:
        b[i + 28:i + 30] = struct.pack("<H", int(rng.choice([0, 0xFFFF, 300])))   # file name length
    return bytes(b)


# ----------------------------------------------------------------- names
def odd_name(rng, suffix: str) -> str:
    """A file name as a browser or an archive might send it: traversal, NUL, control, long, unicode, hidden."""
    return str(rng.choice([
        f"../../escape{suffix}", f"/abs/x{suffix}", f"a\x00b{suffix}", f"a\x01b{suffix}", "x" * 300 + suffix,
        f"knee é ü 日本{suffix}", f".hidden{suffix}", f"C:\\\\dos\\\\x{suffix}", f"sub/dir/x{suffix}", suffix,
        f"x{suffix}.exe", f"{'L'}{suffix}", f" spaced {suffix}", f"x{suffix.upper()}", "noext",
    ]))
