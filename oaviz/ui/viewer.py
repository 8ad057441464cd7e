"""The radiograph viewer every page uses where it shows a knee large (what OHIF users expect).

One toolbar (window/level presets and sliders, invert, zoom with its centre, reset) drives one or more
panels side by side — current and prior visit, original and reconstruction — so they are always shown the
same way. Each panel measures a length with two clicks, in mm where the pixel spacing is known, else in
px, and says which. The pixel work is in ``oaviz.ui.viewer_ops`` (pure, unit-tested).

Widget keys derive from the ``key`` a page passes: ``{key}.preset``, ``{key}.window``, ``{key}.level``,
``{key}.invert``, ``{key}.zoom``, ``{key}.cx``/``.cy``, ``{key}.beside.{row}`` (per cohort knee) and, per panel,
``{key}.chart.{id}`` (plotly selection) and ``{key}.measure.{id}`` (a ``viewer_ops.Measurement``).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np
import plotly.graph_objects as go
import streamlit as st

from oaviz.data.cohort import Cohort
from oaviz.services import cohorts
from oaviz.services.measure import images_pixel_mm
from oaviz.ui import plots
from oaviz.ui.viewer_ops import (PRESETS, ZOOMS, Measurement, ViewSettings, clicked_point, display,
                                 knee_visits, measure_click, prior_visit, segment_length, zoom_view)

CUSTOM = "custom"
GRID = 96           # clickable points per axis over the visible part of the image (the measuring resolution)
MEASURE_COLOR = "#ffd400"


@dataclass(frozen=True)
class Panel:
    """One image of a viewer: float [H, W] in [0, 1], its title, spacing and optional overlays."""

    id: str                              # stable per image (an image id): keys its chart and measurement
    image: np.ndarray
    title: str
    pixel_mm: float | None               # mm per pixel of ``image``; None = unknown (lengths in px)
    landmarks: np.ndarray | None = None  # [K, 2] (x, y) pixels
    mask: np.ndarray | None = None       # [H, W] joint-space mask
    landmark_names: list[str] | None = None


def _defaults(key: str) -> dict:
    d = ViewSettings()
    return {f"{key}.preset": d.preset, f"{key}.window": d.window, f"{key}.level": d.level,
            f"{key}.invert": d.invert, f"{key}.zoom": d.zoom, f"{key}.cx": d.centre[0], f"{key}.cy": d.centre[1]}


def _reset(key: str) -> None:
    st.session_state.update(_defaults(key))


def _preset_chosen(key: str) -> None:
    pair = PRESETS.get(st.session_state.get(f"{key}.preset") or "")
    if pair is not None:  # the sliders show the preset's values; "full" is per image, "custom" keeps them
        st.session_state[f"{key}.window"], st.session_state[f"{key}.level"] = pair


def _slider_moved(key: str) -> None:
    st.session_state[f"{key}.preset"] = None  # no preset highlighted: the window is custom


def toolbar(key: str, wide: bool = True) -> ViewSettings:
    """The viewer's controls; the settings they give (the same for every panel). ``wide``: one row (for a
    full-width page), else stacked for a narrow column."""
    for k, v in _defaults(key).items():
        st.session_state.setdefault(k, v)
    if wide:  # one row
        c = st.columns([2.4, 1, 1, 1, 0.9, 0.9], vertical_alignment="bottom")
        at = dict(preset=c[0], width=c[1], level=c[2], zoom=c[3], invert=c[4], reset=c[5])
    else:     # a narrow column: presets, then the sliders, then invert and reset
        at = dict(preset=st.container())
        at.update(zip(("width", "level", "zoom"), st.columns(3)))
        at.update(zip(("invert", "reset"), st.columns(2, vertical_alignment="center")))
    preset = at["preset"].segmented_control(
        "Window", list(PRESETS), key=f"{key}.preset", on_change=_preset_chosen, args=(key,),
        help="Window/level presets: bone is the bright end, soft the soft tissue (dark end), full stretches "
             "each image's own min–max. Moving a slider makes the window custom (no preset lit).") or CUSTOM
    full = PRESETS.get(preset, ()) is None
    window = at["width"].slider("Width", 0.05, 1.0, step=0.05, key=f"{key}.window", on_change=_slider_moved,
                                args=(key,), disabled=full, help="Intensity range shown from black to white.")
    level = at["level"].slider("Level", 0.0, 1.0, step=0.05, key=f"{key}.level", on_change=_slider_moved,
                               args=(key,), disabled=full, help="Centre of that range.")
    zf = at["zoom"].select_slider("Zoom", list(ZOOMS), key=f"{key}.zoom", format_func=lambda z: f"{z:g}×")
    invert = at["invert"].toggle("Invert", key=f"{key}.invert", help="Bone black, air white.")
    at["reset"].button("Reset", key=f"{key}.reset", on_click=_reset, args=(key,), icon=":material/restart_alt:",
                       help="Default window, no inversion, no zoom.")
    centre = (st.session_state[f"{key}.cx"], st.session_state[f"{key}.cy"])
    if zf > 1:
        z = st.columns(2)
        centre = (z[0].slider("Zoom centre, left → right", 0.0, 1.0, step=0.05, key=f"{key}.cx"),
                  z[1].slider("Zoom centre, top → bottom", 0.0, 1.0, step=0.05, key=f"{key}.cy"))
    return ViewSettings(preset=preset, window=float(window), level=float(level), invert=bool(invert),
                        zoom=float(zf), centre=(float(centre[0]), float(centre[1])))


def _clicked(chart_key: str, measure_key: str) -> None:
    event = st.session_state.get(chart_key)
    try:
        points = list(event.selection.points)
    except AttributeError:
        points = list((event or {}).get("selection", {}).get("points", []))
    state = st.session_state.get(measure_key, Measurement())
    st.session_state[measure_key] = measure_click(state, clicked_point(points))


def panel_figure(panel: Panel, settings: ViewSettings, measurement: Measurement, height: int) -> go.Figure:
    """The panel's image as shown (window, invert, zoom), a transparent click grid, the measured length."""
    view = zoom_view(display(panel.image, settings), settings.zoom, settings.centre)
    fig = plots.image_figure(view.image, landmarks=panel.landmarks, mask=panel.mask,
                             landmark_names=panel.landmark_names, height=height, box=view.box)
    # Plotly reports clicks on points only (not on an image), so a transparent grid of points covers
    # what is shown; a zoomed view gets a finer grid in original pixels.
    x0, y0, w, h = view.box
    gx, gy = np.meshgrid(np.linspace(x0 - 0.5, x0 + w - 0.5, GRID), np.linspace(y0 - 0.5, y0 + h - 0.5, GRID))
    fig.add_trace(go.Scattergl(x=gx.ravel(), y=gy.ravel(), mode="markers", name="measure", showlegend=False,
                               marker=dict(size=8, opacity=0.0, color="#000"),
                               hovertemplate="(%{x:.0f}, %{y:.0f}) px · click to measure<extra></extra>"))
    pts = [measurement.pending] if measurement.pending else list(measurement.segment or ())
    if pts:
        fig.add_scatter(x=[p[0] for p in pts], y=[p[1] for p in pts], mode="lines+markers", name="length",
                        hoverinfo="skip", line=dict(color=MEASURE_COLOR, width=2),
                        marker=dict(size=9, color=MEASURE_COLOR, line=dict(color="black", width=1)))
    # a selected grid point must not fade the landmarks or the length
    fig.update_traces(unselected=dict(marker=dict(opacity=1)), selector=dict(type="scatter"))
    return fig


