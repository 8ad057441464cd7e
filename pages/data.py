"""Data: pick, generate or import a cohort; browse its images, grades and card."""

from __future__ import annotations

import functools
import json

import pandas as pd
import streamlit as st

from oaviz.data.errors import DataError
from oaviz.services import cohorts, imports
from oaviz.services import jobs as job_service
from oaviz.ui import jobs_panel, layout, loaders, plots, state
from oaviz.ui.demo import DEMO_MAX_SYNTH_IMAGES, demo_mode
from oaviz.ui.navigation import page_by_file

GRID_COLUMNS = 6
GRID_ROWS = 3
SPLITS = ("train", "val", "test")
KEEP = "session"  # widget values survive tab and page switches
TABLE_COLUMNS = {
    "image_id": st.column_config.TextColumn("image"), "subject_id": st.column_config.TextColumn("subject"),
    "visit_month": st.column_config.NumberColumn("month"), "kl": st.column_config.NumberColumn("rater KL"),
    "kl_true": st.column_config.NumberColumn("true KL"), "oa": st.column_config.NumberColumn("OA"),
    "severity": st.column_config.NumberColumn(format="%.2f"),
    "jsw_mm": st.column_config.NumberColumn("JSW (mm)", format="%.2f"),
    "progressor": st.column_config.CheckboxColumn(),
}

PAGE = page_by_file("pages/data.py")
layout.page_header(PAGE.title, "Pick, generate or import a cohort; browse its images with their metadata, "
                   "the grade distribution and the cohort card.", PAGE.icon)
cohort = layout.current_cohort()


def headline() -> None:
    ov = cohorts.overview(cohort)
    m = st.columns(5)
    m[0].metric("Images", f"{ov.n_images:,}", border=True)
    m[1].metric("Subjects", f"{ov.n_subjects:,}", border=True)
    m[2].metric("Visits (months)", ", ".join(map(str, ov.visits)) or "—", border=True)
    m[3].metric("OA (KL ≥ 2)", f"{ov.oa_fraction:.0%}" if ov.oa_fraction is not None else "—", border=True)
    m[4].metric("Rater ≠ truth", f"{ov.rater_disagreement:.0%}" if ov.rater_disagreement is not None else "—",
                border=True, help="Share of rater KL grades that differ from the true grade (known for synthetic cohorts).")


# ----------------------------------------------------------------- browse
def _reset_page() -> None:
    st.session_state[state.DATA_PAGE] = 1


def _inspect(row: int) -> None:
    st.session_state[state.DATA_INSPECT] = int(row)


def _table_selected(row_ids: tuple[int, ...]) -> None:
    sel = st.session_state[state.DATA_TABLE].selection.rows
    if sel:
        st.session_state[state.DATA_INSPECT] = int(row_ids[sel[0]])


def _filters(meta) -> dict:
    """Filter widgets; an empty choice means 'all'."""
    c = st.columns([3, 2, 2, 3])
    out = {}
    if cohort.has_kl:
        grades = c[0].pills("KL grade", list(cohorts.KL_GRADES), selection_mode="multi", key=state.DATA_KL,
                            format_func=lambda g: f"KL {g}", on_change=_reset_page, persist_state=KEEP,
                            help="Rater grade. None selected = all grades.")
        out["kl"] = grades or None
    else:
        labels = sorted(meta["label"].astype(str).unique(), key=cohorts._natural_key)
        chosen = c[0].multiselect("Label", labels, key=state.DATA_LABEL, on_change=_reset_page, placeholder="all",
                                  persist_state=KEEP)
        out["label"] = chosen or None
    splits = c[1].pills("Split", list(SPLITS), selection_mode="multi", key=state.DATA_SPLIT, on_change=_reset_page,
                        persist_state=KEEP)
    out["split"] = splits or None
    sides = [s for s in ("R", "L") if (meta["side"] == s).any()]
    if sides:
        chosen = c[2].pills("Side", sides, selection_mode="multi", key=state.DATA_SIDE, on_change=_reset_page,
                            persist_state=KEEP)
        out["side"] = chosen or None
    visits = sorted(int(v) for v in meta["visit_month"].dropna().unique())
    if len(visits) > 1:
        chosen = c[3].multiselect("Visit (month)", visits, key=state.DATA_VISIT, on_change=_reset_page,
                                  placeholder="all", persist_state=KEEP)
        out["visit"] = chosen or None
    return out


def _fmt(v, spec: str = "") -> str:
    return "—" if v is None else format(v, spec) if spec else str(v)


