"""An OAVIZ_HOME holding a small real-style cohort and a tiny real-preset zoo trained on it, built as a user
would (`oaviz import kl-folders …`, then `oaviz train-zoo --data … --out runs/zoo-realknee-mini --epochs 1
--set …`); shared by the AppTests and the browser test of the model sets."""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

from tests.kl_folders_cohort import kl_folders_cohort
from tests.tiny_checkpoints import TINY_CONFIGS

ZOO_COHORT = "realknee-mini"
ZOO_LABEL = f"Trained on {ZOO_COHORT} (real)"


def build_zoo_home(home: Path, cohorts_from: Path) -> Path:
    """``home`` with the cohorts of ``cohorts_from`` (a cohorts/ folder), realknee-mini and its zoo."""
    from oaviz.cli import main as cli
    from oaviz.training.zoo import ZOO_MODELS, zoo_type

    shutil.copytree(cohorts_from, home / "cohorts")
    cohort = kl_folders_cohort(home / "cohorts", name=ZOO_COHORT, n_subjects=16)
    shutil.rmtree(home / "cohorts" / f"{ZOO_COHORT}-src")
    tiny = [a for m in ZOO_MODELS for k, v in TINY_CONFIGS[zoo_type(m)].items()
            for a in ("--set", f"{m}.{k}={json.dumps(v)}")]
    argv = ["train-zoo", "--data", str(cohort), "--out", str(home / "runs" / f"zoo-{ZOO_COHORT}"), "--epochs", "1",
            *tiny]
    saved, sys.argv = sys.argv, ["oaviz", *argv]           # argv.json records the command as typed
    try:
        assert cli(argv) == 0
    finally:
        sys.argv = saved
    return home
