"""Cached loaders shared by every session of the app.

Keys are the resolved path plus a content fingerprint (a cohort's fingerprint
from cohort.json, a checkpoint's ``checkpoint_hash``), so an overwritten
cohort or a retrained checkpoint is never served stale. Cached models are in
eval mode with gradients off and must never be trained or mutated; cached
cohorts are read-only memory maps (their metadata frames must not be modified
in place — filter to a copy).
"""

from __future__ import annotations

import io
import os
import threading
from pathlib import Path

import pandas as pd
import plotly.graph_objects as go
import streamlit as st

from oaviz.data.cohort import Cohort
from oaviz.models.checkpoints import checkpoint_hash, load_checkpoint
from oaviz.paths import checkpoints_dir, cohorts_dir, default_cohort_dir, home, runs_dir
from oaviz.services import cohorts as cohort_service
from oaviz.services import model_cards, zoos
from oaviz.ui import plots, state
from oaviz.ui.demo import demo_mode, own_cohorts_root


def _key(path: str | Path) -> str:
    return str(Path(path).resolve())


# ----------------------------------------------------------------- default cohort
@st.cache_resource(show_spinner="Generating the default synthetic knee cohort (first start only, about a minute)…")
def _default_cohort_once(where: str) -> str:
    # ``where`` (the default cohort's folder) is only the cache key: OAVIZ_HOME decides it.
    return str(cohort_service.ensure_default_cohort())


WARM_UP_ENV = "OAVIZ_WARM_UP"   # "0": no JIT warm-up (the test suite sets it: it would cost every test run)


@st.cache_resource(show_spinner=False)
def warm_up_projections() -> threading.Thread | None:
    """Once per server start: compile UMAP's and pynndescent's JIT code in a background thread (about
    a minute of one core on this machine), so a visitor's first UMAP map takes what a warm one does
    (bench/bench_umap_cold.py: 10k latents, 46 s cold against 9.4 s warm) instead of waiting for the compiler."""
    if os.environ.get(WARM_UP_ENV, "1") == "0":
        return None
    from oaviz.analysis.projections import warm_up_jit

    thread = threading.Thread(target=warm_up_jit, name="oaviz-umap-warm-up", daemon=True)
    thread.start()
    return thread


TORCH_THREADS_ENV = "OAVIZ_TORCH_THREADS"  # intra-op threads of the server's torch (default 1)


@st.cache_resource(show_spinner=False)
def serving_threads() -> int:
    """Once per server: one torch intra-op thread per call. The server answers many visitors at once,
    so its parallelism is across their calls; two threads per call on two busy cores made 8 concurrent
    sessions 2× slower (bench/scale_interactions.py: p95 of 16 prior samples 480 ms against 230 ms).
    Training and long embeddings run as jobs in their own processes and keep torch's default."""
    import torch

    n = int(os.environ.get(TORCH_THREADS_ENV, "1"))
    torch.set_num_threads(max(1, n))
    return torch.get_num_threads()


@st.cache_resource(show_spinner=False)
def clean_crash_litter() -> int:
    """Once per server start: remove temporaries that crashed processes left under oaviz's home."""
    from oaviz.data.atomic import remove_stale_temps

    return len(remove_stale_temps([home()]))


def ensure_default_cohort() -> str:
    """Path of the default cohort, generated on the very first start of the app."""
    where = str(default_cohort_dir())
    path = _default_cohort_once(where)
    if not (Path(path) / "cohort.json").is_file():  # deleted while the server ran: make it again
        _default_cohort_once.clear()
        path = _default_cohort_once(where)
    return path


# ----------------------------------------------------------------- cohorts
@st.cache_resource(show_spinner=False, max_entries=8)
def _cohort(path: str, fingerprint: str) -> Cohort:
    return cohort_service.open_cohort(path)


def cohort(path: str | Path) -> Cohort:
    """The cohort at ``path`` (memory-mapped, shared between sessions)."""
    key = _key(path)
    return _cohort(key, cohort_service.cohort_fingerprint(key))


def fingerprint(path: str | Path) -> str:
    return cohort_service.cohort_fingerprint(_key(path))


