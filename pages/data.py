"""Data: pick, generate or import a cohort; browse its images, grades and card."""

from __future__ import annotations

import streamlit as st

from oaviz.ui import layout, state
from oaviz.ui.data_tabs.browse import browse
from oaviz.ui.data_tabs.generate import generate
from oaviz.ui.data_tabs.importing import import_
from oaviz.ui.data_tabs.overview import card, grades, headline

cohort = layout.start_page("pages/data.py", "Pick, generate or import a cohort; browse its images with their "
                           "metadata, the grade distribution and the cohort card.", cohort="optional").cohort
if cohort is not None:
    headline(cohort)
tabs = st.tabs(["Browse", "Grades", "Cohort card", "Generate", "Import"], key=state.DATA_TAB, on_change="rerun")
for tab, view, needs_cohort in zip(tabs, (browse, grades, card, generate, import_), (True, True, True, False, False)):
    if not tab.open:  # only the visible tab runs
        continue
    with tab:
        if not needs_cohort:
            view()
        elif cohort is None:
            st.info("Pick or create a cohort first (Generate or Import).", icon=":material/info:")
        else:
            view(cohort)
