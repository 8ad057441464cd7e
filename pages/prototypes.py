"""Prototypes (VAESim): the decoded prototypes, what each cluster holds, and how VAESim compares with VAE + KMeans."""

from __future__ import annotations


import numpy as np
import pandas as pd
import plotly.graph_objects as go
import streamlit as st

from oaviz.errors import DataError
from oaviz.services.prototypes import matched_baseline_for
from oaviz.ui import cached, layout, loaders, readings, state
from oaviz.ui.images import to_uint8
from oaviz.ui.model_pick import Cap, can
from oaviz.ui.map_params import size_safe_params
from oaviz.ui.refs import ModelRef
from oaviz.ui.theme import KL_COLORS, PLOT_FONT, kl_color

COLUMNS = 8
ctx = layout.start_page("pages/prototypes.py", "VAESim learns K prototypes and assigns every knee to the most "
                        "similar one. Here: each prototype decoded, the grades in its cluster, its nearest real knees, "
                        "and how well the clusters follow the grades compared with a plain VAE clustered by KMeans.",
                        model=Cap.PROTOTYPES)
cohort, model_ref, cohort_ref = ctx.cohort, ctx.model.ref, ctx.cohort_ref
rep = cached.prototype_report(model_ref, cohort_ref, k=6)
table = rep.table
K = len(rep.decoded)

st.subheader("Decoded prototypes", anchor=False)
seen = readings.read(ctx, rep.decoded)
for start in range(0, K, COLUMNS):
    cols = st.columns(COLUMNS)
    for j, col in enumerate(cols):
        k = start + j
        if k >= K:
            break
        r = table.iloc[k]
        maj = "—" if pd.isna(r["majority_kl"]) else f"KL {int(r['majority_kl'])}"
        col.image(to_uint8(rep.decoded[k]), width="stretch",
                  caption=(f"#{k} · {int(r['size'])} knees · {maj} · purity {r['purity']:.0%}"
                           if r["size"] else f"#{k} · empty") + f"\n{seen.caption(k)}")
readings.explain(seen)

left, right = st.columns([3, 2])
with left:
    shares = [c for c in table.columns if c.startswith("share_kl")]
    fig = go.Figure()
    for c in shares:
        g = int(c[-1])
        fig.add_bar(x=[f"#{k}" for k in range(K)], y=table[c], name=f"KL {g}", marker_color=KL_COLORS[g])
    fig.update_layout(barmode="stack", height=320, font=PLOT_FONT, margin=dict(l=10, r=10, t=40, b=10),
                      title="KL mix of each cluster", yaxis=dict(title="share", tickformat=".0%"),
                      legend=dict(orientation="h", y=1.12))
    st.plotly_chart(fig, key="proto.mix")
with right:
    sim = go.Figure(go.Heatmap(z=rep.similarity, x=[f"#{k}" for k in range(K)], y=[f"#{k}" for k in range(K)],
                               colorscale="RdBu", zmid=0, zmin=-1, zmax=1,
                               hovertemplate="%{y} vs %{x}: cosine %{z:.2f}<extra></extra>"))
    sim.update_layout(height=320, font=PLOT_FONT, margin=dict(l=10, r=10, t=40, b=10),
                      title="Prototype similarity (cosine)", yaxis=dict(autorange="reversed"))
    st.plotly_chart(sim, key="proto.similarity")

st.dataframe(table, hide_index=True, width="stretch",
             column_config={c: st.column_config.NumberColumn(format="%.2f") for c in table.columns
                            if c.startswith("share") or c in ("purity", "mean_cosine")})

st.subheader("Nearest real knees", anchor=False)
k = st.selectbox("Prototype", range(K), key=state.PROTO_PICK + ".nearest", format_func=lambda i: f"prototype {i}")
cols = st.columns(1 + rep.nearest_rows.shape[1])
cols[0].image(to_uint8(rep.decoded[k]), caption=f"prototype {k}", width="stretch")
meta = cohort.metadata
for col, row in zip(cols[1:], rep.nearest_rows[k]):
    m = meta.iloc[int(row)]
    grade = "" if pd.isna(m["kl"]) else f" · KL {int(m['kl'])}"
    col.image(cohort.images[int(row)], caption=f"{m['image_id']}{grade}", width="stretch")

