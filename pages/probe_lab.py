"""Probe lab: frozen latents + a simple classifier against raw pixels, random features and an end-to-end CNN,
under label scarcity and label noise; and the dual-head (OA/KL hierarchy) comparison."""

from __future__ import annotations

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots
import streamlit as st

from oaviz.errors import DataError
from oaviz.services import jobs as job_service
from oaviz.services.probe_lab import dual_head_checkpoints, read_probe_results, start_cnn_job, summarise
from oaviz.ui import cached, jobs_panel, layout, loaders, state
from oaviz.ui.demo import demo_mode
from oaviz.ui.images import overlay, resized
from oaviz.ui.model_pick import Cap, can
from oaviz.ui.navigation import page_by_file
from oaviz.ui.theme import PLOT_FONT, kl_color

FRACTIONS = [0.05, 0.1, 0.25, 0.5, 1.0]
PALETTE = ["#2f6fae", "#dd8452", "#55a868", "#c44e52", "#8172b3", "#937860", "#da8bc3"]
PAGE = page_by_file("pages/probe_lab.py")
layout.page_header(PAGE.title, "Do frozen latent codes carry the disease? Train a simple classifier on them with "
                   "few labels or noisy labels, against raw pixels, random features and an end-to-end CNN trained "
                   "on the same labels; and compare single- and dual-head (OA/KL) supervision.", PAGE.icon)
cohort = layout.current_cohort()
if cohort is None:
    st.stop()
cohort_path = str(cohort.path)
if not cohort.has_kl and cohort.metadata["label"].isna().all():
    st.info("This cohort has no labels to probe.")
    st.stop()

tab_grid, tab_hier = st.tabs(["Label scarcity and noise", "OA/KL hierarchy (dual head)"])


def feature_options() -> dict[str, str]:
    """{value passed to the service: label shown}."""
    out = {str(e.path): f"{e.path.name} ({e.model_type})" for e in loaders.checkpoint_entries()
           if can(e, Cap.PROBE_FEATURES)}
    out["raw"] = "raw pixels (32×32, standardised)"
    out["random"] = "random N(0, I) features"
    return out


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


