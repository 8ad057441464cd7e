"""The data layer's one error type."""

from __future__ import annotations


class DataError(ValueError):
    """Bad or unusable input data: says what was wrong and where.

    ``where`` is the file, folder or row the problem was found in (may be None);
    ``reason`` is the human-readable cause. ``str(err)`` reads "where: reason".
    """

    def __init__(self, reason: str, where: object | None = None):
        self.reason = reason
        self.where = None if where is None else str(where)
        super().__init__(f"{self.where}: {reason}" if self.where else reason)