def show_panels(panels: list[Panel], key: str, settings: ViewSettings, height: int | None = None) -> None:
    """The panels side by side, each with its two-click length (``height`` None: lower for more panels, since
    each square image gets a narrower column)."""
    height = height or {1: 420, 2: 360}.get(len(panels), 280)
    cols = st.columns(len(panels))
    for col, p in zip(cols, panels):
        chart_key, measure_key = f"{key}.chart.{p.id}", f"{key}.measure.{p.id}"
        m = st.session_state.get(measure_key, Measurement())
        with col:
            st.markdown(f"**{p.title}**")
            st.plotly_chart(panel_figure(p, settings, m, height), key=chart_key, selection_mode="points",
                            on_select=functools.partial(_clicked, chart_key, measure_key),
                            config={"displayModeBar": False, "scrollZoom": True})
            if m.segment is not None:
                length = segment_length(*m.segment, p.pixel_mm)
                st.markdown(f"Length: **{length.text}**")
                st.button("Clear the length", key=f"{measure_key}.clear", type="tertiary",
                          on_click=st.session_state.pop, args=(measure_key, None))
            elif m.pending is not None:
                st.caption("Click the second point of the length.")
            else:
                st.caption("Click two points to measure a length"
                           + ("." if p.pixel_mm else " (in px: this image's pixel spacing is unknown)."))


