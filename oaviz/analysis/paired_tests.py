"""Paired comparisons of two models scored on the same images.

McNemar's test for two sets of binary decisions, and a paired bootstrap
confidence interval for the difference of any metric.
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


def bootstrap_diff(metric_fn: Callable[[np.ndarray, np.ndarray], float], y: np.ndarray, score_a: np.ndarray,
                   score_b: np.ndarray, n_boot: int = 2000, seed: int = 0,
                   alpha: float = 0.05) -> tuple[float, float, float]:
    """(metric(A) − metric(B), lower, upper) with a paired percentile bootstrap CI.

    The same resampled images score both models in each replicate. Replicates
    where the metric is undefined (e.g. AUC on a one-class resample) are
    dropped. ``score_*`` may be [n] or [n, k] (e.g. class probabilities).
    """
    y, a, b = np.asarray(y), np.asarray(score_a), np.asarray(score_b)
    if not len(y) == len(a) == len(b):
        raise ValueError(f"lengths differ: {len(y)}, {len(a)}, {len(b)}")
    if n_boot < 1 or not 0 < alpha < 1:
        raise ValueError("need n_boot >= 1 and 0 < alpha < 1")
    diff = float(metric_fn(y, a) - metric_fn(y, b))
    rng = np.random.default_rng(seed)
    n = len(y)
    reps = np.empty(n_boot)
    with warnings.catch_warnings():
        # sklearn warns (and returns NaN) for metrics undefined on a resample; those are dropped below.
        warnings.simplefilter("ignore")
        for i in range(n_boot):
            idx = rng.integers(0, n, n)
            try:
                reps[i] = metric_fn(y[idx], a[idx]) - metric_fn(y[idx], b[idx])
            except ValueError:
                reps[i] = math.nan
    reps = reps[np.isfinite(reps)]
    if len(reps) == 0:
        return diff, math.nan, math.nan
    lo, hi = np.percentile(reps, [100 * alpha / 2, 100 * (1 - alpha / 2)])
    return diff, float(lo), float(hi)


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


def quadratic_kappa(y: np.ndarray, pred: np.ndarray, k: int) -> float:
    """Quadratic-weighted Cohen's kappa over labels 0..k-1."""
    cm = confusion(y, pred, k)
    n = cm.sum()
    expected = np.outer(cm.sum(1), cm.sum(0)) / n
    i, j = np.indices((k, k))
    w = (i - j) ** 2 / (k - 1) ** 2
    denom = (w * expected).sum()
    return float(1 - (w * cm).sum() / denom) if denom > 0 else math.nan
