"""Downloaded CSVs cannot carry a spreadsheet formula (CSV injection)."""

from __future__ import annotations

import io

import pandas as pd

from oaviz.services.exports import csv_bytes


def test_formula_like_text_is_defused_and_numbers_are_kept():
    df = pd.DataFrame({"image_id": ['=HYPERLINK("http://x","y")', "+cmd", "-1+1", "@SUM(A1)", "S00001_R_V000"],
                       "kl": [0, 1, 2, 3, 4], "delta": [-0.5, 1.0, -2.0, 0.0, 3.5]})
    back = pd.read_csv(io.BytesIO(csv_bytes(df)))
    assert back["image_id"].tolist() == ["'=HYPERLINK(\"http://x\",\"y\")", "'+cmd", "'-1+1", "'@SUM(A1)",
                                         "S00001_R_V000"]
    assert back["delta"].tolist() == [-0.5, 1.0, -2.0, 0.0, 3.5] and back["kl"].tolist() == [0, 1, 2, 3, 4]
    assert not any(str(v).startswith(("=", "+", "@")) for v in back["image_id"])


def test_index_and_column_names_are_defused_too():
    df = pd.DataFrame({"=bad": ["ok"]}, index=["=idx"])
    text = csv_bytes(df, index=True).decode()
    assert "'=bad" in text and "'=idx" in text and "\n=" not in text and not text.startswith("=")


def test_demo_redaction_hides_server_paths(monkeypatch, tmp_path):
    from oaviz.paths import REPO_ROOT, home
    from oaviz.ui.demo import redact

    text = f"oaviz train beta_vae --data {home()}/cohorts/knee --out {REPO_ROOT}/runs/x"
    monkeypatch.delenv("OAVIZ_DEMO", raising=False)
    assert redact(text) == text                                   # outside the demo: unchanged
    monkeypatch.setenv("OAVIZ_DEMO", "1")
    assert redact(text) == "oaviz train beta_vae --data <data>/cohorts/knee --out <app>/runs/x"
    card = redact({"source": "kl-folders", "source_path": "/srv/knees/KneeXrayKL", "n": 3,
                   "nested": {"path": "/srv/x/y", "note": f"{home()}/z"}})
    assert card == {"source": "kl-folders", "source_path": "KneeXrayKL", "n": 3,
                    "nested": {"path": "y", "note": "<data>/z"}}
