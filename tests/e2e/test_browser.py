"""The running app in headless Chromium: every page through the navigation, and the Data page's filter."""

from __future__ import annotations

import re

from oaviz.data.cohort import load_cohort
from tests.e2e.conftest import trace_lasso
from oaviz.ui.navigation import DEFAULT_PAGE, PAGES


def _nav_link(page, title: str):
    return page.locator('[data-testid="stSidebarNav"] a').filter(has_text=re.compile(rf"{re.escape(title)}$"))


def _slug(file: str) -> str:
    """Streamlit's url path of a page file: its stem."""
    return file.removeprefix("pages/").removesuffix(".py")


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
        if p.file != DEFAULT_PAGE:
            assert page.url.rstrip("/").endswith(_slug(p.file)), (p.title, page.url)
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


def _open(page, app_url, wait_idle, title: str) -> None:
    """Open a page by its deep link (Streamlit's url path: the file's stem, "/" for the landing page).

    Clicking the menu is tested once, above; under CPU load Streamlit keeps the menu's links disabled while
    the landing page's run lasts, which made every test that only needs *a* page wait on it too (and time out)."""
    file = next(p.file for p in PAGES if p.title == title)
    page.goto(f"{app_url}/{'' if file == DEFAULT_PAGE else _slug(file)}")
    wait_idle(page)
    assert page.locator("h1").first.inner_text().endswith(title)


def test_latent_map_lasso_shows_the_selection_panel(page, app_url, wait_idle):
    _open(page, app_url, wait_idle, "Latent map")
    plot = page.locator('[data-testid="stPlotlyChart"] .nsewdrag').first
    plot.wait_for(timeout=60_000)
    trace_lasso(page, plot, [(0.1, 0.1), (0.9, 0.1), (0.9, 0.9), (0.1, 0.9), (0.1, 0.12)])  # the middle 80 %
    page.mouse.up()
    wait_idle(page)
    panel = page.get_by_text(re.compile(r"Selection: \d+ knees"))
    panel.wait_for(timeout=60_000)
    n = int(re.search(r"(\d+) knees", panel.inner_text()).group(1))
    assert n > 1
    assert page.get_by_text("mean image of the selection").count() == 1
    assert page.get_by_role("button", name="Export the selection (CSV)").count() == 1
    assert not _exceptions(page)


def test_latent_map_upload_lands_on_the_map(page, app_url, e2e_home, wait_idle, tmp_path):
    from PIL import Image

    cohort = load_cohort(e2e_home / "cohorts" / "synthetic-knee")
    png = tmp_path / "knee.png"
    Image.fromarray(cohort.images[3]).save(png)
    _open(page, app_url, wait_idle, "Latent map")
    page.get_by_text("Upload a knee (PNG, JPEG or DICOM)").click()
    page.locator('[data-testid="stFileUploader"] input[type="file"]').set_input_files(str(png))
    wait_idle(page)
    page.get_by_text("Your upload", exact=True).wait_for(timeout=60_000)
    # the star is a trace of the map itself
    assert page.locator('[data-testid="stPlotlyChart"]').first.get_by_text("your upload", exact=True).count() == 1
    assert page.get_by_text("as preprocessed").count() == 1
    assert page.get_by_text(re.compile(r"reconstruction \(MSE")).count() == 1
    assert not _exceptions(page)


def test_probe_lab_hierarchy_and_label_audit_in_the_browser(page, app_url, wait_idle):
    _open(page, app_url, wait_idle, "Probe lab")
    page.get_by_role("button", name="Run the probes").click()
    wait_idle(page)
    assert page.locator('[data-testid="stPlotlyChart"]').count() >= 1
    assert page.locator('[data-testid="stDataFrame"]').count() >= 1
    page.get_by_role("tab", name="OA/KL hierarchy (dual head)").click()
    page.get_by_text(re.compile(r"^Compare .* on the test split$")).click()
    wait_idle(page)
    page.get_by_text("McNemar's test on the OA decisions").wait_for(timeout=120_000)
    assert not _exceptions(page)

    _nav_link(page, "Label audit").click()
    wait_idle(page)
    page.get_by_text("Precision at 50").wait_for(timeout=60_000)
    page.get_by_role("button", name="Accept the suggestion").click()
    wait_idle(page)
    assert page.get_by_role("button", name=re.compile(r"Export corrected labels \(1 changed\)")).count() == 1
    assert not _exceptions(page)
