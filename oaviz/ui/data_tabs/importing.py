"""The Import tab of the Data page: KL folders, DICOM + labels, MedMNIST .npz or a CSV manifest."""

from __future__ import annotations

import streamlit as st

from oaviz.errors import DataError
from oaviz.services import cohorts, imports
from oaviz.services import jobs as job_service
from oaviz.ui import state
from oaviz.ui.data_tabs import KEEP, data_jobs, select_new_cohort
from oaviz.ui.demo import demo_mode, own_cohorts_root, redact


def _uploads(files) -> list[imports.Upload]:
    return [imports.Upload(f.name, f.getvalue()) for f in (files or [])]


def import_() -> None:
    """Import a cohort from uploads (inline) or a server path (an `oaviz import` job)."""
    fmt = st.radio("Format", list(imports.FORMATS), key=state.DATA_IMPORT_FORMAT, horizontal=True, persist_state=KEEP,
                   format_func=lambda k: {"kl-folders": "KL folders", "dicom": "DICOM", "npz": "MedMNIST .npz",
                                          "csv": "CSV manifest"}[k])
    st.caption(imports.FORMATS[fmt])
    sources = ["Upload"] if demo_mode() else ["Upload", "Server path"]
    source = st.segmented_control("Source", sources, key=state.DATA_IMPORT_SOURCE, default="Upload", required=True)
    if demo_mode():
        st.caption("The public demo accepts data by upload only.")
    c = st.columns(3)
    name = c[0].text_input("Cohort name", key=state.DATA_IMPORT_NAME, placeholder="e.g. my-knees", persist_state=KEEP)
    size = c[1].select_slider("Output size (px)", [64, 128, 224, 256, 384, 512], value=224, key=state.DATA_IMPORT_SIZE,
                              disabled=fmt == "npz", persist_state=KEEP)
    on_error = c[2].segmented_control("On a bad file", ["skip", "stop"], key=state.DATA_IMPORT_ON_ERROR,
                                      default="skip", required=True, persist_state=KEEP,
                                      help="skip: import the rest and list what was skipped; "
                                           "stop: abort at the first bad file (nothing is written)")
    labels_are_kl = st.checkbox("The labels are KL grades", key=state.DATA_IMPORT_KL) if fmt == "npz" else None
    kwargs = dict(size=None if fmt == "npz" else int(size), on_error=on_error, labels_are_kl=labels_are_kl)
    columns = (st.text_input("Column mapping (optional)", key=state.DATA_IMPORT_COLUMNS, placeholder="KL=grade,ID=patient",
                             help="oaviz name = your column, for labels that do not follow the OAI conventions "
                                  "(path, ID, SIDE, VISIT, KL)") or None) if fmt == "dicom" else None
    if source == "Server path":
        path = st.text_input({"csv": "Manifest CSV", "npz": ".npz file"}.get(fmt, "Folder"), key=state.DATA_IMPORT_PATH)
        labels = st.text_input("Labels CSV", key=state.DATA_IMPORT_LABELS) if fmt == "dicom" else None
        st.caption("A folder on the server can hold thousands of files: it is imported by a background job "
                   "(`oaviz import`).")
        if st.button("Import", type="primary", icon=":material/upload:",
                     disabled=not (path and name and (fmt != "dicom" or labels))):
            try:
                job = job_service.start_import(fmt, path, cohorts.cohort_dir_for(name), columns=columns,
                                               labels=labels or None, **kwargs)
                state.remember_job(state.DATA_JOBS, str(job.run_dir))
            except DataError as e:
                st.error(redact(str(e)), icon=":material/error:")
        data_jobs()
        return
    hint = {"kl-folders": "a .zip of the folder layout", "dicom": "DICOM files or a .zip of them",
            "npz": "one .npz file", "csv": "the manifest .csv and its images (or one .zip of both)"}[fmt]
    files = st.file_uploader(f"Files — {hint}", accept_multiple_files=True, key=state.DATA_IMPORT_FILES)
    label_file = (st.file_uploader("Labels CSV", type=["csv"], key=state.DATA_IMPORT_LABEL_FILE)
                  if fmt == "dicom" else None)
    if st.button("Import", type="primary", icon=":material/upload:",
                 disabled=not (files and name and (fmt != "dicom" or label_file))):
        try:
            with st.spinner("Importing…"):
                res = imports.import_from_uploads(fmt, _uploads(files), name, columns=columns,
                                                  label_file=_uploads([label_file])[0] if label_file else None,
                                                  root=own_cohorts_root(create=True), **kwargs)
        except DataError as e:
            st.error(f"Import failed: {redact(str(e))}", icon=":material/error:")
        else:
            msg = f"Imported **{res.path.name}**: {res.n_images:,} images"
            if res.skipped:
                msg += f"; {len(res.skipped)} file(s) skipped — first: {res.skipped[0]}"
            msg += "".join(f" {w}." for w in res.warnings)
            select_new_cohort(str(res.path), "warning" if res.skipped or res.warnings else "success", msg + ".")
