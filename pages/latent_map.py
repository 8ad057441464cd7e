"""Latent map: the cohort's latent codes in 2-D, coloured by anything known; select, inspect, decode anywhere."""

from __future__ import annotations

import plotly.graph_objects as go
import streamlit as st

from oaviz.services.exports import csv_bytes
from oaviz.errors import ConfigError, DataError
from oaviz.services.latent_map import decode_at, neighbours, selection_stats
from oaviz.ui import cached, cohort_notes, layout, readings, state
from oaviz.ui.images import overlay, to_uint8
from oaviz.ui.knee_picker import UPLOAD_TYPES
from oaviz.ui.map_figure import latent_map_figure, selected_points, severity_map_figure
from oaviz.ui.map_params import param_controls, zoom_controls
from oaviz.ui.strips import knee_strip
from oaviz.ui.model_pick import Cap
from oaviz.ui.demo import redact

METHODS = {"pca": "PCA", "umap": "UMAP", "tsne": "t-SNE"}
PREFERRED_COLOURS = ("kl", "kl_true", "oa", "severity", "jsw_mm", "pred_kl", "cluster", "recon_error", "subject_id",
                     "visit_month", "side", "split", "progressor", "label")
ctx = layout.start_page("pages/latent_map.py", "Every knee of the cohort as one point: its latent code projected "
                        "to 2-D. Colour by any known column, lasso a group to see what it holds, click a knee to "
                        "inspect it, click an empty spot to see what the model decodes there.", model="any")
cohort, model, cohort_ref = ctx.cohort, ctx.model, ctx.cohort_ref
cohort_notes.say_missing(cohort, "kl_true", "progression")

# ----------------------------------------------------------------- controls
c = st.columns([1.2, 1.4, 1, 1])
method = c[0].segmented_control("Projection", list(METHODS), format_func=METHODS.get, default="pca",
                                key=state.MAP_METHOD) or "pca"
max_points = c[2].select_slider("Points at most", [1000, 2000, 5000, 10000, 20000, 50000, "all"], value=50000,
                                key=state.MAP_MAX_POINTS, help="Above this the map shows a seeded random subsample "
                                "(and says so). Up to 50,000 knees are drawn one by one; with 'all' above that, "
                                "their density and the points of a zoom window.")
max_points = None if max_points == "all" else int(max_points)
seed = int(c[3].number_input("Seed", 0, 2**31 - 1, 0, key=state.MAP_PARAMS + ".seed"))
params = param_controls(method, METHODS[method], min(len(cohort), max_points or len(cohort)))
lm = cached.latent_map(model.ref, cohort_ref, method, params, max_points, seed)
table = lm.table
colours = [col for col in PREFERRED_COLOURS if col in table and table[col].notna().any()]
colour = c[1].selectbox("Colour by", colours, key=state.MAP_COLOR)

if lm.subsampled:
    st.warning(lm.subsampled, icon=":material/filter_alt:")
view = zoom_controls(table)  # None up to MAX_DRAWN knees; above, the window whose knees are drawn as points
shown = ", ".join(f"{k}={v}" for k, v in lm.params.items() if k not in ("n_jobs",))
st.caption(f"{METHODS[method]} of {len(table):,} {model.model_type} latents ({lm.Z.shape[1]}-D) · {shown} · "
           f"seed {lm.seed} · {'from cache' if lm.cached else 'computed'} in {lm.timings.get('total_s', 0):.1f} s")

# ----------------------------------------------------------------- upload
upload = None
with st.expander("Upload a knee (PNG, JPEG or DICOM) and see where it lands"):
    f = st.file_uploader("Knee radiograph", type=UPLOAD_TYPES, key=state.MAP_UPLOAD)
    if f is not None:
        try:
            upload = cached.embed_upload(model.ref, cohort_ref, method, params, max_points, seed, f.getvalue(), f.name)
        except (DataError, ConfigError, ValueError) as e:  # a bad upload is reported in place; the page goes on
            st.error(f"Cannot place {f.name}: {redact(str(e))}", icon=":material/error:")

extra = []
if upload is not None:
    extra.append(go.Scatter(x=[upload.x], y=[upload.y], mode="markers+text", name="your upload", text=["upload"],
                            textposition="top center", customdata=[-2], hoverinfo="skip",
                            marker=dict(symbol="star", size=20, color="#ff4d6d", line=dict(color="white", width=1))))

# ----------------------------------------------------------------- the map
left, right = st.columns([3, 2])
with left:
    fig = latent_map_figure(table, colour, extra, view=view)
    event = st.plotly_chart(fig, key=state.MAP_CHART, on_select="rerun", selection_mode=("points", "box", "lasso"))
    rows, spot = selected_points(event)
    st.caption("Lasso or box (the tools at the map's top right): statistics of a group. Click a knee: its "
               "detail. Click an empty spot: the latent decoded there. Clicks work in the zoom and pan tools.")

