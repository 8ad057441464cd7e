"""Risk of KL progression from predicted grade probabilities (the progression-risk paper).

Two classifiers' outputs are treated as independent: p_now (today's image)
and p_future (generated follow-ups), so

    risk = P(KL_future > KL_now) = Σ_{i<j} p_now[i] · p_future[j],

with p_future averaged over the sampled futures of each knee. No progression
classifier is trained; the risk is a marginalisation over grade pairs.
"""

from __future__ import annotations

import numpy as np


def _as_probs(p, name: str) -> np.ndarray:
    a = np.asarray(p, dtype=np.float64)
    if a.ndim < 1 or not np.isfinite(a).all() or (a < -1e-9).any():
        raise ValueError(f"{name}: probabilities must be finite and non-negative")
    s = a.sum(-1)
    if not np.allclose(s, 1.0, atol=1e-4):
        raise ValueError(f"{name}: each row must sum to 1 (got sums from {s.min():.4f} to {s.max():.4f})")
    return a


def mean_future_probs(p_future) -> np.ndarray:
    """[N, S, K] (S sampled futures per knee) -> [N, K]; [N, K] passes through."""
    a = _as_probs(p_future, "p_future")
    return a.mean(axis=1) if a.ndim == 3 else a


def progression_risk(p_now, p_future) -> np.ndarray:
    """Risk [N] from p_now [N, K] and p_future [N, K] or [N, S, K].

    risk_n = Σ_{j > i} p_now[n, i] · p̄_future[n, j] = Σ_j p̄_future[n, j] · P_now(grade < j).
    """
    now = _as_probs(p_now, "p_now")
    fut = mean_future_probs(p_future)
    if now.ndim != 2 or fut.shape != now.shape:
        raise ValueError(f"p_now {now.shape} and p_future {np.shape(p_future)} do not match ([N, K] and [N, (S,) K])")
    below = np.cumsum(now, axis=1) - now          # P_now(grade < j) for each j
    return np.clip((fut * below).sum(1), 0.0, 1.0)


def grade_transition(p_now, p_future) -> np.ndarray:
    """Joint grade-pair probabilities [N, K, K]: entry (i, j) = p_now[i] · p̄_future[j]; risk is its strict upper triangle."""
    now = _as_probs(p_now, "p_now")
    fut = mean_future_probs(p_future)
    return now[:, :, None] * fut[:, None, :]


def risk_percentile(risk: float, reference) -> float:
    """Share (0–100) of the reference risks (e.g. the cohort's) at or below ``risk``."""
    ref = np.asarray(reference, dtype=np.float64).ravel()
    if ref.size == 0:
        raise ValueError("reference risks are empty")
    return float(100.0 * np.mean(ref <= risk))


def progression_target(kl_now, kl_next) -> tuple[np.ndarray, np.ndarray]:
    """(rises [n] bool, eligible [n] bool) for grades today and at the horizon.

    The risk estimates P(KL rises), so the truth is a KL rise at the horizon, and a
    knee already at KL 4 cannot rise: it is not eligible and is left out of any AUC.
    """
    now, nxt = np.asarray(kl_now, dtype=np.int64), np.asarray(kl_next, dtype=np.int64)
    if now.shape != nxt.shape:
        raise ValueError(f"kl_now {now.shape} and kl_next {nxt.shape} differ")
    if ((now < 0) | (now > 4) | (nxt < 0) | (nxt > 4)).any():
        raise ValueError("KL grades must be in 0..4")
    return nxt > now, now < 4
