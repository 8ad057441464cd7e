"""Tables a visitor downloads, as CSV that a spreadsheet cannot execute.

A cell that starts with ``=``, ``+``, ``-``, ``@``, a tab or a carriage return is
read as a formula by Excel, LibreOffice and Sheets (CSV injection: an image id or
manifest value ``=HYPERLINK(…)`` would run when the export is opened). Text cells
that start so are prefixed with a single quote, as OWASP recommends; numbers
(negative ones included) are left alone.
"""

from __future__ import annotations

import pandas as pd

FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def _neutralise(value):
    if isinstance(value, str) and value.startswith(FORMULA_START):
        return "'" + value
    return value


def csv_bytes(df: pd.DataFrame, index: bool = False) -> bytes:
    """``df`` as UTF-8 CSV with every formula-like text cell (and column name) defused."""
    safe = df.copy()
    for col in safe.columns:
        if safe[col].dtype == object or pd.api.types.is_string_dtype(safe[col].dtype):
            safe[col] = safe[col].map(_neutralise)
    safe.columns = [_neutralise(str(c)) for c in safe.columns]
    if index:
        safe.index = safe.index.map(_neutralise)
    return safe.to_csv(index=index).encode()
