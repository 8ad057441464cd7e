"""The running app in headless Chromium: every page through the navigation, and the Data page's filter."""

from __future__ import annotations

import re

from oaviz.data.cohort import load_cohort
from oaviz.ui.navigation import DEFAULT_PAGE, PAGES


def _nav_link(page, title: str):
    return page.locator('[data-testid="stSidebarNav"] a').filter(has_text=re.compile(rf"{re.escape(title)}$"))


def _exceptions(page) -> list[str]:
    return page.locator('[data-testid="stException"]').all_inner_texts()


def test_every_page_opens_from_the_navigation(page, app_url, wait_idle):
    page.goto(app_url)
    wait_idle(page)
    links = page.locator('[data-testid="stSidebarNav"] a').all_inner_texts()
    assert [t.split("\n")[-1] for t in links] == [p.title for p in PAGES]
    assert page.locator("h1").first.inner_text().endswith(next(p.title for p in PAGES if p.file == DEFAULT_PAGE))
    for p in PAGES:
        _nav_link(page, p.title).click()
        wait_idle(page)
        slug = p.file.removeprefix("pages/").removesuffix(".py")
        if p.file != DEFAULT_PAGE:
            assert page.url.rstrip("/").endswith(slug), (p.title, page.url)
        heading = page.locator("h1").first.inner_text()
        assert heading.endswith(p.title), (p.title, heading)
        assert not _exceptions(page), (p.title, _exceptions(page))
        # the shared sidebar is drawn on every page
        assert page.locator('[data-testid="stSidebarUserContent"]').get_by_text("Cohort", exact=True).count() == 1


def test_deep_link_gets_the_frame(page, app_url, wait_idle):
    page.goto(f"{app_url}/models_training")
    wait_idle(page)
    assert page.locator("h1").first.inner_text().endswith("Models & training")
    assert page.locator('[data-testid="stSidebarNav"] a').count() == len(PAGES)
    assert not _exceptions(page)


def _match_count(page) -> int:
    text = page.get_by_text(re.compile(r"of \d+ images match")).first.inner_text()
    return int(re.match(r"([\d,]+) of", text).group(1).replace(",", ""))


def _grid_height(page) -> float:
    # The table is drawn on a canvas; its scroll area is as tall as its rows.
    return page.locator('[data-testid="stDataFrame"] .dvn-stack > div').nth(1).evaluate("e => e.offsetHeight")


def test_data_page_filter_changes_the_table(page, app_url, e2e_home, wait_idle):
    meta = load_cohort(e2e_home / "cohorts" / "synthetic-knee").metadata
    grade = int(meta["kl"].value_counts().idxmax())
    page.goto(app_url)
    wait_idle(page)
    _nav_link(page, "Data").click()
    wait_idle(page)
    assert _match_count(page) == len(meta)
    table = page.locator('[data-testid="stDataFrame"]').first
    before_png, before_h = table.screenshot(), _grid_height(page)
    assert page.locator('[data-testid="stImage"]').count() >= min(18, len(meta))

    page.locator('[data-testid="stButtonGroup"]').first.get_by_role("button", name=f"KL {grade}").click()
    wait_idle(page)
    expected = int((meta["kl"] == grade).sum())
    assert _match_count(page) == expected
    assert _grid_height(page) < before_h  # fewer rows in the table …
    assert table.screenshot() != before_png  # … and it looks different
    captions = page.locator('[data-testid="stButton"] button[kind="tertiary"]').all_inner_texts()
    assert captions and all(c.startswith(f"KL {grade}") for c in captions)
    assert not _exceptions(page)
