"""Linked selection between two latent maps of the same cohort (Compare models page; no Streamlit here).

Both maps show cohort rows (``table.row``), so a lasso on one map names knees that the other map shows
too (the same seeded subsample when both use the same point budget). The selection remembers which map
made it: emptying that map's selection clears it, while the other map's own (empty) selection events do not.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd
import plotly.graph_objects as go

# The pair the page opens on when the bundled checkpoints are there: the same β-VAE architecture trained
# on the default cohort and on the matched (realism-calibrated) one.
DEFAULT_PAIR = ("beta_vae-demo", "beta_vae-matched-demo")
SIDES = ("left", "right")


@dataclass(frozen=True)
class LinkedSelection:
    """Cohort rows selected on one of the two maps, which map (a ``SIDES`` value) made the selection, and the
    cohort's fingerprint (rows of another cohort are other knees)."""

    rows: tuple[int, ...]
    source: str
    cohort: str = ""


def link(current: LinkedSelection | None, source: str, rows: Sequence[int],
         cohort: str = "") -> LinkedSelection | None:
    """The shared selection after map ``source`` of ``cohort`` reported ``rows`` (its whole selection now)."""
    if current is not None and current.cohort != cohort:
        current = None     # picked on another cohort
    if len(rows):
        return LinkedSelection(tuple(sorted({int(r) for r in rows})), source, cohort)
    if current is not None and current.source == source:
        return None        # the map that made the selection was cleared
    return current         # the other map had nothing selected: keep what this one picked


def on_map(table: pd.DataFrame, rows: Sequence[int]) -> pd.DataFrame:
    """The rows of a map's ``table`` (columns row, x, y, …) that are in the selection, in table order."""
    return table[table["row"].isin(list(rows))]


def relative_spread(table: pd.DataFrame, rows: Sequence[int]) -> float:
    """How scattered the selected knees are on this map: their mean distance to their own centroid over the
    same for all knees of the map (≈ 0: a tight group; ≈ 1: spread like the whole cohort). NaN under 2 knees."""
    sel = on_map(table, rows)
    if len(sel) < 2:
        return float("nan")
    xy_all, xy = table[["x", "y"]].to_numpy(float), sel[["x", "y"]].to_numpy(float)
    whole = np.linalg.norm(xy_all - xy_all.mean(0), axis=1).mean()
    return float(np.linalg.norm(xy - xy.mean(0), axis=1).mean() / whole) if whole > 0 else float("nan")


def highlight_trace(table: pd.DataFrame, rows: Sequence[int], made_here: bool) -> go.Scattergl:
    """Open rings on the selected knees of this map (customdata = cohort row, so a lasso over them works)."""
    sel = on_map(table, rows)
    name = "selected here" if made_here else "selected on the other map"
    return go.Scattergl(x=sel["x"], y=sel["y"], mode="markers", name=name, customdata=sel["row"].to_numpy(),
                        text=sel["image_id"], hovertemplate="%{text}<extra>" + name + "</extra>",
                        marker=dict(symbol="circle-open", size=11, color="#111", line=dict(width=2)))


def default_pair(paths: Sequence[str]) -> tuple[int, int]:
    """Indices into ``paths`` of the two checkpoints to open on: ``DEFAULT_PAIR`` when listed, else the
    first two. Needs at least two paths."""
    names = [Path(p).name for p in paths]
    idx = [names.index(n) for n in DEFAULT_PAIR if n in names]
    rest = [i for i in range(len(paths)) if i not in idx]
    a, b = (idx + rest)[:2]
    return a, b
