"""Reconstructions: originals beside reconstructions, error heat maps, per-image quality, worst first."""

from __future__ import annotations

import numpy as np
import pandas as pd
import streamlit as st

from oaviz.services.exports import csv_bytes
from oaviz.services.measure import images_pixel_mm
from oaviz.services.reconstructions import report_summary
from oaviz.ui import cached, cohort_notes, layout, state
from oaviz.ui.images import overlay, to_uint8
from oaviz.ui.model_pick import Cap
from oaviz.ui.viewer import Panel, show_panels, toolbar
from oaviz.ui.viewer_ops import display, zoom_view

PER_PAGE = 6


def mm(v: float) -> str:
    # NaN: no joint space could be found on the image (a gap narrower than a pixel, or too blurred to see)
    return "not measurable" if np.isnan(v) else f"{v:.2f} mm"


ctx = layout.start_page("pages/reconstructions.py", "What the model keeps and what it loses: each knee beside its "
                        "reconstruction, with the error as a heat map, MSE/PSNR/SSIM, and the joint-space width "
                        "measured on both.", model=Cap.VECTOR_LATENT)
model_ref, cohort_ref = ctx.model.ref, ctx.cohort_ref
cohort_notes.say_missing(ctx.cohort, "landmarks")
report = cached.reconstruction_report(model_ref, cohort_ref)
summary = report_summary(report)

m = st.columns(5)
m[0].metric("Mean MSE", f"{summary['mse']:.4f}", border=True)
m[1].metric("Mean PSNR", f"{summary['psnr']:.1f} dB", border=True)
m[2].metric("Mean SSIM", f"{summary['ssim']:.3f}", border=True)
for i, side in ((3, "medial"), (4, "lateral")):
    v = summary[f"jsw_{side}_abs_diff_mm"]
    m[i].metric(f"{side.title()} JSW error", "—" if np.isnan(v) else f"{v:.2f} mm", border=True,
                help="Mean |JSW on the reconstruction − JSW on the original|, both measured on the images "
                     "between the condyle and the plateau (needs landmarks).")

with st.container(border=True):
    c = st.columns([2, 1])
    grades_known = sorted(int(g) for g in report["kl"].dropna().unique())
    grades = c[0].multiselect("KL grades", grades_known, default=grades_known, key=state.RECON_GRADES,
                              format_func=lambda g: f"KL {g}")
    order = c[1].radio("Order", ["worst first", "best first"], key=state.RECON_ORDER, horizontal=False)
    view_settings = toolbar(state.RECON_VIEWER)  # every image of the page is shown this way
    show_overlay = st.toggle("Error heat map over the original", value=True, key=state.RECON_OVERLAY)

view = report[report["kl"].isin(grades)] if grades_known else report
view = view.sort_values("mse", ascending=(order == "best first"), kind="stable")
if view.empty:
    st.info("No image has the chosen grades.")
    st.stop()
n_pages = max(1, int(np.ceil(len(view) / PER_PAGE)))
page_no = st.number_input(f"Page (of {n_pages}, {len(view):,} images)", 1, n_pages, 1, key=state.RECON_PAGE)
shown = view.iloc[(page_no - 1) * PER_PAGE: page_no * PER_PAGE]
orig, recon, err = cached.reconstruct(model_ref, cohort_ref, shown["row"].tolist())

vmax = float(np.percentile(np.abs(err), 99)) or None  # one colour scale for the page, so errors compare
head = st.columns([1, 1, 1, 1.3])
for col, text in zip(head, ("Original", "Reconstruction", "Error" if not show_overlay else "Error on original",
                            "Quality")):
    col.markdown(f"**{text}**")
for i, (_, r) in enumerate(shown.iterrows()):
    cols = st.columns([1, 1, 1, 1.3], vertical_alignment="center")
    o, rc = display(orig[i], view_settings), display(recon[i], view_settings)
    zoomed = lambda a: zoom_view(a, view_settings.zoom, view_settings.centre).image  # noqa: E731
    cols[0].image(to_uint8(zoomed(o)), width="stretch")
    cols[1].image(to_uint8(zoomed(rc)), width="stretch")
    e = overlay(o, err[i], vmax=vmax) if show_overlay else overlay(np.zeros_like(o), err[i], alpha=1.0, vmax=vmax)
    cols[2].image(zoomed(e), width="stretch")
    jsw = ""
    if not np.isnan(r["jsw_medial_orig_mm"]):
        jsw = (f"\n\nJSW medial {mm(r['jsw_medial_orig_mm'])} → {mm(r['jsw_medial_recon_mm'])} · "
               f"lateral {mm(r['jsw_lateral_orig_mm'])} → {mm(r['jsw_lateral_recon_mm'])}")
    kl = "—" if pd.isna(r["kl"]) else int(r["kl"])
    cols[3].markdown(f"`{r['image_id']}` · KL {kl}\n\nMSE {r['mse']:.4f} · PSNR {r['psnr']:.1f} dB · "
                     f"SSIM {r['ssim']:.3f}{jsw}")

st.subheader("Look closer", anchor=False)
ids = shown["image_id"].astype(str).tolist()
look = st.selectbox("Knee of this page", range(len(ids)), key=state.RECON_LOOK, format_func=ids.__getitem__,
                    help="Original and reconstruction large, shown as set above; click two points to measure.")
look = look if look is not None and look < len(ids) else 0
spacing = images_pixel_mm(ctx.cohort, orig.shape[-1])
show_panels([Panel(f"{ids[look]}.original", orig[look], f"{ids[look]} · original", spacing),
             Panel(f"{ids[look]}.reconstruction", recon[look], "reconstruction", spacing)],
            state.RECON_VIEWER, view_settings)

st.download_button("Download the quality table (CSV)", csv_bytes(view), "reconstructions.csv",
                   "text/csv", icon=":material/download:")
