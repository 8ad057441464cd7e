"""Where oaviz keeps its files. Override the data root with OAVIZ_HOME."""

from __future__ import annotations

import os
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent


def home() -> Path:
    """Root for generated cohorts, runs and caches (ignored by git)."""
    return Path(os.environ.get("OAVIZ_HOME", REPO_ROOT / "data")).resolve()


def cohorts_dir() -> Path:
    return home() / "cohorts"


def runs_dir() -> Path:
    return home() / "runs"


def default_cohort_dir() -> Path:
    return cohorts_dir() / "synthetic-knee"


def checkpoints_dir() -> Path:
    """Bundled demo checkpoints (committed)."""
    return REPO_ROOT / "checkpoints"

