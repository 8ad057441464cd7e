"""OAVIZ_RUN_TIMES: every script run of the app appends its page, wall and CPU seconds (bench_visitors reads it)."""

from __future__ import annotations

import json


def test_each_run_is_timed_with_its_page(open_page, tmp_path, monkeypatch):
    from oaviz.ui.frame import RUN_TIMES_ENV

    log = tmp_path / "runs.jsonl"
    monkeypatch.setenv(RUN_TIMES_ENV, str(log))
    open_page("pages/prior_sampling.py")
    runs = [json.loads(x) for x in log.read_text().splitlines()]
    assert len(runs) >= 2                                   # the first run, then the page's
    assert runs[-1]["page"] == "Prior sampling"
    assert all(r["wall_s"] >= r["cpu_s"] * 0.5 >= 0 and r["wall_s"] > 0 for r in runs)

