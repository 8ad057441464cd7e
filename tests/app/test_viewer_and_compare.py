"""AppTests of the radiograph viewer (Data → Browse, Reconstructions) and the Compare models page, on the
tiny default cohort (12 subjects × 2 visits, 64 px) and the bundled demo checkpoints."""

from __future__ import annotations

import base64
import json

import numpy as np
import pytest

from oaviz.data.cohort import load_cohort
from oaviz.services.measure import images_pixel_mm
from oaviz.ui.linked_selection import LinkedSelection
from oaviz.ui.viewer_ops import Measurement
from tests.app.helpers import assert_no_exception, needs_bundled
from tests.app.test_page_methods import with_method_ckpts  # noqa: F401 (a fixture)

VIEWER = "data.detail.viewer"


def _specs(at, prefix: str) -> dict[str, dict]:
    return {c.proto.id: json.loads(c.proto.spec) for c in at.get("plotly_chart") if prefix in c.proto.id}


def _image_z(spec: dict) -> np.ndarray:
    """The RGB pixels of the figure's image trace (plotly sends numpy arrays base64-encoded)."""
    z = next(t for t in spec["data"] if t["type"] == "image")["z"]
    if isinstance(z, dict):
        flat = np.frombuffer(base64.b64decode(z["bdata"]), dtype=np.dtype(z["dtype"]))
        return flat.reshape(z["shape"] if isinstance(z["shape"], list) else [int(s) for s in z["shape"].split(",")])
    return np.asarray(z)


def _viewer_images(at) -> list[np.ndarray]:
    return [_image_z(s) for s in _specs(at, VIEWER).values()]


def _open_browse_at(open_page, app_home, month: int):
    """The Data page with the first knee of visit ``month`` in the detail panel (its thumbnail clicked)."""
    at = open_page("pages/data.py")
    meta = load_cohort(app_home / "cohorts" / "synthetic-knee").metadata
    row = int(np.flatnonzero(meta["visit_month"].to_numpy() == month)[0])
    at.button(key=f"data.thumb.{row}").click().run()
    assert_no_exception(at)
    return at, meta, row


def test_browse_detail_shows_the_knee_beside_its_prior_visit(open_page, app_home):
    at, meta, row = _open_browse_at(open_page, app_home, 12)
    prior = int(np.flatnonzero((meta["subject_id"] == meta["subject_id"][row]) & (meta["side"] == meta["side"][row])
                               & (meta["visit_month"] == 0))[0])
    beside = at.segmented_control(key=f"{VIEWER}.beside.{row}")
    assert beside.value == prior
    images = _viewer_images(at)
    assert len(images) == 2 and all(i.shape == (64, 64, 3) for i in images)
    # by hand: the prior panel shows the prior's pixels (the default window shows the image as stored)
    cohort = load_cohort(app_home / "cohorts" / "synthetic-knee")
    np.testing.assert_array_equal(images[1][..., 0], cohort.images[prior])
    beside.set_value("none").run()
    assert_no_exception(at)
    assert len(_viewer_images(at)) == 1


def test_viewer_invert_preset_zoom_and_reset_change_what_is_shown(open_page, app_home):
    at, meta, row = _open_browse_at(open_page, app_home, 0)
    cohort = load_cohort(app_home / "cohorts" / "synthetic-knee")
    at.segmented_control(key=f"{VIEWER}.beside.{row}").set_value("none").run()
    base = _viewer_images(at)[0][..., 0].astype(int)
    np.testing.assert_array_equal(base, cohort.images[row])
    at.toggle(key=f"{VIEWER}.invert").set_value(True).run()
    assert np.abs(_viewer_images(at)[0][..., 0].astype(int) - (255 - base)).max() <= 1
    at.segmented_control(key=f"{VIEWER}.preset").set_value("bone").run()
    assert (at.slider(key=f"{VIEWER}.window").value, at.slider(key=f"{VIEWER}.level").value) == (0.5, 0.7)
    at.slider(key=f"{VIEWER}.level").set_value(0.6).run()
    custom = np.clip((cohort.images[row] / 255.0 - 0.35) / 0.5, 0, 1)   # window 0.5 around level 0.6
    assert np.abs(_viewer_images(at)[0][..., 0] - np.round(255 * (1 - custom))).max() <= 1   # still inverted
    assert at.segmented_control(key=f"{VIEWER}.preset").value is None   # a moved slider: a custom window
    at.select_slider(key=f"{VIEWER}.zoom").set_value(2.0).run()
    spec = next(iter(_specs(at, VIEWER).values()))
    assert spec["layout"]["xaxis"]["range"] == [15.5, 47.5]   # the central 32 px of 64, in original pixels
    at.button(key=f"{VIEWER}.reset").click().run()
    assert_no_exception(at)
    assert at.toggle(key=f"{VIEWER}.invert").value is False and at.select_slider(key=f"{VIEWER}.zoom").value == 1.0
    np.testing.assert_array_equal(_viewer_images(at)[0][..., 0].astype(int), base)


