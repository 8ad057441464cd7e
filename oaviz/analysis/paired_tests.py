"""Paired comparisons of two models scored on the same images.

McNemar's test for two sets of binary decisions, and a paired bootstrap
confidence interval (and p-value) for the difference of any metric. When a
subject contributes several images (visits, both knees), pass ``groups``
(subject ids): the McNemar test becomes the clustered one of Durkalski et al.
(2003) and the bootstrap resamples subjects, not images, because images of
one knee are not independent.
"""

from __future__ import annotations

import math
import warnings
from typing import Callable

import numpy as np
from scipy import stats

# Below this many discordant pairs the chi-square approximation is poor; use the exact test.
EXACT_BELOW = 25


def discordant(y_true: np.ndarray, pred_a: np.ndarray, pred_b: np.ndarray) -> tuple[int, int]:
    """(b, c): images only A gets right, images only B gets right."""
    y, a, b = (np.asarray(v).ravel() for v in (y_true, pred_a, pred_b))
    if not len(y) == len(a) == len(b):
        raise ValueError(f"lengths differ: {len(y)}, {len(a)}, {len(b)}")
    ok_a, ok_b = a == y, b == y
    return int((ok_a & ~ok_b).sum()), int((~ok_a & ok_b).sum())


def mcnemar(y_true: np.ndarray, pred_a: np.ndarray, pred_b: np.ndarray,
            exact: bool | None = None) -> tuple[float, float]:
    """(statistic, two-sided p) of McNemar's test on paired decisions [n].

    Exact binomial test (statistic = min(b, c)) when the discordant count
    b + c is below 25 or ``exact=True``; otherwise the chi-square statistic with
    continuity correction (|b − c| − 1)² / (b + c) on 1 degree of freedom.
    No discordant pair: statistic 0, p = 1.
    """
    b, c = discordant(y_true, pred_a, pred_b)
    n = b + c
    if n == 0:
        return 0.0, 1.0
    if exact or (exact is None and n < EXACT_BELOW):
        k = min(b, c)
        return float(k), float(min(1.0, 2.0 * stats.binom.cdf(k, n, 0.5)))
    stat = (abs(b - c) - 1.0) ** 2 / n
    return float(stat), float(stats.chi2.sf(stat, 1))


def mcnemar_clustered(y_true: np.ndarray, pred_a: np.ndarray, pred_b: np.ndarray,
                      groups: np.ndarray) -> tuple[float, float]:
    """(statistic, two-sided p) of McNemar's test for clustered data (Durkalski et al., 2003).

    With b_k, c_k the discordant counts of subject k: X = (Σ_k (b_k − c_k))² / Σ_k (b_k − c_k)²,
    chi-square on 1 degree of freedom. One image per subject gives the plain statistic
    (b − c)² / (b + c) without continuity correction. No discordant pair: (0, 1).
    """
    y, a, b = (np.asarray(v).ravel() for v in (y_true, pred_a, pred_b))
    g = np.asarray(groups).ravel()
    if not len(y) == len(a) == len(b) == len(g):
        raise ValueError(f"lengths differ: {len(y)}, {len(a)}, {len(b)}, {len(g)} groups")
    d = ((a == y) & (b != y)).astype(float) - ((a != y) & (b == y)).astype(float)
    _, inv = np.unique(g, return_inverse=True)
    per = np.bincount(inv, weights=d)                  # b_k − c_k per subject
    denom = float((per ** 2).sum())
    if denom == 0:
        return 0.0, 1.0
    stat = float(per.sum() ** 2 / denom)
    return stat, float(stats.chi2.sf(stat, 1))


def resample_indices(rng: np.random.Generator, n: int, groups: np.ndarray | None) -> np.ndarray:
    """Bootstrap row indices [~n]: n rows with replacement, or, with ``groups`` [n], as many subjects
    drawn with replacement, each bringing all of its rows (the cluster bootstrap)."""
    if groups is None:
        return rng.integers(0, n, n)
    _, inv = np.unique(groups, return_inverse=True)
    members = np.split(np.argsort(inv, kind="stable"), np.cumsum(np.bincount(inv))[:-1])
    pick = rng.integers(0, len(members), len(members))
    return np.concatenate([members[k] for k in pick])


def _replicates(stat: Callable[[np.ndarray], float], n: int, groups: np.ndarray | None, n_boot: int,
                seed: int) -> np.ndarray:
    """Finite bootstrap replicates of ``stat(resampled row indices)``; undefined ones are dropped."""
    if n_boot < 1:
        raise ValueError("need n_boot >= 1")
    if groups is not None and len(groups) != n:
        raise ValueError(f"groups has {len(groups)} values for {n} rows")
    rng = np.random.default_rng(seed)
    reps = np.empty(n_boot)
    with warnings.catch_warnings():
        # sklearn warns (and returns NaN) for metrics undefined on a resample; those are dropped below.
        warnings.simplefilter("ignore")
        for i in range(n_boot):
            try:
                reps[i] = stat(resample_indices(rng, n, groups))
            except ValueError:
                reps[i] = math.nan
    return reps[np.isfinite(reps)]


