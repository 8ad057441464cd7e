"""A disease-severity direction in latent space, cleaned of nuisance directions.

``SeverityAxis`` finds a unit direction along which KL grade grows: the
difference between the centroids of the highest grade present (KL 4 when
there is one) and the lowest (KL 0) ("centroid"); that difference whitened
by the pooled within-grade covariance, Fisher's discriminant ("fisher");
the normal of a logistic-regression OA (KL >= 2) probe ("probe"); or the
coefficients of a ridge regression of the grade on the latent ("regression":
every grade counts, in order, where the centroid and Fisher directions see
only the lowest and the highest grade and the probe only OA against not).
Which to use depends on the question: the centroid difference is the
average change between grades, the natural way to *move* a knee ("two
grades worse"), but a projection on it is swamped by directions of large
anatomical or acquisition variance; the Fisher direction *ranks* knees by
grade far better (demo β-VAE, held-out Spearman ρ with KL about 0.5 against
0.1) but a move along it also shifts those loud directions.

The direction is then made orthogonal (Gram–Schmidt) to nuisance directions
— for a binary factor such as side the difference of its two class means,
for a categorical one each level's indicator, for numeric acquisition
columns their top principal components, all as least-squares slopes of Z
estimated within KL grade — so that moving a knee along it changes the
disease, not the side marker or the exposure.
"""

from __future__ import annotations

from typing import Mapping, Sequence

import numpy as np
import pandas as pd
from scipy.stats import spearmanr
from sklearn.covariance import LedoitWolf
from sklearn.decomposition import PCA
from sklearn.linear_model import LogisticRegression, RidgeCV

from oaviz.errors import DataError

METHODS = ("centroid", "fisher", "probe", "regression")
_TINY = 1e-12


def _as_float(values) -> np.ndarray:
    """Numbers (also pandas nullable columns) -> float array with NaN for missing."""
    if hasattr(values, "to_numpy"):
        return np.asarray(values.to_numpy(dtype=float, na_value=np.nan), dtype=float)
    return np.asarray(values, dtype=float)


def _as_kl(kl) -> np.ndarray:
    """KL labels -> float array, NaN where unknown (missing or negative, as in the batches' -1)."""
    a = _as_float(kl)
    return np.where(a >= 0, a, np.nan)


def nuisance_directions(Z: np.ndarray, labels: Mapping[str, np.ndarray], n_components: int = 2,
                        groups: np.ndarray | None = None) -> tuple[np.ndarray, list[str]]:
    """Directions [M, D] (unnormalised) and their names for each nuisance factor.

    Each direction is the least-squares slope of Z on one nuisance column.
    A 1-D non-numeric or two-valued array is a factor, coded as one indicator
    per level (a binary factor gives one: the difference of its two class
    means). Numeric arrays with more values ([N] or [N, k]) are acquisition
    covariates: standardised, reduced to their top ``n_components`` principal
    components, one direction per component.

    groups [N] (the KL grades, NaN = unknown): slopes are estimated *within*
    groups (both Z and the column centred per group, i.e. the grade is held
    fixed). Without this, a nuisance that is more common at high grades —
    side, a scanner — would carry part of the disease direction with it and
    removing it would remove disease. Rows with a missing value (NaN / None /
    '') or an unknown group are left out of that factor.
    """
    Z = np.asarray(Z, dtype=np.float64)
    g = None if groups is None else np.asarray(groups, dtype=float)
    dirs: list[np.ndarray] = []
    names: list[str] = []
    for name, raw in labels.items():
        if hasattr(raw, "to_numpy") and pd.api.types.is_numeric_dtype(raw.dtype):
            a = raw.to_numpy(dtype=float, na_value=np.nan)  # pandas nullable ints -> float with NaN
        else:
            a = np.asarray(raw)
        if len(a) != len(Z):
            raise DataError(f"nuisance {name!r} has {len(a)} values for {len(Z)} latents")
        numeric = np.issubdtype(a.dtype, np.number) or a.dtype == bool
        if a.ndim == 1 and (not numeric or len(np.unique(a[~_missing(a)])) <= 2):
            ok = ~_missing(a)
            levels = np.unique(a[ok])
            if len(levels) < 2:
                continue
            levels = levels[1:] if len(levels) == 2 else levels
            X = np.stack([(a == lev).astype(np.float64) for lev in levels], axis=1)
            cols = [f"{name}={lev}" for lev in levels]
        else:
            X = np.asarray(a, dtype=np.float64).reshape(len(Z), -1)
            ok = np.isfinite(X).all(axis=1)
            cols = None
        if g is not None:
            ok = ok & np.isfinite(g)
        if ok.sum() < 3:
            continue
        X, Zk, gk = X[ok], Z[ok], (None if g is None else g[ok])
        if cols is None:  # numeric covariates -> their top principal components
            sd = X.std(0)
            X = (X[:, sd > 0] - X[:, sd > 0].mean(0)) / sd[sd > 0]
            if X.shape[1] == 0:
                continue
            k = min(n_components, X.shape[1], len(X) - 1)
            X = PCA(n_components=k).fit_transform(X)
            cols = [f"{name}:pc{j + 1}" for j in range(k)] if a.ndim > 1 and a.shape[1] > 1 else [name]
        Xc, Zc = _centre(X, gk), _centre(Zk, gk)
        ss = (Xc ** 2).sum(0)
        for j, col in enumerate(cols):
            if ss[j] > _TINY:  # no variation within the groups: nothing to remove
                dirs.append(Zc.T @ Xc[:, j] / ss[j])
                names.append(col)
    return np.array(dirs).reshape(-1, Z.shape[1]), names


