"""AppTests of the Future knee and Key exchange pages with tiny checkpoints placed among the runs."""

from __future__ import annotations

import re

from tests.app.helpers import assert_no_exception

import shutil

import pytest

from oaviz.data.cohort import load_cohort
from oaviz.services.exchange import exchange_pair
from oaviz.services.future import generate_futures, load_future_models
from tests.tiny_checkpoints import future_and_exchange_checkpoints


@pytest.fixture()
def with_method_ckpts(app_home, tmp_path, monkeypatch):
    """A private OAVIZ_HOME: the app's tiny cohort plus tiny diffusion/KECAE checkpoints as finished runs."""
    home = tmp_path / "home"
    shutil.copytree(app_home / "cohorts", home / "cohorts")
    cohort = load_cohort(home / "cohorts" / "synthetic-knee")
    root = future_and_exchange_checkpoints(home / "runs", cohort)
    monkeypatch.setenv("OAVIZ_HOME", str(home))
    return root


def _wait_finished(run: str, timeout_s: float = 120):
    """The job of run folder ``run`` once it has ended; it must have finished."""
    import time

    from oaviz.services import jobs

    deadline = time.time() + timeout_s
    while jobs.read_job(run).status == "running" and time.time() < deadline:
        time.sleep(0.5)
    job = jobs.read_job(run)
    assert job.status == "finished", (job.status, job.message, jobs.log_tail(run, 20))
    return job


_ok = assert_no_exception


def test_future_knee_page_generates_futures_and_the_sample_slider_changes_them(open_page, with_method_ckpts):
    at = open_page("pages/future_knee.py")
    _ok(at)
    at.selectbox(key="future.ckpt").set_value(str(with_method_ckpts / "ld"))  # the tiny one, not a bundled one
    at.toggle(key="future.go").set_value(True)
    at.slider(key="future.n").set_value(3)
    at.select_slider(key="future.steps").set_value(10).run()
    _ok(at)
    labels = [m.label for m in at.metric]
    assert "Risk of progression" in labels
    # the page's knee, futures, steps and seed through the service: the same risk and grades
    res = generate_futures(load_future_models(with_method_ckpts / "ld"), cohort=load_cohort(
        at.selectbox(key="oaviz.cohort").value), row=at.session_state["future.knee"], n_samples=3, steps=10, seed=0)
    assert at.metric[labels.index("Risk of progression")].value == f"{res.risk:.0%}"
    assert at.metric[labels.index("Predicted KL today")].value == (f"{int(res.kl_probs_now.argmax())} "
                                                                   f"({res.kl_probs_now.max():.0%})")
    captions = [i.proto.imgs[0].caption for i in at.image]
    assert sum(c.startswith("#") for c in captions) == 3
    assert any(c.startswith("real follow-up") for c in captions)  # the tiny cohort has month-12 visits
    # grade probabilities, and the latent map with arrows to each future and to the real follow-up
    charts = at.get("plotly_chart")
    assert len(charts) == 2
    import json
    arrows = [a for a in json.loads(charts[1].proto.spec)["layout"]["annotations"] if a.get("showarrow")]
    assert len(arrows) == 3 + 1
    at.slider(key="future.n").set_value(2).run()
    _ok(at)
    assert sum(i.proto.imgs[0].caption.startswith("#") for i in at.image) == 2


def test_key_exchange_page_shows_the_four_images_and_probabilities(open_page, with_method_ckpts):
    at = open_page("pages/key_exchange.py")
    _ok(at)
    at.selectbox(key="exchange.ckpt").set_value(str(with_method_ckpts / "ke")).run()
    captions = [i.proto.imgs[0].caption for i in at.image]
    probs = [c for c in captions if "P(KL 2)" in c]
    assert len(probs) == 4
    # the same pair through the exchange service: each image's P(KL 2), and whether the exchange flipped it
    a, b = at.selectbox(key="exchange.a").value, at.selectbox(key="exchange.b").value
    res = exchange_pair(with_method_ckpts / "ke", at.selectbox(key="oaviz.cohort").value, a, b)
    p = res.p_grade_b
    assert [re.search(r"P\(KL 2\) (\d+%)", c).group(1) for c in probs] == [
        f"{p[k]:.0%}" for k in ("recon_a", "exchanged_a", "recon_b", "exchanged_b")]
    # and what an independent classifier (not KECAE's judge) reads on each, with the JSW measured on it
    assert all(re.search(r"JSW med .* · reads KL [0-4] \(\d+%\)", c) for c in probs)
    assert probs[0].startswith(f"{res.id_a} (KL 0) reconstructed") and probs[2].startswith(f"{res.id_b} (KL 2)")
    assert [m.value for m in at.metric] == ["yes" if res.flipped[k] else "no" for k in ("exchanged_a", "exchanged_b")]
    b = at.selectbox(key="exchange.b")
    assert len(b.options) > 1
    second = b.options[1]  # the label of another KL 2 knee (its image id)
    b.select_index(1).run()
    _ok(at)
    captions = [i.proto.imgs[0].caption for i in at.image]
    assert captions[2].startswith(f"{second} (KL 2) reconstructed")


def test_future_knee_page_places_the_risk_among_the_cohort_after_the_reference_job(open_page, with_method_ckpts):


    at = open_page("pages/future_knee.py")
    at.selectbox(key="future.ckpt").set_value(str(with_method_ckpts / "ld"))
    at.toggle(key="future.go").set_value(True)
    at.slider(key="future.n").set_value(2)
    at.select_slider(key="future.steps").set_value(10).run()
    _ok(at)
    assert not any(m.label == "Place among the cohort" for m in at.metric)
    at.button(key="future.reference").click().run()
    _ok(at)
    _wait_finished(at.session_state["future.jobs"][0])
    at.run()
    _ok(at)
    placed = next(m for m in at.metric if m.label == "Place among the cohort")
    pct = float(placed.value.split("th")[0])
    assert 0 <= pct <= 100


def test_key_exchange_page_generates_an_augmentation_cohort_as_a_job(open_page, with_method_ckpts):

    from oaviz.data.cohort import load_cohort

    at = open_page("pages/key_exchange.py")
    at.selectbox(key="exchange.ckpt").set_value(str(with_method_ckpts / "ke"))
    at.number_input(key="exchange.pairs").set_value(10)
    at.text_input(key="exchange.name").set_value("aug-test").run()
    at.button(key="exchange.augment").click().run()
    _ok(at)
    job = _wait_finished(at.session_state["exchange.jobs"][0])
    aug = load_cohort(job.output)
    assert len(aug) == 20 and aug.info["source"] == "kecae-augmentation"
