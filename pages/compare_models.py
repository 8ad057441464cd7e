"""Compare models: two latent maps of the same cohort with linked selection, their structure and probes side by side."""

from __future__ import annotations

import functools

import numpy as np
import streamlit as st

from oaviz.errors import DataError
from oaviz.services.latent_map import selection_stats
from oaviz.services.probe_lab import probe_labels, summarise
from oaviz.ui import cached, layout, loaders, state
from oaviz.ui.linked_selection import SIDES, default_pair, highlight_trace, link, on_map, relative_spread
from oaviz.ui.map_figure import latent_map_figure, selected_points, severity_map_figure
from oaviz.ui.model_pick import Cap, can
from oaviz.ui.probe_views import FRACTIONS, curves
from oaviz.ui.refs import ModelRef

METHODS = {"pca": "PCA", "umap": "UMAP", "tsne": "t-SNE"}
COLOURS = ("kl", "kl_true", "oa", "severity", "jsw_mm", "pred_kl", "split", "side", "visit_month", "label")
MAX_POINTS, SEED = 5000, 0   # the same budget and seed on both sides: both maps show the same knees

ctx = layout.start_page("pages/compare_models.py", "Two models' latent maps of the same cohort side by side. "
                        "Lasso or box a group on one map and the same knees light up on the other: does the second "
                        "model keep them together? Below, how far to trust each map and what each model's frozen "
                        "latents tell a simple classifier.")
cohort, cohort_ref = ctx.cohort, ctx.cohort_ref
entries = [e for e in loaders.checkpoint_entries() if can(e, Cap.EMBED)]
if len(entries) < 2:
    st.info("Comparing needs two checkpoints that embed knees; train one on the **Models & training** page.",
            icon=":material/info:")
    st.stop()
labels = {str(e.path): e.label for e in entries}
paths = list(labels)
first = default_pair(paths)

c = st.columns([1.4, 1.4, 1.3, 0.9])
chosen = [c[i].selectbox(f"{side.title()} model", paths, index=first[i], key=key, format_func=labels.get)
          for i, (side, key) in enumerate(zip(SIDES, (state.COMPARE_A, state.COMPARE_B)))]
method = c[2].segmented_control("Projection", list(METHODS), format_func=METHODS.get, default="pca",
                                key=state.COMPARE_METHOD) or "pca"
if chosen[0] == chosen[1]:
    st.warning("Both sides show the same checkpoint: pick another one on one side.", icon=":material/warning:")
refs = [ModelRef.of(p) for p in chosen]
maps = [cached.latent_map(r, cohort_ref, method, {}, MAX_POINTS, SEED) for r in refs]
colours = [k for k in COLOURS if all(k in m.table and m.table[k].notna().any() for m in maps)]
colour = c[3].selectbox("Colour by", colours, key=state.COMPARE_COLOR) if colours else None
if maps[0].subsampled:
    st.caption(f"Both maps: {maps[0].subsampled}.")


def _selected(side: str) -> None:
    """A map's selection changed: it becomes the shared one (or clears it, if that map had made it)."""
    rows, _ = selected_points(st.session_state.get(f"compare.map.{side}"))
    st.session_state[state.COMPARE_SELECTION] = link(st.session_state.get(state.COMPARE_SELECTION), side, rows,
                                                     cohort.fingerprint)


sel = st.session_state.get(state.COMPARE_SELECTION)
if sel is not None and (sel.cohort != cohort.fingerprint or on_map(maps[0].table, sel.rows).empty):
    sel = None  # picked on another cohort (or on knees neither map shows)
cols = st.columns(2)
for side, col, lm, path in zip(SIDES, cols, maps, chosen):
    with col:
        st.markdown(f"**{labels[path]}** · {METHODS[method]} of {len(lm.table):,} {lm.model_type} latents "
                    f"({lm.Z.shape[1]}-D)")
        extra = [highlight_trace(lm.table, sel.rows, sel.source == side)] if sel else []
        st.plotly_chart(latent_map_figure(lm.table, colour or "row", extra, height=480), key=f"compare.map.{side}",
                        on_select=functools.partial(_selected, side), selection_mode=("points", "box", "lasso"))
        if sel:
            spread = relative_spread(lm.table, sel.rows)
            st.metric("Spread of the selection on this map", "—" if np.isnan(spread) else f"{spread:.2f}",
                      help="Mean distance of the selected knees to their centroid over the same for all knees "
                           "of the map: near 0 the model keeps them together, near 1 they are scattered like the "
                           "whole cohort.", border=True)

if sel:
    shown = on_map(maps[0].table, sel.rows)
    stats = selection_stats(cohort, maps[0], shown["row"].tolist())
    s = st.columns([3, 1], vertical_alignment="center")
    s[0].markdown(f"**Selection: {stats.n} knees**, picked on the {sel.source} map")
    if s[1].button("Clear the selection", key="compare.clear", icon=":material/deselect:"):
        st.session_state.pop(state.COMPARE_SELECTION, None)
        st.rerun()
    mix = stats.grade_mix[stats.grade_mix["count"] > 0]
    st.dataframe(mix, hide_index=True, width="stretch",
                 column_config={"percent": st.column_config.NumberColumn(format="%.0f%%")})
else:
    st.caption("Lasso or box a group of knees on either map (or click one) to see the same knees on the other.")

# ----------------------------------------------------------------- structure, side by side
st.subheader("How far to trust each map", anchor=False)
cols = st.columns(2)
for col, lm, path in zip(cols, maps, chosen):
    col.caption(labels[path])
    col.dataframe(lm.structure, hide_index=True, width="stretch",
                  column_config={"value": st.column_config.NumberColumn(format="%.3f")})
if cohort.has_kl:
    cols = st.columns(2)
    for side, col, ref in zip(SIDES, cols, refs):
        sev = cached.severity_map(ref, cohort_ref)
        col.plotly_chart(severity_map_figure(sev.table, height=360), key=f"compare.severity.{side}")
        col.caption(f"Severity axis ({sev.stats.method}, fitted on train): held-out Spearman ρ with KL "
                    f"{sev.stats.spearman_kl:.2f} on {sev.stats.eval_split}.")

# ----------------------------------------------------------------- probes, side by side
st.subheader("Frozen-latent probes", anchor=False)
probe_ok = all(can(e, Cap.PROBE_FEATURES) for e in entries if str(e.path) in chosen)
try:
    probe_labels(cohort, "oa")
    no_labels = None
except DataError as e:   # said once for both sides, without the cohort's server path
    no_labels = e.reason
if not probe_ok:
    st.info("One of the models has no features the Probe lab offers (PROBE_FEATURES).")
elif no_labels:
    st.info(f"The OA probes cannot run on this cohort: {no_labels}.", icon=":material/info:")
elif st.toggle("OA probe: logistic regression on each model's latents against raw pixels, 5 label fractions, "
               "clean and 10 % noisy labels, 5 seeds", value=True, key=state.COMPARE_PROBES):
    cols = st.columns(2)
    for side, col, ref in zip(SIDES, cols, refs):
        try:
            df = cached.frozen_grid(cohort_ref, (ref, "raw"), "oa", tuple(FRACTIONS), (0.0, 0.1), "symmetric", 5,
                                    "logreg")
        except DataError as e:
            col.error(f"The probes cannot run on this cohort: {e.reason}", icon=":material/error:")
            continue
        fig = curves(summarise(df), "auc", {"raw": "raw pixels"})
        fig.update_yaxes(range=[0.4, 1.0])  # one scale on both sides
        col.plotly_chart(fig, key=f"compare.probe.{side}")
