"""One checkpoint's card on the Models & training page: what it is for, what it was trained on, its metrics."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from oaviz.services import model_cards
from oaviz.ui import state


def _facts_table(facts: dict) -> None:
    st.table(pd.DataFrame({"value": [model_cards.format_value(v) for v in facts.values()]}, index=list(facts)),
             border="horizontal", hide_header=True)


def checkpoint_card(card: model_cards.CheckpointCard) -> None:
    """Summary / intended use / limitations, training facts, final metrics, the command, the config."""
    info = card.info
    c = info.get("card") or {}
    st.markdown(f"#### {card.row()['checkpoint']} · `{card.entry.model_type}`")
    if card.error:
        st.error(card.error, icon=":material/error:")
        return
    cols = st.columns(3)
    for col, (key, label) in zip(cols, (("summary", "Summary"), ("intended_use", "Intended use"),
                                        ("limitations", "Limitations"))):
        with col.container(border=True):
            st.markdown(f"**{label}**")
            st.markdown(c.get(key) or "—")
    t, cohort = info.get("training") or {}, info.get("cohort") or {}
    a, b = st.columns(2, gap="large")
    with a:
        st.markdown("**Trained on**")
        _facts_table({"cohort": card.cohort_name, "fingerprint": cohort.get("fingerprint"),
                      "source": cohort.get("source"), "epochs": t.get("epochs"),
                      "training time": model_cards.format_seconds(t.get("seconds")),
                      "images seen": t.get("images_seen"), "device": t.get("device"), "preset": info.get("preset"),
                      "oaviz": info.get("oaviz_version")})
    with b:
        st.markdown("**Final metrics**")
        metrics = info.get("metrics") or {}
        if metrics:
            _facts_table(metrics)
        else:
            st.caption("none recorded")
    if t.get("command"):
        st.markdown("**Reproduce with**")
        st.code(t["command"], language="bash", wrap_lines=True)
    with st.expander("Model config"):
        st.json(info.get("config") or {}, expanded=False)
    if state.selected_checkpoint() != str(card.entry.path):
        st.button("Explore this checkpoint", icon=":material/arrow_forward:", on_click=state.request_checkpoint,
                  args=(str(card.entry.path),), key=state.MODELS_USE)
