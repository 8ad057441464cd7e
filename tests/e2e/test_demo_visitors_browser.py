"""The public demo (OAVIZ_DEMO=1) with two visitors in two browser contexts (two sessions): B neither sees
nor can cancel A's jobs or upload, a second writer of one cohort and A's fourth job are refused with a
clear message, and no page either of them opens shows a server path or an exception (issue 17)."""

from __future__ import annotations

import re
import sys

import numpy as np
import pytest

from oaviz.services import jobs
from oaviz.ui.demo import DEMO_MAX_JOBS_PER_VISITOR
from oaviz.ui.navigation import PAGES
from tests.e2e.conftest import REPO

SLEEP = [sys.executable, "-c", "import time; time.sleep(120)"]
# (A may have one more than the cap running: its generation, if still going, and the jobs started for it.)
REFUSED = re.compile(r"^You already have \d+ jobs running; wait for one to finish or cancel it\.$")


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

    # A starts a generation job (the largest the demo allows, so it runs a while); a second click for the
    # cohort being written starts no second writer.
    _open_data_tab(a, wait_idle, "Generate")
    _fill(a, "stNumberInput", "Subjects", 200)                   # × 3 visits = the demo's 600-image cap
    wait_idle(a)
    a.locator('[data-testid="stSlider"]').filter(has_text="Image size (px)").get_by_role("slider").press("End")
    wait_idle(a)
    assert a.get_by_text("runs as a background job").count() == 1
    _generate(a, wait_idle, "a-job1")
    assert a.get_by_text("generate a-job1").count() == 1, _text(a)[-2000:]
    _generate(a, wait_idle, "a-job1")
    refused_twice = re.compile(r"a job is already writing a-job1|a cohort called 'a-job1' already exists")
    assert a.get_by_text(refused_twice).count() == 1, _text(a)[-3000:]
    assert len([j for j in jobs.list_jobs(demo_runs) if j.title.startswith("generate a-job1")]) == 1
    a.get_by_text("Command and log").first.click()                 # the job's command and log: no server path
    wait_idle(a)
    _no_server_path(a, demo_home, "A's job")

    # A few more of A's jobs (long ones, as A's training or probe jobs would be: started here on A's behalf,
    # so that the cap is reached however fast the machine generates) and A's next job is refused.
    (visitor_a,) = [d.name for d in (demo_home / "sessions").iterdir()]   # only A has made something
    for i in range(DEMO_MAX_JOBS_PER_VISITOR):
        jobs.start_command(SLEEP, demo_runs / f"a-long-{i}", kind="train", title="A's long job",
                           expects_events=False, owner=visitor_a)
    _generate(a, wait_idle, "a-job4")
    assert a.get_by_text(REFUSED).count() == 1, _text(a)[-2000:]
    assert not [j for j in jobs.list_jobs(demo_runs) if j.title.startswith("generate a-job4")]

    # B sees none of A's jobs and has no Cancel button for them, on the Data page or on Models & training,
    # and A's jobs do not count against B.
    _open_data_tab(b, wait_idle, "Generate")
    assert b.get_by_text("Jobs started here").count() == 0
    assert b.get_by_role("button", name="Cancel").count() == 0
    _nav(b, "Models & training")
    wait_idle(b)
    assert b.get_by_text(re.compile(r"generate a-job|A's long job")).count() == 0
    assert b.get_by_role("button", name="Cancel").count() == 0
    assert b.get_by_text(REFUSED).count() == 0

    # A sees the job it started there, the training form says A is at the cap, and A can cancel it.
    _nav(a, "Models & training")
    wait_idle(a)
    assert a.get_by_text("generate a-job1").count() == 1
    assert a.get_by_text(REFUSED).count() == 1
    if a.get_by_role("button", name="Cancel").count():            # (unless the generation has finished)
        a.get_by_role("button", name="Cancel").first.click()
        wait_idle(a)
        assert [j.status for j in jobs.list_jobs(demo_runs) if j.title.startswith("generate a-job1")] == \
            ["cancelled"]

    # No page shows a server path, to either visitor.
    for pg, who in ((a, "A"), (b, "B")):
        for p in PAGES:
            _nav(pg, p.title)
            wait_idle(pg)
            _no_server_path(pg, demo_home, f"{who}: {p.title}")
            errors = pg.locator('[data-testid="stException"]').all_inner_texts()
            assert not errors, (who, p.title, errors)   # e.g. a widget default over a demo cap
