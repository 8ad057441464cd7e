"""The Data page's tabs, one module each; what they share (widget persistence, the jobs started here)."""

from __future__ import annotations

import streamlit as st

from oaviz.services import jobs as job_service
from oaviz.ui import jobs_panel, loaders, state

KEEP = "session"  # widget values survive tab and page switches


def select_new_cohort(path: str, kind: str, message: str) -> None:
    """A cohort written in this run: list the folders again, select it, say so on the next run; reruns (never returns)."""
    loaders.clear_listings()
    state.request_cohort(path)
    state.flash(kind, message)
    st.rerun()


def _use_cohort(job: job_service.Job) -> None:
    if job.output and job.kind in ("synth", "import"):
        st.button("Use this cohort", key=state.use_output_key(job.name), icon=":material/arrow_forward:",
                  on_click=state.request_cohort, args=(job.output,))


def data_jobs() -> None:
    """Generation and import jobs started from this page in this session, followed live."""
    jobs_panel.session_jobs(state.DATA_JOBS, key="data", heading="**Jobs started here**", on_done=_use_cohort)