with tab_grid:
    with st.form("probe.form", border=True):
        c = st.columns(3)
        lo, hi = c[0].select_slider("Label fractions", FRACTIONS, value=(0.05, 1.0), key=state.PROBE_FRACTIONS,
                                    format_func=lambda f: f"{f:.0%}", help="The grid uses every step of "
                                    "5/10/25/50/100 % within this range; subsets are stratified and nested.")
        noise = c[1].slider("Label noise", 0.0, 0.5, 0.1, 0.05, key=state.PROBE_NOISE,
                            help="Each setting is run clean and with this share of training labels corrupted.")
        seeds = c[2].slider("Seeds", 1, 10, 5, key=state.PROBE_SEEDS)
        c = st.columns(4)
        target = c[0].radio("Target", ["oa", "kl"], key=state.PROBE_TARGET, horizontal=True,
                            format_func={"oa": "OA (KL ≥ 2)", "kl": "KL grade"}.get, disabled=not cohort.has_kl)
        noise_kind = c[1].radio("Noise", ["symmetric", "adjacent"], key=state.PROBE_NOISE_KIND,
                                help="symmetric: OA labels flipped at random. adjacent: KL grades moved to a "
                                     "neighbouring grade before binarising, as rater disagreement does.")
        options = feature_options()
        default = [k for k in options if k not in ("raw", "random")][:1] + ["raw", "random"]   # first bundled
        features = c[2].multiselect("Feature sets", list(options), default=default, key=state.PROBE_FEATURES,
                                    format_func=options.get)
        classifier = c[3].selectbox("Classifier", ["logreg", "knn", "linear"], key=state.PROBE_CLASSIFIER,
                                    format_func={"logreg": "logistic regression", "knn": "k-NN (k = 5)",
                                                 "linear": "linear layer (torch)"}.get)
        submitted = st.form_submit_button("Run the probes", type="primary", icon=":material/play_arrow:")
    fractions = [f for f in FRACTIONS if lo <= f <= hi]
    noise_levels = sorted({0.0, float(noise)})
    if not cohort.has_kl:
        target = "oa"
    if not features:
        st.info("Pick at least one feature set.")
    else:
        try:
            df = cached.frozen_grid(cohort_path, features, target, fractions, noise_levels, noise_kind, seeds,
                                    classifier)
        except DataError as e:  # e.g. a cohort with ten classes and no KL grades: nothing binary to probe
            st.error(f"These probes cannot run on this cohort: {e}", icon=":material/error:")
            st.stop()
        cnn_parts = []
        for run in st.session_state.get(state.PROBE_JOBS, []):
            job = job_service.read_job(run)
            res = read_probe_results(job.output) if job.status == "finished" and job.output else None
            if res is not None and set(res["noise_kind"]) == {noise_kind}:
                cnn_parts.append(res)
        full = pd.concat([df, *cnn_parts], ignore_index=True) if cnn_parts else df
        summary = summarise(full)
        metrics = sorted(summary["metric"].unique())
        metric = st.segmented_control("Metric", metrics, default="auc" if "auc" in metrics else metrics[0],
                                      key=state.PROBE_METRIC) or metrics[0]
        labels = {k: v.split(" (")[0] for k, v in options.items()}
        st.plotly_chart(curves(summary, metric, labels), key="probe.curves")
        st.caption("The camera icon of each figure downloads it as PNG. The CNN rows appear when its job is done.")
        wide = summary[summary["metric"] == metric].pivot_table(index=["feature", "noise"], columns="fraction",
                                                                values="mean").reset_index()
        wide["feature"] = wide["feature"].map(lambda f: labels.get(f, f))
        wide.columns = [f"{c:.0%}" if isinstance(c, float) else c for c in wide.columns]
        st.dataframe(wide, hide_index=True, width="stretch",
                     column_config={c: st.column_config.NumberColumn(format="%.3f") for c in wide.columns
                                    if c.endswith("%")})
        d = st.columns(2)
        d[0].download_button("Results (tidy CSV)", full.to_csv(index=False).encode(), "probe_results.csv",
                             "text/csv", icon=":material/download:", key="probe.dl.results")
        d[1].download_button("Summary (mean ± std CSV)", summary.to_csv(index=False).encode(), "probe_summary.csv",
                             "text/csv", icon=":material/download:", key="probe.dl.summary")

        st.markdown("**End-to-end CNN on the same labels** (trained from scratch for every cell: a job)")
        capped = demo_mode()
        if st.button("Start the CNN arm", key="probe.cnn.start", icon=":material/model_training:",
                     help="Runs `oaviz probe --cnn` in its own process with these settings"
                          + (" (public demo: 1 seed, 5 epochs)" if capped else "")):
            job = start_cnn_job(cohort_path, target=target, fractions=fractions, noise=noise_levels,
                                noise_kind=noise_kind, seeds=1 if capped else seeds, epochs=5 if capped else None)
            state.remember_job(state.PROBE_JOBS, str(job.run_dir))
        if st.session_state.get(state.PROBE_JOBS):
            jobs_panel.live_jobs(lambda: [job_service.read_job(r) for r in st.session_state.get(state.PROBE_JOBS, [])],
                                 key="probe", show_curve=False)

with tab_hier:
    variants = {v: str(p) for v, p in dual_head_checkpoints().items()}
    if len(variants) < 2:
        st.info("The comparison needs at least two dual-head checkpoints (single_oa, single_kl, dual). Train them "
                "on the Models & training page.")
    elif not cohort.has_kl:
        st.info("The hierarchy comparison needs KL grades.")
    elif st.toggle(f"Compare {', '.join(sorted(variants))} on the test split", key=state.PROBE_HIER_RUN):
        rep = cached.hierarchy(variants, cohort_path)
        st.dataframe(rep.metrics, hide_index=True, width="stretch",
                     column_config={c: st.column_config.NumberColumn(format="%.3f") for c in rep.metrics.columns
                                    if rep.metrics[c].dtype.kind == "f"})
        c = st.columns(2)
        c[0].markdown("McNemar's test on the OA decisions")
        c[0].dataframe(rep.mcnemar, hide_index=True, width="stretch")
        c[1].markdown("Paired bootstrap: difference a − b with 95 % CI")
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
                   "order along PC1 is in the table above.")
        if rep.saliency:
            st.markdown(f"**Gradient saliency of the OA score** (joint-space mask: {rep.mask_source})")
            for n, sal in rep.saliency.items():
                cols = st.columns(len(sal.share) + 1)
                cols[0].metric(n, f"{np.mean(sal.share):.0%}", help=f"Share of |∂ OA logit / ∂ x| inside the "
                               f"joint-space mask; a uniform map would give {np.mean(sal.mask_area):.0%}.")
                imgs = cohort.images[rep.saliency_rows]
                for j, col in enumerate(cols[1:]):
                    base = resized(imgs[j], sal.saliency.shape[-1])
                    col.image(overlay(base, sal.saliency[j]), caption=f"{sal.share[j]:.0%} in mask", width="stretch")
