"""Where the development set of real knee radiographs lives, and what its file names say.

The real knees (``shared/data/realknee-dev``, the public KL-folder layout) never
ship with the project: tests that use them skip when they are absent, and
benchmarks take the folder as an argument. File stems are the OAI subject id
and the side (``9003175L``); images are as acquired (left knees not mirrored).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

ENV_VAR = "OAVIZ_REALKNEE_DIR"


def default_real_knee_dir(repo_root: str | Path | None = None) -> Path | None:
    """``$OAVIZ_REALKNEE_DIR``, else ``<repo_root>/../shared/data/realknee-dev``; None when neither exists."""
    env = os.environ.get(ENV_VAR)
    if env:
        return Path(env) if Path(env).is_dir() else None
    root = Path(repo_root) if repo_root is not None else Path(__file__).resolve().parents[2]
    p = root.parent / "shared" / "data" / "realknee-dev"
    return p if p.is_dir() else None


def stem_subject_side(image_ids) -> tuple[np.ndarray, np.ndarray]:
    """Image ids or paths ending in an OAI stem ('test/0/9003175L') -> subject [N] ('9003175'), side [N] ('L').

    A stem without a trailing L/R keeps its whole name as the subject and side ''."""
    paths = [Path(str(i)) for i in image_ids]
    stems = [p.stem if p.suffix.lower() in (".png", ".jpg", ".jpeg") else p.name for p in paths]
    side = np.array([s[-1].upper() if s[-1:].upper() in ("L", "R") else "" for s in stems], dtype=object)
    subject = np.array([s[:-1] if sd else s for s, sd in zip(stems, side)], dtype=object)
    return subject, side
