"""Interpolation and the severity axis: decoded paths between two knees, and one knee made milder or worse."""

from __future__ import annotations

import numpy as np
import plotly.graph_objects as go
import streamlit as st

from oaviz.services.sampling import AXIS_METHODS
from oaviz.ui import cached, cohort_notes, layout, readings, state
from oaviz.ui.images import to_uint8
from oaviz.ui.knee_picker import first_row_with_grade, pick_knee
from oaviz.ui.model_pick import Cap
from oaviz.ui.strips import image_row
from oaviz.ui.theme import ACCENT, PLOT_FONT, kl_color

ctx = layout.start_page("pages/interpolation.py", "Walk the latent space between two knees, and move one knee along "
                        "the direction of disease. Every step is decoded; the checks below say whether it still looks "
                        "like real data.", model=Cap.VECTOR_LATENT)
cohort, model_ref, cohort_ref = ctx.cohort, ctx.model.ref, ctx.cohort_ref
cohort_notes.say_missing(cohort, "kl_true")


def grade_caption(pred: np.ndarray | None, probs: np.ndarray | None, i: int) -> str:
    if pred is None:
        return ""
    return f"probe KL {int(pred[i])} ({probs[i].max():.0%})"


tab_path, tab_axis = st.tabs(["Between two knees", "Severity axis"])

with tab_path:
    c = st.columns([1, 1, 1])
    with c[0]:
        a = pick_knee(cohort, "Knee A", state.INTERP_A, default_row=first_row_with_grade(cohort, 0))
    with c[1]:
        b = pick_knee(cohort, "Knee B", state.INTERP_B, default_row=first_row_with_grade(cohort, 4))
    with c[2]:
        path = st.radio("Path", ["linear", "slerp"], key=state.INTERP_PATH, horizontal=True,
                        help="slerp follows the great circle, keeping the latent's norm where a straight line "
                             "passes through the low-norm middle of the prior.")
        steps = st.slider("Steps", 3, 16, 8, key=state.INTERP_STEPS)
    if a is None or b is None:
        st.info("Upload a file for each knee chosen as an upload.")
    else:
        res = cached.interpolate(model_ref, cohort_ref, a, b, steps, path)
        seen = readings.read(ctx, res.images)
        image_row(res.images, [f"t={t:.2f}\n{grade_caption(res.pred_kl, res.kl_probs, i)}\n{seen.caption(i)}"
                               for i, t in enumerate(res.t)])
        readings.explain(seen)
        ratio = res.manifold_ratio
        m = st.columns(3)
        m[0].metric("Worst on-manifold ratio", f"{ratio.max():.2f}",
                    help="Distance from each step's latent to the nearest real training latent, divided by the "
                         "typical distance of a held-out real knee. About 1 looks like real data; well above 1 "
                         "does not.", border=True)
        m[1].metric("Lowest prior log-density", f"{res.log_density.min():.1f}",
                    delta=f"{res.log_density.min() - res.reference_log_density:+.1f} vs a real knee", border=True)
        if res.pred_kl is not None:
            m[2].metric("Predicted KL along the path", " → ".join(str(int(g)) for g in res.pred_kl), border=True)
        fig = go.Figure()
        fig.add_scatter(x=res.t, y=ratio, name="nearest-real ratio", mode="lines+markers", line_color=ACCENT)
        fig.add_hline(y=1.0, line_dash="dot", annotation_text="typical real knee")
        if res.kl_probs is not None:
            expected = res.kl_probs @ np.arange(res.kl_probs.shape[1])
            fig.add_scatter(x=res.t, y=expected, name="expected KL", yaxis="y2", mode="lines+markers",
                            marker_color=[kl_color(g) for g in res.pred_kl], line_color="#888")
        fig.update_layout(height=300, font=PLOT_FONT, margin=dict(l=10, r=10, t=30, b=10),
                          xaxis_title="position along the path", yaxis_title="distance / typical",
                          yaxis2=dict(title="expected KL", overlaying="y", side="right", range=[-0.2, 4.2]),
                          legend=dict(orientation="h", y=1.1))
        st.plotly_chart(fig, key="interp.chart")

with tab_axis:
    c = st.columns([1, 1, 1])
    with c[0]:
        row = pick_knee(cohort, "Knee", state.SEVERITY_ROW, default_row=first_row_with_grade(cohort, 1))
    with c[1]:
        method = st.radio("Direction", list(AXIS_METHODS), key=state.SEVERITY_METHOD,
                          help="centroid: from the KL 0 to the highest-grade centroid (the average change per "
                               "grade). fisher: the same difference whitened by the within-grade spread. probe: "
                               "the weight vector of a logistic-regression OA probe. regression: the weights of a "
                               "ridge regression of the grade (every grade's order counts): it ranks knees best (the Latent map's "
                               "severity view) but its grade step is short, so a move along it barely changes the "
                               "image; centroid is the one to move a knee along. All are orthogonalised "
                               "against the side direction.")
    with c[2]:
        lo, hi = st.slider("Grades to move", -4.0, 4.0, (-2.0, 2.0), 0.5, key=state.SEVERITY_RANGE)
    if row is None:
        st.info("Upload a knee, or pick one from the cohort.")
    elif not cohort.has_kl:
        st.info("The severity axis needs KL grades in the cohort.")
    else:
        grades = tuple(np.round(np.linspace(lo, hi, 5), 2))
        walk = cached.severity_walk(model_ref, cohort_ref, row, grades, method)
        s = walk.stats
        m = st.columns(4)
        m[0].metric("Spearman ρ with rater KL", f"{s.spearman_kl:.2f}", border=True,
                    help=f"Projection on the axis of the {s.n_eval} {s.eval_split} knees against their grade.")
        m[1].metric("ρ with true KL", "—" if np.isnan(s.spearman_kl_true) else f"{s.spearman_kl_true:.2f}", border=True)
        m[2].metric("ρ with severity", "—" if np.isnan(s.spearman_severity) else f"{s.spearman_severity:.2f}",
                    border=True)
        m[3].metric("This knee on the axis", f"{walk.position:+.2f} grades", border=True)
        st.image(to_uint8(walk.original), caption="the knee as the model sees it", width=160)
        seen = readings.read(ctx, walk.images)
        image_row(walk.images, [f"{g:+.1f} grade{'s' if abs(g) != 1 else ''}\n"
                                f"{grade_caption(walk.pred_kl, walk.kl_probs, i)}\n{seen.caption(i)}"
                                for i, g in enumerate(walk.grades)])
        readings.explain(seen)
        st.caption(f"Direction: {method}; removed nuisance directions: {', '.join(s.nuisance_names) or 'none'}; "
                   f"one grade = {s.grade_step:.2f} latent units.")
