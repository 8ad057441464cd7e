"""The latent-map figure: knees coloured by a column, an invisible click grid for decoding anywhere, extras.

What goes to the browser is only what it draws: per knee its x, y, colour value and cohort row
(``customdata``), all NumPy arrays that plotly (>= 6) sends as base64 typed arrays; no per-knee
strings (the image id, the metadata) — a click or a selection asks the server for those. Up to
``MAX_DRAWN`` knees are drawn one by one; above, a density layer (every knee counted in
``DENSITY_BINS``² bins) carries the map and only the knees inside ``view`` (the zoomed window)
are drawn as points, when they are at most ``MAX_DRAWN``.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from oaviz.ui.theme import KL_COLORS, PLOT_FONT

WEBGL_ABOVE = 1000       # points; SVG is crisper below, WebGL is the only thing fast enough above
MAX_DRAWN = 50_000       # knees drawn one by one (lasso, box, click); above, density + the zoomed view's points
DENSITY_BINS = 160       # density layer resolution per axis
GRID = 36                # click grid resolution per axis
KNEES, GRID_TRACE, DENSITY = "knees", "decode here", "density"
CATEGORICAL_MAX = 24     # numeric columns with at most this many distinct values get a discrete legend


def _is_categorical(s: pd.Series) -> bool:
    if s.dtype == object or str(s.dtype) in ("category", "bool", "string"):
        return True
    return s.nunique(dropna=True) <= min(CATEGORICAL_MAX, 6) or s.name in ("kl", "kl_true", "pred_kl", "cluster",
                                                                         "oa", "split", "side", "visit_month")


def in_view(table: pd.DataFrame, view: tuple[float, float, float, float] | None) -> np.ndarray:
    """Mask [N] of the knees inside view = (x0, x1, y0, y1); all of them for None."""
    if view is None:
        return np.ones(len(table), bool)
    x, y = table["x"].to_numpy(), table["y"].to_numpy()
    x0, x1, y0, y1 = view
    return (x >= x0) & (x <= x1) & (y >= y0) & (y <= y1)


def drawn_mask(table: pd.DataFrame, view=None) -> np.ndarray:
    """Mask [N] of the knees drawn as points: all up to MAX_DRAWN; above, those in ``view`` when they
    are at most MAX_DRAWN, else none (the density layer alone)."""
    if len(table) <= MAX_DRAWN:
        return np.ones(len(table), bool)
    m = in_view(table, view)
    return m if m.sum() <= MAX_DRAWN else np.zeros(len(table), bool)


def _density(table: pd.DataFrame) -> go.Heatmap:
    """Every knee counted in DENSITY_BINS² bins (empty bins transparent)."""
    counts, xe, ye = np.histogram2d(table["x"].to_numpy(np.float64), table["y"].to_numpy(np.float64),
                                    bins=DENSITY_BINS)
    z = np.where(counts > 0, counts, np.nan).T.astype(np.float32)   # [y, x] as plotly wants
    return go.Heatmap(z=z, x=((xe[:-1] + xe[1:]) / 2).astype(np.float32), y=((ye[:-1] + ye[1:]) / 2).astype(np.float32),
                      name=DENSITY, colorscale="Greys", showscale=False, opacity=0.85, zsmooth=False,
                      hovertemplate="%{z:.0f} knees here<extra></extra>")


def latent_map_figure(table: pd.DataFrame, colour: str, extra: list[go.BaseTraceType] = (),
                      height: int = 560, view: tuple[float, float, float, float] | None = None) -> go.Figure:
    """Scatter of table.x/y (float32) with customdata = cohort row id (int32) and the colour values as
    typed arrays; above MAX_DRAWN knees a density layer plus the points in ``view``; a transparent
    GRID×GRID click grid on top. Hover names the row and the colour value; details come on click."""
    full, fig = table, go.Figure()
    if len(full) > MAX_DRAWN:
        fig.add_trace(_density(table))
        table = table[drawn_mask(table, view)]
    n = len(table)
    Scatter = go.Scattergl if n > WEBGL_ABOVE else go.Scatter
    size = 6 if n < 3000 else 4 if n < 20_000 else 3
    s = table[colour] if colour in table else pd.Series([None] * n, name=colour, index=table.index)
    if _is_categorical(s):
        for value, part in table.groupby(s.astype("string").fillna("unknown"), sort=True):
            c = None
            if colour in ("kl", "kl_true", "pred_kl"):
                try:
                    c = KL_COLORS.get(int(float(value)))
                except ValueError:
                    c = "#9aa0a6"
            fig.add_trace(Scatter(
                x=part["x"].to_numpy(np.float32), y=part["y"].to_numpy(np.float32), mode="markers",
                name=f"{colour} {value}", legendgroup=str(value), customdata=part["row"].to_numpy(np.int32),
                marker=dict(size=size, color=c, opacity=0.8),
                hovertemplate="knee %{customdata}<br>" + colour + f": {value}<extra></extra>"))
    else:
        vals = pd.to_numeric(s, errors="coerce").to_numpy(np.float32, na_value=np.nan)
        fig.add_trace(Scatter(
            x=table["x"].to_numpy(np.float32), y=table["y"].to_numpy(np.float32), mode="markers", name=KNEES,
            customdata=table["row"].to_numpy(np.int32),
            marker=dict(size=size, color=vals, colorscale="Viridis", opacity=0.85,
                        colorbar=dict(title=colour, thickness=12)),
            hovertemplate="knee %{customdata}<br>" + colour + ": %{marker.color:.3g}<extra></extra>"))
    # Decode anywhere: plotly reports clicks only on points, so a transparent grid of points covers the
    # map; a click on one of them asks for the latent behind that spot.
    span = table if n else full   # the points drawn, or the whole map when only its density is
    x0, x1 = float(span["x"].min()), float(span["x"].max())
    y0, y1 = float(span["y"].min()), float(span["y"].max())
    pad_x, pad_y = 0.05 * (x1 - x0 or 1), 0.05 * (y1 - y0 or 1)
    gx, gy = np.meshgrid(np.linspace(x0 - pad_x, x1 + pad_x, GRID, dtype=np.float32),
                         np.linspace(y0 - pad_y, y1 + pad_y, GRID, dtype=np.float32))
    fig.add_trace(go.Scatter(x=gx.ravel(), y=gy.ravel(), mode="markers", name=GRID_TRACE, showlegend=False,
                             customdata=np.full(gx.size, -1, np.int8), marker=dict(size=10, opacity=0.0, color="#000"),
                             hovertemplate="decode the latent here<extra></extra>"))
    for tr in extra:
        fig.add_trace(tr)
    # Opens in the zoom tool: Streamlit passes no click on a point to the server while the lasso or box
    # tool is active, so click-to-inspect and decode-anywhere need zoom/pan; lasso and box are in the modebar.
    fig.update_layout(height=height, font=PLOT_FONT, margin=dict(l=10, r=10, t=30, b=10), dragmode="zoom",
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
