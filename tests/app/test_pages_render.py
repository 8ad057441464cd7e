"""Every page in the navigation runs inside the app frame without an exception and shows its title."""

from __future__ import annotations

from pathlib import Path

import pytest

from oaviz.ui.navigation import PAGES

REPO = Path(__file__).resolve().parents[2]


def test_navigation_lists_every_page_file():
    files = sorted(str(p.relative_to(REPO)) for p in (REPO / "pages").glob("*.py"))
    assert sorted(p.file for p in PAGES) == files
    assert len({p.title for p in PAGES}) == len(PAGES)


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.title)
def test_page_renders_in_the_frame(open_page, page):
    at = open_page(page.file)
    assert not at.exception, [e.value for e in at.exception]
    assert at.title[0].value.endswith(page.title)
    # the shared sidebar ran around the page: the cohort picker holds the default cohort
    assert at.selectbox(key="oaviz.cohort").value.endswith("synthetic-knee")


def test_the_app_warms_umap_up_once_in_the_background_unless_told_not_to(monkeypatch):
    import threading

    from oaviz.ui import loaders

    calls = []
    monkeypatch.setattr("oaviz.analysis.projections.warm_up_jit", lambda: calls.append(threading.current_thread().name))
    loaders.warm_up_projections.clear()
    monkeypatch.setenv(loaders.WARM_UP_ENV, "1")
    t = loaders.warm_up_projections()
    t.join(5)
    assert calls == ["oaviz-umap-warm-up"] and t.daemon
    assert loaders.warm_up_projections() is t            # once per server
    loaders.warm_up_projections.clear()
    monkeypatch.setenv(loaders.WARM_UP_ENV, "0")
    assert loaders.warm_up_projections() is None
    loaders.warm_up_projections.clear()
