"""The Browse tab of the Data page: filters, a paged thumbnail grid, one image in detail, the metadata table."""

from __future__ import annotations

import functools

import pandas as pd
import streamlit as st

from oaviz.services.exports import csv_bytes
from oaviz.data.cohort import KL_GRADES, SPLITS, Cohort
from oaviz.services import cohorts
from oaviz.ui import loaders, state
from oaviz.ui.data_tabs import KEEP
from oaviz.ui.viewer import cohort_knee_viewer

GRID_COLUMNS = 6
GRID_ROWS = 3
TABLE_COLUMNS = {
    "image_id": st.column_config.TextColumn("image"), "subject_id": st.column_config.TextColumn("subject"),
    "visit_month": st.column_config.NumberColumn("month"), "kl": st.column_config.NumberColumn("rater KL"),
    "kl_true": st.column_config.NumberColumn("true KL"), "oa": st.column_config.NumberColumn("OA"),
    "severity": st.column_config.NumberColumn(format="%.2f"),
    "jsw_mm": st.column_config.NumberColumn("JSW (mm)", format="%.2f"),
    "progressor": st.column_config.CheckboxColumn(),
}


def _reset_page() -> None:
    st.session_state[state.DATA_PAGE] = 1


def _inspect(row: int) -> None:
    st.session_state[state.DATA_INSPECT] = int(row)


def _table_selected(row_ids: tuple[int, ...]) -> None:
    sel = st.session_state[state.DATA_TABLE].selection.rows
    if sel:
        st.session_state[state.DATA_INSPECT] = int(row_ids[sel[0]])


def _filters(cohort: Cohort, meta: pd.DataFrame) -> dict:
    """Filter widgets; an empty choice means 'all'."""
    c = st.columns([3, 2, 2, 3])
    out = {}
    if cohort.has_kl:
        grades = c[0].pills("KL grade", list(KL_GRADES), selection_mode="multi", key=state.DATA_KL,
                            format_func=lambda g: f"KL {g}", on_change=_reset_page, persist_state=KEEP,
                            help="Rater grade. None selected = all grades.")
        out["kl"] = grades or None
    else:
        labels = sorted(meta["label"].astype(str).unique(), key=cohorts.natural_key)
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


def _detail(cohort: Cohort, row: int) -> None:
    rec = cohorts.image_record(cohort, row)
    md = rec.metadata
    st.markdown(f"**{md['image_id']}** · subject {md['subject_id']} · month {_fmt(md.get('visit_month'))} · "
                f"{ {'R': 'right', 'L': 'left'}.get(md.get('side') or '', 'side unknown') } · {md['split']}")
    overlay = st.segmented_control("Overlay", ["landmarks", "joint space"], selection_mode="multi",
                                   key=state.DATA_OVERLAY, default=["landmarks"], persist_state=KEEP,
                                   disabled=rec.landmarks is None and rec.mask is None) or []
    cohort_knee_viewer(cohort, row, state.DATA_VIEWER, overlay=tuple(overlay), wide=False)
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


def browse(cohort: Cohort) -> None:
    """Filters, a paged thumbnail grid, the detail of one image and the metadata table."""
    meta = cohort.metadata
    rows = cohorts.filter_rows(meta, **_filters(cohort, meta))
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
        _detail(cohort, inspect_row if inspect_row in rows.index else ids[0])
    st.markdown("**Metadata** — select a row to inspect its image")
    table = cohorts.browse_table(rows)
    st.dataframe(table, key=state.DATA_TABLE, on_select=functools.partial(_table_selected, tuple(rows.index)),
                 selection_mode="single-row", height=320,
                 column_config=TABLE_COLUMNS)
    st.download_button("Download these rows (CSV)", csv_bytes(table, index=True), file_name=f"{cohort.name}-rows.csv",
                       mime="text/csv", icon=":material/download:")
