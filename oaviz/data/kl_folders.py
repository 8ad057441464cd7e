"""Import the public knee KL dataset's layout: ROOT/{train,val,test,auto_test}/{0..4}/*.png|jpg.

The file stem is the OAI subject id and the side (``9003175L``): both knees of a
person share ``subject_id`` and each row records its ``side``. Left knees are
mirrored to the right orientation (medial at image right), as every other
importer and the synthetic cohort store them. The dataset's own split is kept
(``auto_test`` and ``test`` both become test), except for a subject whose images
sit in two different splits: a cohort's splits are by subject (every held-out
figure relies on it), so all of that subject's images go to the later of its
splits (train < val < test: a test image never moves into training), and the
import report and the cohort card say which subjects moved.
Stems that are not OAI-style keep one subject per image (``split/stem``).
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from oaviz.data.importers import Collector, ImportReport, check_sizes
from oaviz.data.readers import IMAGE_SUFFIXES, preprocess_picture, read_image
from oaviz.data.real_knees import stem_subject_side
from oaviz.errors import DataError, as_data_error

SPLIT_MAP = {"train": "train", "val": "val", "test": "test", "auto_test": "test"}
GRADES = {"0", "1", "2", "3", "4"}


def _listing(root: Path, col: Collector) -> list[tuple[Path, str, int]]:
    """(file, source split, grade) of every image under the layout; bad grade folders go to ``col``."""
    files = []
    for split_dir in sorted(d for d in root.iterdir() if d.is_dir() and d.name in SPLIT_MAP):
        for grade_dir in sorted(d for d in split_dir.iterdir() if d.is_dir()):
            if grade_dir.name not in GRADES:
                col.fail(DataError("grade folder must be named 0–4", grade_dir))
                continue
            files += [(f, split_dir.name, int(grade_dir.name)) for f in sorted(grade_dir.iterdir())
                      if f.suffix.lower() in IMAGE_SUFFIXES and not f.name.startswith(".")]
    return files


ORDER = {"train": 0, "val": 1, "test": 2}


def subjects_in_two_splits(meta: pd.DataFrame) -> list[str]:
    """Subject ids whose rows fall in more than one split (sorted)."""
    n = meta.groupby("subject_id")["split"].nunique()
    return sorted(n.index[n > 1].astype(str))


def join_straddling_subjects(meta: pd.DataFrame) -> pd.Series:
    """Each row's split with every subject moved wholly into the later of its splits (train < val < test)."""
    rank = meta["split"].map(ORDER)
    latest = rank.groupby(meta["subject_id"]).transform("max")
    inverse = {v: k for k, v in ORDER.items()}
    return latest.map(inverse)


def import_kl_folders(src, out, *, size: int = 224, on_error: str = "skip", overwrite: bool = False,
                      flip_left: bool = True) -> ImportReport:
    """Import the layout (see the module doc) into a cohort at ``out``; images resized to size × size."""
    root = Path(src)
    if not root.is_dir():
        raise DataError("source folder not found", root)
    check_sizes(size)
    col = Collector(on_error)
    files = _listing(root, col)
    if not files:
        raise DataError("no images found in {train,val,test,auto_test}/{0..4}/ (is this the KL-folder layout?)", root)
    subjects, sides = stem_subject_side([f.stem for f, _, _ in files])
    for (f, split, kl), subject, side in zip(files, subjects, sides):
        try:
            if not f.resolve().is_relative_to(root.resolve()):   # a file or a folder symlink leading out
                raise DataError("resolves outside the source folder (symlink)", f)
            img = preprocess_picture(read_image(f), size)
        except Exception as e:  # noqa: BLE001  (one unreadable file must not abort the import)
            col.fail(as_data_error(e, f))
            continue
        if flip_left and side == "L":
            img = img[:, ::-1].copy()
        col.add(img, {"image_id": f"{split}/{kl}/{f.stem}", "subject_id": subject if side else f"{split}/{f.stem}",
                      "visit_month": 0, "side": side, "label": kl, "kl": kl, "split": SPLIT_MAP[split],
                      "source_split": split})
    meta = pd.DataFrame(col.rows)
    straddle = subjects_in_two_splits(meta) if len(meta) else []
    if straddle:
        for row, split in zip(col.rows, join_straddling_subjects(meta)):
            row["split"] = split
    n_sided = int((meta["side"] != "").sum()) if len(meta) else 0
    info = {"source": "kl-folders", "source_path": str(root.resolve()), "labels": "kl",
            "preprocessing": [f"resized to {size}×{size}", "8-bit, source windowing kept"]
            + (["left sides flipped to right"] if flip_left else []),
            "pixel_spacing_mm": None,
            "subjects": (f"OAI subject id and side from the file names ({meta['subject_id'].nunique()} subjects, "
                         f"{n_sided} of {len(meta)} images with a side)" if n_sided
                         else "unknown: one subject per image (split/stem)"),
            "split_mapping": SPLIT_MAP, "subjects_in_two_splits": len(straddle),
            "subjects_in_two_splits_examples": straddle[:20]}
    report = col.write(out, info, overwrite)
    if straddle:
        report.warnings.append(f"{len(straddle)} subject(s) had images in two of the dataset's splits (e.g. "
                               f"{straddle[0]}); each was moved wholly into the later split (source_split keeps "
                               "where each image came from)")
    return report
