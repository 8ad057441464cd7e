"""Public-demo mode (``OAVIZ_DEMO=1``): no server paths, uploads only, capped jobs."""

from __future__ import annotations

import os

# Caps on what one visitor can start in demo mode (two shared CPU cores serve everyone).
DEMO_MAX_SYNTH_IMAGES = 600
DEMO_MAX_TRAIN_EPOCHS = 3
DEMO_MAX_TRAIN_IMAGES = 1500
DEMO_MAX_RUNNING_JOBS = 2


def demo_mode() -> bool:
    """True when the app serves a public demo (env OAVIZ_DEMO=1)."""
    return os.environ.get("OAVIZ_DEMO", "").strip().lower() in ("1", "true", "yes", "on")


SERVER_PATH_KEYS = ("source_path", "path", "run_dir", "output")


def redact(value):
    """In the public demo, what a visitor may see of a server-side value: absolute paths under
    oaviz's home or the repository become ``<data>/…`` / ``<app>/…``, and the values of path keys in a
    dict (``source_path`` …) are reduced to their last component. Outside the demo: unchanged."""
    if not demo_mode():
        return value
    from oaviz.paths import REPO_ROOT, home

    if isinstance(value, dict):
        return {k: (os.path.basename(str(v).rstrip("/")) if k in SERVER_PATH_KEYS and isinstance(v, str)
                    else redact(v)) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(redact(v) for v in value)
    if isinstance(value, str):
        for root, name in ((str(home()), "<data>"), (str(REPO_ROOT), "<app>")):
            value = value.replace(root, name)
        return value
    return value
