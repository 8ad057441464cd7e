"""The public demo (OAVIZ_DEMO=1) with two visitors in two browser contexts (two sessions): B neither sees
nor can cancel A's jobs or upload, A's fourth job is refused with a clear message, and no page either of
them opens shows a server path (issue 17)."""

from __future__ import annotations

import re

import numpy as np
import pytest

from oaviz.services import jobs
from oaviz.ui.demo import DEMO_MAX_JOBS_PER_VISITOR
from oaviz.ui.navigation import PAGES
from tests.e2e.conftest import REPO

REFUSED = f"You already have {DEMO_MAX_JOBS_PER_VISITOR} jobs running; wait for one to finish or cancel it."


@pytest.fixture()
def visitor(browser, demo_url):
    """``visitor()``: a page in a browser context of its own (its own session) on the demo server."""
    contexts = []

    def _new():
        ctx = browser.new_context(viewport={"width": 1400, "height": 1000})
        contexts.append(ctx)
        pg = ctx.new_page()
        pg.set_default_timeout(90_000)
        return pg

    yield _new
    for ctx in contexts:
        ctx.close()


@pytest.fixture()
def demo_runs(demo_home):
    yield demo_home / "runs"
    for job in jobs.running_jobs(demo_home / "runs"):
        jobs.cancel(job.run_dir, grace_s=2)


def _nav(page, title):
    page.locator('[data-testid="stSidebarNav"] a').filter(has_text=re.compile(rf"{re.escape(title)}$")).click()


def _open_data_tab(page, wait_idle, tab):
    """The Data page's ``tab``, through the navigation (a reload would start a new session: a new visitor)."""
    _nav(page, "Data")
    wait_idle(page)
    page.get_by_role("tab", name=tab).click()
    wait_idle(page)


def _fill(page, testid, label, value):
    box = page.locator(f'[data-testid="{testid}"]').filter(has_text=label).locator("input").first
    box.fill(str(value))
    box.press("Enter")


def _sidebar_cohorts(page) -> list[str]:
    page.locator('[data-testid="stSidebarUserContent"] [data-testid="stSelectbox"]').first.click()
    names = page.get_by_role("option").all_inner_texts()
    page.keyboard.press("Escape")
    return names


def _generate(page, wait_idle, name):
    _fill(page, "stTextInput", "Cohort name", name)
    wait_idle(page)
    page.get_by_role("button", name="Generate", exact=True).click()
    wait_idle(page)


def _text(page) -> str:
    return page.locator("body").inner_text()


def _no_server_path(page, demo_home, where):
    text = _text(page)
    for path in (str(demo_home), str(REPO), "/tmp/"):
        assert path not in text, (where, path, text[max(0, text.find(path) - 200):text.find(path) + 200])


def test_two_visitors_of_the_public_demo(visitor, demo_url, demo_home, demo_runs, wait_idle, tmp_path):
    a, b = visitor(), visitor()
    try:
        _body(a, b, demo_url, demo_home, demo_runs, wait_idle, tmp_path)
    except Exception:   # what each visitor saw, for the failure report
        a.screenshot(path=str(tmp_path / "visitor_a.png"))
        b.screenshot(path=str(tmp_path / "visitor_b.png"))
        raise


def _body(a, b, demo_url, demo_home, demo_runs, wait_idle, tmp_path):
    for pg in (a, b):
        pg.goto(demo_url)
        wait_idle(pg)

    # A uploads a small MedMNIST-style cohort: it lands in A's pickers only.
    npz = tmp_path / "knees.npz"
    rng = np.random.default_rng(0)
    np.savez(npz, train_images=rng.integers(0, 255, (12, 28, 28), dtype=np.uint8),
             train_labels=rng.integers(0, 5, (12, 1)), test_images=rng.integers(0, 255, (6, 28, 28), dtype=np.uint8),
             test_labels=rng.integers(0, 5, (6, 1)))
    _open_data_tab(a, wait_idle, "Import")
    a.get_by_text("MedMNIST .npz", exact=True).click()
    wait_idle(a)
    _fill(a, "stTextInput", "Cohort name", "a-upload")
    wait_idle(a)
    a.locator('[data-testid="stFileUploader"] input[type="file"]').set_input_files(str(npz))
    wait_idle(a)
    a.get_by_role("button", name="Import", exact=True).click()
    wait_idle(a)
    a.get_by_text(re.compile(r"Imported a-upload")).wait_for()
    assert any(n.startswith("a-upload") for n in _sidebar_cohorts(a))
    _open_data_tab(b, wait_idle, "Import")
    assert not any("a-upload" in n for n in _sidebar_cohorts(b))

    # A starts three generation jobs (the largest images, so they run a while); a second click for a
    # cohort being written and a fourth job are refused, with messages a visitor can act on.
    _open_data_tab(a, wait_idle, "Generate")
    _fill(a, "stNumberInput", "Subjects", 200)                   # × 3 visits = the demo's 600-image cap
    wait_idle(a)
    a.locator('[data-testid="stSlider"]').filter(has_text="Image size (px)").get_by_role("slider").press("End")
    wait_idle(a)
    assert a.get_by_text("runs as a background job").count() == 1
    for i in range(1, DEMO_MAX_JOBS_PER_VISITOR + 1):
        _generate(a, wait_idle, f"a-job{i}")
        assert a.get_by_text(f"generate a-job{i}").count() == 1, _text(a)[-2000:]
    _generate(a, wait_idle, f"a-job{DEMO_MAX_JOBS_PER_VISITOR}")  # the same cohort again: no second writer
    assert a.get_by_text(re.compile(rf"a job is already writing a-job{DEMO_MAX_JOBS_PER_VISITOR}")).count() == 1, \
        _text(a)[-3000:]
    _generate(a, wait_idle, "a-job4")
    assert a.get_by_text(REFUSED).count() == 1, _text(a)[-2000:]
    running = jobs.running_jobs(demo_runs)
    assert len(running) == DEMO_MAX_JOBS_PER_VISITOR and len({j.owner for j in running}) == 1
    a.get_by_text("Command and log").first.click()                 # the job's command and log: no server path
    wait_idle(a)
    _no_server_path(a, demo_home, "A's jobs")

    # B sees none of A's jobs and has no Cancel button for them, on the Data page or on Models & training.
    _open_data_tab(b, wait_idle, "Generate")
    assert b.get_by_text("Jobs started here").count() == 0
    assert b.get_by_role("button", name="Cancel").count() == 0
    _nav(b, "Models & training")
    wait_idle(b)
    assert b.get_by_text(re.compile(r"generate a-job")).count() == 0
    assert b.get_by_role("button", name="Cancel").count() == 0
    assert b.get_by_text(REFUSED).count() == 0                    # A's jobs do not count against B

    # A sees its jobs there and can cancel one.
    _nav(a, "Models & training")
    wait_idle(a)
    assert a.get_by_text(re.compile(r"generate a-job")).count() == DEMO_MAX_JOBS_PER_VISITOR
    assert a.get_by_text(REFUSED).count() == 1                    # the training form says so before a click
    a.get_by_role("button", name="Cancel").first.click()
    wait_idle(a)
    assert len(jobs.running_jobs(demo_runs)) == DEMO_MAX_JOBS_PER_VISITOR - 1

    # No page shows a server path, to either visitor.
    for pg, who in ((a, "A"), (b, "B")):
        for p in PAGES:
            _nav(pg, p.title)
            wait_idle(pg)
            _no_server_path(pg, demo_home, f"{who}: {p.title}")
