"""Folders written whole or not at all: build in a temporary sibling, then rename into place.

A reader never sees a half-written cohort, checkpoint or result folder: the
temporary folder is hidden (``.name.tmp-…``) and removed on any failure,
including SIGTERM from a cancelled job.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import tempfile
import threading
from pathlib import Path

from oaviz.data.errors import DataError


def swap_into_place(tmp: Path, out: Path) -> None:
    """Rename the finished folder ``tmp`` to ``out``; an existing ``out`` is moved aside first, then removed."""
    if out.exists():
        old = out.parent / f".{out.name}.old-{os.getpid()}-{threading.get_ident()}"
        shutil.rmtree(old, ignore_errors=True)
        out.rename(old)
        tmp.rename(out)
        shutil.rmtree(old, ignore_errors=True)
    else:
        tmp.rename(out)


def _terminate(signum, frame):
    raise SystemExit(128 + signum)


@contextlib.contextmanager
def sigterm_as_exit():
    """Within the block SIGTERM raises SystemExit, so ``finally``/``except`` clean-up runs (main thread only)."""
    main_thread = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGTERM, _terminate) if main_thread else None
    try:
        yield
    finally:
        if main_thread:
            signal.signal(signal.SIGTERM, previous)


@contextlib.contextmanager
def output_folder(out: str | Path, overwrite: bool = False):
    """Yield a temporary folder beside ``out``; on success it replaces ``out``, on any failure
    (SIGTERM included) it is removed and ``out`` is left as it was."""
    out = Path(out)
    if out.exists() and not overwrite:
        raise DataError("output folder exists (use --overwrite)", out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.tmp-", dir=out.parent))
    with sigterm_as_exit():
        try:
            yield tmp
            swap_into_place(tmp, out)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
