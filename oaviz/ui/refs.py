"""Typed cache keys: a checkpoint or a cohort named by its resolved folder and its content.

``st.cache_data``/``st.cache_resource`` hash a frozen dataclass field by field,
so a ``ModelRef`` or ``CohortRef`` argument keys a cached function on what the
folder holds: a retrained checkpoint or a rewritten cohort gets a new key and
is never served stale. The refs hold strings only, never the loaded objects.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from oaviz.data.cohort import Cohort
from oaviz.ui import loaders


def _resolved(path: str | Path) -> str:
    return str(Path(path).resolve())


@dataclass(frozen=True)
class ModelRef:
    """A checkpoint folder and the SHA-256 prefix of its files (``loaders.checkpoint_hash``)."""

    path: str
    content_hash: str

    @classmethod
    def of(cls, path: str | Path) -> ModelRef:
        key = _resolved(path)
        return cls(key, loaders.checkpoint_hash(key))

    def load(self):
        """The ``LoadedCheckpoint`` (eval mode, frozen, shared between sessions)."""
        return loaders.checkpoint(self.path)


@dataclass(frozen=True)
class CohortRef:
    """A cohort folder and its fingerprint (written to cohort.json with the cohort)."""

    path: str
    fingerprint: str

    @classmethod
    def of(cls, cohort: Cohort | str | Path) -> CohortRef:
        if isinstance(cohort, Cohort):
            return cls(_resolved(cohort.path), cohort.fingerprint)
        return cls(_resolved(cohort), loaders.fingerprint(cohort))

    def load(self) -> Cohort:
        """The memory-mapped cohort, shared between sessions."""
        return loaders.cohort(self.path)
