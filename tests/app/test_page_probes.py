"""AppTests of the probe lab (frozen-feature grid, dual-head hierarchy) and the label audit, on the bundled demo."""

from __future__ import annotations

from tests.app.helpers import assert_no_exception, needs_bundled

import pytest

from oaviz.paths import checkpoints_dir
from oaviz.services.probe_lab import run_frozen_grid



_ok = assert_no_exception


@needs_bundled
def test_probe_lab_runs_the_grid_and_the_noise_slider_changes_it(open_page):
    at = open_page("pages/probe_lab.py")
    _ok(at)
    table = at.dataframe[0].value
    # one row per feature set and noise level (clean and 10 %), one column per label fraction
    assert len(table) == 3 * 2
    assert {"5%", "10%", "25%", "50%", "100%"} <= set(table.columns)
    # each cell is the mean test AUC over the five seeds of the default grid, recomputed here without the cache
    tidy = run_frozen_grid(at.selectbox(key="oaviz.cohort").value, [str(checkpoints_dir() / "beta_vae-demo"), "raw",
                           "random"], "oa", [0.05, 0.1, 0.25, 0.5, 1.0], [0.0, 0.1], "symmetric", 5, "logreg",
                           cache=False)
    auc = tidy[tidy.metric == "auc"].groupby(["feature", "noise", "fraction"])["value"].mean()
    names = {"raw pixels": "raw", "random N(0, I) features": "random"}
    assert sorted(names.get(f, f) for f in table["feature"]) == sorted(["beta_vae-demo", "raw", "random"] * 2)
    for _, row in table.iterrows():
        for frac in (0.05, 0.1, 0.25, 0.5, 1.0):
            expected = auc[names.get(row["feature"], row["feature"]), row["noise"], frac]
            assert row[f"{frac:.0%}"] == pytest.approx(expected, abs=1e-12), (row["feature"], row["noise"], frac)
    at.slider(key="probe.noise").set_value(0.3)
    at.slider(key="probe.seeds").set_value(2)
    submit = next(b for b in at.button if b.label == "Run the probes")  # the form's submit button
    submit.click().run()
    _ok(at)
    table2 = at.dataframe[0].value
    assert sorted(table2["noise"].unique()) == [0.0, 0.3]
    assert at.get("plotly_chart")


@pytest.mark.skipif(not (checkpoints_dir() / "dual_head-dual-demo" / "config.json").is_file(),
                    reason="bundled dual-head checkpoints missing (make checkpoints)")
def test_probe_lab_hierarchy_tab_compares_the_variants(open_page):
    at = open_page("pages/probe_lab.py")
    at.toggle(key="probe.hierarchy.run").set_value(True).run()
    _ok(at)
    metrics = next(d.value for d in at.dataframe if "pc1_rho" in d.value.columns)
    assert set(metrics["variant"]) == {"single_oa", "single_kl", "dual"}
    assert metrics["pc1_rho"].between(-1, 1).all()
    mcn = next(d.value for d in at.dataframe if "only_a_correct" in d.value.columns)
    assert len(mcn) == 3 and mcn["p"].between(0, 1).all()


@needs_bundled
def test_label_audit_ranks_reviews_and_exports_a_correction(open_page):
    at = open_page("pages/label_audit.py")
    _ok(at)
    table = at.dataframe[0].value
    assert table["score"].is_monotonic_decreasing
    assert {"given", "suggested", "score"} <= set(table.columns)
    labels = [m.label for m in at.metric]
    assert "Precision at 50" in labels  # synthetic cohort: the truth is known
    first = table.iloc[0]
    at.button(key="audit.accept").click().run()
    _ok(at)
    assert at.session_state["audit.changes"] == {first["image_id"]: int(first["suggested"])}
    assert at.dataframe[0].value.iloc[0]["accepted"] == int(first["suggested"])
    # the other method reorders the list
    at.radio(key="audit.method").set_value("knn").run()
    _ok(at)
    assert at.dataframe[0].value["score"].is_monotonic_decreasing