def bootstrap_diff(metric_fn: Callable[[np.ndarray, np.ndarray], float], y: np.ndarray, score_a: np.ndarray,
                   score_b: np.ndarray, n_boot: int = 2000, seed: int = 0, alpha: float = 0.05,
                   groups: np.ndarray | None = None) -> tuple[float, float, float, float]:
    """(metric(A) − metric(B), lower, upper, p) with a paired percentile bootstrap.

    The same resample scores both models in each replicate; with ``groups`` [n]
    (subject ids) subjects are resampled. p: two-sided bootstrap p-value of "no
    difference", 2·min(share of replicates ≤ 0, share ≥ 0), at most 1.
    ``score_*`` may be [n] or [n, k] (e.g. class probabilities).
    """
    y, a, b = np.asarray(y), np.asarray(score_a), np.asarray(score_b)
    if not len(y) == len(a) == len(b):
        raise ValueError(f"lengths differ: {len(y)}, {len(a)}, {len(b)}")
    if not 0 < alpha < 1:
        raise ValueError("need 0 < alpha < 1")
    diff = float(metric_fn(y, a) - metric_fn(y, b))
    reps = _replicates(lambda i: metric_fn(y[i], a[i]) - metric_fn(y[i], b[i]), len(y), groups, n_boot, seed)
    if len(reps) == 0:
        return diff, math.nan, math.nan, math.nan
    lo, hi = np.percentile(reps, [100 * alpha / 2, 100 * (1 - alpha / 2)])
    p = min(1.0, 2.0 * min(float(np.mean(reps <= 0)), float(np.mean(reps >= 0))))
    return diff, float(lo), float(hi), p


def bootstrap_ci(metric_fn: Callable[[np.ndarray, np.ndarray], float], y: np.ndarray, score: np.ndarray,
                 groups: np.ndarray | None = None, n_boot: int = 2000, seed: int = 0,
                 alpha: float = 0.05) -> tuple[float, float, float]:
    """(metric, lower, upper): one model's metric with a percentile bootstrap CI, subjects resampled
    when ``groups`` [n] is given."""
    y, s = np.asarray(y), np.asarray(score)
    if len(y) != len(s):
        raise ValueError(f"lengths differ: {len(y)}, {len(s)}")
    value = float(metric_fn(y, s))
    reps = _replicates(lambda i: metric_fn(y[i], s[i]), len(y), groups, n_boot, seed)
    if len(reps) == 0:
        return value, math.nan, math.nan
    lo, hi = np.percentile(reps, [100 * alpha / 2, 100 * (1 - alpha / 2)])
    return value, float(lo), float(hi)


# ----------------------------------------------------------------- fast metrics for bootstrap loops
# sklearn's metrics spend most of their time validating input; a bootstrap calls them
# thousands of times on the same clean arrays, so these numpy versions are used there.
def fast_auc(y: np.ndarray, score: np.ndarray) -> float:
    """ROC AUC of binary y [n] (Mann–Whitney U with mid-ranks for ties); NaN with one class."""
    y = np.asarray(y).astype(bool)
    n1 = int(y.sum())
    n0 = len(y) - n1
    if n1 == 0 or n0 == 0:
        return math.nan
    ranks = stats.rankdata(score)
    return float((ranks[y].sum() - n1 * (n1 + 1) / 2) / (n1 * n0))


def confusion(y: np.ndarray, pred: np.ndarray, k: int) -> np.ndarray:
    """k×k confusion counts (rows: truth, columns: prediction) of labels in 0..k-1."""
    return np.bincount(np.asarray(y) * k + np.asarray(pred), minlength=k * k).reshape(k, k).astype(np.float64)


def macro_f1(y: np.ndarray, pred: np.ndarray, k: int) -> float:
    """Macro F1 over the k labels (a label never true nor predicted scores 0, as sklearn's zero_division=0)."""
    cm = confusion(y, pred, k)
    tp = np.diag(cm)
    denom = cm.sum(0) + cm.sum(1)
    return float(np.mean(np.where(denom > 0, 2 * tp / np.where(denom > 0, denom, 1), 0.0)))


def expected_grade(proba: np.ndarray) -> np.ndarray:
    """The grade call [N] (int64) of class probabilities proba [N, K] that minimises the expected squared
    grade error Σ_k p_k (g − k)² = (g − E[k])² + Var[k]: the expected grade, rounded.

    Quadratic-weighted κ charges a call by its squared distance from the true grade, so κ is computed on
    this call; accuracy on the most probable grade (argmax). On a 5-way KL head the two differ when the
    probability mass straddles grades: argmax picks one side, this call the grade in between.
    """
    p = np.asarray(proba, dtype=np.float64)
    if p.ndim != 2 or p.shape[1] < 1:
        raise ValueError(f"proba must be [N, K], got shape {p.shape}")
    mean = (p / p.sum(1, keepdims=True)) @ np.arange(p.shape[1])
    return np.clip(np.floor(mean + 0.5), 0, p.shape[1] - 1).astype(np.int64)


def quadratic_kappa(y: np.ndarray, pred: np.ndarray, k: int) -> float:
    """Quadratic-weighted Cohen's kappa over labels 0..k-1."""
    cm = confusion(y, pred, k)
    n = cm.sum()
    expected = np.outer(cm.sum(1), cm.sum(0)) / n
    i, j = np.indices((k, k))
    w = (i - j) ** 2 / (k - 1) ** 2
    denom = (w * expected).sum()
    return float(1 - (w * cm).sum() / denom) if denom > 0 else math.nan
