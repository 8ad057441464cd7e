"""Files and folders written whole or not at all: write a temporary sibling, then rename into place.

A reader never sees a half-written cohort, checkpoint, cache entry or job
file: the temporary name is hidden (``.name.tmp-…``), unique per process *and*
thread (two sessions of one Streamlit server share a pid), and removed on any
failure, including SIGTERM from a cancelled job (``output_folder``).
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import signal
import tempfile
import threading
import uuid
from pathlib import Path
from typing import Any, Iterator

from oaviz.errors import DataError


def temp_sibling(target: str | os.PathLike) -> Path:
    """A hidden name beside ``target`` that no other process or thread uses: pid, thread id and a
    random part; the target's suffix is kept (``np.savez`` and friends add theirs otherwise)."""
    t = Path(target)
    return t.with_name(f".{t.name}.tmp-{os.getpid()}-{threading.get_ident()}-{uuid.uuid4().hex[:12]}{t.suffix}")


@contextlib.contextmanager
def atomic_file(target: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside ``target``; on success it replaces ``target`` (``os.replace``),
    on any failure it is removed and ``target`` is left as it was. Creates the parent folder."""
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = temp_sibling(target)
    try:
        yield tmp
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)


def write_bytes(target: str | os.PathLike, data: bytes) -> Path:
    with atomic_file(target) as tmp:
        tmp.write_bytes(data)
    return Path(target)


def write_text(target: str | os.PathLike, text: str) -> Path:
    with atomic_file(target) as tmp:
        tmp.write_text(text)
    return Path(target)


def write_json(target: str | os.PathLike, data: Any, **dumps_kwargs) -> Path:
    """JSON (indent 2 unless told otherwise) written atomically."""
    dumps_kwargs.setdefault("indent", 2)
    return write_text(target, json.dumps(data, **dumps_kwargs))


def write_table(df, out: str | os.PathLike) -> Path:
    """A DataFrame as CSV or parquet (by suffix), written atomically."""
    out = Path(out)
    if out.suffix not in (".csv", ".parquet"):
        raise DataError("output must end in .csv or .parquet", out)
    with atomic_file(out) as tmp:
        if out.suffix == ".csv":
            df.to_csv(tmp, index=False)
        else:
            df.to_parquet(tmp, index=False)
    return out


def swap_into_place(tmp: Path, out: Path) -> None:
    """Rename the finished folder ``tmp`` to ``out``; an existing ``out`` is moved aside first, then removed."""
    if out.exists():
        old = out.parent / f".{out.name}.old-{os.getpid()}-{threading.get_ident()}-{uuid.uuid4().hex[:12]}"
        out.rename(old)
        tmp.rename(out)
        shutil.rmtree(old, ignore_errors=True)
    else:
        tmp.rename(out)


@contextlib.contextmanager
def atomic_folder(out: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary folder beside ``out``; on success it replaces ``out`` (an existing one
    included), on any failure it is removed and ``out`` is left as it was."""
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    # mkdtemp: unique and race-free; the pid in the name lets a later start-up tell litter of a
    # crashed process (``remove_stale_temps``) from the work of a running one
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.tmp-{os.getpid()}-", dir=out.parent))
    try:
        yield tmp
        swap_into_place(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


_TEMP_NAME = re.compile(r"^\..+\.tmp-(\d+)-")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:   # someone else's live process
        return True
    return True


def remove_stale_temps(roots, min_age_s: float = 60.0) -> list[Path]:
    """Delete the hidden temporaries (``.name.tmp-<pid>-…``, files and folders) that processes which
    no longer run left under ``roots`` (searched recursively), e.g. after a ``kill -9`` mid-import.

    A temporary whose process is alive, or younger than ``min_age_s`` (a pid just reused), is kept.
    Returns what was removed.
    """
    import time

    removed, now = [], time.time()
    for root in roots:
        root = Path(root)
        if not root.is_dir():
            continue
        for dirpath, dirnames, filenames in os.walk(root):
            for name in list(dirnames) + filenames:
                m = _TEMP_NAME.match(name)
                if not m:
                    continue
                p = Path(dirpath) / name
                try:
                    old = now - p.lstat().st_mtime >= min_age_s
                except OSError:
                    continue
                if old and not _alive(int(m.group(1))):
                    if p.is_dir() and not p.is_symlink():
                        shutil.rmtree(p, ignore_errors=True)
                        dirnames.remove(name)
                    else:
                        p.unlink(missing_ok=True)
                    removed.append(p)
    return removed


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
    """A command's output folder: refuse an existing ``out`` unless ``overwrite``; then as
    ``atomic_folder``, with SIGTERM (a cancelled job) turned into an exit so the temporary folder goes."""
    out = Path(out)
    if out.exists() and not overwrite:
        raise DataError("output folder exists (use --overwrite)", out)
    with sigterm_as_exit(), atomic_folder(out) as tmp:
        yield tmp