@st.cache_data(show_spinner=False, max_entries=32)
def grade_distribution(path: str, fingerprint: str) -> pd.DataFrame:
    c = _cohort(path, fingerprint)
    return cohort_service.grade_distribution(c.metadata, c.info.get("label_names"))


@st.cache_data(show_spinner=False, max_entries=512)
def thumbnails(path: str, fingerprint: str, rows: tuple[int, ...], size: int) -> list[bytes]:
    """PNG bytes of the thumbnails (encoded once: st.image passes bytes through untouched)."""
    from PIL import Image

    out = []
    for img in cohort_service.thumbnails(_cohort(path, fingerprint), list(rows), size):
        buf = io.BytesIO()
        Image.fromarray(img).save(buf, format="PNG")
        out.append(buf.getvalue())
    return out


@st.cache_data(show_spinner=False, max_entries=16)
def grade_figures(path: str, fingerprint: str) -> dict[str, go.Figure]:
    """The Grades tab's figures ('grades', and with ground truth 'confusion', 'jsw'), built once per cohort."""
    c = _cohort(path, fingerprint)
    what = "KL grade" if c.has_kl else "label"
    figs = {"grades": plots.grade_bar(grade_distribution(path, fingerprint), title=f"Images per {what}, by split")}
    confusion = cohort_service.rater_confusion(c.metadata)
    if confusion is not None:
        figs["confusion"] = plots.confusion_heatmap(confusion, title="Rater grade vs true grade")
    if c.has_kl and "jsw_mm" in c.metadata.columns:
        figs["jsw"] = plots.severity_by_grade(c.metadata, "jsw_mm", title="Joint-space width by rater grade")
    return figs


# ----------------------------------------------------------------- checkpoints
@st.cache_resource(show_spinner="Loading the model…", max_entries=6)
def _checkpoint(path: str, content_hash: str):
    return load_checkpoint(path, device="cpu", frozen=True)  # shared by every session: nothing may train it


def checkpoint(path: str | Path):
    """``LoadedCheckpoint`` (eval mode, frozen) for ``path``, shared between sessions."""
    key = _key(path)
    return _checkpoint(key, checkpoint_hash(key))


@st.cache_data(show_spinner=False, ttl=5)
def _checkpoint_entries(bundled_root: str, runs_root: str) -> list[model_cards.CheckpointEntry]:
    return model_cards.list_checkpoints(bundled_root, runs_root)


def checkpoint_entries() -> list[model_cards.CheckpointEntry]:
    """Checkpoint folders for the pickers (the folders are re-listed at most every 5 s); in the public
    demo the bundled ones and those of this visitor's own training jobs only."""
    entries = _checkpoint_entries(str(checkpoints_dir()), str(runs_dir()))
    if not demo_mode():
        return entries
    runs = runs_dir()
    return [e for e in entries if not Path(e.path).is_relative_to(runs)
            or state.owns_job(str(runs / Path(e.path).relative_to(runs).parts[0]))]


@st.cache_data(show_spinner=False, ttl=5)
def _model_sets(runs_root: str) -> list[zoos.ModelSet]:
    return zoos.list_model_sets(runs_root)


def model_sets() -> list[zoos.ModelSet]:
    """The bundled demo set, then each zoo under the runs folder (re-listed at most every 5 s)."""
    return _model_sets(str(runs_dir()))


@st.cache_data(show_spinner=False, ttl=5)
def _cohort_summaries(root: str) -> list[cohort_service.CohortSummary]:
    return cohort_service.list_available(root)


def cohort_summaries() -> list[cohort_service.CohortSummary]:
    """Cohorts under cohorts_dir(), the default first, then (public demo) this visitor's own uploaded and
    generated ones, which no other visitor lists (re-listed at most every 5 s)."""
    shared = _cohort_summaries(str(cohorts_dir()))
    own = own_cohorts_root()
    return shared + (_cohort_summaries(str(own)) if own is not None and own.is_dir() else [])


def clear_listings() -> None:
    """Forget the cached folder listings (after a new cohort or checkpoint appears)."""
    _checkpoint_entries.clear()
    _cohort_summaries.clear()
    _model_sets.clear()
