"""AppTest of the Models & training page: checkpoint cards, job cards (progress, loss curve, error, cancel),
and the training form (which starts `oaviz train` as a job)."""

from __future__ import annotations

import json
import shutil
import sys
import time
from pathlib import Path

import pytest

from oaviz.services import jobs, model_cards

PAGE = "pages/models_training.py"

# Writes the contract's events: start, then 5 of 10 steps, then waits to be cancelled.
HALFWAY = r'''
import json, sys, time, os
f = open(os.path.join(sys.argv[1], "events.jsonl"), "a")
def ev(**e):
    e["t"] = time.time(); f.write(json.dumps(e) + "\n"); f.flush()
ev(event="start", model="beta_vae", epochs=2, steps_per_epoch=5, device="cpu", world_size=1, out="x")
for s in range(1, 6):
    ev(event="step", epoch=0, step=s, global_step=s, loss=2.0 / s, terms={}, images_per_s=50.0, eta_s=300.0)
while True:
    time.sleep(0.1)
'''


@pytest.fixture()
def home(app_home, tmp_path, monkeypatch) -> Path:
    """A private OAVIZ_HOME with the tiny cohort, a finished run (with checkpoint) and a failed run."""
    h = tmp_path / "home"
    shutil.copytree(app_home / "cohorts", h / "cohorts")
    monkeypatch.setenv("OAVIZ_HOME", str(h))
    now = time.time()
    done = h / "runs" / "beta_vae-20260101-000000"
    (done / "checkpoint").mkdir(parents=True)
    events = [{"t": now - 60, "event": "start", "model": "beta_vae", "epochs": 1, "steps_per_epoch": 4},
              *({"t": now - 50 + s, "event": "step", "epoch": 0, "step": s, "global_step": s, "loss": 1.0 / s,
                 "terms": {}, "eta_s": 4.0 - s} for s in range(1, 5)),
              {"t": now - 40, "event": "end", "status": "finished", "checkpoint": str(done / "checkpoint"),
               "metrics": {"val_total": 0.25}}]
    (done / "events.jsonl").write_text("".join(json.dumps(e) + "\n" for e in events))
    (done / "argv.json").write_text(json.dumps(["train", "beta_vae", "--data", "c", "--out", "o"]))
    (done / "checkpoint" / "model.safetensors").write_bytes(b"\0" * 8)
    (done / "checkpoint" / "config.json").write_text(json.dumps({
        "model_type": "beta_vae", "preset": "demo", "config": {"latent_dim": 64},
        "normalisation": {"image_size": 128, "scale": "0-1"},
        "cohort": {"path": str(h / "cohorts" / "synthetic-knee"), "fingerprint": "abc", "source": "synthetic"},
        "metrics": {"val_total": 0.25}, "training": {"epochs": 1, "seconds": 12.0, "images_seen": 96,
                                                      "device": "cpu", "command": "oaviz train beta_vae …"},
        "card": {"summary": "A tiny test β-VAE.", "intended_use": "tests", "limitations": "none"}}))
    failed = h / "runs" / "vaesim-20260101-000001"
    failed.mkdir(parents=True)
    (failed / "events.jsonl").write_text(
        json.dumps({"t": now - 30, "event": "error", "type": "DataError", "message": "cohort has no val split"}) + "\n")
    return h


def test_models_page_lists_checkpoints_and_jobs(open_page, home):
    at = open_page(PAGE)
    assert not at.exception, [e.value for e in at.exception]
    assert at.title[0].value.endswith("Models & training")

    # the failed run shows its error event
    assert any("**DataError**: cohort has no val split" in e.value for e in at.error)
    # the finished run shows its loss curve: the step losses, in order
    curves = [json.loads(c.proto.spec) for c in at.get("plotly_chart")]
    losses = [t["y"] for f in curves for t in f["data"] if t.get("name") == "train loss (step)"]
    assert losses and [round(v, 6) for v in _decode(losses[0])] == [1.0, 0.5, round(1 / 3, 6), 0.25]
    badges = [m.value for m in at.markdown if "-badge[" in m.value]
    assert sum("finished]" in b for b in badges) == 1 and sum("failed]" in b for b in badges) == 1

    # the checkpoint the run wrote is listed, with its card
    table = next(d.value for d in at.dataframe if "model" in d.value.columns)
    assert "beta_vae" in list(table["model"])
    # bundled checkpoints are listed first; open the run's card as a click on its table row does
    at.session_state["models.card"] = str(home / "runs" / "beta_vae-20260101-000000" / "checkpoint")
    at.run()
    assert any(m.value == "A tiny test β-VAE." for m in at.markdown)


def _decode(y):
    """Plotly may ship arrays as base64 typed arrays; turn them back into a list."""
    if isinstance(y, dict) and "bdata" in y:
        import base64

        import numpy as np

        return np.frombuffer(base64.b64decode(y["bdata"]), dtype=np.dtype(y["dtype"])).tolist()
    return list(y)