def _detail(row: int) -> None:
    rec = cohorts.image_record(cohort, row)
    md = rec.metadata
    st.markdown(f"**{md['image_id']}** · subject {md['subject_id']} · month {_fmt(md.get('visit_month'))} · "
                f"{ {'R': 'right', 'L': 'left'}.get(md.get('side') or '', 'side unknown') } · {md['split']}")
    overlay = st.segmented_control("Overlay", ["landmarks", "joint space"], selection_mode="multi",
                                   key=state.DATA_OVERLAY, default=["landmarks"], persist_state=KEEP,
                                   disabled=rec.landmarks is None and rec.mask is None) or []
    fig = plots.image_figure(rec.image, landmarks=rec.landmarks if "landmarks" in overlay else None,
                             mask=rec.mask if "joint space" in overlay else None,
                             landmark_names=cohort.info.get("landmark_names"), height=360)
    st.plotly_chart(fig, config={"displayModeBar": False, "scrollZoom": True})
    c = st.columns(3)
    if md.get("kl") is not None:
        c[0].metric("Rater KL", _fmt(md.get("kl")))
        c[1].metric("True KL", _fmt(md.get("kl_true")))
    else:
        c[0].metric("Label", _fmt(md.get("label")))
    if md.get("jsw_mm") is not None:
        c[2].metric("JSW (mm)", f"{md['jsw_mm']:.2f}", help=cohort.info.get("jsw_definition") or "joint-space width")
    extra = []
    if md.get("severity") is not None:
        extra.append(f"severity {md['severity']:.2f} / 4")
    if md.get("progressor") is not None:
        extra.append("progressor" if int(md["progressor"]) else "stable")
    if extra:
        st.caption(" · ".join(extra))


