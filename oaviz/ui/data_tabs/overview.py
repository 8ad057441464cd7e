"""Cohort summaries of the Data page: the headline numbers, the Grades tab and the Cohort card tab."""

from __future__ import annotations

import json

import pandas as pd
import streamlit as st

from oaviz.data.cohort import Cohort
from oaviz.services import cohorts
from oaviz.ui import loaders
from oaviz.ui.demo import demo_mode, redact


def headline(cohort: Cohort) -> None:
    """Five headline numbers of the cohort."""
    ov = cohorts.overview(cohort)
    m = st.columns(5)
    m[0].metric("Images", f"{ov.n_images:,}", border=True)
    m[1].metric("Subjects", f"{ov.n_subjects:,}", border=True)
    m[2].metric("Visits (months)", ", ".join(map(str, ov.visits)) or "—", border=True)
    m[3].metric("OA (KL ≥ 2)", f"{ov.oa_fraction:.0%}" if ov.oa_fraction is not None else "—", border=True)
    m[4].metric("Rater ≠ truth", f"{ov.rater_disagreement:.0%}" if ov.rater_disagreement is not None else "—",
                border=True, help="Share of rater KL grades that differ from the true grade (known for synthetic cohorts).")


def grades(cohort: Cohort) -> None:
    """Images per grade and split; with ground truth, rater-vs-truth confusion and JSW by grade."""
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


def card(cohort: Cohort) -> None:
    """The cohort card (cohort.json) as grouped tables, and the file to download."""
    info = redact(cohorts.cohort_card(cohort))
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
    st.download_button("Download cohort.json", json.dumps(redact(cohort.info), indent=2), file_name=f"{cohort.name}-cohort.json",
                       mime="application/json", icon=":material/download:")
