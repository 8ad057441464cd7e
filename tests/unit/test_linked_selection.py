"""Linked selection between two latent maps (oaviz.ui.linked_selection), as pure functions."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from oaviz.ui.linked_selection import LinkedSelection, default_pair, highlight_trace, link, on_map, relative_spread


def _table(xy, rows=None):
    xy = np.asarray(xy, float)
    rows = list(range(len(xy))) if rows is None else rows
    return pd.DataFrame({"row": rows, "x": xy[:, 0], "y": xy[:, 1], "image_id": [f"k{r}" for r in rows]})


def test_a_selection_on_one_map_is_the_shared_one():
    s = link(None, "left", [5, 3, 3])
    assert s == LinkedSelection((3, 5), "left")
    # a new lasso on the other map replaces it, and is now that map's
    assert link(s, "right", [7]) == LinkedSelection((7,), "right")


def test_a_selection_on_another_cohort_is_dropped():
    s = link(None, "left", [1, 2], cohort="abc")
    assert s == LinkedSelection((1, 2), "left", "abc")
    assert link(s, "right", [], cohort="abc") == s
    assert link(s, "right", [], cohort="xyz") is None         # the sidebar switched cohorts
    assert link(s, "right", [4], cohort="xyz") == LinkedSelection((4,), "right", "xyz")


def test_only_the_map_that_made_the_selection_clears_it():
    s = LinkedSelection((3, 5), "left")
    assert link(s, "right", []) == s        # the other map reporting nothing selected keeps it
    assert link(s, "left", []) is None       # the left map deselected: cleared
    assert link(None, "right", []) is None


def test_the_same_knees_are_found_on_the_other_map_by_cohort_row():
    left = _table([[0, 0], [1, 1], [2, 2], [3, 3]], rows=[10, 11, 12, 13])
    right = _table([[9, 9], [8, 8], [7, 7]], rows=[13, 10, 12])   # another model: other places, other order
    s = link(None, "left", [10, 13])
    assert on_map(right, s.rows)["row"].tolist() == [13, 10]
    tr = highlight_trace(right, s.rows, made_here=False)
    assert list(tr.customdata) == [13, 10] and list(tr.x) == [9, 8] and tr.name == "selected on the other map"
    assert highlight_trace(left, s.rows, made_here=True).name == "selected here"


def test_relative_spread_by_hand():
    # all knees: (0,0), (2,0), (0,2), (2,2) → centroid (1,1), every distance √2
    t = _table([[0, 0], [2, 0], [0, 2], [2, 2]])
    assert relative_spread(t, [0, 1]) == pytest.approx(1 / np.sqrt(2))   # distance 1 to (1, 0), over √2
    assert relative_spread(t, [0, 1, 2, 3]) == pytest.approx(1.0)
    assert np.isnan(relative_spread(t, [0])) and np.isnan(relative_spread(t, []))


def test_default_pair_prefers_the_bundled_beta_vaes():
    paths = ["/c/cnn-demo", "/c/beta_vae-matched-demo", "/c/beta_vae-demo", "/runs/x/model"]
    assert default_pair(paths) == (2, 1)
    assert default_pair(["/a/one", "/a/two", "/a/three"]) == (0, 1)
    assert default_pair(["/a/one", "/c/beta_vae-demo"]) == (1, 0)
