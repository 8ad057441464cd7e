"""Pairs of images drawn from a cohort's metadata (no pixels touched).

- ``visit_pairs``: (baseline, next visit) of the same subject and side — what
  the latent diffusion model learns progression from.
- ``grade_pairs``: random (KL a, KL b) pairs within a split — what KECAE
  trains on (KL 0 with KL 2).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from oaviz.errors import DataError


def visit_pairs(meta: pd.DataFrame, split: str | None = None, horizon_months: int | None = None) -> pd.DataFrame:
    """Consecutive-visit pairs of one subject and side.

    Returns one row per pair: ``idx_now, idx_next`` (row positions in ``meta``),
    ``subject_id, side, month_now, month_next, gap_months, kl_now, kl_next,
    progressed`` (rater KL rises), and ``progressor`` when the cohort has it.
    ``horizon_months`` keeps only pairs with exactly that gap.
    """
    for c in ("subject_id", "side", "visit_month"):
        if c not in meta:
            raise DataError(f"metadata has no {c!r} column: cannot form visit pairs")
    m = meta.reset_index(drop=True).assign(_row=np.arange(len(meta)))
    if split is not None:
        m = m[m["split"] == split]
    m = m.sort_values(["subject_id", "side", "visit_month"], kind="stable")
    nxt = m.groupby(["subject_id", "side"], sort=False).shift(-1)
    ok = nxt["_row"].notna()
    cur, nxt = m[ok], nxt[ok]
    out = pd.DataFrame({
        "idx_now": cur["_row"].to_numpy(dtype=np.int64),
        "idx_next": nxt["_row"].to_numpy(dtype=np.int64),
        "subject_id": cur["subject_id"].to_numpy(),
        "side": cur["side"].to_numpy(),
        "month_now": cur["visit_month"].to_numpy(dtype=np.int64),
        "month_next": nxt["visit_month"].to_numpy(dtype=np.int64),
    })
    out["gap_months"] = out["month_next"] - out["month_now"]
    kl = meta["kl"].to_numpy(dtype=float, na_value=np.nan)
    out["kl_now"] = kl[out["idx_now"]]
    out["kl_next"] = kl[out["idx_next"]]
    out["progressed"] = (out["kl_next"] > out["kl_now"]).astype(int)
    if "progressor" in meta:
        out["progressor"] = meta["progressor"].to_numpy()[out["idx_now"]]
    if horizon_months is not None:
        out = out[out["gap_months"] == horizon_months].reset_index(drop=True)
    return out


def grade_pairs(meta: pd.DataFrame, grade_a: int = 0, grade_b: int = 2, n: int | None = None,
                split: str | None = "train", random_state: int = 0) -> np.ndarray:
    """Random pairs [n, 2] of row positions: column 0 has KL ``grade_a``, column 1 KL ``grade_b``.

    Each image of the rarer grade is used at least once when ``n`` is None.
    """
    m = meta.reset_index(drop=True)
    sel = np.ones(len(m), bool) if split is None else (m["split"] == split).to_numpy()
    kl = m["kl"].to_numpy(dtype=float, na_value=np.nan)
    a = np.flatnonzero(sel & (kl == grade_a))
    b = np.flatnonzero(sel & (kl == grade_b))
    if len(a) == 0 or len(b) == 0:
        raise DataError(f"need images of KL {grade_a} and KL {grade_b} in split {split!r}; "
                        f"found {len(a)} and {len(b)}")
    rng = np.random.default_rng(random_state)
    n = n or max(len(a), len(b))
    return np.stack([rng.choice(a, n, replace=n > len(a)), rng.choice(b, n, replace=n > len(b))], axis=1)
