"""Pick one knee for a page: from the cohort list (by image id, filterable by grade) or an uploaded file.

Returns a cohort row (int) or a preprocessed image (float [S, S] in [0, 1]);
both are what the latent services accept. Uploads are read with the same
preprocessing as the importers (DICOM LUTs, MONOCHROME1, crop, percentiles).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import streamlit as st

from oaviz.data.cohort import Cohort
from oaviz.data.readers import preprocess_any
from oaviz.errors import DataError
from oaviz.ui.demo import redact

UPLOAD_TYPES = ["png", "jpg", "jpeg", "dcm", "dicom"]


@st.cache_data(show_spinner=False, max_entries=32)
def _preprocess(data: bytes, name: str, size: int) -> np.ndarray:
    return preprocess_any(data, size, name=name).astype(np.float32) / 255.0


def upload_image(label: str, key: str, size: int) -> np.ndarray | None:
    """A file uploader; the file preprocessed to float [size, size] in [0, 1], or None (errors shown in place)."""
    f = st.file_uploader(label, type=UPLOAD_TYPES, key=key,
                         help="PNG, JPEG or DICOM; preprocessed like the cohort (crop, 1–99 percentile window).")
    if f is None:
        return None
    try:
        return _preprocess(f.getvalue(), f.name, int(size))
    except DataError as e:
        st.error(f"Cannot use {f.name}: {redact(str(e))}", icon=":material/error:")
        return None


def pick_knee(cohort: Cohort, label: str, key: str, default_row: int = 0, allow_upload: bool = True):
    """A row of ``cohort`` or an uploaded image; ``key`` holds the row (so other pages can set it)."""
    meta = cohort.metadata
    source = "Cohort"
    if allow_upload:
        source = st.segmented_control(label, ["Cohort", "Upload"], default="Cohort", key=f"{key}.source")
    if source == "Upload":
        img = upload_image(f"{label}: file", f"{key}.file", cohort.image_size[0])
        if img is not None:
            st.image((img * 255).astype(np.uint8), width=160)
        return img
    if st.session_state.get(key) not in range(len(meta)):
        st.session_state[key] = int(min(max(default_row, 0), len(meta) - 1))
    labels = _row_labels(str(cohort.path), cohort.fingerprint, meta)
    row = st.selectbox(label if not allow_upload else f"{label} from the cohort", range(len(meta)), key=key,
                       format_func=labels.__getitem__)
    return int(row)


@st.cache_resource(show_spinner=False, max_entries=8)
def _row_labels(path: str, fingerprint: str, _meta: pd.DataFrame) -> tuple[str, ...]:
    """'<image id> · KL g · side · month m' of every row, built once per cohort and shared by all sessions
    (the selectbox formats every option on every run: one pandas row lookup each cost 0.2 s per picker
    on 1,800 knees, three pickers on the Interpolation page)."""
    kl = _meta["kl"]
    grade = (kl.map(lambda g: "" if pd.isna(g) else f" · KL {int(g)}") if kl.notna().any()
             else pd.Series("", index=_meta.index))
    text = (_meta["image_id"].astype(str) + grade.astype(str) + " · " + _meta["side"].astype(str) + " · month "
            + _meta["visit_month"].astype(str))
    return tuple(text.tolist())


def first_row_with_grade(cohort: Cohort, grade: int, split: str = "test") -> int:
    """The first row of ``split`` (else of any split) whose rater KL is ``grade``; 0 when none."""
    meta = cohort.metadata
    is_grade = (meta["kl"] == grade).fillna(False)  # kl is a nullable column: NA for non-KL cohorts
    for mask in (is_grade & (meta["split"] == split), is_grade):
        hit = np.flatnonzero(mask.to_numpy(dtype=bool))
        if len(hit):
            return int(hit[0])
    return 0
