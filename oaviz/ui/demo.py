"""Public-demo mode (``OAVIZ_DEMO=1``): no server paths, uploads only, capped jobs, a space per visitor.

A visitor is a browser session (Streamlit's session id). In the demo every job a visitor starts is
capped (per visitor and in total, every kind: the jobs layer checks at start), and what they upload
or generate lives in their own space (``oaviz.services.session_spaces``), listed only in their
pickers and removed once their session has ended.
"""

from __future__ import annotations

import os
import re
import threading
import time
from pathlib import Path

import streamlit as st

# Caps on what one visitor can start in demo mode (two shared CPU cores serve everyone).
DEMO_MAX_SYNTH_IMAGES = 600
DEMO_MAX_TRAIN_EPOCHS = 3
DEMO_MAX_TRAIN_IMAGES = 1500
DEMO_MAX_JOBS_PER_VISITOR = 3    # running jobs of one visitor, all kinds together
DEMO_MAX_JOBS_TOTAL = 6          # running jobs of all visitors together
SPACE_SWEEP_S = 30.0             # how often ended sessions' spaces are looked for


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


# ----------------------------------------------------------------- visitors
def visitor_id() -> str | None:
    """The session id of the visitor this script run serves (None outside a script run)."""
    from streamlit.runtime.scriptrunner import get_script_run_ctx

    ctx = get_script_run_ctx(suppress_warning=True)
    # Served sessions have UUIDs; anything else (AppTest's "test session id") is made folder-safe.
    return re.sub(r"[^A-Za-z0-9_-]+", "-", ctx.session_id)[:64] if ctx is not None else None


def _limits():
    from oaviz.services.jobs import JobLimits

    return JobLimits(per_owner=DEMO_MAX_JOBS_PER_VISITOR, total=DEMO_MAX_JOBS_TOTAL) if demo_mode() else None


def job_policy():
    """(owner, caps) for a job started now: the visitor asking; caps in the public demo only."""
    return visitor_id(), _limits()


def job_refusal() -> str | None:
    """Why this visitor may not start a job now (a cap reached), None when they may: to disable a button."""
    from oaviz.errors import DataError
    from oaviz.paths import runs_dir
    from oaviz.services.jobs.limits import admit

    if not demo_mode():
        return None
    try:
        admit(runs_dir(), owner=visitor_id(), output=None, limits=_limits())
    except DataError as e:
        return str(e)
    return None


def own_cohorts_root(create: bool = False) -> Path | None:
    """In the public demo, this visitor's cohort folder (uploads and generated cohorts go there); else
    None (the shared cohorts folder)."""
    from oaviz.services import session_spaces

    sid = visitor_id() if demo_mode() else None
    return session_spaces.cohorts_root(sid, create=create) if sid else None


def _session_alive(session_id: str) -> bool:
    from streamlit import runtime

    return runtime.exists() and runtime.get_instance().is_active_session(session_id)


def _sweep_forever() -> None:
    from streamlit import config

    from oaviz.services import session_spaces

    # A disconnected session may come back within the TTL: its space is kept that long after its last run.
    grace = float(config.get_option("server.disconnectedSessionTTL") or 0) + SPACE_SWEEP_S
    while True:
        try:
            session_spaces.sweep(_session_alive, grace)
        except Exception:  # noqa: BLE001 — one failed sweep (a folder in use) must not stop the next
            pass
        time.sleep(SPACE_SWEEP_S)


@st.cache_resource(show_spinner=False)
def _space_janitor() -> threading.Thread:
    """Once per server: removes the spaces of sessions that have ended (at start: those of before it)."""
    thread = threading.Thread(target=_sweep_forever, name="oaviz-session-spaces", daemon=True)
    thread.start()
    return thread


def start_visit() -> None:
    """Every run of the app: jobs are started on behalf of this visitor; in the demo, their space's
    heartbeat is renewed and the janitor of ended sessions' spaces runs."""
    from oaviz.services import jobs, session_spaces

    jobs.set_policy(job_policy)
    if demo_mode():
        from streamlit import runtime

        if runtime.exists():   # a served app (AppTest has no runtime, hence no sessions to ask about)
            _space_janitor()
        sid = visitor_id()
        if sid:
            session_spaces.touch(sid)
