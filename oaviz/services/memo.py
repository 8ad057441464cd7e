"""In-process memo of derived, read-only values every interaction needs (cohort latents, the KL probe,
the on-manifold reference), shared by all threads of one process.

The disk cache (``oaviz.data.disk_cache``) keeps values between processes; this keeps the few that a
decode, an interpolation or a prior sample reads on every call in memory, so that 8 visitors at once
do not each re-read a parquet file and re-measure the cohort's held-out distances (issue 16: CPU per
10-step interpolation 42 -> 25 ms, per 16 prior samples 51 -> 27 ms, with the channels-last decoder).
Keys name content (checkpoint hash, cohort fingerprint, a version, the OAVIZ_HOME where one has a disk
cache to fill), so a retrained checkpoint or a rewritten cohort is a new key. Values are
shared: never mutate one (``frozen`` makes arrays read-only so a caller that tries fails loudly).
A value asked for by several threads at once is computed once.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from typing import Any, Callable, Hashable

import numpy as np

MAX_ENTRIES = 16   # per process: a few checkpoints × cohorts; a 50k-knee latent table is 26 MB

_values: OrderedDict[Hashable, Any] = OrderedDict()
_locks: dict[Hashable, threading.Lock] = {}
_guard = threading.Lock()


def frozen(a: np.ndarray) -> np.ndarray:
    """``a`` made read-only (in place) and returned."""
    a.setflags(write=False)
    return a


def memoised(key: Hashable, compute: Callable[[], Any]) -> Any:
    """The value for ``key``: from memory, else ``compute()`` (once, however many threads ask)."""
    with _guard:
        if key in _values:
            _values.move_to_end(key)
            return _values[key]
        lock = _locks.setdefault(key, threading.Lock())
    with lock:
        with _guard:
            if key in _values:
                return _values[key]
        value = compute()          # an exception leaves nothing behind: the next call tries again
        with _guard:
            _values[key] = value
            _locks.pop(key, None)
            while len(_values) > MAX_ENTRIES:
                _values.popitem(last=False)
        return value


def clear() -> None:
    """Forget every value (tests; a process that rewrote a cohort in place)."""
    with _guard:
        _values.clear()
