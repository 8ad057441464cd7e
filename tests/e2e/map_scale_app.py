"""A Streamlit script for the browser test at scale: the latent map's own figure of N synthetic knees
(OAVIZ_E2E_MAP_N, default 50,000) with the page's selection handling, and no model behind it.

It prints what the page would act on ("selected: K knees", "clicked knee R") and, from the lasso polygon Streamlit hands
back, how many knees lie inside it ("inside: M"), so the test can check the selection is every knee
inside the lasso, not a sample.
"""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

import numpy as np
import streamlit as st

from oaviz.ui.map_figure import latent_map_figure, selected_points

N = int(os.environ.get("OAVIZ_E2E_MAP_N", "50000"))


@st.cache_data
def table(n: int):
    path = Path(__file__).resolve().parents[2] / "bench" / "scale_interactions.py"
    spec = importlib.util.spec_from_file_location("scale_interactions", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod.synthetic_map_table(n)


def inside(x: np.ndarray, y: np.ndarray, px, py) -> np.ndarray:
    """Even-odd rule: mask of the points (x, y) inside the polygon (px, py)."""
    px, py = np.asarray(px, float), np.asarray(py, float)
    out = np.zeros(len(x), bool)
    for i in range(len(px)):
        x0, y0, x1, y1 = px[i - 1], py[i - 1], px[i], py[i]
        crosses = (y0 > y) != (y1 > y)
        with np.errstate(divide="ignore", invalid="ignore"):
            at = x0 + (y - y0) * (x1 - x0) / (y1 - y0)
        out ^= crosses & (x < at)
    return out


t = table(N)
event = st.plotly_chart(latent_map_figure(t, "kl"), key="map", on_select="rerun",
                        selection_mode=("points", "box", "lasso"))
rows, _ = selected_points(event)
st.markdown(f"map of {N} knees")
if len(rows) == 1:
    st.markdown(f"clicked knee {rows[0]}")
elif rows:
    lasso = list(event.selection.lasso) if event is not None else []
    m = sum(int(inside(t["x"].to_numpy(), t["y"].to_numpy(), p["x"], p["y"]).sum()) for p in lasso)
    st.markdown(f"selected: {len(rows)} knees; inside: {m}")
