"""Prior sampling: decode draws from N(0, I) (or near a VAESim prototype) and read their predicted grade."""

from __future__ import annotations

import numpy as np
import streamlit as st

from oaviz.ui import cached, layout, readings, state
from oaviz.ui.images import to_uint8

from oaviz.ui.model_pick import Cap

COLUMNS = 8
ctx = layout.start_page("pages/prior_sampling.py", "Knees the model imagines: latents drawn from the prior "
                        "N(0, T²·I), decoded. Each sample's grade is read twice: by a probe on the cohort's real latents "
                        "(what the model believes) and by an independent classifier on the image (what it shows).",
                        cohort="optional", model=Cap.VECTOR_LATENT)
model, cohort_ref = ctx.model, ctx.cohort_ref

c = st.columns(3)
n = c[0].select_slider("Samples", [8, 16, 24, 32, 48, 64], value=16, key=state.SAMPLE_N)
temperature = c[1].slider("Temperature T", 0.1, 2.0, 1.0, 0.05, key=state.SAMPLE_TEMPERATURE,
                          help="Scales the prior's spread: below 1 stays near the typical knee, above 1 reaches "
                               "further (and off the data).")
seed = c[2].number_input("Seed", 0, 2**31 - 1, 0, key=state.SAMPLE_SEED)

res = cached.sample_prior(model.ref, cohort_ref, n, temperature, seed)
m = st.columns(3)
if res.pred_kl is not None:
    counts = np.bincount(res.pred_kl, minlength=5)
    m[0].metric("Predicted grade mix", " · ".join(f"KL{g}: {k}" for g, k in enumerate(counts) if k), border=True)
if res.nearest_distance is not None and res.reference:
    ratio = res.nearest_distance / res.reference
    m[1].metric("Median on-manifold ratio", f"{np.median(ratio):.2f}", border=True,
                help="Distance to the nearest real training latent over the typical distance of a held-out "
                     "real knee: about 1 looks like real data.")
    m[2].metric("Median prior log-density", f"{np.median(res.log_density):.1f}", border=True)

seen = readings.read(ctx, res.images)
for start in range(0, len(res.images), COLUMNS):
    cols = st.columns(COLUMNS)
    for j, col in enumerate(cols):
        i = start + j
        if i >= len(res.images):
            break
        cap = f"#{i}"
        if res.pred_kl is not None:
            cap += f" · probe KL {int(res.pred_kl[i])} ({res.kl_probs[i].max():.0%})"
        col.image(to_uint8(res.images[i]), caption=f"{cap}\n{seen.caption(i)}", width="stretch")
readings.explain(seen)

if Cap.PROTOTYPES in model.capabilities:
    st.subheader("Near a prototype", anchor=False)
    K = int(model.loaded.model.config.n_prototypes)
    c = st.columns(2)
    k = c[0].selectbox("Prototype", range(K), key=state.PROTO_PICK, format_func=lambda i: f"prototype {i}")
    thr = c[1].slider("Minimum cosine similarity", 0.0, 0.99, 0.8, 0.01, key=state.PROTO_THRESHOLD,
                      help="Only samples at least this similar to the prototype are kept.")
    near = cached.sample_near_prototype(model.ref, cohort_ref, k, n, thr, seed)
    st.caption(f"{len(near.images)} of {near.n_requested} samples kept (similarity ≥ {thr:.2f}).")
    cols = st.columns(COLUMNS)
    shown = near.images[:COLUMNS * 2]
    near_seen = readings.read(ctx, shown)
    for i, img in enumerate(shown):
        cap = f"sim {near.similarity[i]:.2f}"
        if near.pred_kl is not None:
            cap += f" · probe KL {int(near.pred_kl[i])}"
        cols[i % COLUMNS].image(to_uint8(img), caption=f"{cap}\n{near_seen.caption(i)}", width="stretch")
