"""Probe lab pieces: the label-scarcity curves and the dual-head (OA/KL hierarchy) report."""

from __future__ import annotations

import pandas as pd
import plotly.graph_objects as go
import streamlit as st
from plotly.subplots import make_subplots

from oaviz.data.cohort import Cohort
from oaviz.ui.images import overlay, resized
from oaviz.ui.theme import PLOT_FONT, kl_color

FRACTIONS = [0.05, 0.1, 0.25, 0.5, 1.0]
PALETTE = ["#2f6fae", "#dd8452", "#55a868", "#c44e52", "#8172b3", "#937860", "#da8bc3"]


def curves(summary: pd.DataFrame, metric: str, labels: dict[str, str]) -> go.Figure:
    """Metric against label fraction, one colour per feature set, solid clean / dashed noisy, ±1 std bars."""
    fig = go.Figure()
    s = summary[summary["metric"] == metric]
    for i, (feat, part) in enumerate(s.groupby("feature", sort=False)):
        for noise, p in part.groupby("noise"):
            p = p.sort_values("fraction")
            fig.add_scatter(x=p["fraction"], y=p["mean"], error_y=dict(type="data", array=p["std"], visible=True),
                            mode="lines+markers", name=f"{labels.get(feat, feat)} · noise {noise:.0%}",
                            line=dict(color=PALETTE[i % len(PALETTE)], dash="dash" if noise > 0 else "solid"))
    fig.update_layout(height=420, font=PLOT_FONT, margin=dict(l=10, r=10, t=40, b=10), title=f"{metric} on the test split",
                      xaxis=dict(title="share of training labels used", type="log", tickformat=".0%",
                                 tickvals=FRACTIONS),
                      yaxis=dict(title=metric), legend=dict(font=dict(size=11)))
    return fig


def hierarchy_report(rep, cohort: Cohort) -> None:
    """A HierarchyReport (services.hierarchy): metrics, paired tests, PCA of the features, saliency in the mask."""
    st.dataframe(rep.metrics, hide_index=True, width="stretch",
                 column_config={c: st.column_config.NumberColumn(format="%.3f") for c in rep.metrics.columns
                                if rep.metrics[c].dtype.kind == "f"})
    st.caption("KL accuracy and F1 score the most probable grade; kl_qwk (quadratic-weighted κ) scores the "
               "expected grade rounded, the call that minimises the expected squared grade error κ penalises.")
    c = st.columns(2)
    c[0].markdown("McNemar's test on the OA decisions, clustered by subject")
    c[0].dataframe(rep.mcnemar, hide_index=True, width="stretch")
    c[1].markdown("Paired bootstrap over subjects: difference a − b, 95 % CI and p")
    c[1].dataframe(rep.bootstrap, hide_index=True, width="stretch")
    names = list(rep.metrics["variant"])
    rho = dict(zip(rep.metrics["variant"], rep.metrics["pc1_rho"]))
    fig = make_subplots(1, len(names), subplot_titles=[f"{n}: PC1 ρ with KL = {rho[n]:.2f}" for n in names])
    for i, n in enumerate(names, start=1):
        p = rep.pca[rep.pca["variant"] == n]
        fig.add_scattergl(x=p["pc1"], y=p["pc2"], mode="markers", row=1, col=i, showlegend=False,
                          marker=dict(size=5, color=[kl_color(g) for g in p["kl"]], opacity=0.75),
                          text=p["image_id"], hovertemplate="%{text}<extra></extra>")
    fig.update_layout(height=360, font=PLOT_FONT, margin=dict(l=10, r=10, t=40, b=10))
    st.plotly_chart(fig, key="probe.hier.pca")
    st.caption("PCA of each model's penultimate features on the test split, knees coloured by KL. The centroid "
               "order along PC1 is in the table above. Each variant here is one training run (one seed): a "
               "difference between variants is a finding only if it holds over seeds (README).")
    if rep.saliency:
        st.markdown(f"**Gradient saliency of the OA score** (joint-space mask: {rep.mask_source})")
        whole = rep.saliency_summary.set_index("variant")
        for n, sal in rep.saliency.items():
            w = whole.loc[n]
            cols = st.columns(len(sal.share) + 1)
            cols[0].metric(n, f"{w['share']:.0%}", help=f"Share of |∂ OA logit / ∂ x| inside the joint-space mask "
                           f"over all {int(w['n'])} test images (95 % CI {w['lo']:.0%}–{w['hi']:.0%}, subjects "
                           f"resampled); a uniform map would give {w['uniform']:.0%}.")
            imgs = cohort.images[rep.saliency_rows]
            for j, col in enumerate(cols[1:]):
                base = resized(imgs[j], sal.saliency.shape[-1])
                col.image(overlay(base, sal.saliency[j]), caption=f"{sal.share[j]:.0%} in mask", width="stretch")
