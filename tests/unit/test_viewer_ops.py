"""The radiograph viewer's pixel and point work (oaviz.ui.viewer_ops), against hand-computed values."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from oaviz.ui.viewer_ops import (Measurement, ViewSettings, clicked_point, display, knee_visits, measure_click,
                                 prior_visit, segment_length, window_for, zoom_box, zoom_view)

RAMP = np.array([[0.0, 0.25, 0.5, 0.75, 1.0]], np.float32)


def test_default_preset_shows_the_image_as_stored_and_invert_flips_it():
    np.testing.assert_allclose(display(RAMP, ViewSettings()), RAMP)
    np.testing.assert_allclose(display(RAMP, ViewSettings(invert=True)), 1 - RAMP)


def test_bone_and_soft_tissue_presets_stretch_the_bright_and_the_dark_end():
    # bone: window 0.5 around 0.7 -> [0.45, 0.95] to [0, 1]
    np.testing.assert_allclose(display(RAMP, ViewSettings(preset="bone")), [[0, 0, 0.1, 0.6, 1]], atol=1e-6)
    # soft tissue: [0.05, 0.55] to [0, 1]
    np.testing.assert_allclose(display(RAMP, ViewSettings(preset="soft")), [[0, 0.4, 0.9, 1, 1]], atol=1e-6)


def test_full_range_uses_each_image_own_min_and_max():
    img = np.array([[0.2, 0.3, 0.4]], np.float32)
    assert window_for(ViewSettings(preset="full"), img) == pytest.approx((0.2, 0.3))
    np.testing.assert_allclose(display(img, ViewSettings(preset="full")), [[0, 0.5, 1]], atol=1e-6)


def test_custom_window_and_level_are_used_as_given():
    s = ViewSettings(preset="custom", window=0.5, level=0.5)
    np.testing.assert_allclose(display(RAMP, s), [[0, 0, 0.5, 1, 1]])
    np.testing.assert_allclose(display(RAMP, ViewSettings(preset="custom", window=0.5, level=0.5, invert=True)),
                               [[1, 1, 0.5, 0, 0]])


def test_zoom_box_crops_around_the_centre_and_stays_inside():
    assert zoom_box((100, 200), 1.0) == (0, 0, 200, 100)
    assert zoom_box((100, 200), 2.0) == (50, 25, 100, 50)                 # the central half
    assert zoom_box((100, 200), 4.0, centre=(0.0, 1.0)) == (0, 75, 50, 25)  # pushed back inside at a corner


def test_zoom_view_upscales_the_crop_to_the_image_size_and_keeps_its_place():
    img = np.zeros((8, 8), np.float32)
    img[2:6, 2:6] = 1.0  # a bright square in the middle
    v = zoom_view(img, 2.0)
    assert v.box == (2, 2, 4, 4) and v.image.shape == (8, 8) and v.scale == 2.0
    assert v.image.min() >= 0 and v.image.max() <= 1      # bicubic overshoot clipped
    np.testing.assert_allclose(v.image[2:6, 2:6], 1.0, atol=1e-6)  # the crop is the square, all bright
    same = zoom_view(img, 1.0)
    assert same.box == (0, 0, 8, 8) and np.array_equal(same.image, img)
    rgb = np.zeros((8, 8, 3), np.uint8)
    assert zoom_view(rgb, 2.0).image.shape == (8, 8, 3)


def test_two_clicks_make_a_length_and_a_third_starts_a_new_one():
    s = measure_click(Measurement(), (1, 2))
    assert s == Measurement(pending=(1.0, 2.0), segment=None)
    assert measure_click(s, None) == s                               # a click that selected nothing
    s = measure_click(s, (4, 6))
    assert s == Measurement(pending=None, segment=((1.0, 2.0), (4.0, 6.0)))
    s = measure_click(s, (0, 0))
    assert s == Measurement(pending=(0.0, 0.0), segment=None)


def test_length_in_mm_when_the_spacing_is_known_else_in_px():
    known = segment_length((1, 2), (4, 6), 0.5)                      # a 3-4-5 triangle
    assert known.px == 5.0 and known.mm == 2.5
    assert known.text == "2.5 mm (5.0 px at 0.5 mm/px)"
    for spacing in (None, float("nan"), 0.0):
        unknown = segment_length((0, 0), (3, 4), spacing)
        assert unknown.mm is None and unknown.text.startswith("5.0 px (pixel spacing unknown")
    assert segment_length((0, 0), (1, 1), 1.0).px == pytest.approx(math.sqrt(2))


def test_clicked_point_reads_one_point_only():
    assert clicked_point([{"x": 3, "y": 4.5, "curve_number": 2}]) == (3.0, 4.5)
    assert clicked_point([]) is None
    assert clicked_point([{"x": 1, "y": 1}, {"x": 2, "y": 2}]) is None   # a box/lasso, not a click


def _meta():
    return pd.DataFrame({
        "image_id": ["a0", "a12", "b0", "a24", "aL0"],
        "subject_id": ["A", "A", "B", "A", "A"],
        "side": ["R", "R", "R", "R", "L"],
        "visit_month": pd.array([0, 12, 0, 24, 0], dtype="Int64"),
        "kl": pd.array([1, 2, 0, pd.NA, 1], dtype="Int64"),
    })


def test_knee_visits_are_the_same_subject_and_side_by_month():
    v = knee_visits(_meta(), 3)
    assert v["row"].tolist() == [0, 1, 3] and v["visit_month"].tolist() == [0, 12, 24]
    assert v["image_id"].tolist() == ["a0", "a12", "a24"]
    assert v["kl"].iloc[:2].tolist() == [1, 2] and np.isnan(v["kl"].iloc[2])
    assert knee_visits(_meta(), 4)["row"].tolist() == [4]               # the other side is another knee


def test_prior_visit_is_the_latest_earlier_visit():
    m = _meta()
    assert prior_visit(m, 3) == 1 and prior_visit(m, 1) == 0
    assert prior_visit(m, 0) is None and prior_visit(m, 2) is None
    no_months = m.assign(visit_month=pd.array([pd.NA] * 5, dtype="Int64"))
    assert prior_visit(no_months, 3) is None