def radiograph_viewer(panels: list[Panel], key: str, height: int | None = None, wide: bool = True) -> ViewSettings:
    """Toolbar + panels: the whole viewer. Returns the settings, for pages that show more images the same way."""
    settings = toolbar(key, wide)
    show_panels(panels, key, settings, height)
    return settings


def _visit_label(v) -> str:
    grade = "" if np.isnan(v["kl"]) else f" · KL {int(v['kl'])}"
    return f"month {int(v['visit_month'])}{grade}" if not np.isnan(float(v["visit_month"])) else str(v["image_id"])


def cohort_knee_viewer(cohort: Cohort, row: int, key: str, *, overlay: tuple[str, ...] = (),
                       height: int | None = None, wide: bool = True) -> ViewSettings:
    """The viewer on a cohort knee, with the knee's other visits to put beside it (the prior by default)."""
    meta = cohort.metadata
    visits = knee_visits(meta, row)
    now = visits.loc[visits["row"] == row, "visit_month"].iloc[0]
    others = visits[visits["row"] != row]
    rows = [row]
    if len(others):
        options, beside_key = ["none", *(int(r) for r in others["row"])], f"{key}.beside.{row}"
        if st.session_state.get(beside_key) not in options:  # a knee opens beside its prior visit
            prior = prior_visit(meta, row)
            st.session_state[beside_key] = "none" if prior is None else prior
        labels = {int(v["row"]): ("prior · " if v["visit_month"] < now else "follow-up · ") + _visit_label(v)
                  for _, v in others.iterrows()}
        beside = st.segmented_control("Beside it", options, key=beside_key, format_func=lambda r: labels.get(
            r, "nothing"), help="Another visit of the same knee (subject and side), shown the same way.")
        rows += [int(beside)] if beside not in (None, "none") else []
    spacing = images_pixel_mm(cohort, cohort.images.shape[-1])
    panels = []
    for r in rows:
        rec = cohorts.image_record(cohort, r)
        md = rec.metadata
        title = str(md["image_id"]) if len(rows) == 1 else \
            f"Month {md.get('visit_month')}" + (" (this visit)" if r == row else "")
        panels.append(Panel(str(md["image_id"]), rec.image, title, spacing,
                            landmarks=rec.landmarks if "landmarks" in overlay else None,
                            mask=rec.mask if "joint space" in overlay else None,
                            landmark_names=cohort.info.get("landmark_names")))
    if height is None and not wide:  # a narrow column: the images are narrower still
        height = 360 if len(panels) == 1 else 220
    settings = radiograph_viewer(panels, key, height, wide)
    if spacing is not None:
        st.caption(f"Lengths in mm at the cohort's pixel spacing ({spacing:.3g} mm/px"
                   + (f"; {cohort.info['pixel_spacing_note']}" if cohort.info.get("pixel_spacing_note") else "")
                   + ").")
    return settings
