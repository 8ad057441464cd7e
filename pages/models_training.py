"""Models & training: checkpoints with their cards, training jobs with live progress."""

from __future__ import annotations

from pathlib import Path

import streamlit as st

from oaviz.services import jobs as job_service
from oaviz.services import model_cards
from oaviz.ui import jobs_panel, layout, loaders, state, zoo_panel
from oaviz.ui.demo import DEMO_MAX_TRAIN_EPOCHS, DEMO_MAX_TRAIN_IMAGES, demo_mode, job_refusal
from oaviz.ui.model_card import checkpoint_card

layout.start_page("pages/models_training.py", "The checkpoints you can explore, with their cards, and training runs "
                  "started as the same `oaviz train` command you would type — followed live, cancellable.",
                  cohort="none")


# ----------------------------------------------------------------- checkpoints
def _select_card(paths: tuple[str, ...]) -> None:
    sel = st.session_state[state.MODELS_TABLE].selection.rows
    if sel:
        st.session_state[state.MODELS_CARD] = paths[sel[0]]


def checkpoints() -> None:
    st.subheader("Checkpoints", anchor=False)
    entries = loaders.checkpoint_entries()
    if not entries:
        st.info("No checkpoint yet. Bundled demo checkpoints live in `checkpoints/`; a training job below writes "
                "its own.", icon=":material/info:")
        return
    cards = model_cards.checkpoint_cards(entries)
    paths = tuple(str(c.entry.path) for c in cards)
    st.dataframe([c.row() for c in cards], hide_index=True, key=state.MODELS_TABLE, on_select=lambda: _select_card(paths),
                 selection_mode="single-row")
    chosen = st.session_state.get(state.MODELS_CARD)
    card = next((c for c in cards if str(c.entry.path) == chosen), cards[0])
    with st.container(border=True):
        checkpoint_card(card)


# ----------------------------------------------------------------- training
def training_form() -> None:
    st.subheader("Train a model", anchor=False)
    models = model_cards.trainable_models()
    if not models:
        st.info("No model is registered yet (`oaviz.models.zoo` imports none).", icon=":material/info:")
        return
    cohorts = loaders.cohort_summaries()
    if not cohorts:
        st.info("Generate or import a cohort first (Data page).", icon=":material/info:")
        return
    by_name = {m.name: m for m in models}
    c = st.columns([2, 1, 1, 1])
    model = c[0].selectbox("Model", list(by_name), key=state.MODELS_TRAIN_MODEL,
                           help="\n\n".join(f"**{m.name}**: {m.description}" for m in models if m.description) or None)
    preset = c[1].selectbox("Preset", by_name[model].presets, key=state.MODELS_TRAIN_PRESET,
                            help="demo: 128 px, narrower, minutes on a CPU; paper: the published sizes (GPU)")
    max_epochs = DEMO_MAX_TRAIN_EPOCHS if demo_mode() else 1000
    epochs = c[2].number_input("Epochs", 1, max_epochs, min(5, max_epochs), key=state.MODELS_TRAIN_EPOCHS)
    device = c[3].selectbox("Device", ["auto", "cpu", "cuda", "mps"], key=state.MODELS_TRAIN_DEVICE)
    paths = [str(s.path) for s in cohorts]
    default = state.selected_cohort()
    cohort = st.selectbox("Cohort", paths, index=paths.index(default) if default in paths else 0,
                          key=state.MODELS_TRAIN_COHORT, format_func=lambda p: Path(p).name)
    max_images = DEMO_MAX_TRAIN_IMAGES if demo_mode() else None
    shown_cohort = Path(cohort).name if demo_mode() else cohort  # no server paths in the public demo
    preview = job_service.train_args(model, shown_cohort, "<run folder>/checkpoint", "<run folder>", preset=preset,
                                     epochs=int(epochs), device=device, max_images=max_images)
    st.code("oaviz " + " ".join(preview), language="bash", wrap_lines=True)
    refused = job_refusal()   # public demo: this visitor's or the server's cap on running jobs is reached
    if refused:
        st.warning(refused, icon=":material/hourglass_top:")
    if st.button("Start training", type="primary", icon=":material/play_arrow:", disabled=bool(refused)):
        jobs_panel.start_own_job(lambda: job_service.start_training(model, cohort, preset=preset, epochs=int(epochs),
                                                                    device=device, max_images=max_images), "below")


# ----------------------------------------------------------------- jobs
def _use_checkpoint(job: job_service.Job) -> None:
    zoo_panel.use_set_button(job)
    if job.kind == "train" and job.output and model_cards.is_checkpoint(job.output):
        st.button("Explore this checkpoint", key=state.use_output_key(job.name), icon=":material/arrow_forward:",
                  on_click=state.request_checkpoint, args=(job.output,))


def jobs() -> None:
    st.subheader("Jobs", anchor=False)
    show_all = st.toggle("Show all jobs (not only the latest 8)", key=state.MODELS_SHOW_ALL_JOBS)
    # the public demo lists a visitor's own jobs only; elsewhere every job of this server
    jobs_panel.live_jobs(lambda: [j for j in job_service.list_jobs(limit=None)
                                  if not demo_mode() or state.owns_job(str(j.run_dir))][:None if show_all else 8],
                         key="models",
                         empty="No jobs yet: start one above, or run `oaviz train …` in a terminal.",
                         on_done=_use_checkpoint)


checkpoints()
st.divider()
training_form()
st.divider()
zoo_panel.zoo_form()
st.divider()
jobs()