st.subheader("Map with the prototypes", anchor=False)
method = st.radio("Projection", ["tsne", "umap", "pca"], horizontal=True, key=state.PROTO_PICK + ".method",
                  format_func={"tsne": "t-SNE", "umap": "UMAP", "pca": "PCA"}.get)
lm = cached.latent_map(model_ref, cohort_ref, method, size_safe_params(method, min(len(cohort), 3000)), 3000, 0)
P = lm.projector.transform(rep.prototypes.astype(np.float32))
t = lm.table
fig = go.Figure()
colour = t["kl"] if "kl" in t and t["kl"].notna().any() else None
fig.add_scattergl(x=t["x"], y=t["y"], mode="markers", name="knees", marker=dict(
    size=5, opacity=0.6, color=[kl_color(g) for g in colour] if colour is not None else "#888"),
    text=t["image_id"], hovertemplate="%{text}<extra></extra>")
fig.add_scatter(x=P[:, 0], y=P[:, 1], mode="markers+text", name="prototypes", text=[f"#{i}" for i in range(K)],
                textposition="top center", marker=dict(symbol="star", size=16, color="black",
                                                       line=dict(color="white", width=1)))
fig.update_layout(height=480, font=PLOT_FONT, margin=dict(l=10, r=10, t=30, b=10), legend=dict(orientation="h"))
st.plotly_chart(fig, key="proto.map")
if lm.subsampled:
    st.caption(lm.subsampled)
st.caption(f"{method.upper()} seed {lm.seed}; knees coloured by rater KL. Prototypes are placed with the "
           "projection's transform (t-SNE has none: each is placed at the distance-weighted mean of its nearest "
           "knees).")

st.subheader("VAESim against VAE + KMeans", anchor=False)
vae_names = {str(e.path): e.label if e.origin == "zoo" else e.path.name for e in loaders.checkpoint_entries()
             if can(e, Cap.VECTOR_LATENT) and not can(e, Cap.PROTOTYPES)}
vae_paths = list(vae_names)
vae_path, mismatches = matched_baseline_for(model_ref.path, vae_paths)
if vae_path is None:
    st.info("A β-VAE checkpoint is needed for the VAE + KMeans baseline.")
else:
    if mismatches:
        st.warning(f"No β-VAE matches this VAESim; the closest ({vae_names[vae_path]}) differs in "
                   f"{'; '.join(mismatches)}, so part of any difference is the architecture, not the prototypes.")
    else:
        st.caption(f"Baseline **{vae_names[vae_path]}**: the same encoder, decoder, β and reconstruction weight "
                   "as this VAESim, without the prototypes (the paper's matched VAE).")
    if st.toggle("Compute the comparison (a few seconds)", key=state.PROTO_COMPARE):
        try:
            cmp = cached.clustering_comparison(model_ref, ModelRef.of(vae_path), cohort_ref)
        except DataError as e:
            st.info(f"No comparison on this cohort: {e.reason}")
            st.stop()
        st.dataframe(cmp, hide_index=True, width="stretch",
                     column_config={c: st.column_config.NumberColumn(format="%.3f") for c in
                                    ("statistical_mapping_accuracy", "knn_accuracy", "linear_accuracy", "nmi")})
        elbow = cmp[cmp["K_rule"].str.startswith("elbow")]["K"]
        st.caption(f"KMeans on the baseline's latents with K = {K} "
                   f"(VAESim's K)" + (f" and K = {int(elbow.iloc[0])} (the elbow of its inertia curve)"
                                      if len(elbow) else "") +
                   ". Every figure is held out: the cluster → grade map, KMeans, kNN (k = 5) and the linear probe "
                   "are fitted on the train split and scored on the test split.")
