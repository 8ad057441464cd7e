"""The error types of every layer, in one place; each says what was wrong and where.

``cli.main`` maps them to exit codes and pages show them as messages. The old
homes (``oaviz.data.errors``, ``oaviz.models.base``) re-export them.
"""

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


class ConfigError(ValueError):
    """A model or training config that cannot be used (unknown key, bad value, wrong kind of checkpoint)."""


class MissingCapability(ConfigError):
    """A checkpoint whose model cannot do what was asked (``cap``, an ``oaviz.models.capabilities.Cap``)."""

    def __init__(self, message: str, cap: object = None):
        self.cap = cap
        super().__init__(message)


def as_data_error(err: BaseException, where: object) -> DataError:
    """Any failure while reading one input, as a DataError naming that input: a DataError keeps its
    reason (and gets ``where`` if it had none); anything else (a reader library's ValueError,
    IndexError, ZeroDivisionError, OSError, MemoryError, …) says what it was. Importers call this
    per file, so ``--on-error skip`` skips that file and goes on instead of aborting the import."""
    if isinstance(err, DataError):
        return err if err.where else DataError(err.reason, where)
    detail = str(err).strip().splitlines()[0][:200] if str(err).strip() else ""
    return DataError(f"could not read it ({type(err).__name__}{': ' + detail if detail else ''})", where)
