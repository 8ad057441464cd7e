"""The latent-map figure at scale: typed arrays only, every knee unsampled up to MAX_DRAWN, density above."""

from __future__ import annotations

import base64
import importlib.util
import json
from pathlib import Path

import numpy as np
import plotly.io
import pytest

from oaviz.ui import map_figure as mf

_spec = importlib.util.spec_from_file_location(
    "scale_interactions", Path(__file__).resolve().parents[2] / "bench" / "scale_interactions.py")
si = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(si)

DTYPES = {"f4": np.float32, "i4": np.int32, "i1": np.int8, "i2": np.int16}


def _spec_of(fig) -> dict:
    return json.loads(plotly.io.to_json(fig, validate=False))


def _array(v) -> np.ndarray:
    assert isinstance(v, dict) and {"dtype", "bdata"} <= set(v) <= {"dtype", "bdata", "shape"}, \
        f"not a typed array: {str(v)[:80]}"
    return np.frombuffer(base64.b64decode(v["bdata"]), DTYPES[v["dtype"]])


@pytest.mark.parametrize("colour", ["kl", "severity", "side"])
def test_every_knee_goes_as_typed_arrays_and_nothing_per_knee_else(colour):
    table = si.synthetic_map_table(3000)
    d = _spec_of(mf.latent_map_figure(table, colour))
    knees = [t for t in d["data"] if t["name"] != mf.GRID_TRACE]
    rows = np.concatenate([_array(t["customdata"]) for t in knees])
    assert sorted(rows.tolist()) == list(range(3000))                   # every knee, once, unsampled
    for t in knees:
        x, y, r = _array(t["x"]), _array(t["y"]), _array(t["customdata"])
        np.testing.assert_array_equal(x, table["x"].to_numpy(np.float32)[r])   # each knee at its own place
        np.testing.assert_array_equal(y, table["y"].to_numpy(np.float32)[r])
        assert "text" not in t and "meta" not in t and "hovertext" not in t  # no per-knee strings
    if colour == "severity":
        np.testing.assert_allclose(_array(knees[0]["marker"]["color"]),
                                   table["severity"].to_numpy(np.float32)[_array(knees[0]["customdata"])])


def test_payload_is_what_the_typed_arrays_weigh():
    # by hand: 50,000 knees × (x, y float32 + row int32) = 600 kB, base64 (4/3) = 800 kB; the plotly JSON
    # adds escapes, the click grid and the layout. Image ids or per-knee strings would add > 500 kB.
    b = si.map_payload_bytes(50_000)
    assert 800_000 < b["kl"] < 1_050_000
    assert 1_067_000 < b["severity"] < 1_400_000            # + the colour values (float32)


def test_above_max_drawn_a_density_of_every_knee_and_the_points_of_the_view(monkeypatch):
    monkeypatch.setattr(mf, "MAX_DRAWN", 2000)
    table = si.synthetic_map_table(5000)
    d = _spec_of(mf.latent_map_figure(table, "kl"))
    dens = [t for t in d["data"] if t["name"] == mf.DENSITY]
    assert len(dens) == 1 and np.nansum(_array(dens[0]["z"])) == 5000   # every knee counted, none dropped
    assert not [t for t in d["data"] if t["name"] not in (mf.DENSITY, mf.GRID_TRACE)]  # too many in view: none
    view = (-0.5, 0.5, -0.5, 0.5)
    inside = mf.in_view(table, view)
    assert 0 < inside.sum() <= 2000
    d = _spec_of(mf.latent_map_figure(table, "kl", view=view))
    rows = np.concatenate([_array(t["customdata"]) for t in d["data"] if t["name"] not in (mf.DENSITY, mf.GRID_TRACE)])
    assert sorted(rows.tolist()) == np.flatnonzero(inside).tolist()
    assert np.nansum(_array(next(t for t in d["data"] if t["name"] == mf.DENSITY)["z"])) == 5000


def test_selected_points_reads_rows_from_typed_customdata():
    event = {"selection": {"points": [{"customdata": 7, "x": 0, "y": 0}, {"customdata": [3], "x": 1, "y": 1},
                                      {"customdata": -1, "x": 2.5, "y": 3.5}]}}
    assert mf.selected_points(event) == ([3, 7], None)          # grid points caught by a lasso are ignored
    assert mf.selected_points({"selection": {"points": [{"customdata": -1, "x": 2.5, "y": 3.5}]}}) == ([], (2.5, 3.5))
