"""The shared sidebar: pick the cohort, the model set and the checkpoint every page works on. No compute."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import streamlit as st

from oaviz.ui import loaders, state
from oaviz.ui.demo import demo_mode

LOGO = Path(__file__).with_name("assets") / "logo.svg"


@dataclass(frozen=True)
class Selection:
    cohort: str | None
    checkpoint: str | None


def _apply_pending(key: str, pending: str | None, options: list[str]) -> None:
    # A page asked for a different choice: set the widget's value before it is drawn.
    if pending is not None and pending in options:
        st.session_state[key] = pending
    if st.session_state.get(key) not in options:
        st.session_state.pop(key, None)


def render() -> Selection:
    """Draw the pickers and return the current choice (paths as strings, None for none)."""
    st.logo(str(LOGO), size="large")
    with st.sidebar:
        pending = state.take_pending_cohort()
        cohorts = loaders.cohort_summaries()
        if pending is not None and pending not in {str(c.path) for c in cohorts}:
            loaders.clear_listings()  # a cohort that just appeared: list the folder again
            cohorts = loaders.cohort_summaries()
        by_path = {str(c.path): c for c in cohorts}
        options = list(by_path)
        _apply_pending(state.COHORT, pending, options)
        if options:
            chosen = st.selectbox("Cohort", options, key=state.COHORT,
                                  format_func=lambda p: by_path[p].name + (" (default)" if by_path[p].is_default else ""),
                                  help="The dataset every page shows. Generate or import more on the Data page.")
            c = by_path[chosen]
            h, w = c.image_shape
            st.caption(f"{c.joint or c.source} · {c.n_images:,} images · {c.n_subjects:,} subjects · {h}×{w} px")
        else:
            chosen = None
            st.caption("No cohort yet.")

        _model_set_picker()
        pending = state.take_pending_checkpoint()
        entries = loaders.checkpoint_entries()
        if pending and pending not in {str(e.path) for e in entries}:
            loaders.clear_listings()
            entries = loaders.checkpoint_entries()
        by_ckpt = {str(e.path): e for e in entries}
        ck_options = ["", *by_ckpt]
        _apply_pending(state.CHECKPOINT, pending, ck_options)
        ckpt = st.selectbox("Model checkpoint", ck_options, key=state.CHECKPOINT,
                            # One label for "" whichever set is picked: the browser keeps showing the label an
                            # option had when it was chosen (streamlit/streamlit#13788), so it must not change.
                            format_func=lambda p: by_ckpt[p].label if p else "Each page's model from the set",
                            help="Bundled demo checkpoints and the ones your training jobs wrote.")
        if ckpt:
            st.caption(by_ckpt[ckpt].summary or by_ckpt[ckpt].model_type)
        elif not entries:
            st.caption("No checkpoint yet: train one on the Models & training page.")
        if demo_mode():
            st.badge("Public demo", icon=":material/public:", color="violet",
                     help="Uploads only, no server paths; jobs are capped in size.")
    return Selection(cohort=chosen, checkpoint=ckpt or None)


def _model_set_picker() -> str:
    """The "Model set" picker (shown once a zoo exists): the bundled demo set or a zoo "trained on <cohort>";
    returns its key ("" for the bundled set)."""
    pending = state.take_pending_model_set()
    sets = loaders.model_sets()
    if pending and pending not in {s.key for s in sets}:
        loaders.clear_listings()          # a zoo that just appeared
        sets = loaders.model_sets()
    if len(sets) < 2:
        st.session_state.pop(state.MODEL_SET, None)
        return ""
    by_key = {s.key: s for s in sets}
    _apply_pending(state.MODEL_SET, pending, list(by_key))
    key = st.selectbox("Model set", list(by_key), key=state.MODEL_SET, format_func=lambda k: by_key[k].label,
                       help="The checkpoints the pages use: the bundled demo set, or a zoo that `oaviz train-zoo` "
                            "(or the Models & training page) trained on one cohort.")
    left = by_key[key].left_out
    if left:
        st.caption("Not in this set: " + "; ".join(f"{m} ({why})" for m, why in left.items()))
    return key
