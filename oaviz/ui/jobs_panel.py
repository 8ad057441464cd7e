"""Live job cards: a polling fragment with progress, ETA, loss curve, error and a Cancel button.

The fragment re-reads the run folders every two seconds while a job runs (the
jobs themselves run in their own processes, never in a rerun); when a job
ends it reruns the whole page once so lists of checkpoints and cohorts update.
"""

from __future__ import annotations

import time
from typing import Callable

import streamlit as st

from oaviz.errors import DataError
from oaviz.services import jobs as job_service
from oaviz.ui.demo import demo_mode, redact
from oaviz.ui import loaders, plots, state
from oaviz.ui.layout import format_seconds

POLL_S = 2.0
_BADGE = {"running": ("blue", ":material/progress_activity:"), "finished": ("green", ":material/check_circle:"),
          "failed": ("red", ":material/error:"), "cancelled": ("gray", ":material/cancel:")}


def start_own_job(start: Callable[[], job_service.Job], where: str) -> None:
    """Start a job with ``start()``, record that this session owns it, say so (``where``: where its
    progress shows) and rerun; a refusal or bad input is shown as an error, without server paths."""
    try:
        job = start()
    except DataError as e:
        st.error(redact(str(e)), icon=":material/error:")
        return
    state.own_job(str(job.run_dir))
    state.flash("success", f"Started **{job.name}**: its progress is {where}.")
    st.rerun()


def _cancel(run_dir: str) -> None:
    try:
        job_service.cancel(run_dir)
        state.flash("info", f"Cancelled {run_dir.rsplit('/', 1)[-1]}.")
    except DataError as e:
        state.flash("error", str(e))


def job_card(job: job_service.Job, *, show_curve: bool = True, on_done: Callable | None = None) -> None:
    """One job: title, status, progress bar with ETA, loss curve, error, command and log."""
    color, icon = _BADGE.get(job.status, ("gray", None))
    with st.container(border=True):
        top = st.columns([6, 2, 2], vertical_alignment="center")
        top[0].markdown(f"**{job.title}**")
        with top[1]:
            st.badge(job.status, icon=icon, color=color)
        started = time.strftime("%d %b %H:%M:%S", time.localtime(job.started)) if job.started else "—"
        top[2].caption(f"started {started}")
        if job.status == "running":
            frac = job.progress if job.progress is not None else 0.0
            eta = f" · ETA {format_seconds(job.eta_s)}" if job.eta_s is not None else ""
            st.progress(frac, text=f"{frac:.0%}{eta}" if job.progress is not None else "starting…")
            if not demo_mode() or state.owns_job(str(job.run_dir)):   # a visitor cancels only their own
                st.button("Cancel", key=state.cancel_key(job.name), icon=":material/stop_circle:",
                          on_click=_cancel, args=(str(job.run_dir),))
        elif job.status == "failed" and job.error:
            st.error(f"**{job.error.get('type', 'Error')}**: {redact(job.error.get('message', ''))}",
                     icon=":material/error:")
        elif job.status == "finished" and on_done is not None:
            on_done(job)
        if job.kind == "train-zoo":
            from oaviz.ui.zoo_panel import model_rows   # one row per model of the zoo
            model_rows(job)
        if show_curve and job.kind == "train":
            steps = job_service.loss_curve(job.run_dir)
            epochs = job_service.epoch_curve(job.run_dir)
            if len(steps) or len(epochs):
                st.plotly_chart(plots.loss_figure(steps, epochs), key=state.loss_chart_key(job.name),
                                config={"displayModeBar": False})
        with st.expander("Command and log"):
            st.code(redact(job.command) or "# this run folder does not record its command", language="bash",
                    wrap_lines=True)
            tail = redact(job_service.log_tail(job.run_dir, 30))
            st.code(tail or "(no output yet)", language=None)


def live_jobs(list_jobs: Callable[[], list[job_service.Job]], *, key: str, empty: str = "No jobs yet.",
              show_curve: bool = True, on_done: Callable | None = None) -> None:
    """Cards for ``list_jobs()`` in a fragment that polls while any of them runs."""
    active_now = sorted(j.name for j in list_jobs() if j.is_active)
    running_now = bool(active_now)
    # This is a full page run, fresh anyway: only a later poll that sees a job end needs to refresh the page.
    st.session_state[state.jobs_seen_key(key)] = active_now

    @st.fragment(run_every=POLL_S if running_now else None)
    def _panel() -> None:
        current = list_jobs()
        active = {j.name for j in current if j.is_active}
        seen_key = state.jobs_seen_key(key)
        previously = set(st.session_state.get(seen_key, ()))
        st.session_state[seen_key] = sorted(active)
        if not current:
            st.caption(empty)
        for job in current:
            job_card(job, show_curve=show_curve, on_done=on_done)
        if previously - active:
            # A job just ended: refresh the whole page (lists of checkpoints/cohorts, stop polling).
            loaders.clear_listings()
            st.rerun(scope="app")

    _panel()


def session_jobs(list_key: str, *, key: str, heading: str | None = None, on_done: Callable | None = None) -> None:
    """Cards of the jobs this session started from a page (run folders kept by ``state.remember_job``), if any."""
    if not st.session_state.get(list_key):
        return
    if heading:
        st.markdown(heading)
    live_jobs(lambda: [job_service.read_job(r) for r in st.session_state.get(list_key, [])], key=key,
              show_curve=False, on_done=on_done)
