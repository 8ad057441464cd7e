"""AppTest of the latent map above MAX_DRAWN knees: a density layer of every knee, points in the zoom window.

MAX_DRAWN (50,000) is lowered to 10 so the tiny test cohort (24 knees) is 'too many to draw'.
"""

from __future__ import annotations

import base64
import json

import numpy as np

from tests.app.helpers import assert_no_exception, needs_bundled


def _traces(at) -> list[dict]:
    return json.loads(at.get("plotly_chart")[0].proto.spec)["data"]


@needs_bundled
def test_above_max_drawn_the_map_is_a_density_and_a_zoom_draws_points(open_page, monkeypatch):
    from oaviz.ui import map_figure

    monkeypatch.setattr(map_figure, "MAX_DRAWN", 10)
    at = open_page("pages/latent_map.py")
    assert_no_exception(at)
    notice = next(i.value for i in at.info if "density layer" in i.value)
    assert "All 24 knees are on the map" in notice and "narrow it to at most 10" in notice
    names = [t.get("name") for t in _traces(at)]
    assert map_figure.DENSITY in names
    assert set(names) <= {map_figure.DENSITY, map_figure.GRID_TRACE}        # no knee drawn one by one
    # a zoom window holding at most 10 knees draws exactly those as points
    xs = at.slider(key="map.params.zoom_x")
    lo, hi = xs.value
    xs.set_value((lo, lo + 0.15 * (hi - lo))).run()
    assert_no_exception(at)
    notice = next(i.value for i in at.info if "density layer" in i.value)
    m = int(notice.split(": its ")[1].split(" knees")[0])
    assert 1 <= m <= 10
    drawn = [t for t in _traces(at) if t.get("name") not in (map_figure.DENSITY, map_figure.GRID_TRACE)]
    rows = np.concatenate([np.frombuffer(base64.b64decode(t["customdata"]["bdata"]), np.int32) for t in drawn])
    assert len(rows) == m
