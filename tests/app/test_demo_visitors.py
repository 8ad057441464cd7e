"""Public demo with several visitors: own cohorts and checkpoints only, every job kind capped per visitor,
and one writer per cohort folder (issue 17). A visitor is a session id (``demo.visitor_id``); AppTest
gives every instance the same one, so each test names its visitors itself."""

from __future__ import annotations

import sys
import time

import pytest

from oaviz.data.cohort import load_cohort
from oaviz.services import cohorts, jobs, model_cards
from oaviz.ui import demo
from tests.app.conftest import REPO
from tests.app.helpers import assert_no_exception
from tests.app.test_page_models import home  # noqa: F401 — the fixture (tiny cohort, a run with a checkpoint)

SLEEP = [sys.executable, "-c", "import time; time.sleep(60)"]


@pytest.fixture()
def visitors(home, monkeypatch):  # noqa: F811
    """``visit(name, page)``: a fresh AppTest of the demo app run as visitor ``name`` on ``page``;
    ``again(at, name)`` reruns it as that visitor. Every job left running is cancelled at the end."""
    from streamlit.testing.v1 import AppTest

    monkeypatch.setenv("OAVIZ_DEMO", "1")

    def again(at, name):
        monkeypatch.setattr(demo, "visitor_id", lambda: name, raising=False)  # (raising: the test runs on old code)
        at.run()
        assert_no_exception(at)
        return at

    def visit(name, page):
        at = AppTest.from_file(str(REPO / "app.py"), default_timeout=60)
        again(at, name)
        at.switch_page(page)
        return again(at, name)

    yield visit, again
    jobs.set_policy(None)
    for job in jobs.running_jobs(home / "runs"):
        jobs.cancel(job.run_dir, grace_s=1)


def _generate(at, name, subjects=4):
    at.session_state["data.tab"] = "Generate"
    at.run()
    at.number_input(key="data.generate.subjects").set_value(subjects)
    at.multiselect(key="data.generate.visits").set_value([0])
    at.select_slider(key="data.generate.size").set_value(64)
    at.text_input(key="data.generate.name").set_value(name)
    at.run()
    return next(b for b in at.button if b.label == "Generate")


def test_a_visitors_cohort_is_listed_only_in_their_own_pickers(visitors, home):  # noqa: F811
    visit, again = visitors
    a = visit("visitor-a", "pages/data.py")
    _generate(a, "mine").click()
    again(a, "visitor-a")
    where = home / "sessions" / "visitor-a" / "cohorts" / "mine"
    assert len(load_cohort(where)) == 4                        # in A's space, not the shared folder
    assert not (home / "cohorts" / "mine").exists()
    assert a.session_state["oaviz.cohort"] == str(where)        # and selected in A's sidebar
    assert "mine" in a.selectbox(key="oaviz.cohort").options    # (AppTest lists the options as shown)
    b = visit("visitor-b", "pages/data.py")
    assert "mine" not in b.selectbox(key="oaviz.cohort").options
    b = visit("visitor-b", "pages/models_training.py")          # nor in the training form's cohort list
    assert "mine" not in b.selectbox(key="models.train.cohort").options
    a = visit("visitor-a", "pages/models_training.py")
    assert "mine" in a.selectbox(key="models.train.cohort").options


def test_a_visitor_does_not_see_another_visitors_trained_checkpoint(visitors, home):  # noqa: F811
    visit, _ = visitors
    run = "beta_vae-20260101-000000"      # a finished training run with a checkpoint; nobody here owns it

    def listed(at):
        return any(o.endswith(f"run {run}") for o in at.selectbox(key="oaviz.checkpoint").options)

    assert not listed(visit("visitor-b", "pages/models_training.py"))
    owner = visit("visitor-a", "pages/models_training.py")
    owner.session_state["jobs.own"] = {str(home / "runs" / run)}   # the session that started it
    owner.run()
    assert listed(owner)


def test_a_fourth_job_of_any_kind_is_refused_with_a_clear_message(visitors, home, monkeypatch):  # noqa: F811
    visit, again = visitors
    for i, kind in enumerate(("train", "probe", "future")):     # three running jobs of visitor A, three kinds
        jobs.start_command(SLEEP, home / "runs" / f"a-{kind}", kind=kind, expects_events=False, owner="visitor-a")
    monkeypatch.setattr(cohorts, "INLINE_GENERATION_MAX_S", 0.0)  # any generation is a job (kind synth)
    a = visit("visitor-a", "pages/data.py")
    _generate(a, "fourth").click()
    again(a, "visitor-a")
    message = "You already have 3 jobs running; wait for one to finish or cancel it."
    assert any(e.value == message for e in a.error), [e.value for e in a.error]
    assert len(jobs.running_jobs(home / "runs")) == 3
    monkeypatch.setattr(model_cards, "trainable_models",
                        lambda: [model_cards.ModelChoice("beta_vae", "β-VAE", ("demo", "paper"))])
    a = visit("visitor-a", "pages/models_training.py")         # the training form says so before a click
    assert any(w.value == message for w in a.warning)
    assert next(b for b in a.button if b.label == "Start training").disabled
    b = visit("visitor-b", "pages/models_training.py")         # another visitor is not held back by A's jobs
    assert not any("jobs running" in w.value for w in b.warning)
    assert not next(x for x in b.button if x.label == "Start training").disabled


def test_a_second_generate_click_does_not_start_a_second_writer(open_page, home, monkeypatch):  # noqa: F811
    monkeypatch.setattr(cohorts, "INLINE_GENERATION_MAX_S", 0.0)
    at = open_page("pages/data.py")
    button = _generate(at, "twice", subjects=400)
    button.click().run()
    assert_no_exception(at)
    next(b for b in at.button if b.label == "Generate").click().run()   # the same form, clicked again
    assert_no_exception(at)
    started = [j for j in jobs.list_jobs(home / "runs") if j.kind == "synth"]
    try:
        assert len(started) == 1, [j.name for j in started]
        assert any("already writing twice" in e.value for e in at.error), [e.value for e in at.error]
    finally:
        for j in started:
            jobs.cancel(j.run_dir, grace_s=2)
        time.sleep(0.2)
