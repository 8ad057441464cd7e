"""Small plotly figure builders (no Streamlit calls: pages pass the figures to st.plotly_chart)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from oaviz.ui.theme import ACCENT, KL_COLORS, LANDMARK_COLOR, MASK_COLOR, PLOT_FONT, SPLIT_COLORS


def _layout(fig: go.Figure, *, height: int = 320, **kw) -> go.Figure:
    title = kw.pop("title", None)
    fig.update_layout(height=height, margin=dict(l=10, r=10, t=48 if title else 28, b=10), font=PLOT_FONT,
                      title=dict(text=title, x=0, xanchor="left", y=0.98, yanchor="top", font=dict(size=15)) if title else None,
                      legend=dict(orientation="h", yanchor="bottom", y=1.0, xanchor="right", x=1, traceorder="normal"),
                      **kw)
    return fig


def grade_bar(table: pd.DataFrame, title: str | None = None) -> go.Figure:
    """Stacked bars of images per grade, one colour per split; ``table`` from grade_distribution."""
    fig = go.Figure()
    splits = [s for s in ("train", "val", "test") if s in table.columns]
    for s in splits:
        fig.add_bar(x=list(table.index), y=table[s].tolist(), name=s, marker_color=SPLIT_COLORS.get(s),
                    hovertemplate="%{x}<br>" + s + ": %{y} images<extra></extra>")
    totals = table["total"].tolist()
    pct = table["percent"].tolist() if "percent" in table.columns else [None] * len(totals)
    fig.add_scatter(x=list(table.index), y=totals, mode="text", showlegend=False, hoverinfo="skip",
                    text=[f"{t:,} · {p:.1f}%" if p is not None else f"{t:,}" for t, p in zip(totals, pct)],
                    textposition="top center")
    fig.update_yaxes(title_text="images", range=[0, max(totals + [1]) * 1.18])
    fig.update_xaxes(title_text=None, type="category")
    return _layout(fig, barmode="stack", title=title, bargap=0.25)


def confusion_heatmap(tab: pd.DataFrame, title: str | None = None) -> go.Figure:
    """Rater grade × true grade counts, with the row share in each cell's hover."""
    z = tab.to_numpy(dtype=float)
    share = z / np.maximum(z.sum(axis=1, keepdims=True), 1)
    fig = go.Figure(go.Heatmap(
        z=z, x=[f"KL {c}" for c in tab.columns], y=[f"KL {r}" for r in tab.index], colorscale="Blues",
        text=[[f"{int(v)}" for v in row] for row in z], texttemplate="%{text}", showscale=False,
        customdata=share, hovertemplate="rater %{y}, true %{x}: %{z} images (%{customdata:.0%} of the row)<extra></extra>",
    ))
    fig.update_xaxes(title_text=tab.columns.name or "true", side="bottom")
    fig.update_yaxes(title_text=tab.index.name or "rater", autorange="reversed")
    return _layout(fig, height=320, title=title)


def severity_by_grade(meta: pd.DataFrame, value: str = "jsw_mm", title: str | None = None) -> go.Figure:
    """Box plot of a continuous truth column (joint-space width, severity) per rater KL grade."""
    fig = go.Figure()
    for g, color in KL_COLORS.items():
        vals = meta.loc[meta["kl"] == g, value].dropna()
        if len(vals):
            fig.add_box(y=vals.tolist(), name=f"KL {g}", marker_color=color, boxmean=True, showlegend=False)
    fig.update_yaxes(title_text={"jsw_mm": "joint-space width (mm)"}.get(value, value.replace("_", " ")))
    return _layout(fig, height=320, title=title)


