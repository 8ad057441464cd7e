"""Projection parameters for the map pages: defaults that stay valid on small cohorts, and their sliders."""

from __future__ import annotations

import numpy as np
import pandas as pd
import streamlit as st

from oaviz.ui import state
from oaviz.ui import map_figure

DEFAULTS = {"umap": {"n_neighbors": 15, "min_dist": 0.1}, "tsne": {"perplexity": 30.0}, "pca": {}}


def size_safe_params(method: str, n_points: int, params: dict | None = None) -> dict:
    """``params`` (or the defaults) with UMAP's n_neighbors and t-SNE's perplexity capped for ``n_points``.

    t-SNE needs perplexity < n (sklearn) and UMAP n_neighbors < n; a 24-image
    teaching cohort would otherwise fail with the library defaults."""
    out = dict(DEFAULTS.get(method, {}), **(params or {}))
    if method == "tsne":
        out["perplexity"] = float(min(out["perplexity"], max(2.0, (n_points - 1) / 3)))
    if method == "umap":
        out["n_neighbors"] = int(min(out["n_neighbors"], max(2, n_points - 1)))
    return out


def param_controls(method: str, title: str, n_points: int) -> dict:
    """An expander with the sliders of ``method`` (titled ``title``); the values, capped by ``size_safe_params``."""
    params = {}
    with st.expander(f"{title} parameters", expanded=False):
        if method == "umap":
            params["n_neighbors"] = st.slider("n_neighbors", 2, 100, DEFAULTS["umap"]["n_neighbors"],
                                              key=state.MAP_PARAMS + ".nn")
            params["min_dist"] = st.slider("min_dist", 0.0, 0.99, DEFAULTS["umap"]["min_dist"], 0.01,
                                           key=state.MAP_PARAMS + ".md")
        elif method == "tsne":
            params["perplexity"] = st.slider("perplexity", 2.0, 100.0, DEFAULTS["tsne"]["perplexity"], 1.0,
                                             key=state.MAP_PARAMS + ".perp")
        else:
            st.caption("PCA has no parameters: the two directions of largest variance.")
    return size_safe_params(method, n_points, params)


def zoom_controls(table: pd.DataFrame) -> tuple[float, float, float, float] | None:
    """Above MAX_DRAWN knees: x/y range sliders for the window whose knees are drawn as points, and a
    notice of what the map shows (never a silent sample); None (no window) up to MAX_DRAWN."""
    n, most = len(table), map_figure.MAX_DRAWN
    if n <= most:
        return None
    lo = table[["x", "y"]].min().to_numpy(np.float64)
    hi = table[["x", "y"]].max().to_numpy(np.float64)
    with st.expander("Zoom: the window whose knees are drawn as points", expanded=True):
        c = st.columns(2)
        x0, x1 = c[0].slider("x range", float(lo[0]), float(hi[0]), (float(lo[0]), float(hi[0])),
                             key=state.MAP_PARAMS + ".zoom_x")
        y0, y1 = c[1].slider("y range", float(lo[1]), float(hi[1]), (float(lo[1]), float(hi[1])),
                             key=state.MAP_PARAMS + ".zoom_y")
    view = (x0, x1, y0, y1)
    m = int(map_figure.in_view(table, view).sum())
    drawn = f"its {m:,} knees are drawn as points" if m <= most else \
        f"it holds {m:,} knees: narrow it to at most {most:,} to draw them as points"
    bins = map_figure.DENSITY_BINS
    st.info(f"All {n:,} knees are on the map, as a density layer ({bins}×{bins} bins, every knee "
            f"counted): more than {most:,} are not drawn one by one. Zoom window x {x0:.2f}…{x1:.2f}, "
            f"y {y0:.2f}…{y1:.2f}: {drawn}; lasso, box and click work on those.", icon=":material/blur_on:")
    return view
