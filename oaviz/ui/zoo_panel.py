"""The model zoo on the Models & training page: the plan for a cohort, the one-click job, per-model progress."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import streamlit as st

from oaviz.services import jobs as job_service
from oaviz.services import zoos
from oaviz.ui import jobs_panel, loaders, state
from oaviz.ui.demo import DEMO_MAX_TRAIN_EPOCHS, DEMO_MAX_TRAIN_IMAGES, demo_mode, job_refusal
from oaviz.ui.layout import format_seconds


@st.cache_data(show_spinner=False, max_entries=16)
def _plan(path: str, fingerprint: str, preset: str) -> list[tuple[str, str, str]]:
    """(model, "train" / "skip", why or what changes) for the cohort."""
    return zoos.plan_rows(loaders.cohort(path), preset)


def zoo_form() -> None:
    """Cohort and preset, the plan (what trains, what is left out and why), the command and the button."""
    st.subheader("Train the model zoo", anchor=False)
    cohorts = loaders.cohort_summaries()
    if not cohorts:
        st.info("Generate or import a cohort first (Data page).", icon=":material/info:")
        return
    paths = [str(s.path) for s in cohorts]
    default = state.selected_cohort()
    c = st.columns([3, 1])
    cohort = c[0].selectbox("Cohort", paths, index=paths.index(default) if default in paths else 0,
                            key=state.MODELS_ZOO_COHORT, format_func=lambda p: Path(p).name)
    preset = c[1].selectbox("Preset", ["real", "demo"], key=state.MODELS_ZOO_PRESET,
                            help="real: augmentation that keeps medial and lateral, class balance, a larger "
                                 "validation split (real radiographs); demo: the bundled set's settings")
    plan = _plan(cohort, loaders.fingerprint(cohort), preset)
    st.dataframe(pd.DataFrame(plan, columns=["model", "plan", "why / what changes"]), hide_index=True,
                 width="stretch")
    epochs, max_images = (DEMO_MAX_TRAIN_EPOCHS, DEMO_MAX_TRAIN_IMAGES) if demo_mode() else (None, None)
    shown = Path(cohort).name if demo_mode() else cohort          # no server paths in the public demo
    st.code("oaviz " + " ".join(zoos.zoo_args(shown, "<run folder>", preset=preset, epochs=epochs,
                                              max_images=max_images)), language="bash", wrap_lines=True)
    st.caption("One job trains them one after the other, in dependency order (VQ-VAE and multitask before the "
               "latent diffusion; multitask before KECAE). When it is done the set is offered in the sidebar as "
               "\"Trained on " + Path(cohort).name + "\".")
    # The public demo's caps on running jobs: the training form above already says so in words.
    refusal = job_refusal()
    if st.button("Train the zoo", type="primary", icon=":material/play_arrow:", key="models.zoo.start",
                 disabled=refusal is not None, help=refusal):
        jobs_panel.start_own_job(lambda: zoos.start_zoo(cohort, preset=preset, epochs=epochs,
                                                        max_images=max_images), "under Jobs")


def model_rows(job: job_service.Job) -> None:
    """Per-model progress of a zoo job (status, progress, ETA, time, why left out)."""
    rows = zoos.zoo_progress(job.run_dir)
    if not rows:
        return
    st.dataframe(pd.DataFrame([{"model": r.model, "status": r.status, "progress": r.progress or 0.0,
                                "ETA": format_seconds(r.eta_s) if r.status == "running" else "",
                                "time": format_seconds(r.seconds), "note": r.note} for r in rows]),
                 hide_index=True, width="stretch",
                 column_config={"progress": st.column_config.ProgressColumn(min_value=0.0, max_value=1.0)})


def use_set_button(job: job_service.Job) -> None:
    """A finished zoo job: switch every page to its set."""
    if job.kind == "train-zoo" and job.output:
        st.button("Use this model set", key=state.use_output_key(job.name), icon=":material/arrow_forward:",
                  on_click=state.request_model_set, args=(str(Path(job.output).resolve()),))
