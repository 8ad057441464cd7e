"""What each VAESim prototype stands for: its members, their KL mix, its nearest real knees.

Similarity is the cosine, as in VAESim's assignment c = softmax(cos(z, Q)/τ), or
the dot product for models trained with ``similarity="dot"`` (``metric``).
Z: latents [N, D]; Q: prototypes [K, D]; kl: [N] grades 0–4 (NaN or < 0 = unknown).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from oaviz.data.cohort import KL_GRADES
from oaviz.errors import DataError


def _unit(A: np.ndarray) -> np.ndarray:
    """Rows scaled to unit norm; all-zero rows stay zero (cosine 0 with everything)."""
    A = np.atleast_2d(np.asarray(A, dtype=np.float64))
    n = np.linalg.norm(A, axis=1, keepdims=True)
    return A / np.where(n > 0, n, 1.0)


def cosine(Z: np.ndarray, Q: np.ndarray) -> np.ndarray:
    """Cosine similarity [N, K] between rows of Z [N, D] and Q [K, D]."""
    Z, Q = np.atleast_2d(Z), np.atleast_2d(Q)
    if Z.shape[1] != Q.shape[1]:
        raise DataError(f"latent sizes differ: {Z.shape[1]} vs {Q.shape[1]}")
    return _unit(Z) @ _unit(Q).T


def similarity(Z: np.ndarray, Q: np.ndarray, metric: str = "cosine") -> np.ndarray:
    """[N, K] cosine or dot-product similarity between latents and prototypes."""
    if metric == "cosine":
        return cosine(Z, Q)
    if metric == "dot":
        cosine(Z, Q[:1])  # same shape checks
        return np.atleast_2d(np.asarray(Z, np.float64)) @ np.atleast_2d(np.asarray(Q, np.float64)).T
    raise DataError(f"metric must be 'cosine' or 'dot', got {metric!r}")


def assign(Z: np.ndarray, Q: np.ndarray, metric: str = "cosine") -> np.ndarray:
    """Most similar prototype per latent: [N] int64."""
    return similarity(Z, Q, metric).argmax(axis=1).astype(np.int64)


def similarity_matrix(Q: np.ndarray) -> np.ndarray:
    """Cosine similarity between prototypes: [K, K], symmetric, 1 on the diagonal (0 for a zero prototype)."""
    S = cosine(Q, Q)
    return (S + S.T) / 2


def nearest_real(Z: np.ndarray, Q: np.ndarray, k: int = 5, metric: str = "cosine") -> np.ndarray:
    """Indices into Z of the k latents most similar to each prototype: [K, min(k, N)], most similar first."""
    C = similarity(Z, Q, metric)                          # [N, K]
    k = max(1, min(int(k), len(C)))
    order = np.argsort(-C, axis=0, kind="stable")[:k]    # [k, K]
    return order.T.astype(np.int64)


def prototype_table(Z: np.ndarray, Q: np.ndarray, kl, metric: str = "cosine") -> pd.DataFrame:
    """One row per prototype.

    Members are assigned by ``metric``. Columns: prototype, size (latents
    assigned), n_labelled (with a known KL), share_kl0 … share_kl4 (KL mix among the labelled members), majority_kl,
    purity (share of the majority grade), mean_cosine (mean cosine of the
    members to their own prototype). Empty prototypes have size 0 and NaN stats.
    """
    Z = np.asarray(Z, dtype=np.float64)
    Q = np.asarray(Q, dtype=np.float64)
    if hasattr(kl, "to_numpy"):
        kl = kl.to_numpy(dtype=float, na_value=np.nan)
    kl = np.asarray(kl, dtype=float)
    if len(kl) != len(Z):
        raise DataError(f"{len(kl)} KL grades for {len(Z)} latents")
    C = cosine(Z, Q)
    lab = assign(Z, Q, metric)
    own = C[np.arange(len(Z)), lab]
    known = np.isfinite(kl) & (kl >= 0)
    rows = []
    for j in range(len(Q)):
        members = lab == j
        grades = kl[members & known].astype(int)
        counts = np.array([(grades == g).sum() for g in KL_GRADES], dtype=float)
        n_lab = int(counts.sum())
        share = counts / n_lab if n_lab else np.full(len(KL_GRADES), np.nan)
        row = {"prototype": j, "size": int(members.sum()), "n_labelled": n_lab}
        row.update({f"share_kl{g}": share[i] for i, g in enumerate(KL_GRADES)})
        row["majority_kl"] = int(np.argmax(counts)) if n_lab else np.nan
        row["purity"] = float(share.max()) if n_lab else np.nan
        row["mean_cosine"] = float(own[members].mean()) if members.any() else np.nan
        rows.append(row)
    df = pd.DataFrame(rows)
    df["majority_kl"] = df["majority_kl"].astype("Int64")
    return df
