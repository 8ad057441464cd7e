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

A ``visible_risk`` cohort adds, as real cohorts have, progression cues a baseline
image shows: each subject's log-odds of being a progressor moves by a cue logit c
that the joint module computes from anatomy the image renders (the knee:
alignment, a narrow healthy joint space for its size) and by a hidden part,
HIDDEN_LOG_OR × N(0, 1), that no image shows; the intercept is re-solved so the
progressor fraction stays the same. The ceiling is then the AUC of q(s, c).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from oaviz.data import synth_math as sm

# Relative chance of being a progressor by baseline KL 0–4: likelier in early/moderate OA than in
# healthy knees, none at KL 4 (nowhere left to go).
PROGRESSION_RELATIVE_RISK = np.array([0.55, 1.5, 1.55, 1.2, 0.0])
HIDDEN_LOG_OR = 0.8     # log odds ratio per SD of the subject's own part of the risk, which no image shows
CUE_SEED = 7919         # the stream of the cue-cohort draws, apart from every other draw of the generator


def _logit(p: np.ndarray) -> np.ndarray:
    return sm.np_log(p) - sm.np_log1p(-p)


def progressor_probability(k0: np.ndarray, progressor_fraction: float, cue_logit: np.ndarray | None = None,
                           hidden: np.ndarray | None = None) -> np.ndarray:
    """P(progressor) [n] by baseline grade k0 [n]; with ``cue_logit`` [n] (and ``hidden`` [n], N(0, 1)) the
    log-odds also move by cue_logit + HIDDEN_LOG_OR·hidden, the intercept solved (bisection) so the mean
    probability stays that of the grade-only odds. KL 4 stays at 0 (nowhere left to go)."""
    p = progressor_fraction * PROGRESSION_RELATIVE_RISK[k0]
    p *= progressor_fraction / max(p.mean(), 1e-9) if p.mean() > 0 else 0
    p = np.clip(p, 0, 1)
    if cue_logit is None:
        return p
    can = (p > 0) & (p < 1)
    base = _logit(p[can]) + cue_logit[can] + HIDDEN_LOG_OR * (hidden[can] if hidden is not None else 0.0)
    target, lo, hi = p[can].sum(), -20.0, 20.0
    for _ in range(60):                     # the mean is increasing in the shift
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if (1 / (1 + sm.np_exp(-(base + mid)))).sum() < target else (lo, mid)
    out = p.copy()
    out[can] = 1 / (1 + sm.np_exp(-(base + (lo + hi) / 2)))
    return out


def kl_from_severity(s: np.ndarray) -> np.ndarray:
    """KL_true = nearest grade to the continuous severity (s in [0, 4])."""
    return np.clip(np.floor(np.asarray(s) + 0.5), 0, 4).astype(np.int64)


def sample_severity(rng: np.random.Generator, n: int, progressor_fraction: float, prevalence,
                    cue_logit: np.ndarray | None = None, hidden: np.ndarray | None = None):
    """Baseline severity [n], yearly progression rate [n] and progressor flag [n] per subject; cue_logit /
    hidden as ``progressor_probability`` (None: the grade alone sets the odds). The rng draws are the same
    either way: only who progresses changes."""
    k0 = rng.choice(5, size=n, p=prevalence)
    u = rng.uniform(0, 1, n)
    lo = np.where(k0 == 0, 0.0, k0 - 0.5)
    hi = np.where(k0 == 4, 4.0, k0 + 0.5)
    s0 = lo + u * (hi - lo) * 0.999
    p_prog = progressor_probability(k0, progressor_fraction, cue_logit, hidden)
    progressor = rng.uniform(0, 1, n) < p_prog
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
    edges [B+1] / risk [B]: q(s), the Bayes-optimal risk as a step function of the visit's severity;
    in a visible-risk cohort cue_edges [C+1] and risk [B, C]: q(s, c), c the subject's cue logit."""

    auc: float
    prevalence: float
    horizon: int
    edges: np.ndarray
    risk: np.ndarray
    cue_edges: np.ndarray | None = None
    grade_only_auc: float | None = None     # visible-risk cohorts: the ceiling of a risk that sees s alone

    def risk_at(self, severity: np.ndarray, cue: np.ndarray | None = None) -> np.ndarray:
        """q(s) (or q(s, c) with the knees' cue logits [n]) for severities [n]: the best risk any
        image-based predictor can give these knees."""
        b = _bin(self.edges, severity)
        if self.cue_edges is None:
            return self.risk[b]
        if cue is None:
            raise ValueError("this cohort's risk depends on each knee's visible cues: pass their cue logits")
        return self.risk[b, _bin(self.cue_edges, cue)]

    def to_dict(self) -> dict:
        out = {"auc": round(self.auc, 4), "prevalence": round(self.prevalence, 4), "horizon_months": self.horizon,
               "target": "true KL rises within the horizon; knees below KL 4 at the visit"}
        if self.cue_edges is not None:
            out["grade_only_auc"] = round(self.grade_only_auc, 4)
            out["risk_sees"] = "severity and the baseline cues (alignment, joint space for the knee's size)"
        return out


