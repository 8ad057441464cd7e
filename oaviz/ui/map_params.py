"""Projection parameters for the map pages: defaults that stay valid on small cohorts, and their sliders."""

from __future__ import annotations

import streamlit as st

from oaviz.ui import state

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
