"""Probe lab: frozen latents + a simple classifier against raw pixels, random features and an end-to-end CNN,
under label scarcity and label noise; and the dual-head (OA/KL hierarchy) comparison."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from oaviz.services.exports import csv_bytes
from oaviz.errors import DataError
from oaviz.services import jobs as job_service
from oaviz.services import zoos
from oaviz.services.hierarchy import dual_head_checkpoints
from oaviz.services.probe_lab import read_probe_results, start_cnn_job, summarise
from oaviz.ui import cached, jobs_panel, layout, loaders, state
from oaviz.ui.demo import demo_mode, redact
from oaviz.ui.probe_views import FRACTIONS, curves, hierarchy_report
from oaviz.ui.model_pick import Cap, can, name_in_sidebar
from oaviz.ui.refs import ModelRef

ctx = layout.start_page("pages/probe_lab.py", "Do frozen latent codes carry the disease? Train a simple classifier "
                        "on them with few labels or noisy labels, against raw pixels, random features and an "
                        "end-to-end CNN trained on the same labels; and compare single- and dual-head (OA/KL) "
                        "supervision.")
cohort, cohort_path, cohort_ref = ctx.cohort, ctx.cohort_path, ctx.cohort_ref
if not cohort.has_kl and cohort.metadata["label"].isna().all():
    st.info("This cohort has no labels to probe.")
    st.stop()

tab_grid, tab_hier = st.tabs(["Label scarcity and noise", "OA/KL hierarchy (dual head)"])


def feature_options() -> dict[str, str]:
    """{value passed to the service: label shown}."""
    out = {str(e.path): f"{e.label if e.origin == 'zoo' else e.path.name} ({e.model_type})"   # the set's first
           for e in zoos.set_first(loaders.checkpoint_entries(), state.selected_model_set())
           if can(e, Cap.PROBE_FEATURES)}
    out["raw"] = "raw pixels (32×32, standardised)"
    out["random"] = "random N(0, I) features"
    return out


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
    by_path = {str(e.path): e for e in loaders.checkpoint_entries()}
    for f in features:                          # the sidebar names the checkpoints this page probes
        if f in by_path:
            name_in_sidebar(by_path[f])
    fractions = [f for f in FRACTIONS if lo <= f <= hi]
    noise_levels = sorted({0.0, float(noise)})
    if not cohort.has_kl:
        target = "oa"
    if not features:
        st.info("Pick at least one feature set.")
    else:
        try:
            refs = tuple(f if f in ("raw", "random") else ModelRef.of(f) for f in features)
            df = cached.frozen_grid(cohort_ref, refs, target, fractions, noise_levels, noise_kind, seeds, classifier)
        except DataError as e:  # e.g. a cohort with ten classes and no KL grades: nothing binary to probe
            st.error(f"These probes cannot run on this cohort: {redact(str(e))}", icon=":material/error:")
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
        d[0].download_button("Results (tidy CSV)", csv_bytes(full), "probe_results.csv",
                             "text/csv", icon=":material/download:", key="probe.dl.results")
        d[1].download_button("Summary (mean ± std CSV)", csv_bytes(summary), "probe_summary.csv",
                             "text/csv", icon=":material/download:", key="probe.dl.summary")

        st.markdown("**End-to-end CNN on the same labels** (trained from scratch for every cell: a job; every "
                    "label fraction gets the same number of optimiser steps, as many as the preset's epochs over "
                    "the full training split)")
        capped = demo_mode()
        if st.button("Start the CNN arm", key="probe.cnn.start", icon=":material/model_training:",
                     help="Runs `oaviz probe --cnn` in its own process with these settings"
                          + (" (public demo: 1 seed, 5 epochs)" if capped else "")):
            try:
                job = start_cnn_job(cohort_path, target=target, fractions=fractions, noise=noise_levels,
                                    noise_kind=noise_kind, seeds=1 if capped else seeds, epochs=5 if capped else None)
                state.remember_job(state.PROBE_JOBS, str(job.run_dir))
            except DataError as e:   # e.g. the public demo's cap on running jobs
                st.error(redact(str(e)), icon=":material/error:")
        jobs_panel.session_jobs(state.PROBE_JOBS, key="probe")

with tab_hier:
    zoo = state.selected_model_set()            # a zoo: its own dual-head variants
    variants = {v: str(p) for v, p in dual_head_checkpoints([zoo] if zoo else None).items()}
    if len(variants) < 2:
        st.info("The comparison needs at least two dual-head checkpoints (single_oa, single_kl, dual). Train them "
                "on the Models & training page.")
    elif not cohort.has_kl:
        st.info("The hierarchy comparison needs KL grades.")
    elif st.toggle(f"Compare {', '.join(sorted(variants))} on the test split", key=state.PROBE_HIER_RUN):
        hierarchy_report(cached.hierarchy({v: ModelRef.of(p) for v, p in variants.items()}, cohort_ref), cohort)
