"""Every page on cohorts unlike the default: a hip cohort with one visit, and scikit-learn's digits
(ten classes, no KL grades). Pages must render or say plainly what they need, never raise."""

from __future__ import annotations

import shutil

import pytest

from oaviz.ui.navigation import PAGES


@pytest.fixture(scope="module")
def other_home(app_home, tmp_path_factory):
    from oaviz.analysis.clustering import digits_cohort
    from oaviz.data.synthetic import generate_cohort

    home = tmp_path_factory.mktemp("other-home")
    shutil.copytree(app_home / "cohorts", home / "cohorts")
    generate_cohort(home / "cohorts" / "hip", joint="hip", subjects=10, visits=(0,), size=64, seed=3)
    digits_cohort(home / "cohorts" / "digits", size=32)
    return home


@pytest.mark.parametrize("cohort", ["hip", "digits"])
@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.title)
def test_page_runs_on_another_cohort(app, other_home, monkeypatch, cohort, page):
    monkeypatch.setenv("OAVIZ_HOME", str(other_home))
    app.run()
    app.selectbox(key="oaviz.cohort").set_value(str(other_home / "cohorts" / cohort)).run()
    app.switch_page(page.file).run()
    assert not app.exception, [e.value for e in app.exception]
    assert app.title[0].value.endswith(page.title)
    assert app.selectbox(key="oaviz.cohort").value.endswith(cohort)