meta = cohort.metadata
with right:
    if upload is not None:
        st.markdown("**Your upload**")
        u = st.columns(2)
        u[0].image(to_uint8(upload.image), caption="as preprocessed", width="stretch")
        if upload.recon is not None:
            u[1].image(to_uint8(upload.recon), caption=f"reconstruction (MSE {upload.recon_error:.4f})",
                       width="stretch")
        st.markdown("Nearest knees in latent space")
        knee_strip(cohort, upload.neighbours, 4)
    if len(rows) > 1:
        stats = selection_stats(cohort, lm, rows)
        st.markdown(f"**Selection: {stats.n} knees**")
        mix = stats.grade_mix[stats.grade_mix["count"] > 0]
        st.dataframe(mix, hide_index=True, width="stretch",
                     column_config={"percent": st.column_config.NumberColumn(format="%.0f%%")})
        of = "" if stats.mean_of == stats.n else f" ({stats.mean_of:,} of its {stats.n:,} knees, random)"
        st.image(to_uint8(stats.mean_image), caption=f"mean image of the selection{of}", width=220)
        st.download_button("Export the selection (CSV)", csv_bytes(stats.table),
                           "selection.csv", "text/csv", icon=":material/download:", key="map.export")
    elif len(rows) == 1:
        st.session_state[state.MAP_DETAIL] = rows[0]
    if spot is not None:
        st.session_state[state.MAP_DECODE_AT] = spot
    detail = st.session_state.get(state.MAP_DETAIL)
    if len(rows) <= 1 and detail is not None and detail in set(table["row"]):
        m = meta.iloc[int(detail)]
        st.markdown(f"**Knee `{m['image_id']}`**")
        if Cap.VECTOR_LATENT in model.capabilities:
            o, r, e = cached.reconstruct(model.ref, cohort_ref, [int(detail)])
            k = st.columns(3)
            k[0].image(to_uint8(o[0]), caption="original", width="stretch")
            k[1].image(to_uint8(r[0]), caption="reconstruction", width="stretch")
            k[2].image(overlay(o[0], e[0]), caption="error", width="stretch")
        else:
            st.image(cohort.images[int(detail)], width=220)
        st.dataframe(m.drop(labels=[c for c in ("landmarks",) if c in m]).astype(str).rename("value"),
                     width="stretch")
        st.markdown("Nearest knees in latent space")
        knee_strip(cohort, neighbours(lm, int(detail), k=6))
        b = st.columns(2)
        if b[0].button("Interpolate from this knee", key="map.to_interp_a", icon=":material/linear_scale:"):
            st.session_state[state.INTERP_A] = int(detail)
            st.switch_page("pages/interpolation.py")
        if b[1].button("Interpolate to this knee", key="map.to_interp_b", icon=":material/linear_scale:"):
            st.session_state[state.INTERP_B] = int(detail)
            st.switch_page("pages/interpolation.py")
    decode_spot = st.session_state.get(state.MAP_DECODE_AT)
    if len(rows) <= 1 and decode_spot is not None and Cap.VECTOR_LATENT in model.capabilities:
        x, y = decode_spot
        dp = decode_at(model.loaded, lm, x, y)
        near = meta.iloc[dp.nearest_row]
        st.markdown(f"**Decoded at ({x:.2f}, {y:.2f})**")
        d = st.columns(2)
        seen = readings.read(ctx, dp.image[None])
        d[0].image(to_uint8(dp.image), caption=f"decoded latent\n{seen.caption(0)}", width="stretch")
        d[1].image(cohort.images[dp.nearest_row], caption=f"nearest real knee {near['image_id']} "
                   f"({dp.nearest_distance_2d:.2f} away on the map)", width="stretch")
        st.caption("PCA decodes the exact inverse; UMAP and t-SNE have none, so the latent is the distance-"
                   "weighted mean of the nearest knees' latents.")

# ----------------------------------------------------------------- severity-aligned view
if cohort.has_kl and Cap.VECTOR_LATENT in model.capabilities:
    st.subheader("Severity-aligned view", anchor=False)
    sev = cached.severity_map(model.ref, cohort_ref)
    st.plotly_chart(severity_map_figure(sev.table), key="map.severity")
    st.caption(f"x: each knee on the {sev.stats.method} severity axis, fitted on the train split (side removed); "
               f"held-out Spearman ρ with KL on the {sev.stats.eval_split} split {sev.stats.spearman_kl:.2f}. "
               f"y: the main direction of what remains ({sev.y_variance_share:.0%} of its variance): what the "
               "latent space holds besides the disease (Latent Space Cartography).")

# ----------------------------------------------------------------- how far to trust it
st.subheader("How far to trust the picture", anchor=False)
st.dataframe(lm.structure, hide_index=True, width="stretch",
             column_config={"value": st.column_config.NumberColumn(format="%.3f")})
