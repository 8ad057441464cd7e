"""AppTest of the Data page on a tiny synthetic default cohort (12 subjects × 2 visits, 64 px)."""

from __future__ import annotations

import json

import pytest

from oaviz.data.cohort import load_cohort

PAGE = "pages/data.py"


def _browse_table(at):
    tables = [d.value for d in at.dataframe if "image_id" in d.value.columns]
    assert len(tables) == 1, "exactly one metadata table on the Browse tab"
    return tables[0]


def _figures(at) -> list[dict]:
    return [json.loads(c.proto.spec) for c in at.get("plotly_chart")]


def _kl_pills(at):
    return next(p for p in at.pills if p.label == "KL grade")


def test_data_page_shows_the_default_cohort(open_page, app_home):
    at = open_page(PAGE)
    assert not at.exception, [e.value for e in at.exception]
    assert at.title[0].value.endswith("Data")
    meta = load_cohort(app_home / "cohorts" / "synthetic-knee").metadata

    # headline numbers
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["Images"] == "24" and metrics["Subjects"] == "12" and metrics["Visits (months)"] == "0, 12"

    # the metadata table lists every image with its grade
    table = _browse_table(at)
    assert len(table) == 24
    assert list(table["image_id"]) == list(meta["image_id"])
    assert list(table["kl"].astype(int)) == list(meta["kl"].astype(int))

    # the Grades tab: a bar figure with one trace per split, summing to the grade counts
    at.session_state["data.tab"] = "Grades"
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    bars = next(f for f in _figures(at) if any(t.get("type") == "bar" for t in f["data"]))
    traces = [t for t in bars["data"] if t.get("type") == "bar"]
    assert {t["name"] for t in traces} <= {"train", "val", "test"}
    totals = [sum(t["y"][i] for t in traces) for i in range(5)]
    assert totals == [int((meta["kl"] == g).sum()) for g in range(5)]
    assert traces[0]["x"] == ["KL 0", "KL 1", "KL 2", "KL 3", "KL 4"]

    # the grade table agrees, percentages included
    grade_table = next(d.value for d in at.dataframe if "percent" in d.value.columns)
    assert grade_table["total"].tolist() == totals
    assert grade_table["percent"].sum() == pytest.approx(100.0, abs=0.3)


def test_kl_filter_changes_the_rows(open_page, app_home):
    at = open_page(PAGE)
    meta = load_cohort(app_home / "cohorts" / "synthetic-knee").metadata
    grade = int(meta["kl"].value_counts().idxmax())
    _kl_pills(at).set_value([grade]).run()
    assert not at.exception
    table = _browse_table(at)
    assert 0 < len(table) < 24
    assert set(table["kl"].astype(int)) == {grade}
    assert list(table["image_id"]) == list(meta.loc[meta["kl"] == grade, "image_id"])
    assert any(f"**{len(table)}** of 24 images match" in c.value for c in at.caption)

    # a second grade widens the selection; the split filter narrows it again
    other = (grade + 1) % 5
    _kl_pills(at).set_value([grade, other]).run()
    both = _browse_table(at)
    assert len(both) == int(meta["kl"].isin([grade, other]).sum())
    next(p for p in at.pills if p.label == "Split").set_value(["train"]).run()
    train = _browse_table(at)
    assert set(train["split"]) <= {"train"}
    assert len(train) == int((meta["kl"].isin([grade, other]) & (meta["split"] == "train")).sum())


def test_grid_pages_and_inspect(open_page, app_home):
    at = open_page(PAGE)
    meta = load_cohort(app_home / "cohorts" / "synthetic-knee").metadata
    thumbs = [b for b in at.button if b.key and b.key.startswith("data.thumb.")]
    assert len(thumbs) == 18  # first page of the 6 × 3 grid
    assert at.number_input(key="data.grid.page").value == 1
    at.number_input(key="data.grid.page").set_value(2).run()
    thumbs = [b for b in at.button if b.key and b.key.startswith("data.thumb.")]
    assert [b.key for b in thumbs] == [f"data.thumb.{i}" for i in range(18, 24)]
    thumbs[2].click().run()
    assert not at.exception
    assert any(m.value.startswith(f"**{meta.image_id[20]}** · subject {meta.subject_id[20]}") for m in at.markdown)


