"""Projection parameters for the map pages: defaults that stay valid on small cohorts."""

from __future__ import annotations

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
