"""One expansion budget per upload or import call: what it may decompress in all (zips, npz arrays).

A limit per archive lets a bomb be split over many archives (or hidden in an npz inside a zip); every
expansion of one upload draws on one ``ExpansionBudget`` instead, checked before anything is expanded.
"""

from __future__ import annotations

from oaviz.errors import DataError

MAX_EXPANDED_BYTES = 4 << 30   # everything one upload or import call decompresses, together
MAX_FILES = 200_000            # files one upload may expand to, together


def _gib(n: int) -> str:
    for unit, scale in (("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if n >= scale // 8:
            return f"{n / scale:.1f} {unit}"
    return f"{n} bytes"


class ExpansionBudget:
    """Bytes and files still allowed to one upload or import call; ``spend`` refuses what would exceed them."""

    def __init__(self, max_bytes: int = MAX_EXPANDED_BYTES, max_files: int = MAX_FILES):
        self.max_bytes, self.max_files = int(max_bytes), int(max_files)
        self.used_bytes, self.used_files = 0, 0

    def spend(self, nbytes: int, where: object, what: str, files: int = 0) -> None:
        """Draw ``nbytes`` (and ``files``) for ``what`` found at ``where``; DataError when over the budget."""
        before = ("" if not self.used_bytes else f"; with the {_gib(self.used_bytes)} this import already expanded "
                  f"that makes {_gib(self.used_bytes + nbytes)}")
        if self.used_files + files > self.max_files:
            raise DataError(f"{what} has {files:,} files{'' if not self.used_files else f' (after {self.used_files:,})'}"
                            f", over the limit of {self.max_files:,} files per import", where)
        if self.used_bytes + nbytes > self.max_bytes:
            raise DataError(f"{what} expands to {_gib(nbytes)}{before}, over the limit of "
                            f"{_gib(self.max_bytes)} per import (a decompression bomb?)", where)
        self.used_bytes += int(nbytes)
        self.used_files += int(files)