def test_generate_small_cohort_inline(open_page, app_home, tmp_path, monkeypatch):
    import shutil

    home = tmp_path / "home"
    shutil.copytree(app_home / "cohorts", home / "cohorts")
    monkeypatch.setenv("OAVIZ_HOME", str(home))
    at = open_page(PAGE)
    at.session_state["data.tab"] = "Generate"
    at.run()
    at.number_input(key="data.generate.subjects").set_value(4)
    at.multiselect(key="data.generate.visits").set_value([0])
    at.select_slider(key="data.generate.size").set_value(64)
    at.text_input(key="data.generate.name").set_value("mini")
    at.run()
    next(b for b in at.button if b.label == "Generate").click().run()
    assert not at.exception, [e.value for e in at.exception]
    assert len(load_cohort(home / "cohorts" / "mini")) == 4
    assert at.session_state["oaviz.cohort"] == str(home / "cohorts" / "mini")  # selected in the sidebar
    assert any("Generated **mini**" in s.value for s in at.success)
    at.session_state["data.tab"] = "Browse"
    at.run()
    assert _browse_table(at).shape[0] == 4


def test_demo_mode_hides_server_paths(open_page, monkeypatch):
    at = open_page(PAGE)
    at.session_state["data.tab"] = "Cohort card"
    at.run()
    assert any(c.value.startswith("Folder:") for c in at.caption)
    at.session_state["data.tab"] = "Import"
    at.run()
    assert next(s for s in at.segmented_control if s.label == "Source").options == ["Upload", "Server path"]

    monkeypatch.setenv("OAVIZ_DEMO", "1")
    at.run()
    assert not at.exception
    assert next(s for s in at.segmented_control if s.label == "Source").options == ["Upload"]
    assert any("upload only" in c.value for c in at.caption)
    at.session_state["data.tab"] = "Cohort card"
    at.run()
    assert not any(c.value.startswith("Folder:") for c in at.caption)
    from oaviz.paths import home
    shown = " ".join(str(t.value) for t in at.table) + " ".join(str(d.proto) for d in at.get("download_button"))
    assert str(home()) not in shown                  # no server path in the card or its download


def test_large_generation_runs_as_a_job(open_page, app_home, tmp_path, monkeypatch):
    import shutil
    import time

    from oaviz.services import cohorts, jobs

    home = tmp_path / "home"
    shutil.copytree(app_home / "cohorts", home / "cohorts")
    monkeypatch.setenv("OAVIZ_HOME", str(home))
    monkeypatch.setattr(cohorts, "INLINE_GENERATION_MAX_S", 0.0)  # anything counts as large
    at = open_page(PAGE)
    at.session_state["data.tab"] = "Generate"
    at.run()
    at.number_input(key="data.generate.subjects").set_value(3)
    at.multiselect(key="data.generate.visits").set_value([0])
    at.select_slider(key="data.generate.size").set_value(64)
    at.text_input(key="data.generate.name").set_value("viajob")
    at.run()
    assert any("runs as a background job" in c.value for c in at.caption)
    next(b for b in at.button if b.label == "Generate").click().run()
    assert not at.exception, [e.value for e in at.exception]
    run_dirs = at.session_state["data.jobs"]
    assert len(run_dirs) == 1 and jobs.read_job(run_dirs[0]).kind == "synth"
    assert any("generate viajob" in m.value for m in at.markdown)  # the job card
    deadline = time.monotonic() + 120
    while jobs.read_job(run_dirs[0]).status == "running" and time.monotonic() < deadline:
        time.sleep(0.2)
    assert jobs.read_job(run_dirs[0]).status == "finished"
    at.run()
    use = next(b for b in at.button if b.label == "Use this cohort")
    use.click().run()
    assert at.session_state["oaviz.cohort"] == str(home / "cohorts" / "viajob")


def test_import_an_uploaded_npz(open_page, app_home, tmp_path, monkeypatch):
    import io
    import shutil

    import numpy as np

    home = tmp_path / "home"
    shutil.copytree(app_home / "cohorts", home / "cohorts")
    monkeypatch.setenv("OAVIZ_HOME", str(home))
    buf = io.BytesIO()
    np.savez(buf, train_images=np.zeros((5, 28, 28), np.uint8), train_labels=np.array([0, 1, 2, 3, 4]),
             test_images=np.ones((2, 28, 28), np.uint8), test_labels=np.array([2, 2]))
    at = open_page(PAGE)
    at.session_state["data.tab"] = "Import"
    at.run()
    next(r for r in at.radio if r.label == "Format").set_value("npz").run()
    at.text_input(key="data.import.name").set_value("uploaded-npz")
    at.checkbox(key="data.import.labels_are_kl").check()
    at.file_uploader(key="data.import.files").upload("oa.npz", buf.getvalue())
    at.run()
    next(b for b in at.button if b.label == "Import").click().run()
    assert not at.exception, [e.value for e in at.exception]
    assert not at.error, [e.value for e in at.error]
    assert any("Imported **uploaded-npz**: 7 images" in s.value for s in at.success)
    assert at.session_state["oaviz.cohort"] == str(home / "cohorts" / "uploaded-npz")
    assert [m.value for m in at.metric][:1] == ["7"]  # the page now shows the imported cohort
