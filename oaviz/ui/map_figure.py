"""The latent-map figure: knees coloured by a column, an invisible click grid for decoding anywhere, extras."""

from __future__ import annotations

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from oaviz.ui.theme import KL_COLORS, PLOT_FONT

WEBGL_ABOVE = 1000       # points; SVG is crisper below, WebGL is the only thing fast enough above
GRID = 36                # click grid resolution per axis
KNEES, GRID_TRACE = "knees", "decode here"
CATEGORICAL_MAX = 24     # numeric columns with at most this many distinct values get a discrete legend


def _is_categorical(s: pd.Series) -> bool:
    if s.dtype == object or str(s.dtype) in ("category", "bool", "string"):
        return True
    return s.nunique(dropna=True) <= min(CATEGORICAL_MAX, 6) or s.name in ("kl", "kl_true", "pred_kl", "cluster",
                                                                         "oa", "split", "side", "visit_month")


def latent_map_figure(table: pd.DataFrame, colour: str, extra: list[go.BaseTraceType] = (),
                      height: int = 560) -> go.Figure:
    """Scatter of table.x/y with customdata = cohort row id; a transparent GRID×GRID click grid on top."""
    n = len(table)
    Scatter = go.Scattergl if n > WEBGL_ABOVE else go.Scatter
    fig = go.Figure()
    hover = "%{text}<br>" + colour + ": %{meta}<extra></extra>"
    s = table[colour] if colour in table else pd.Series([None] * n, name=colour)
    if _is_categorical(s):
        for value, part in table.groupby(s.astype("string").fillna("unknown"), sort=True):
            c = None
            if colour in ("kl", "kl_true", "pred_kl"):
                try:
                    c = KL_COLORS.get(int(float(value)))
                except ValueError:
                    c = "#9aa0a6"
            fig.add_trace(Scatter(
                x=part["x"], y=part["y"], mode="markers", name=f"{colour} {value}", legendgroup=str(value),
                customdata=part["row"].to_numpy(), text=part["image_id"], meta=str(value),
                marker=dict(size=6 if n < 3000 else 4, color=c, opacity=0.8),
                hovertemplate="%{text}<br>" + colour + f": {value}<extra></extra>"))
    else:
        vals = pd.to_numeric(s, errors="coerce")
        fig.add_trace(Scatter(
            x=table["x"], y=table["y"], mode="markers", name=KNEES, customdata=table["row"].to_numpy(),
            text=table["image_id"], meta=[f"{v:.3g}" for v in vals],
            marker=dict(size=6 if n < 3000 else 4, color=vals, colorscale="Viridis", opacity=0.85,
                        colorbar=dict(title=colour, thickness=12)), hovertemplate=hover))
    # Decode anywhere: plotly reports clicks only on points, so a transparent grid of points covers the
    # map; a click on one of them asks for the latent behind that spot.
    x0, x1 = float(table["x"].min()), float(table["x"].max())
    y0, y1 = float(table["y"].min()), float(table["y"].max())
    pad_x, pad_y = 0.05 * (x1 - x0 or 1), 0.05 * (y1 - y0 or 1)
    gx, gy = np.meshgrid(np.linspace(x0 - pad_x, x1 + pad_x, GRID), np.linspace(y0 - pad_y, y1 + pad_y, GRID))
    fig.add_trace(go.Scatter(x=gx.ravel(), y=gy.ravel(), mode="markers", name=GRID_TRACE, showlegend=False,
                             customdata=np.full(gx.size, -1), marker=dict(size=10, opacity=0.0, color="#000"),
                             hovertemplate="decode the latent here<extra></extra>"))
    for tr in extra:
        fig.add_trace(tr)
    fig.update_layout(height=height, font=PLOT_FONT, margin=dict(l=10, r=10, t=30, b=10), dragmode="lasso",
                      legend=dict(orientation="h", y=1.06, itemsizing="constant"), clickmode="event+select",
                      xaxis=dict(title=None, zeroline=False), yaxis=dict(title=None, zeroline=False))
    return fig


def severity_map_figure(table: pd.DataFrame, height: int = 420) -> go.Figure:
    """Knees at (severity-axis position in grade units, PC1 of the rest), coloured by rater KL."""
    fig = go.Figure()
    for g, part in table.groupby(table["kl"].astype("Int64").astype("string").fillna("unknown"), sort=True):
        c = KL_COLORS.get(int(g)) if g != "unknown" else "#9aa0a6"
        fig.add_trace(go.Scattergl(x=part["x"], y=part["y"], mode="markers", name=f"KL {g}",
                                   marker=dict(size=5, color=c, opacity=0.75), text=part["image_id"],
                                   hovertemplate="%{text}<br>axis %{x:.2f} grades<extra></extra>"))
    fig.update_layout(height=height, font=PLOT_FONT, margin=dict(l=10, r=10, t=30, b=10),
                      legend=dict(orientation="h", y=1.08, itemsizing="constant"),
                      xaxis=dict(title="severity axis (grade units, fitted on the train split)", zeroline=False),
                      yaxis=dict(title="main direction of the rest", zeroline=False))
    return fig


def selected_points(event) -> tuple[list[int], tuple[float, float] | None]:
    """(cohort rows selected, (x, y) of a click on the empty-map grid or None) from a plotly selection event."""
    points = []
    try:
        points = list(event.selection.points) if event is not None else []
    except AttributeError:
        points = list((event or {}).get("selection", {}).get("points", []))
    rows, spot = [], None
    for p in points:
        cd = p.get("customdata")
        cd = cd[0] if isinstance(cd, (list, tuple)) else cd
        if cd is None:
            continue
        if int(cd) >= 0:
            rows.append(int(cd))
        elif len(points) == 1:  # a click on an empty spot (a lasso also catches grid points: ignore those)
            spot = (float(p["x"]), float(p["y"]))
    return sorted(set(rows)), spot
