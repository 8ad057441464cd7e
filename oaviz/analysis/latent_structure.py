"""How much disease structure a latent space holds, and how faithful its 2-D map is.

- ``group_distances``: mean pairwise Euclidean distances within the OA group,
  within the no-OA group and across them (hip-OA thesis, eqs. 1-3);
- ``silhouette``: scikit-learn's silhouette score of the latents for a labelling;
- ``knn_accuracy``: k-nearest-neighbour accuracy, 5-fold cross-validated with folds grouped
  by subject (a knee's other visits never answer for it);
- ``trustworthiness``: scikit-learn's trustworthiness of a 2-D map (1 = every
  map neighbour is a true latent neighbour);
- ``structure_table``: all of them as one table with what each number means.

All are O(N²) in memory or time at worst, so above ``max_points`` (3,000)
points are subsampled with a seeded generator: the same inputs give the same
numbers.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy.spatial.distance import cdist, pdist
from sklearn.metrics import silhouette_score
from sklearn.manifold import trustworthiness as _sk_trustworthiness

from oaviz.analysis import clustering

MAX_POINTS = 3000


def _latents(Z) -> np.ndarray:
    Z = np.asarray(Z, dtype=np.float64)
    if Z.ndim != 2 or not np.isfinite(Z).all():
        raise ValueError(f"Z must be a finite 2-D array [N, D], got shape {Z.shape}")
    return Z


def known_labels(y) -> tuple[np.ndarray, np.ndarray]:
    """(mask of rows whose label is known, int64 labels of those rows).

    Missing: None / NaN / pandas NA, and -1 (the batch convention for unknown).
    """
    s = pd.Series(np.asarray(y, dtype=object) if not isinstance(y, pd.Series) else y.to_numpy(dtype=object))
    num = pd.to_numeric(s, errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan)
    mask = np.isfinite(num) & (num != -1)
    return mask, num[mask].astype(np.int64)


def _subsample(n: int, max_points: int, random_state: int) -> np.ndarray:
    if n <= max_points:
        return np.arange(n)
    return np.sort(np.random.default_rng(random_state).choice(n, max_points, replace=False))


def group_distances(Z, oa, max_points: int = MAX_POINTS, random_state: int = 0) -> dict[str, float]:
    """Mean pairwise Euclidean distances of latents Z [N, D] by OA group (oa [N] bool/0-1, NaN unknown).

    intra_oa: over pairs i<j both OA; intra_no_oa: both no-OA; inter: one of each.
    A group larger than max_points is subsampled (seeded) — an unbiased estimate of the same mean.
    """
    Z = _latents(Z)
    mask, y = known_labels(oa)
    if len(mask) != len(Z):
        raise ValueError(f"oa has {len(mask)} values but Z has {len(Z)} rows")
    Zk = Z[mask]
    a, b = Zk[y == 1], Zk[y == 0]
    if len(a) < 2 or len(b) < 2:
        raise ValueError(f"need at least 2 OA and 2 no-OA latents, got {len(a)} and {len(b)}")
    a = a[_subsample(len(a), max_points, random_state)]
    b = b[_subsample(len(b), max_points, random_state + 1)]
    return {"intra_oa": float(pdist(a).mean()), "intra_no_oa": float(pdist(b).mean()),
            "inter": float(cdist(a, b).mean())}


def silhouette(Z, labels, max_points: int = MAX_POINTS, random_state: int = 0) -> float:
    """Silhouette score of latents Z [N, D] for labels [N] (unknown labels dropped), in [-1, 1]."""
    Z = _latents(Z)
    mask, y = known_labels(labels)
    Z = Z[mask]
    n_labels = len(np.unique(y))
    if not 2 <= n_labels <= len(y) - 1:
        raise ValueError(f"silhouette needs 2 to N-1 distinct labels, got {n_labels} among {len(y)} points")
    sample = max_points if len(y) > max_points else None
    return float(silhouette_score(Z, y, sample_size=sample, random_state=random_state))


def knn_accuracy(Z, y, groups, k: int = 5, random_state: int = 0, n_splits: int = 5) -> float:
    """k-NN accuracy on latents Z [N, D] for labels y [N] (unknown dropped), folds grouped by subject.

    groups [N]: subject ids, so no knee is scored by its own other visits; the
    classifier and the folds are those of ``clustering.knn_accuracy``.
    """
    Z = _latents(Z)
    mask, lab = known_labels(y)
    groups = np.asarray(groups, dtype=object)
    if len(groups) != len(mask):
        raise ValueError(f"groups has {len(groups)} values but Z has {len(mask)} rows")
    Z, groups = Z[mask], groups[mask]
    classes = np.unique(lab)
    if len(classes) < 2:
        raise ValueError(f"kNN accuracy needs at least 2 classes, got {len(classes)}")
    if len(np.unique(groups)) < n_splits:
        raise ValueError(f"too few subjects ({len(np.unique(groups))}) for {n_splits}-fold cross-validation")
    return clustering.knn_accuracy(Z, lab, k=k, groups=groups, n_splits=n_splits, random_state=random_state)


def trustworthiness(Z, Y2, k: int = 10, max_points: int = MAX_POINTS, random_state: int = 0) -> float:
    """sklearn trustworthiness of the map Y2 [N, 2] of latents Z [N, D] with k neighbours, in [0, 1]."""
    Z = _latents(Z)
    Y2 = np.asarray(Y2, dtype=np.float64)
    if Y2.ndim != 2 or len(Y2) != len(Z) or not np.isfinite(Y2).all():
        raise ValueError(f"Y2 must be finite [N, 2] with N = {len(Z)}, got shape {Y2.shape}")
    idx = _subsample(len(Z), max_points, random_state)
    if k >= len(idx) / 2:
        raise ValueError(f"trustworthiness needs k < N/2 (k = {k}, N = {len(idx)})")
    return float(_sk_trustworthiness(Z[idx], Y2[idx], n_neighbors=k))


_MEANINGS = {
    "intra-OA distance": "mean latent distance between two OA knees (KL ≥ 2)",
    "intra-no-OA distance": "mean latent distance between two no-OA knees (KL < 2)",
    "inter-group distance": "mean latent distance between an OA and a no-OA knee; above both intra values = groups separate",
    "silhouette (OA)": "-1…1: how well latents cluster by OA; ~0 = overlapping groups",
    "silhouette (KL)": "-1…1: how well latents cluster by KL grade; ~0 = overlapping grades",
    "kNN accuracy (OA)": "5-NN accuracy for OA, 5-fold CV grouped by subject (chance ≈ majority share)",
    "kNN accuracy (KL)": "5-NN accuracy for KL grade, 5-fold CV grouped by subject (chance ≈ majority share)",
    "trustworthiness": "0…1: share of map neighbours that are true latent neighbours (k = 10); trust the picture when near 1",
}


def structure_table(Z, Y2, oa, kl, groups, random_state: int = 0) -> pd.DataFrame:
    """Columns metric, value, meaning, note (why a value is NaN); one row per metric in _MEANINGS.

    groups [N]: subject ids, for the held-out kNN figures.
    Unknown labels are dropped per metric; a metric that cannot be computed is NaN with its reason.
    """
    rows: list[tuple[str, float, str]] = []

    def attempt(names, fn):
        try:
            vals = fn()
            vals = vals if isinstance(vals, tuple) else (vals,)
            rows.extend((n, float(v), "") for n, v in zip(names, vals))
        except (ValueError, MemoryError) as e:
            rows.extend((n, float("nan"), str(e)) for n in names)

    def dists():
        d = group_distances(Z, oa, random_state=random_state)
        return d["intra_oa"], d["intra_no_oa"], d["inter"]

    attempt(["intra-OA distance", "intra-no-OA distance", "inter-group distance"], dists)
    attempt(["silhouette (OA)"], lambda: silhouette(Z, oa, random_state=random_state))
    attempt(["silhouette (KL)"], lambda: silhouette(Z, kl, random_state=random_state))
    attempt(["kNN accuracy (OA)"], lambda: knn_accuracy(Z, oa, groups, random_state=random_state))
    attempt(["kNN accuracy (KL)"], lambda: knn_accuracy(Z, kl, groups, random_state=random_state))
    attempt(["trustworthiness"], lambda: trustworthiness(Z, Y2, random_state=random_state))
    return pd.DataFrame({"metric": [r[0] for r in rows], "value": [r[1] for r in rows],
                         "meaning": [_MEANINGS[r[0]] for r in rows], "note": [r[2] for r in rows]})