def test_running_job_shows_progress_and_cancels(open_page, home, tmp_path):
    script = tmp_path / "halfway.py"
    script.write_text(HALFWAY)
    run = jobs.new_run_dir("beta_vae", home / "runs")
    job = jobs.start_command([sys.executable, str(script), str(run)], run, kind="train", title="train halfway")
    try:
        deadline = time.monotonic() + 20
        while jobs.read_job(run).n_events < 6 and time.monotonic() < deadline:
            time.sleep(0.05)
        at = open_page(PAGE)
        assert not at.exception, [e.value for e in at.exception]
        progress = [p.proto for p in at.get("progress")]
        assert len(progress) == 1
        assert progress[0].value == 50  # 5 of 2 × 5 steps
        assert progress[0].text.startswith("50% · ETA ")
        cancel = next(b for b in at.button if b.label == "Cancel")
        cancel.click().run()
        assert not at.exception, [e.value for e in at.exception]
        assert jobs.read_job(run).status == "cancelled"
        assert not at.get("progress")
        assert any("Cancelled" in i.value for i in at.info)
        assert any(m.value.endswith("cancelled]") for m in at.markdown if "-badge[" in m.value)
    finally:
        if jobs.read_job(run).status == "running":
            jobs.cancel(run, grace_s=1)
    assert job.pid


def test_training_form_starts_the_job(open_page, home, monkeypatch):
    calls = []
    monkeypatch.setattr(model_cards, "trainable_models", lambda: [
        model_cards.ModelChoice("beta_vae", "β-VAE", ("demo", "paper")),
        model_cards.ModelChoice("vaesim", "VAESim", ("demo", "paper"))])

    def fake_start(model, cohort, **kw):
        calls.append((model, cohort, kw))
        run = jobs.new_run_dir(model, home / "runs")
        return jobs.Job(run_dir=run, kind="train", title="t", argv=[], status="running", started=time.time())

    monkeypatch.setattr(jobs, "start_training", fake_start)
    at = open_page(PAGE)
    assert not at.exception, [e.value for e in at.exception]
    assert at.selectbox(key="models.train.model").options == ["beta_vae", "vaesim"]
    at.selectbox(key="models.train.model").set_value("vaesim")
    at.number_input(key="models.train.epochs").set_value(2)
    at.run()
    preview = next(c.value for c in at.code if "--run-dir" in c.value)
    assert preview.startswith("oaviz train vaesim --data ") and "--epochs 2" in preview
    next(b for b in at.button if b.label == "Start training").click().run()
    assert not at.exception, [e.value for e in at.exception]
    assert len(calls) == 1
    model, cohort, kw = calls[0]
    assert model == "vaesim" and Path(cohort) == home / "cohorts" / "synthetic-knee"
    assert kw["preset"] == "demo" and kw["epochs"] == 2 and kw["max_images"] is None


def test_demo_mode_caps_training(open_page, home, monkeypatch):
    monkeypatch.setenv("OAVIZ_DEMO", "1")
    monkeypatch.setattr(model_cards, "trainable_models",
                        lambda: [model_cards.ModelChoice("beta_vae", "β-VAE", ("demo", "paper"))])
    at = open_page(PAGE)
    assert not at.exception
    from oaviz.ui.demo import DEMO_MAX_TRAIN_EPOCHS, DEMO_MAX_TRAIN_IMAGES

    assert at.number_input(key="models.train.epochs").max == DEMO_MAX_TRAIN_EPOCHS
    preview = next(c.value for c in at.code if "--run-dir" in c.value)
    assert f"--max-images {DEMO_MAX_TRAIN_IMAGES}" in preview
    assert str(home) not in preview  # no server paths in demo mode


def test_demo_visitors_see_and_cancel_only_their_own_jobs(home, monkeypatch):
    """Two visitors of a public demo: B does not see A's running job (nor its Cancel button); A does."""
    from streamlit.testing.v1 import AppTest

    from tests.app.conftest import REPO

    monkeypatch.setenv("OAVIZ_DEMO", "1")
    run = home / "runs" / "a-visitors-job"
    job = jobs.start_command([sys.executable, "-c", "import time; time.sleep(60)"], run, kind="train",
                             title="A's training", expects_events=False)
    try:
        def visitor(owned):
            at = AppTest.from_file(str(REPO / "app.py"), default_timeout=60)
            if owned:
                at.session_state["jobs.own"] = {str(run)}
            at.run()
            at.switch_page(PAGE).run()
            assert not at.exception, [e.value for e in at.exception]
            titles = " ".join(m.value for m in at.markdown)
            cancels = [b for b in at.button if b.label == "Cancel"]
            return "A's training" in titles, len(cancels)

        assert visitor(owned=False) == (False, 0)
        assert visitor(owned=True) == (True, 1)
    finally:
        jobs.cancel(job.run_dir)
