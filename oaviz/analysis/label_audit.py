"""Label audit: rank images whose given label disagrees with their latent neighbourhood.

Two scorers, both giving p_i(c), an estimate of P(label = c) for image i that
does not use image i's own label:

- ``knn``: the share of image i's k nearest neighbours (itself excluded) that
  carry label c;
- ``oof``: out-of-fold probabilities of a standardised logistic regression
  (stratified K-fold), as in confident learning.

The disagreement score is 1 − p_i(given label); the suggested label is the
argmax of p_i. Confident-learning style flags mark images whose probability
for some other class j reaches that class's threshold t_j (the mean p(j) over
images labelled j) while their own label's probability stays below t_given.
"""

from __future__ import annotations

import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import StratifiedKFold, cross_val_predict
from sklearn.neighbors import NearestNeighbors
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from threadpoolctl import threadpool_limits

METHODS = ("knn", "oof")


class LabelAudit:
    """Fit on latents Z [N, D] and given labels [N]; rank suspicious labels.

    Fitted attributes: ``classes_`` [C], ``proba_`` [N, C] (neighbourhood or
    out-of-fold class probabilities), ``scores_`` [N] (1 − p(given label)),
    ``suspect_order_`` [N] (indices, most suspicious first; kNN ties broken by the
    distance-weighted vote, then by index),
    ``suggested_`` [N] (argmax label), ``thresholds_`` [C] and ``issues_`` [N] bool.
    """

    def __init__(self, method: str = "knn", k: int = 10, n_splits: int = 5, C: float = 1.0,
                 random_state: int = 0):
        self.method = method
        self.k = k
        self.n_splits = n_splits
        self.C = C
        self.random_state = random_state

    def fit(self, Z: np.ndarray, labels: np.ndarray) -> "LabelAudit":
        Z = np.asarray(Z, dtype=np.float64)
        labels = np.asarray(labels)
        if Z.ndim != 2 or len(Z) != len(labels):
            raise ValueError(f"Z must be [N, D] with one label per row; got {Z.shape} and {labels.shape}")
        if self.method not in METHODS:
            raise ValueError(f"method must be one of {METHODS}, got {self.method!r}")
        if not np.isfinite(Z).all():
            raise ValueError("Z has non-finite values")
        self.classes_, y = np.unique(labels, return_inverse=True)
        if len(self.classes_) < 2:
            raise ValueError("need at least two distinct labels")
        n = len(y)
        if self.method == "knn":
            if not 1 <= self.k < len(Z):
                raise ValueError(f"k must be in [1, {len(Z) - 1}], got {self.k}")
            self.proba_, weighted = self._knn_proba(Z, y)
            # Votes come in steps of 1/k, so many images tie; the distance-weighted
            # vote (closer neighbours count more) orders images within a tie.
            tie_break = 1.0 - weighted[np.arange(n), y]
        else:
            self.proba_ = self._oof_proba(Z, y)
            tie_break = np.zeros(n)
        p_given = self.proba_[np.arange(n), y]
        self.scores_ = 1.0 - p_given
        # Most suspicious first; equal (score, tie-break) keep their row order.
        self.suspect_order_ = np.lexsort((np.arange(n), -tie_break, -self.scores_))
        self.suggested_ = self.classes_[self.proba_.argmax(1)]
        self.thresholds_ = np.array([self.proba_[y == c, c].mean() for c in range(len(self.classes_))])
        above = self.proba_ >= self.thresholds_[None, :]
        above[np.arange(n), y] = False
        self.issues_ = above.any(1) & (p_given < self.thresholds_[y])
        return self

    def _knn_proba(self, Z, y):
        nn = NearestNeighbors(n_neighbors=self.k + 1).fit(Z)
        dist, idx = nn.kneighbors(Z)
        # Drop the point itself (normally column 0; with exact duplicates it may sit elsewhere).
        rows = np.arange(len(Z))[:, None]
        is_self = idx == rows
        keep = np.where(is_self.any(1, keepdims=True), ~is_self, np.arange(self.k + 1)[None, :] < self.k)
        neigh = idx[keep].reshape(len(Z), self.k)
        dist = dist[keep].reshape(len(Z), self.k)
        rows = np.repeat(np.arange(len(Z)), self.k)
        votes = np.zeros((len(Z), len(self.classes_)))
        np.add.at(votes, (rows, y[neigh].ravel()), 1.0)
        w = 1.0 / (dist + 1e-12 + 1e-6 * dist.mean())
        weighted = np.zeros_like(votes)
        np.add.at(weighted, (rows, y[neigh].ravel()), w.ravel())
        return votes / self.k, weighted / weighted.sum(1, keepdims=True)

    def _oof_proba(self, Z, y):
        smallest = int(np.bincount(y).min())
        if smallest < 2:
            raise ValueError("every label needs at least two images for out-of-fold probabilities")
        cv = StratifiedKFold(min(self.n_splits, smallest), shuffle=True, random_state=self.random_state)
        clf = make_pipeline(StandardScaler(), LogisticRegression(C=self.C, max_iter=5000))
        # One BLAS thread: on a small, busy machine nested BLAS threads slow LBFGS down many times.
        with threadpool_limits(limits=1):
            return cross_val_predict(clf, Z, y, cv=cv, method="predict_proba")


def precision_recall_at(order: np.ndarray, flipped_mask: np.ndarray, k: int) -> tuple[float, float]:
    """(precision, recall) of the top ``k`` of a ranking at finding the flipped labels.

    precision = flipped among the top k / k; recall = flipped among the top k / all flipped
    (NaN when nothing is flipped).
    """
    order, flipped = np.asarray(order), np.asarray(flipped_mask, dtype=bool)
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    top = order[:k]
    hits = int(flipped[top].sum())
    total = int(flipped.sum())
    return hits / len(top), (hits / total if total else float("nan"))