def test_a_two_click_length_is_reported_in_mm_at_the_cohort_spacing(open_page, app_home):
    at, meta, row = _open_browse_at(open_page, app_home, 0)
    at.segmented_control(key=f"{VIEWER}.beside.{row}").set_value("none").run()
    cohort = load_cohort(app_home / "cohorts" / "synthetic-knee")
    spacing = images_pixel_mm(cohort, 64)
    assert spacing is not None
    at.session_state[f"{VIEWER}.measure.{meta.image_id[row]}"] = Measurement(segment=((10.0, 20.0), (13.0, 24.0)))
    at.run()
    assert_no_exception(at)
    assert any(m.value == f"Length: **{5 * spacing:.1f} mm (5.0 px at {spacing:.3g} mm/px)**" for m in at.markdown)
    spec = next(iter(_specs(at, VIEWER).values()))
    line = next(t for t in spec["data"] if t.get("name") == "length")
    assert line["x"] == [10.0, 13.0] and line["y"] == [20.0, 24.0]
    at.button(key=f"{VIEWER}.measure.{meta.image_id[row]}.clear").click().run()
    assert not any(m.value.startswith("Length:") for m in at.markdown)
    assert not any(t.get("name") == "length" for t in next(iter(_specs(at, VIEWER).values()))["data"])


def test_future_knee_and_key_exchange_look_closer_in_the_viewer(open_page, with_method_ckpts):
    at = open_page("pages/future_knee.py")
    at.selectbox(key="future.ckpt").set_value(str(with_method_ckpts / "ld"))
    at.slider(key="future.n").set_value(2)
    at.select_slider(key="future.steps").set_value(10).run()
    assert not _specs(at, "future.viewer")                      # off until asked
    at.toggle(key="future.look").set_value(True).run()
    assert_no_exception(at)
    panels = _specs(at, "future.viewer.chart")
    assert len(panels) == 3                                     # today, mean future, the real follow-up
    at = open_page("pages/key_exchange.py")
    at.selectbox(key="exchange.ckpt").set_value(str(with_method_ckpts / "ke"))
    at.toggle(key="exchange.look").set_value(True).run()
    assert_no_exception(at)
    assert len(_specs(at, "exchange.viewer.chart")) == 2        # reconstruction and exchanged


@needs_bundled
def test_reconstructions_page_shows_one_knee_large_in_the_viewer(open_page):
    at = open_page("pages/reconstructions.py")
    assert_no_exception(at)
    assert len(_specs(at, "recon.viewer.chart")) == 2      # original and reconstruction
    n_images = len(at.image)
    at.toggle(key="recon.viewer.invert").set_value(True).run()
    assert_no_exception(at)
    assert len(at.image) == n_images


@needs_bundled
def test_compare_models_page_links_the_selection_across_the_two_maps(open_page):
    at = open_page("pages/compare_models.py")
    assert_no_exception(at)
    assert at.selectbox(key="compare.a").value.endswith("beta_vae-demo")
    assert at.selectbox(key="compare.b").value.endswith("beta_vae-matched-demo")
    maps = _specs(at, "compare.map")
    assert len(maps) == 2
    assert len(_specs(at, "compare.probe")) == 2 and len(_specs(at, "compare.severity")) == 2
    assert len([d for d in at.dataframe if "value" in d.value.columns]) >= 2   # a structure table per map
    # a lasso on the left map (what its callback stores): the same knees are ringed on both maps
    fingerprint = load_cohort(at.selectbox(key="oaviz.cohort").value).fingerprint
    at.session_state["compare.selection"] = LinkedSelection((0, 3, 5), "left", "another cohort")
    at.run()
    assert not any(m.value.startswith("**Selection:") for m in at.markdown)   # rows of another cohort: ignored
    at.session_state["compare.selection"] = LinkedSelection((0, 3, 5), "left", fingerprint)
    at.run()
    assert_no_exception(at)
    for spec in _specs(at, "compare.map").values():
        ring = [t for t in spec["data"] if t.get("name", "").startswith("selected")]
        assert len(ring) == 1
        cd = ring[0]["customdata"]
        rows = np.frombuffer(base64.b64decode(cd["bdata"]), np.dtype(cd["dtype"])) if isinstance(cd, dict) else cd
        assert sorted(int(r) for r in rows) == [0, 3, 5]
    assert any(m.value.startswith("**Selection: 3 knees**, picked on the left map") for m in at.markdown)
    assert len([m for m in at.metric if m.label == "Spread of the selection on this map"]) == 2
    at.button(key="compare.clear").click().run()
    assert_no_exception(at)
    assert "compare.selection" not in at.session_state
