"""The one disk cache: ``key → value`` files under ``home()/cache/<scope>/``.

A key is any JSON-able structure naming everything the value depends on
(checkpoint content hash, cohort fingerprint, settings, a version to bump when
the computation changes); its SHA-256 is the file name, so keys of any shape
give short, safe names. A serializer says how a value becomes a file. Entries
are written atomically (``oaviz.data.atomic``), so a reader sees a whole entry
or none; an entry that cannot be read (truncated, foreign) counts as a miss and
is recomputed and overwritten. Nothing is pickled.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np
import pandas as pd

from oaviz.data.atomic import atomic_file
from oaviz.paths import home


@dataclass(frozen=True)
class Serializer:
    """How a value is written to (``dump(value, path)``) and read from (``load(path)``) one file."""

    suffix: str
    dump: Callable[[Any, Path], None]
    load: Callable[[Path], Any]


def _load_npz(path: Path) -> dict[str, np.ndarray]:
    with np.load(path, allow_pickle=False) as a:
        return {k: a[k] for k in a.files}


PARQUET = Serializer(".parquet", lambda df, p: df.to_parquet(p, index=False), pd.read_parquet)
NPZ = Serializer(".npz", lambda arrays, p: np.savez(p, **arrays), _load_npz)  # {name: array}
JSON = Serializer(".json", lambda obj, p: p.write_text(json.dumps(obj, sort_keys=True)), lambda p: json.loads(p.read_text()))


def key_digest(key: Any) -> str:
    """SHA-256 (32 hex) of a key's canonical JSON (sorted keys; other objects by ``str``)."""
    return hashlib.sha256(json.dumps(key, sort_keys=True, default=str).encode()).hexdigest()[:32]


def cache_file(scope: str, key: Any, serializer: Serializer) -> Path:
    return home() / "cache" / scope / f"{key_digest(key)}{serializer.suffix}"


def lookup(scope: str, key: Any, serializer: Serializer) -> Any | None:
    """The cached value, or None when there is none or it cannot be read."""
    path = cache_file(scope, key, serializer)
    if not path.is_file():
        return None
    try:
        return serializer.load(path)
    except Exception:  # truncated or foreign file: a miss, recomputed and overwritten by the caller
        return None


def store(scope: str, key: Any, value: Any, serializer: Serializer) -> Path:
    """Write ``value`` as the entry for ``key`` (atomically; an existing entry is replaced)."""
    path = cache_file(scope, key, serializer)
    with atomic_file(path) as tmp:
        serializer.dump(value, tmp)
    return path


def cached(key: Any, compute: Callable[[], Any], serializer: Serializer = PARQUET, *, scope: str,
           enabled: bool = True, accept: Callable[[Any], bool] | None = None) -> Any:
    """The value for ``key``: read from ``home()/cache/scope`` when there, else ``compute()``d and stored.

    ``enabled`` False computes and stores nothing (``use_cache=False`` of the services);
    ``accept`` can reject a readable entry (e.g. one for other rows), which is then recomputed.
    """
    if not enabled:
        return compute()
    value = lookup(scope, key, serializer)
    if value is not None and (accept is None or accept(value)):
        return value
    value = compute()
    store(scope, key, value, serializer)
    return value