def _centre(X: np.ndarray, groups: np.ndarray | None) -> np.ndarray:
    """X [n, k] minus its mean, per group when groups [n] is given."""
    if groups is None:
        return X - X.mean(0)
    out = X.copy()
    for v in np.unique(groups):
        m = groups == v
        out[m] -= out[m].mean(0)
    return out


def _missing(a: np.ndarray) -> np.ndarray:
    m = np.asarray(pd.isna(a), dtype=bool)
    if a.dtype.kind in "OUS":
        m |= a.astype(str) == ""
    return m


def orthonormal_basis(V: np.ndarray) -> np.ndarray:
    """Gram–Schmidt: rows of V [M, D] -> orthonormal rows [M', D] spanning them (degenerate rows dropped)."""
    basis: list[np.ndarray] = []
    for v in np.asarray(V, dtype=np.float64):
        w = v.copy()
        for b in basis:
            w -= (w @ b) * b
        n = np.linalg.norm(w)
        if n > 1e-9 * max(np.linalg.norm(v), _TINY):
            basis.append(w / n)
    return np.array(basis).reshape(-1, V.shape[1] if np.ndim(V) == 2 else 0)


class SeverityAxis:
    """Unit latent direction of increasing KL grade.

    Parameters
    ----------
    method : "centroid" (KL-high minus KL-0 centroid), "fisher" (the same difference
        whitened by the pooled within-grade covariance, i.e. Fisher's discriminant;
        much less swayed by directions of large anatomical/acquisition variance),
        "probe" (normal of a logistic-regression OA probe) or "regression" (ridge
        regression of the grade on Z, its penalty chosen by leave-one-out error).
    nuisance : names of the nuisance factors passed to ``fit`` to use (None = all).
    n_components : principal components kept per numeric nuisance factor.
    C : inverse regularisation of the OA probe (method="probe").
    random_state : seed of the probe's solver.

    Fitted attributes: ``direction_`` [D] unit, ``raw_direction_`` [D] unit
    (before orthogonalisation), ``nuisance_basis_`` [M, D] orthonormal,
    ``nuisance_names_``, ``grades_`` (grades present), ``centroid_projection_``
    [len(grades_)], ``grade_step_`` (latent distance along the axis per grade),
    ``cos_raw_`` (cosine between raw and final direction).
    """

    def __init__(self, method: str = "centroid", nuisance: Sequence[str] | None = None,
                 n_components: int = 2, C: float = 1.0, random_state: int | None = 0):
        self.method = method
        self.nuisance = nuisance
        self.n_components = n_components
        self.C = C
        self.random_state = random_state

    def fit(self, Z: np.ndarray, kl, nuisance_labels: Mapping[str, np.ndarray] | None = None) -> "SeverityAxis":
        """Z [N, D]; kl [N] (NaN / negative = unknown); nuisance_labels {name: [N] or [N, k]}."""
        if self.method not in METHODS:
            raise DataError(f"method must be one of {METHODS}, got {self.method!r}")
        Z = np.asarray(Z, dtype=np.float64)
        kl = _as_kl(kl)
        if Z.ndim != 2 or len(Z) != len(kl):
            raise DataError(f"Z must be [N, D] with one KL grade per row, got {Z.shape} and {kl.shape}")
        known = np.isfinite(kl)
        Zk, g = Z[known], kl[known].astype(int)
        grades = np.unique(g)
        if len(grades) < 2:
            raise DataError(f"a severity axis needs at least two KL grades, found {grades.tolist()}")
        centroids = np.stack([Zk[g == k].mean(0) for k in grades])

        if self.method == "centroid":
            raw = centroids[-1] - centroids[0]
        elif self.method == "fisher":
            # Σ_w⁻¹ (μ_high − μ_low): the centroid difference seen through the pooled
            # within-grade covariance (Ledoit–Wolf shrinkage keeps it invertible).
            resid = Zk - centroids[np.searchsorted(grades, g)]
            cov = LedoitWolf(assume_centered=True).fit(resid).covariance_
            raw = np.linalg.solve(cov, centroids[-1] - centroids[0])
        elif self.method == "regression":
            # least squares on the grade itself uses the ordering of all grades; leave-one-out (RidgeCV's
            # efficient GCV) picks the penalty, as within-grade spread dwarfs the grade signal in a latent
            ridge = RidgeCV(alphas=np.logspace(-3, 4, 15)).fit(Zk, g.astype(np.float64))
            raw = ridge.coef_.astype(np.float64)
        else:
            oa = (g >= 2).astype(int)
            if len(np.unique(oa)) < 2:
                raise DataError("the OA probe needs both OA (KL >= 2) and non-OA (KL < 2) latents")
            lr = LogisticRegression(C=self.C, max_iter=2000, random_state=self.random_state).fit(Zk, oa)
            raw = lr.coef_[0].astype(np.float64)
        if np.linalg.norm(raw) < _TINY:
            raise DataError("the grade centroids coincide: no severity direction")
        raw = raw / np.linalg.norm(raw)

        labels = dict(nuisance_labels or {})
        if self.nuisance is not None:
            unknown = sorted(set(self.nuisance) - set(labels))
            if unknown:
                raise DataError(f"nuisance factor(s) {unknown} not given to fit; given: {sorted(labels)}")
            labels = {k: labels[k] for k in self.nuisance}
        V, names = nuisance_directions(Z, labels, self.n_components, groups=kl)
        basis = orthonormal_basis(V) if len(V) else np.zeros((0, Z.shape[1]))
        d = raw - basis.T @ (basis @ raw)
        if np.linalg.norm(d) < 1e-6:
            raise DataError("the severity direction lies inside the nuisance directions")
        d /= np.linalg.norm(d)

        proj = centroids @ d
        if proj[-1] < proj[0]:  # point towards the higher grades
            d, proj = -d, -proj
        self.direction_ = d
        self.raw_direction_ = raw
        self.nuisance_basis_ = basis
        self.nuisance_names_ = names
        self.grades_ = grades
        self.centroid_projection_ = proj
        # Mean distance along the axis between consecutive grade centroids, per grade
        # (a missing grade in between counts as a gap of two).
        self.grade_step_ = float((proj[-1] - proj[0]) / (grades[-1] - grades[0]))
        self.cos_raw_ = float(raw @ d)
        return self

    def _check(self):
        if not hasattr(self, "direction_"):
            raise DataError("SeverityAxis is not fitted yet")

    def project(self, Z: np.ndarray) -> np.ndarray:
        """Coordinate along the axis: [N, D] -> [N]."""
        self._check()
        return np.atleast_2d(np.asarray(Z, dtype=np.float64)) @ self.direction_

    def to_grades(self, Z: np.ndarray) -> np.ndarray:
        """Axis coordinate in grade units, anchored at the lowest grade's centroid: [N, D] -> [N]."""
        self._check()
        return self.grades_[0] + (self.project(Z) - self.centroid_projection_[0]) / self.grade_step_

    def spearman(self, Z: np.ndarray, values) -> float:
        """Spearman ρ between the axis coordinate and ``values`` [N] (NaN rows skipped)."""
        v = _as_float(values)
        p = self.project(Z)
        ok = np.isfinite(v) & np.isfinite(p)
        if ok.sum() < 3 or len(np.unique(v[ok])) < 2:
            return float("nan")
        return float(spearmanr(p[ok], v[ok]).statistic)

    def move(self, z: np.ndarray, grades) -> np.ndarray:
        """z [D] moved by each of ``grades`` (floats, grade units): [len(grades), D]."""
        self._check()
        z = np.asarray(z, dtype=np.float64).reshape(-1)
        g = np.atleast_1d(np.asarray(grades, dtype=np.float64))
        return z[None] + (g * self.grade_step_)[:, None] * self.direction_[None]
