"""The data layer's error type, defined with the others in ``oaviz.errors`` (re-exported here)."""

from __future__ import annotations

from oaviz.errors import DataError

__all__ = ["DataError"]
