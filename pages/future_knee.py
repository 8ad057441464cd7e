"""Future knee: several diffusion-generated follow-ups of one knee, their spread, predicted grades and the risk."""

from __future__ import annotations

import numpy as np
import plotly.graph_objects as go
import streamlit as st

from oaviz.errors import DataError
from oaviz.services import cohort_risk
from oaviz.services.measure import images_pixel_mm
from oaviz.ui import cached, cohort_notes, jobs_panel, layout, readings, state
from oaviz.ui.images import signed, heat, to_uint8
from oaviz.ui.knee_picker import first_row_with_grade, pick_knee
from oaviz.ui.model_pick import Cap, current_model, pick_checkpoint_with
from oaviz.ui.refs import ModelRef
from oaviz.ui.theme import PLOT_FONT
from oaviz.ui.demo import redact
from oaviz.ui.viewer import Panel, radiograph_viewer

ctx = layout.start_page("pages/future_knee.py", "A latent diffusion model, trained on pairs of visits of the same "
                        "knee, imagines the next visit. Several samples give the mean future, where they disagree, "
                        "what changes, and the risk that the grade goes up.")
cohort, cohort_ref = ctx.cohort, ctx.cohort_ref
cohort_notes.say_missing(cohort, "progression")
ckpt = pick_checkpoint_with(Cap.FUTURES, "Diffusion checkpoint", "future.ckpt",
                          "No latent-diffusion checkpoint yet. Train a VQ-VAE, a multi-task classifier and then "
                          "`oaviz train latent_diffusion --set vqvae_checkpoint=… --set classifier_checkpoint=…` "
                          "(see the README).")
if ckpt is None:
    st.stop()

c = st.columns([2, 1, 1, 1])
with c[0]:
    knee = pick_knee(cohort, "Knee", "future.knee", default_row=first_row_with_grade(cohort, 1))
n = c[1].slider("Futures", 1, 16, 4, key="future.n")
steps = c[2].select_slider("DDIM steps", [10, 20, 50, 100], value=20, key="future.steps",
                           help="More steps: closer to the trained process, slower.")
seed = c[3].number_input("Seed", 0, 2**31 - 1, 0, key="future.seed")
if knee is None:
    st.info("Upload a knee, or pick one from the cohort.")
    st.stop()
if not st.toggle("Generate", value=True, key="future.go", help="Sampling runs the U-Net steps × futures times; on a CPU this "
                 "takes about a second for 4 futures × 20 steps at the demo size."):
    st.stop()

res = cached.futures(ModelRef.of(ckpt), cohort_ref, knee, n, steps, seed, None)
m = st.columns(4)
m[0].metric("Risk of progression", f"{res.risk:.0%}", border=True,
            help="Σ over grade pairs with future > now of p(now = i)·p(future = j), the future probabilities "
                 "averaged over the sampled futures.")
m[1].metric("Predicted KL today", f"{int(np.argmax(res.kl_probs_now))} ({res.kl_probs_now.max():.0%})", border=True)
m[2].metric(f"Predicted KL at +{res.horizon_months} months",
            f"{int(np.argmax(res.kl_probs_future))} ({res.kl_probs_future.max():.0%})", border=True)
if res.kl_now is not None:
    m[3].metric("Rater KL today", str(res.kl_now), border=True)

with st.container(border=True):
    ref = cohort_risk.find_reference(ckpt, cohort)
    if ref is not None:
        placed = cohort_risk.place_risk(res.risk, ref)
        q = placed["quartiles"]
        st.metric("Place among the cohort", f"{placed['percentile']:.0f}th percentile", border=False,
                  help=f"Share of the cohort's {placed['n']} test knees (with a follow-up) whose risk is at or below "
                       f"this one; their quartiles: {q[0]:.0%} / {q[1]:.0%} / {q[2]:.0%}. Their risks come from "
                       f"{cohort_risk.REFERENCE_SAMPLES} futures × {cohort_risk.REFERENCE_STEPS} steps each.")
    else:
        st.caption("To place this risk among the cohort's, compute the risk of every test knee (a job, a few minutes "
                   "on a CPU).")
    if st.button("Compute the cohort's risks", key="future.reference", icon=":material/leaderboard:"):
        try:
            job = cohort_risk.start_reference_job(ckpt, cohort)
            state.remember_job("future.jobs", str(job.run_dir))
        except DataError as e:   # e.g. the public demo's cap on running jobs
            st.error(redact(str(e)), icon=":material/error:")
    jobs_panel.session_jobs("future.jobs", key="future")

