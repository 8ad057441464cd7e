"""AppTest fixtures: every test runs the real app against a private OAVIZ_HOME holding a tiny cohort."""

from __future__ import annotations

from pathlib import Path


import pytest

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="session")
def app_home(tmp_path_factory) -> Path:
    """An OAVIZ_HOME whose default cohort is a tiny synthetic knee cohort (12 subjects × 2 visits, 64 px)."""
    from oaviz.data.synthetic import generate_cohort

    home = tmp_path_factory.mktemp("oaviz-app-home")
    generate_cohort(home / "cohorts" / "synthetic-knee", joint="knee", subjects=12, visits=(0, 12), size=64, seed=0)
    return home


@pytest.fixture()
def app(app_home, monkeypatch):
    """An AppTest of app.py (not yet run) with OAVIZ_HOME pointing to ``app_home``."""
    from streamlit import config
    from streamlit.testing.v1 import AppTest

    # Tests read real exception messages (config.toml shows only types, as a public demo should).
    config.set_option("client.showErrorDetails", "full")
    monkeypatch.setenv("OAVIZ_HOME", str(app_home))
    monkeypatch.delenv("OAVIZ_DEMO", raising=False)
    monkeypatch.chdir(REPO)
    return AppTest.from_file(str(REPO / "app.py"), default_timeout=60)


@pytest.fixture()
def open_page(app):
    """``open_page('pages/data.py')``: run the app once, switch to the page, run it; returns the AppTest."""

    def _open(page_file: str):
        app.run()
        assert not app.exception, [e.value for e in app.exception]
        app.switch_page(page_file).run()
        return app

    return _open