def image_figure(image: np.ndarray, *, landmarks: np.ndarray | None = None, mask: np.ndarray | None = None,
                 landmark_names: list[str] | None = None, height: int = 420,
                 box: tuple[int, int, int, int] | None = None) -> go.Figure:
    """A radiograph (float [0, 1] H×W) with optional landmark dots and a joint-space mask outline.

    ``box`` (x0, y0, w, h): the original pixels that ``image`` shows (a zoomed, upscaled crop); the axes stay
    in original pixel coordinates, so landmarks, the mask and clicked points need no conversion."""
    img8 = (np.clip(image, 0, 1) * 255).round().astype(np.uint8)
    rgb = np.repeat(img8[..., None], 3, axis=2)
    bx, by, bw, bh = box if box is not None else (0, 0, image.shape[1], image.shape[0])
    dx, dy = bw / image.shape[1], bh / image.shape[0]
    place = {} if box is None else dict(x0=bx - 0.5 + dx / 2, dx=dx, y0=by - 0.5 + dy / 2, dy=dy)
    fig = go.Figure(go.Image(z=rgb, hovertemplate="x %{x}, y %{y}: %{z[0]}<extra></extra>", **place))
    if mask is not None and mask.any():
        # Mask drawn as a translucent fill: the joint space the landmarks bracket.
        m = (np.asarray(mask)[by:by + bh, bx:bx + bw] > 0).astype(float)
        fig.add_heatmap(z=np.where(m > 0, 1.0, np.nan), colorscale=[[0, MASK_COLOR], [1, MASK_COLOR]],
                        showscale=False, hoverinfo="skip", name="joint space",
                        **({} if box is None else dict(x0=bx, y0=by)))
    if landmarks is not None:
        names = landmark_names or [f"landmark {i}" for i in range(len(landmarks))]
        fig.add_scatter(x=landmarks[:, 0], y=landmarks[:, 1], mode="markers", name="landmarks",
                        marker=dict(size=7, color=LANDMARK_COLOR, line=dict(width=1, color="white")),
                        text=names, hovertemplate="%{text}<br>(%{x:.1f}, %{y:.1f})<extra></extra>")
    fig.update_xaxes(visible=False, range=[bx - 0.5, bx + bw - 0.5])
    fig.update_yaxes(visible=False, range=[by + bh - 0.5, by - 0.5], scaleanchor="x")
    fig.update_layout(height=height, margin=dict(l=0, r=0, t=0, b=0), showlegend=False,
                      plot_bgcolor="rgba(0,0,0,0)", dragmode="pan")
    return fig


def loss_figure(steps: pd.DataFrame, epochs: pd.DataFrame | None = None, height: int = 260) -> go.Figure:
    """Training loss per step (with a smoothed line) and validation loss per epoch, if any."""
    fig = go.Figure()
    if len(steps):
        fig.add_scatter(x=steps["global_step"], y=steps["loss"], mode="lines", name="train loss (step)",
                        line=dict(color="rgba(47,111,174,0.35)", width=1))
        if len(steps) >= 5:
            smooth = steps["loss"].ewm(alpha=0.2).mean()
            fig.add_scatter(x=steps["global_step"], y=smooth, mode="lines", name="train loss (smoothed)",
                            line=dict(color=ACCENT, width=2))
    if epochs is not None and len(epochs):
        total = epochs[epochs["term"].isin(["total", "loss"])]
        if len(total) and len(steps):
            # Place epoch points at the last step of each epoch so both share the x axis.
            last = steps.groupby("epoch")["global_step"].max()
            for split, color in (("train", ACCENT), ("val", "#dd8452")):
                sub = total[total["split"] == split]
                x = [last.get(e) for e in sub["epoch"]]
                ok = [i for i, v in enumerate(x) if v is not None]
                if ok and split == "val":
                    fig.add_scatter(x=[x[i] for i in ok], y=sub["value"].iloc[ok], mode="lines+markers",
                                    name="val loss (epoch)", line=dict(color=color, width=2, dash="dot"))
        elif len(total):
            for split, color in (("train", ACCENT), ("val", "#dd8452")):
                sub = total[total["split"] == split]
                fig.add_scatter(x=sub["epoch"] + 1, y=sub["value"], mode="lines+markers",
                                name=f"{split} loss (epoch)", line=dict(color=color, width=2))
            n = int(total["epoch"].max()) + 1
            fig.update_xaxes(range=[0.5, n + 0.5], dtick=1)  # epochs are whole numbers, shown from 1
    fig.update_xaxes(title_text="step" if len(steps) else "epoch")
    fig.update_yaxes(title_text="loss")
    return _layout(fig, height=height)
