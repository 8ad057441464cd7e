"""Key exchange (KECAE): swap the key (disease) features of a healthy and an OA knee and see what changes."""

from __future__ import annotations

import numpy as np
import streamlit as st

from oaviz.errors import DataError
from oaviz.services import jobs as job_service
from oaviz.services.cohorts import cohort_dir_for
from oaviz.services.measure import images_pixel_mm
from oaviz.ui import cached, jobs_panel, layout, loaders, readings, state
from oaviz.ui.demo import demo_mode, own_cohorts_root, redact
from oaviz.ui.images import heat, to_uint8
from oaviz.ui.model_pick import Cap, pick_checkpoint_with
from oaviz.ui.refs import ModelRef
from oaviz.ui.viewer import Panel, radiograph_viewer

ctx = layout.start_page("pages/key_exchange.py", "KECAE splits each knee's code into key features (what a KL 0 vs "
                        "KL 2 discriminator needs) and non-key features (everything else). Swapping the key parts "
                        "turns the healthy knee towards OA and the OA knee towards healthy, keeping each one's "
                        "anatomy.")
cohort = ctx.cohort
if not cohort.has_kl:
    st.info("Key exchange needs KL grades to find KL 0 and KL 2 knees.")
    st.stop()
ckpt = pick_checkpoint_with(Cap.EXCHANGE, "KECAE checkpoint", "exchange.ckpt",
                          "No KECAE checkpoint yet: `oaviz train kecae --data COHORT --out CKPT` (see the README).")
if ckpt is None:
    st.stop()
info = loaders.checkpoint(ckpt).info
ga, gb = int(info["config"].get("grade_a", 0)), int(info["config"].get("grade_b", 2))
meta = cohort.metadata
rows_a = np.flatnonzero((meta["kl"] == ga).fillna(False).to_numpy(dtype=bool))
rows_b = np.flatnonzero((meta["kl"] == gb).fillna(False).to_numpy(dtype=bool))
if not len(rows_a) or not len(rows_b):
    st.info(f"The cohort needs KL {ga} and KL {gb} knees.")
    st.stop()
c = st.columns(2)
a = c[0].selectbox(f"KL {ga} knee", rows_a.tolist(), key="exchange.a", format_func=lambda r: meta["image_id"].iloc[r])
b = c[1].selectbox(f"KL {gb} knee", rows_b.tolist(), key="exchange.b", format_func=lambda r: meta["image_id"].iloc[r])
res = cached.exchange(ModelRef.of(ckpt), ctx.cohort_ref, a, b)
p = res.p_grade_b
st.caption(f"Discriminator: {info.get('card', {}).get('discriminator', 'see the checkpoint card')}. "
           f"P(KL {gb}) under each image.")
seen = readings.read(ctx, np.stack([res.recon_a, res.exchanged_a, res.recon_b, res.exchanged_b]), ckpt)
cols = st.columns(4)
cols[0].image(to_uint8(res.recon_a), caption=f"{res.id_a} (KL {ga}) reconstructed · P(KL {gb}) {p['recon_a']:.0%}"
              f"\n{seen.caption(0)}", width="stretch")
cols[1].image(to_uint8(res.exchanged_a), caption=f"with the KL {gb} key · P(KL {gb}) {p['exchanged_a']:.0%}"
              f"\n{seen.caption(1)}", width="stretch")
cols[2].image(to_uint8(res.recon_b), caption=f"{res.id_b} (KL {gb}) reconstructed · P(KL {gb}) {p['recon_b']:.0%}"
              f"\n{seen.caption(2)}", width="stretch")
cols[3].image(to_uint8(res.exchanged_b), caption=f"with the KL {ga} key · P(KL {gb}) {p['exchanged_b']:.0%}"
              f"\n{seen.caption(3)}", width="stretch")
readings.explain(seen)
d = st.columns(4)
d[1].image(heat(res.diff_a), caption="where it changed (|exchanged − reconstruction|)", width="stretch")
d[3].image(heat(res.diff_b), caption="where it changed", width="stretch")
if st.toggle("Look closer: a knee's reconstruction beside its exchanged version", key="exchange.look",
             help="Window/level, invert, zoom and a two-click length on the images large."):
    px, which = images_pixel_mm(cohort, res.recon_a.shape[-1]), st.radio(
        "Knee", [res.id_a, res.id_b], key="exchange.look_knee", horizontal=True)
    pair = (res.recon_a, res.exchanged_a, gb) if which == res.id_a else (res.recon_b, res.exchanged_b, ga)
    radiograph_viewer([Panel(f"{which}.recon", pair[0], f"{which} reconstructed", px),
                       Panel(f"{which}.exchanged.{a}.{b}", pair[1], f"with the KL {pair[2]} key", px)],
                      "exchange.viewer")
flips = res.flipped
m = st.columns(2)
m[0].metric(f"KL {ga} knee judged KL {gb} after the exchange", "yes" if flips["exchanged_a"] else "no", border=True)
m[1].metric(f"KL {gb} knee judged KL {ga} after the exchange", "yes" if flips["exchanged_b"] else "no", border=True)
st.subheader("Augmentation set", anchor=False)
c = st.columns([1, 1, 2])
max_pairs = 2000 if not demo_mode() else 100
n_pairs = c[0].number_input("Pairs", 10, max_pairs, min(200, max_pairs), 10, key="exchange.pairs",  # demo: ≤ 100
                            help="Random KL 0 / KL 2 pairs of the train split; each gives two exchanged images.")
name = c[1].text_input("New cohort name", f"{cohort.name}-kecae-aug", key="exchange.name")
if c[2].button("Generate the augmentation set (a job)", key="exchange.augment", icon=":material/auto_awesome:"):
    try:
        out = cohort_dir_for(name, own_cohorts_root(create=True))  # demo: the visitor's own space
        run = job_service.new_run_dir(f"augment-{cohort.name}")
        job = job_service.start_oaviz(["augment", "--checkpoint", ckpt, "--data", str(cohort.path), "--pairs",
                                       str(int(n_pairs)), "--out", str(out)], run, kind="augment",
                                      title=f"KECAE augmentation of {cohort.name}", output=out, expects_events=False)
        state.remember_job("exchange.jobs", str(job.run_dir))
    except DataError as e:
        st.error(redact(str(e)), icon=":material/error:")
jobs_panel.session_jobs("exchange.jobs", key="exchange")
st.caption("The new cohort appears in the sidebar's cohort list when the job is done; train a classifier on it "
           "beside the original to measure what the exchanged images add (`bench/eval_exchange.py` does this "
           "for a logistic-regression classifier).")
