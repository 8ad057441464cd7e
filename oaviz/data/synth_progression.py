"""The synthetic cohort's progression model, and the best risk AUC any image-based predictor can reach on it.

Each subject draws a baseline severity s0 (uniform within a baseline KL grade drawn
from ``BASELINE_PREVALENCE``), a progressor flag with odds that depend on the
baseline grade (``PROGRESSION_RELATIVE_RISK``) and a yearly rate (progressors
U(0.35, 0.9) grades/year, others Exp(mean 0.025)). Severity at month m is
clip(s0 + rate·m/12, 0, 4); KL_true = round(severity).

What an image shows is the severity at its visit (the anatomy, texture and
acquisition are drawn independently of progression), so the Bayes-optimal risk
for "KL rises within the horizon" is q(s) = P(rise | severity s at the visit),
and the ceiling of the ROC AUC is the AUC of q over the population. Both are
computed here by simulating the generator's own sampling functions (no separate
model of it to drift out of date), with q estimated on one half of the
simulation and the AUC scored on the other.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

# Relative chance of being a progressor by baseline KL 0–4: likelier in early/moderate OA than in
# healthy knees, none at KL 4 (nowhere left to go).
PROGRESSION_RELATIVE_RISK = np.array([0.55, 1.5, 1.55, 1.2, 0.0])


def kl_from_severity(s: np.ndarray) -> np.ndarray:
    """KL_true = nearest grade to the continuous severity (s in [0, 4])."""
    return np.clip(np.floor(np.asarray(s) + 0.5), 0, 4).astype(np.int64)


def sample_severity(rng: np.random.Generator, n: int, progressor_fraction: float, prevalence):
    """Baseline severity [n], yearly progression rate [n] and progressor flag [n] per subject."""
    k0 = rng.choice(5, size=n, p=prevalence)
    u = rng.uniform(0, 1, n)
    lo = np.where(k0 == 0, 0.0, k0 - 0.5)
    hi = np.where(k0 == 4, 4.0, k0 + 0.5)
    s0 = lo + u * (hi - lo) * 0.999
    p_prog = progressor_fraction * PROGRESSION_RELATIVE_RISK[k0]
    p_prog *= progressor_fraction / max(p_prog.mean(), 1e-9) if p_prog.mean() > 0 else 0
    progressor = rng.uniform(0, 1, n) < np.clip(p_prog, 0, 1)
    slow = rng.exponential(0.025, n)                    # grades per year, almost stable
    fast = rng.uniform(0.35, 0.9, n)
    rate = np.where(progressor, fast, slow)
    return s0, rate, progressor


def severity_at(s0: np.ndarray, rate: np.ndarray, month) -> np.ndarray:
    """Severity at ``month`` (scalar or [n]) of subjects with baseline s0 [n] and yearly rate [n]."""
    return np.clip(s0 + rate * np.asarray(month) / 12.0, 0.0, 4.0)


@dataclass(frozen=True)
class BayesCeiling:
    """auc: the ceiling of the risk's ROC AUC for a true KL rise within ``horizon`` months, over the
    visits that have such a follow-up, knees below KL 4 at the visit; prevalence: the share that rise;
    edges [B+1] / risk [B]: q(s), the Bayes-optimal risk as a step function of the visit's severity."""

    auc: float
    prevalence: float
    horizon: int
    edges: np.ndarray
    risk: np.ndarray

    def risk_at(self, severity: np.ndarray) -> np.ndarray:
        """q(s) for severities [n]: the best risk any image-based predictor can give these knees."""
        b = np.clip(np.searchsorted(self.edges, np.asarray(severity), side="right") - 1, 0, len(self.risk) - 1)
        return self.risk[b]

    def to_dict(self) -> dict:
        return {"auc": round(self.auc, 4), "prevalence": round(self.prevalence, 4), "horizon_months": self.horizon,
                "target": "true KL rises within the horizon; knees below KL 4 at the visit"}


def _auc(y: np.ndarray, score: np.ndarray) -> float:
    """ROC AUC by mid-ranks (ties count one half)."""
    from scipy.stats import rankdata

    y = np.asarray(y, bool)
    n1, n0 = int(y.sum()), int((~y).sum())
    r = rankdata(score)
    return float((r[y].sum() - n1 * (n1 + 1) / 2) / (n1 * n0))


def progression_bayes_ceiling(progressor_fraction: float, prevalence, visits=(0, 12, 24), horizon: int = 12,
                              n_subjects: int = 400_000, bins: int = 400, seed: int = 0) -> BayesCeiling:
    """Simulate the generator's progression and return the Bayes ceiling of the risk AUC (see module doc).

    Every visit month m with m + horizon among ``visits`` contributes one row per subject, as the
    evaluation does (each test knee with a follow-up at the horizon). Monte-Carlo error of the AUC
    with the default 400,000 subjects is about 0.001.
    """
    months = [m for m in visits if m + horizon in visits]
    if not months:
        raise ValueError(f"no visit has a follow-up {horizon} months later among {list(visits)}")
    rng = np.random.default_rng(seed)
    s0, rate, _ = sample_severity(rng, n_subjects, progressor_fraction, prevalence)
    s_now = np.concatenate([severity_at(s0, rate, m) for m in months])
    s_next = np.concatenate([severity_at(s0, rate, m + horizon) for m in months])
    keep = kl_from_severity(s_now) < 4
    s_now, rise = s_now[keep], kl_from_severity(s_next[keep]) > kl_from_severity(s_now[keep])
    half = np.arange(len(s_now)) % 2 == 0
    edges = np.linspace(0.0, 4.0, bins + 1)
    b = np.clip(np.searchsorted(edges, s_now, side="right") - 1, 0, bins - 1)
    counts = np.bincount(b[half], minlength=bins)
    risk = np.bincount(b[half], weights=rise[half], minlength=bins) / np.maximum(counts, 1)
    auc = _auc(rise[~half], risk[b[~half]])
    return BayesCeiling(auc=auc, prevalence=float(rise.mean()), horizon=int(horizon), edges=edges, risk=risk)