def browse() -> None:
    meta = cohort.metadata
    rows = cohorts.filter_rows(meta, **_filters(meta))
    st.caption(f"**{len(rows):,}** of {len(meta):,} images match.")
    if not len(rows):
        st.warning("No image matches these filters.", icon=":material/filter_alt_off:")
        return
    grid, detail = st.columns([3, 2], gap="large")
    with grid:
        per_page = GRID_COLUMNS * GRID_ROWS
        n_pages = max(1, -(-len(rows) // per_page))
        if st.session_state.get(state.DATA_PAGE, 1) > n_pages:
            st.session_state[state.DATA_PAGE] = n_pages
        pc = st.columns([2, 3], vertical_alignment="bottom")
        page = pc[0].number_input(f"Page (of {n_pages})", min_value=1, max_value=n_pages, step=1, key=state.DATA_PAGE,
                                  persist_state=KEEP)
        start, stop, _ = cohorts.paginate(len(rows), page, per_page)
        pc[1].caption(f"images {start + 1}–{stop} · click a caption to inspect")
        ids = rows.index[start:stop].tolist()
        thumbs = loaders.thumbnails(str(cohort.path), cohort.fingerprint, tuple(ids), 112)
        cols = st.columns(GRID_COLUMNS, gap="small")
        for i, (rid, png) in enumerate(zip(ids, thumbs)):
            with cols[i % GRID_COLUMNS]:
                st.image(png, width="stretch")
                st.button(cohorts.thumbnail_caption(meta.loc[rid]), key=state.thumb_key(rid), type="tertiary",
                          on_click=_inspect, args=(rid,), help=f"Inspect {meta.at[rid, 'image_id']}")
    inspect_row = st.session_state.get(state.DATA_INSPECT)
    with detail:
        _detail(inspect_row if inspect_row in rows.index else ids[0])
    st.markdown("**Metadata** — select a row to inspect its image")
    table = cohorts.browse_table(rows)
    st.dataframe(table, key=state.DATA_TABLE, on_select=functools.partial(_table_selected, tuple(rows.index)),
                 selection_mode="single-row", height=320,
                 column_config=TABLE_COLUMNS)
    st.download_button("Download these rows (CSV)", table.to_csv().encode(), file_name=f"{cohort.name}-rows.csv",
                       mime="text/csv", icon=":material/download:")


# ----------------------------------------------------------------- grades
def grades() -> None:
    key = (str(cohort.path), cohort.fingerprint)
    figs = loaders.grade_figures(*key)
    left, right = st.columns([3, 2], gap="large")
    with left:
        st.plotly_chart(figs["grades"], config={"displayModeBar": False})
    with right:
        st.dataframe(loaders.grade_distribution(*key),
                     column_config={"percent": st.column_config.NumberColumn("%", format="%.1f")})
        if cohort.has_kl:
            st.caption("Knee cohorts such as OAI report roughly 40 / 18 / 26 / 13 / 3 % for KL 0–4.")
    if "confusion" in figs or "jsw" in figs:
        a, b = st.columns(2, gap="large")
        for col, name in ((a, "confusion"), (b, "jsw")):
            if name in figs:
                col.plotly_chart(figs[name], config={"displayModeBar": False})


# ----------------------------------------------------------------- card
def card() -> None:
    info = cohorts.cohort_card(cohort)
    a, b = st.columns(2, gap="large")
    for col, group in ((a, "provenance"), (a, "counts"), (b, "images"), (b, "identity"), (b, "annotations"),
                       (a, "other")):
        fields = cohorts.card_fields(info.get(group) or {})
        if fields:
            with col.container(border=True):
                st.markdown(f"**{group.capitalize()}**")
                st.table(pd.DataFrame({"value": [v for _, v in fields]}, index=[f for f, _ in fields]), border="horizontal", hide_header=True)
    if not demo_mode():
        st.caption(f"Folder: `{cohort.path}`")
    st.download_button("Download cohort.json", json.dumps(cohort.info, indent=2), file_name=f"{cohort.name}-cohort.json",
                       mime="application/json", icon=":material/download:")


# ----------------------------------------------------------------- generate
def _use_cohort(job: job_service.Job) -> None:
    if job.output and job.kind in ("synth", "import"):
        st.button("Use this cohort", key=state.use_output_key(job.name), icon=":material/arrow_forward:",
                  on_click=state.request_cohort, args=(job.output,))


def data_jobs() -> None:
    """Generation and import jobs started from this page in this session, followed live."""
    if st.session_state.get(state.DATA_JOBS):
        st.markdown("**Jobs started here**")
        jobs_panel.live_jobs(lambda: [job_service.read_job(d) for d in st.session_state.get(state.DATA_JOBS, [])],
                             key="data", show_curve=False, on_done=_use_cohort)


def generate() -> None:
    st.markdown("A synthetic cohort has known ground truth (true grade, severity, joint-space width, progression), "
                "so every view can be checked against the truth.")
    c = st.columns(3)
    joint = c[0].segmented_control("Joint", ["knee", "hip"], key=state.DATA_GEN_JOINT, default="knee", required=True,
                                   persist_state=KEEP)
    subjects = c[1].number_input("Subjects", 1, 5000, 60, step=10, key=state.DATA_GEN_SUBJECTS, persist_state=KEEP)
    seed = c[2].number_input("Seed", 0, 2**31 - 1, 0, key=state.DATA_GEN_SEED, persist_state=KEEP)
    c = st.columns(3)
    visits = c[0].multiselect("Visits (months)", [0, 12, 24, 36, 48, 72, 96], default=[0, 12, 24],
                              key=state.DATA_GEN_VISITS, persist_state=KEEP)
    size = c[1].select_slider("Image size (px)", [64, 96, 128, 160, 192, 224, 256], value=128,
                              key=state.DATA_GEN_SIZE, persist_state=KEEP)
    auto_name = f"synthetic-{joint}-{subjects}x{len(visits)}-{size}px-s{seed}"
    name = c[2].text_input("Cohort name", key=state.DATA_GEN_NAME, placeholder=auto_name) or auto_name
    n_images = int(subjects) * len(visits)
    secs = cohorts.estimate_generation_s(int(subjects), len(visits), int(size))
    inline = cohorts.generation_runs_inline(int(subjects), len(visits), int(size))
    capped = demo_mode() and n_images > DEMO_MAX_SYNTH_IMAGES
    st.caption(f"{n_images:,} images, about {layout.format_seconds(secs)} — "
               + ("generated right here." if inline else "runs as a background job (`oaviz synth`); "
                  "you can keep browsing meanwhile."))
    if capped:
        st.warning(f"The public demo generates at most {DEMO_MAX_SYNTH_IMAGES} images per cohort.")
    if st.button("Generate", type="primary", icon=":material/auto_awesome:", disabled=capped or not visits):
        try:
            out = cohorts.cohort_dir_for(name)
            if inline:
                with st.spinner("Generating…"):
                    cohorts.generate(out, joint=joint, subjects=int(subjects), visits=tuple(sorted(visits)),
                                     size=int(size), seed=int(seed))
                loaders.clear_listings()
                state.request_cohort(str(out))
                state.flash("success", f"Generated **{out.name}** ({n_images:,} images) and selected it.")
                st.rerun()
            job = job_service.start_synth(out, joint=joint, subjects=int(subjects), visits=tuple(sorted(visits)),
                                          size=int(size), seed=int(seed))
            state.remember_job(state.DATA_JOBS, str(job.run_dir))
        except DataError as e:
            st.error(str(e), icon=":material/error:")
    data_jobs()


# ----------------------------------------------------------------- import
def _uploads(files) -> list[imports.Upload]:
    return [imports.Upload(f.name, f.getvalue()) for f in (files or [])]


def import_() -> None:
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
                st.error(str(e), icon=":material/error:")
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
                                                  **kwargs)
        except DataError as e:
            st.error(f"Import failed: {e}", icon=":material/error:")
        else:
            loaders.clear_listings()
            state.request_cohort(str(res.path))
            msg = f"Imported **{res.path.name}**: {res.n_images:,} images"
            if res.skipped:
                msg += f"; {len(res.skipped)} file(s) skipped — first: {res.skipped[0]}"
            state.flash("warning" if res.skipped else "success", msg + ".")
            st.rerun()


# ----------------------------------------------------------------- layout
if cohort is not None:
    headline()
tabs = st.tabs(["Browse", "Grades", "Cohort card", "Generate", "Import"], key=state.DATA_TAB, on_change="rerun")
for tab, view, needs_cohort in zip(tabs, (browse, grades, card, generate, import_), (True, True, True, False, False)):
    if tab.open:  # only the visible tab runs
        with tab:
            if needs_cohort and cohort is None:
                st.info("Pick or create a cohort first (Generate or Import).", icon=":material/info:")
            else:
                view()
