"""The radiograph viewer and the Compare models page in headless Chromium: real clicks and a real lasso.

Plotly reports clicks only through the browser, so the two-click length and the linked lasso are checked
here (the AppTests set the state the callbacks would write).
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from tests.e2e.conftest import trace_lasso
from tests.e2e.test_browser import _exceptions, _open

SHOTS = os.environ.get("OAVIZ_E2E_SHOTS")  # a folder: save screenshots there to look at


def _shot(page, name: str) -> None:
    if SHOTS:
        Path(SHOTS).mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(Path(SHOTS) / f"{name}.png"), full_page=True)


def _click(page, plot, fx: float, fy: float) -> None:
    plot.scroll_into_view_if_needed()  # a mouse click outside the viewport reaches nothing
    box = plot.bounding_box()
    page.mouse.click(box["x"] + fx * box["width"], box["y"] + fy * box["height"])


def test_two_clicks_on_the_browse_image_measure_a_length_in_mm(page, app_url, wait_idle):
    _open(page, app_url, wait_idle, "Data")
    plot = page.locator('[data-testid="stPlotlyChart"] .nsewdrag').first
    plot.wait_for(timeout=60_000)
    _click(page, plot, 0.3, 0.3)
    wait_idle(page)
    page.get_by_text("Click the second point of the length.").wait_for(timeout=30_000)
    _click(page, page.locator('[data-testid="stPlotlyChart"] .nsewdrag').first, 0.7, 0.7)
    wait_idle(page)
    length = page.get_by_text(re.compile(r"^Length: [\d.]+ mm \([\d.]+ px at [\d.]+ mm/px\)$"))
    length.wait_for(timeout=30_000)
    px = float(re.search(r"\(([\d.]+) px", length.inner_text()).group(1))
    assert 20 < px < 40   # 0.4 of a 64-px image along both axes ≈ 36 px, snapped to the click grid
    _shot(page, "data-viewer-length")
    assert not _exceptions(page)


def test_a_lasso_on_one_compared_map_rings_the_same_knees_on_the_other(page, app_url, wait_idle):
    _open(page, app_url, wait_idle, "Compare models")
    plot = page.locator('[data-testid="stPlotlyChart"] .nsewdrag').first
    plot.wait_for(timeout=60_000)
    plot.scroll_into_view_if_needed()
    trace_lasso(page, plot, [(0.1, 0.1), (0.6, 0.1), (0.6, 0.9), (0.1, 0.9), (0.1, 0.12)])
    page.mouse.up()
    wait_idle(page)
    panel = page.locator('[data-testid="stMarkdown"]').filter(has_text=re.compile(r"Selection: \d+ knees")).first
    panel.wait_for(timeout=60_000)
    assert "picked on the left map" in panel.inner_text()
    assert page.get_by_text("Spread of the selection on this map").count() == 2
    _shot(page, "compare-models-lasso")
    assert not _exceptions(page)