seen = readings.read(ctx, np.stack([res.today, res.mean, *res.futures]), ckpt)
cols = st.columns(5)
cols[0].image(to_uint8(res.today), caption=f"today\n{seen.caption(0)}", width="stretch")
cols[1].image(to_uint8(res.mean), caption=f"mean of {res.n_samples} futures\n{seen.caption(1)}", width="stretch")
cols[2].image(heat(res.std), caption="spread (per-pixel std)", width="stretch")
cols[3].image(signed(res.difference), caption="mean future − today (blue: darker)", width="stretch")
if res.real_future is not None:
    cols[4].image(to_uint8(res.real_future), caption=f"real follow-up {res.real_future_id} · KL {res.real_future_kl}",
                  width="stretch")
else:
    cols[4].caption("No real follow-up in the cohort at this horizon.")
if res.method:
    shown = " The real follow-up is shown as acquired: its pose and exposure differ." if res.real_future is not None else ""
    st.caption(res.method + shown)

if st.toggle("Look closer: today beside the mean future and the real follow-up", key="future.look",
             help="Window/level, invert, zoom and a two-click length on the images large."):
    # an uploaded file's spacing is unknown (it was not imported with the cohort): its lengths stay in px
    tag, px = (knee, images_pixel_mm(cohort, res.today.shape[-1])) if isinstance(knee, int) else ("upload", None)
    panels = [Panel(f"{tag}.today", res.today, "today", px), Panel(f"{tag}.mean", res.mean, "mean future", px)]
    if res.real_future is not None:
        panels.append(Panel(f"{tag}.real", res.real_future, f"real follow-up {res.real_future_id}", px))
    radiograph_viewer(panels, "future.viewer")

st.markdown("**Each sampled future**")
fc = st.columns(min(8, len(res.futures)))
for i, img in enumerate(res.futures):
    p = res.kl_probs_samples[i]
    fc[i % len(fc)].image(to_uint8(img), caption=f"#{i} · risk classifier KL {int(np.argmax(p))} ({p.max():.0%})"
                          f"\n{seen.caption(2 + i)}", width="stretch")
readings.explain(seen)

fig = go.Figure()
grades = [f"KL {g}" for g in range(len(res.kl_probs_now))]
fig.add_bar(x=grades, y=res.kl_probs_now, name="today")
fig.add_bar(x=grades, y=res.kl_probs_future, name=f"+{res.horizon_months} months (mean over futures)")
if res.kl_probs_real_future is not None:
    fig.add_bar(x=grades, y=res.kl_probs_real_future, name="real follow-up")
fig.update_layout(barmode="group", height=300, font=PLOT_FONT, margin=dict(l=10, r=10, t=30, b=10),
                  yaxis=dict(title="probability", range=[0, 1]), legend=dict(orientation="h", y=1.15))
st.plotly_chart(fig, key="future.probs")

# ----------------------------------------------------------------- where today and the futures sit
st.subheader("On the latent map", anchor=False)
mapper = current_model(Cap.VECTOR_LATENT)
if mapper is not None:
    imgs = [res.today, *res.futures] + ([res.real_future] if res.real_future is not None else [])
    lm = cached.latent_map(mapper.ref, cohort_ref, **cached.PCA_MAP)
    xy = cached.place_on_pca_map(mapper.ref, cohort_ref, np.stack(imgs))
    t = lm.table
    fig = go.Figure()
    fig.add_scattergl(x=t["x"], y=t["y"], mode="markers", name="cohort", hoverinfo="skip",
                      marker=dict(size=4, color="#c9d2de"))
    colour = f"rgba(200, 66, 59, {0.35 + 0.65 * res.risk:.2f})"  # more opaque red for a higher risk
    for i in range(1, 1 + len(res.futures)):
        fig.add_annotation(x=xy[i, 0], y=xy[i, 1], ax=xy[0, 0], ay=xy[0, 1], xref="x", yref="y", axref="x",
                           ayref="y", showarrow=True, arrowhead=2, arrowwidth=2, arrowcolor=colour)
    if res.real_future is not None:
        fig.add_annotation(x=xy[-1, 0], y=xy[-1, 1], ax=xy[0, 0], ay=xy[0, 1], xref="x", yref="y", axref="x",
                           ayref="y", showarrow=True, arrowhead=2, arrowwidth=3, arrowcolor="#2f6fae")
    fig.add_scatter(x=[xy[0, 0]], y=[xy[0, 1]], mode="markers+text", text=["today"], textposition="top center",
                    name="today", marker=dict(size=12, color="black"))
    fig.update_layout(height=420, font=PLOT_FONT, margin=dict(l=10, r=10, t=30, b=10), showlegend=False)
    st.plotly_chart(fig, key="future.map")
    st.caption(f"PCA map of {mapper.label}. Red arrows: today → each generated future (more opaque = higher "
               f"risk, {res.risk:.0%}); blue arrow: today → the real follow-up.")
