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