def _bin(edges: np.ndarray, v) -> np.ndarray:
    return np.clip(np.searchsorted(edges, np.asarray(v), side="right") - 1, 0, len(edges) - 2)


def _auc(y: np.ndarray, score: np.ndarray) -> float:
    """ROC AUC by mid-ranks (ties count one half)."""
    from scipy.stats import rankdata

    y = np.asarray(y, bool)
    n1, n0 = int(y.sum()), int((~y).sum())
    r = rankdata(score)
    return float((r[y].sum() - n1 * (n1 + 1) / 2) / (n1 * n0))


def _step_risk(cell: np.ndarray, rise: np.ndarray, half: np.ndarray, n_cells: int) -> np.ndarray:
    """Share of ``rise`` per cell over the fitting half (the other half scores it)."""
    counts = np.bincount(cell[half], minlength=n_cells)
    return np.bincount(cell[half], weights=rise[half], minlength=n_cells) / np.maximum(counts, 1)


def progression_bayes_ceiling(progressor_fraction: float, prevalence, visits=(0, 12, 24), horizon: int = 12,
                              n_subjects: int = 400_000, bins: int = 400, seed: int = 0,
                              cues=None, cue_bins: int = 20) -> BayesCeiling:
    """Simulate the generator's progression and return the Bayes ceiling of the risk AUC (see module doc).

    Every visit month m with m + horizon among ``visits`` contributes one row per subject, as the
    evaluation does (each test knee with a follow-up at the horizon). Monte-Carlo error of the AUC
    with the default 400,000 subjects is about 0.001. cues: for a visible-risk cohort, the joint
    module's ``(rng, n) -> cue logits [n]`` of n fresh subjects; q is then a step function of severity
    (bins/4 bins) × cue logit (``cue_bins`` quantile bins).
    """
    months = [m for m in visits if m + horizon in visits]
    if not months:
        raise ValueError(f"no visit has a follow-up {horizon} months later among {list(visits)}")
    rng = np.random.default_rng(seed)
    cue = hidden = None
    if cues is not None:
        crng = np.random.default_rng([seed, CUE_SEED])
        cue = cues(crng, n_subjects)
        hidden = crng.standard_normal(n_subjects)
    s0, rate, _ = sample_severity(rng, n_subjects, progressor_fraction, prevalence, cue, hidden)
    s_now = np.concatenate([severity_at(s0, rate, m) for m in months])
    s_next = np.concatenate([severity_at(s0, rate, m + horizon) for m in months])
    keep = kl_from_severity(s_now) < 4
    s_now, rise = s_now[keep], kl_from_severity(s_next[keep]) > kl_from_severity(s_now[keep])
    half = np.arange(len(s_now)) % 2 == 0
    edges = np.linspace(0.0, 4.0, bins + 1)
    b = _bin(edges, s_now)
    risk = _step_risk(b, rise, half, bins)
    auc = _auc(rise[~half], risk[b[~half]])
    if cue is None:
        return BayesCeiling(auc=auc, prevalence=float(rise.mean()), horizon=int(horizon), edges=edges, risk=risk)
    c_now = np.tile(cue, len(months))[keep]
    s_edges = np.linspace(0.0, 4.0, bins // 4 + 1)
    c_edges = np.quantile(c_now, np.linspace(0, 1, cue_bins + 1))
    c_edges[0], c_edges[-1] = -np.inf, np.inf
    cell = _bin(s_edges, s_now) * cue_bins + _bin(c_edges, c_now)
    risk2 = _step_risk(cell, rise, half, (len(s_edges) - 1) * cue_bins)
    return BayesCeiling(auc=_auc(rise[~half], risk2[cell[~half]]), prevalence=float(rise.mean()),
                        horizon=int(horizon), edges=s_edges, risk=risk2.reshape(-1, cue_bins),
                        cue_edges=c_edges, grade_only_auc=auc)
