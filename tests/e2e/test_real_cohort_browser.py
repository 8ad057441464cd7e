"""A real-style cohort (PNGs named like the public KL dataset's, imported) with the zoo trained on it, in
headless Chromium: the user picks the cohort and the zoo's model set in the sidebar, then every page opens
without an error, uses the set's checkpoint where the set has one and shows something."""

from __future__ import annotations

import os
import re

import pytest

from oaviz.ui.navigation import PAGES
from tests.e2e.conftest import serve_streamlit
from tests.zoo_home import ZOO_COHORT, ZOO_LABEL, build_zoo_home

# Pages whose model kind the tiny zoo trains (the rest fall back to a bundled checkpoint and say why).
FROM_THE_SET = {"Latent map": "beta_vae", "Prototypes": "vaesim", "Key exchange": "kecae"}


@pytest.fixture(scope="module")
def zoo_url(e2e_home, tmp_path_factory):
    home = build_zoo_home(tmp_path_factory.mktemp("e2e-zoo-home"), e2e_home / "cohorts")
    env = {**os.environ, "OAVIZ_HOME": str(home), "STREAMLIT_CLIENT_SHOW_ERROR_DETAILS": "full"}
    env.pop("OAVIZ_DEMO", None)
    with serve_streamlit("app.py", env, tmp_path_factory.mktemp("zoo-log") / "server.log") as url:
        yield url


def _choose(page, wait_idle, label: str, option: str) -> None:
    sidebar = page.locator('[data-testid="stSidebarUserContent"]')
    sidebar.locator('[data-testid="stSelectbox"]').filter(has_text=label).first.click()
    page.get_by_role("option").filter(has_text=option).first.click()
    wait_idle(page)


def _chosen(page, label: str) -> str:
    """The value a sidebar selectbox shows (its input's value; inner text does not include it)."""
    return page.locator('[data-testid="stSidebarUserContent"]').get_by_role("combobox", name=label).input_value()


def _sidebar_text(page) -> str:
    return page.locator('[data-testid="stSidebarUserContent"]').inner_text()


def test_every_page_on_the_real_style_cohort_with_its_zoo(page, zoo_url, wait_idle):
    page.goto(zoo_url)
    wait_idle(page)
    _choose(page, wait_idle, "Cohort", ZOO_COHORT)
    _choose(page, wait_idle, "Model set", ZOO_LABEL)
    assert (ZOO_COHORT in _chosen(page, "Cohort"), _chosen(page, "Model set")) == (True, ZOO_LABEL)
    assert _chosen(page, "Model checkpoint") == "Each page's model from the set"    # not a stale "bundled" label
    for p in PAGES:
        page.locator('[data-testid="stSidebarNav"] a').filter(has_text=re.compile(rf"{re.escape(p.title)}$")).click()
        wait_idle(page)
        where = p.title
        assert page.locator("h1").first.inner_text().endswith(p.title), where
        assert not page.locator('[data-testid="stException"]').all_inner_texts(), where
        assert not page.locator('[data-testid="stAlertContentError"]').all_inner_texts(), where
        assert ZOO_COHORT in _chosen(page, "Cohort") and _chosen(page, "Model set") == ZOO_LABEL, where
        side = _sidebar_text(page)
        if p.title in FROM_THE_SET:
            assert f"{FROM_THE_SET[p.title]} · real · trained on {ZOO_COHORT}" in side, (where, side)
        shown = sum(page.locator(f'[data-testid="{t}"]').count()
                    for t in ("stImage", "stPlotlyChart", "stDataFrame", "stMetric", "stVegaLiteChart"))
        assert shown > 0, where
