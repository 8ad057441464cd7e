"""Probe grids: how well frozen features predict OA / KL under label scarcity and noise.

For every seed and label fraction one stratified subset of the training rows is
drawn, and for every noise rate one set of noisy labels; every feature set is
then fitted on exactly those rows and labels (so differences between feature
sets are never differences in the labels they saw) and scored on the clean,
subject-disjoint test rows. Fits run in parallel with joblib; a Dask or Ray
backend can be chosen with ``backend``.

Parallelism default: for these fits (a few hundred ms each at most) on two
cores, threads beat loky processes (no worker start-up or array transfer; the
BLAS/LBFGS work releases the GIL) — see bench/bench_probes.py for the numbers.

The end-to-end CNN arm (``cnn_arm``) trains the thesis CNN on the same subset
and labels; it is slow and runs as a job (``oaviz probe --cnn``).
"""

from __future__ import annotations

import contextlib
import math
from typing import Callable, Mapping, Sequence

import joblib
import numpy as np
import pandas as pd
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import (accuracy_score, balanced_accuracy_score, cohen_kappa_score, f1_score,
                             roc_auc_score)
from sklearn.neighbors import KNeighborsClassifier
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from threadpoolctl import threadpool_limits

from oaviz.analysis.feature_sets import RandomFeatures
from oaviz.analysis.label_noise import KINDS, inject_noise
from oaviz.analysis.paired_tests import expected_grade
from oaviz.analysis.subsample import stratified_subset
from oaviz.errors import ConfigError

TARGETS = ("oa", "kl")
Y_KINDS = ("kl", "oa")
CLASSIFIERS = ("logreg", "knn", "linear")
METRICS = {"oa": ("auc", "accuracy", "balanced_accuracy", "f1"),
           "kl": ("auc", "accuracy", "balanced_accuracy", "f1", "qwk")}
N_CLASSES = {"oa": 2, "kl": 5}
COLUMNS = ["feature", "fraction", "noise", "noise_kind", "seed", "metric", "value"]
DEFAULT_BACKEND = "threading"
KEYS = ["feature", "fraction", "noise", "noise_kind", "metric"]


# ----------------------------------------------------------------- labels
def target_labels(y: np.ndarray, target: str, y_kind: str = "kl") -> np.ndarray:
    """int64 labels of the target: KL grade (0–4) or OA (KL ≥ 2) from KL or binary ``y``."""
    y = np.asarray(y).astype(np.int64)
    if target == "kl":
        if y_kind != "kl":
            raise ConfigError("target 'kl' needs KL grades")
        return y
    return (y >= 2).astype(np.int64) if y_kind == "kl" else y


def noise_seed(seed: int, fraction: float, noise: float, kind: str) -> int:
    """Seed of the noise for one (seed, fraction, rate, kind) cell, independent of the feature set."""
    ss = np.random.SeedSequence([int(seed), int(round(fraction * 1e6)), int(round(noise * 1e6)),
                                 KINDS.index(kind)])
    return int(ss.generate_state(1)[0])


def label_plan(y: np.ndarray, fraction: float, noise: float, noise_kind: str, seed: int,
               target: str = "oa", y_kind: str = "kl") -> tuple[np.ndarray, np.ndarray]:
    """(positions [m] into ``y``, noisy target labels [m]) of one grid cell.

    The subset is stratified by ``y`` (KL when known, so OA is stratified too).
    Symmetric noise flips exactly round(noise*m) target labels; adjacent noise
    moves exactly round(noise*m) KL grades by one before binarising.
    """
    y = np.asarray(y).astype(np.int64)
    pos = stratified_subset(y, fraction, seed)
    y_sub = y[pos]
    if noise <= 0:
        return pos, target_labels(y_sub, target, y_kind)
    ns = noise_seed(seed, fraction, noise, noise_kind)
    if noise_kind == "adjacent":
        if y_kind != "kl":
            raise ConfigError("adjacent (KL) noise needs KL grades")
        return pos, target_labels(inject_noise(y_sub, noise, "adjacent", ns, n_classes=5), target, "kl")
    t = target_labels(y_sub, target, y_kind)
    return pos, inject_noise(t, noise, "symmetric", ns, n_classes=N_CLASSES[target])


# ----------------------------------------------------------------- metrics
def macro_auc(y: np.ndarray, proba: np.ndarray) -> float:
    """One-vs-rest macro AUC over the classes present in ``y`` (NaN when fewer than two).

    Equals sklearn's ``roc_auc_score(multi_class='ovr', average='macro')`` when every
    class is present, and stays defined when a small test split lacks one.
    """
    present = [c for c in range(proba.shape[1]) if 0 < (y == c).sum() < len(y)]
    if len(present) < 2:
        return math.nan
    return float(np.mean([roc_auc_score(y == c, proba[:, c]) for c in present]))


def score(y_true: np.ndarray, proba: np.ndarray, target: str) -> dict[str, float]:
    """Metrics of one fit: proba [n, 2] (OA) or [n, 5] (KL) against clean labels [n]."""
    y_true = np.asarray(y_true).astype(np.int64)
    pred = proba.argmax(1)
    labels = list(range(proba.shape[1]))
    out = {
        "auc": (float(roc_auc_score(y_true, proba[:, 1])) if len(np.unique(y_true)) == 2 else math.nan)
        if target == "oa" else macro_auc(y_true, proba),
        "accuracy": float(accuracy_score(y_true, pred)),
        "balanced_accuracy": float(balanced_accuracy_score(y_true, pred)),
        "f1": float(f1_score(y_true, pred, labels=labels, average="macro", zero_division=0)),
    }
    if target == "kl":
        # κ on the expected grade, as every κ of the project (paired_tests.expected_grade)
        out["qwk"] = float(cohen_kappa_score(y_true, expected_grade(proba), labels=labels, weights="quadratic"))
    return out


# ----------------------------------------------------------------- classifiers
def logistic_probe(C: float = 1.0, random_state: int = 0):
    """The project's one linear probe: StandardScaler + logistic regression (multinomial for > 2 classes).

    Used by the probe grid, the KL probe every page reads grades from, and the clustering comparison.
    """
    return make_pipeline(StandardScaler(), LogisticRegression(C=C, max_iter=5000, random_state=random_state))


def fit_predict_proba(X_tr: np.ndarray, y_tr: np.ndarray, X_te: np.ndarray, classifier: str, n_classes: int,
                      seed: int = 0, C: float = 1.0, k: int = 5, linear_epochs: int = 200) -> np.ndarray:
    """Fit one probe and return test probabilities [n_te, n_classes] (classes the fit never saw get 0)."""
    classes = np.unique(y_tr)
    proba = np.zeros((len(X_te), n_classes))
    if len(classes) == 1:  # nothing to learn: a constant prediction
        proba[:, classes[0]] = 1.0
        return proba
    if classifier == "logreg":
        clf = logistic_probe(C)
    elif classifier == "knn":
        # Unscaled: Euclidean distance in the feature space itself (a VAE's μ is not
        # rescaled, so near-collapsed latent dimensions are not blown up to unit variance).
        clf = KNeighborsClassifier(n_neighbors=min(k, len(y_tr)))
    elif classifier == "linear":
        proba[:, classes] = _torch_linear(X_tr, np.searchsorted(classes, y_tr), X_te, len(classes), seed,
                                          linear_epochs)
        return proba
    else:
        raise ConfigError(f"unknown classifier {classifier!r}; expected one of {CLASSIFIERS}")
    clf.fit(X_tr, y_tr)
    proba[:, clf.classes_] = clf.predict_proba(X_te)
    return proba


def _torch_linear(X_tr, y_tr, X_te, n_classes, seed, epochs, lr=1e-2, weight_decay=1e-4):
    """A linear layer on standardised features, full-batch Adam for a fixed number of epochs."""
    import torch

    mean, std = X_tr.mean(0), X_tr.std(0)
    std[std < 1e-8] = 1.0
    xt = torch.from_numpy(((X_tr - mean) / std).astype(np.float32))
    xe = torch.from_numpy(((X_te - mean) / std).astype(np.float32))
    yt = torch.from_numpy(np.asarray(y_tr, np.int64))
    g = torch.Generator().manual_seed(int(seed))
    # Seeded init from a local generator: threads of the grid never share torch's global RNG.
    W = (0.01 * torch.randn(xt.shape[1], n_classes, generator=g)).requires_grad_()
    b = torch.zeros(n_classes, requires_grad=True)
    opt = torch.optim.Adam([W, b], lr=lr, weight_decay=weight_decay)
    # Tiny matrices: torch's thread pool only adds contention (2 threads were 40× slower on a busy machine).
    with threadpool_limits(limits=1):
        for _ in range(epochs):
            opt.zero_grad()
            loss = torch.nn.functional.cross_entropy(xt @ W + b, yt)
            loss.backward()
            opt.step()
        with torch.no_grad():
            return torch.softmax(xe @ W + b, 1).numpy().astype(np.float64)


# ----------------------------------------------------------------- the grid
def _fit_cells(name, X_tr, X_te, y_te, cells, target, classifier, C, k, linear_epochs, noise_kind):
    """All cells of one (feature set, seed): a list of tidy rows."""
    rows = []
    for seed, fraction, noise, pos, y_noisy in cells:
        proba = fit_predict_proba(X_tr[pos], y_noisy, X_te, classifier, N_CLASSES[target], seed, C, k,
                                  linear_epochs)
        for metric, value in score(y_te, proba, target).items():
            rows.append((name, fraction, noise, noise_kind, seed, metric, value))
    return rows


def _seed_list(seeds: int | Sequence[int]) -> list[int]:
    if isinstance(seeds, (int, np.integer)):
        if seeds < 1:
            raise ConfigError(f"seeds must be >= 1, got {seeds}")
        return list(range(int(seeds)))
    out = [int(s) for s in seeds]
    if not out:
        raise ConfigError("no seeds given")
    return out


def check_grid(fractions: Sequence[float], noise: Sequence[float], noise_kind: str, target: str,
               classifier: str, y_kind: str = "kl") -> None:
    """ConfigError for values a grid cannot use."""
    if target not in TARGETS:
        raise ConfigError(f"target must be one of {TARGETS}, got {target!r}")
    if y_kind not in Y_KINDS:
        raise ConfigError(f"y_kind must be one of {Y_KINDS}, got {y_kind!r}")
    if noise_kind not in KINDS:
        raise ConfigError(f"noise kind must be one of {KINDS}, got {noise_kind!r}")
    if classifier not in CLASSIFIERS:
        raise ConfigError(f"classifier must be one of {CLASSIFIERS}, got {classifier!r}")
    if not fractions or any(not 0 < f <= 1 for f in fractions):
        raise ConfigError(f"label fractions must be in (0, 1], got {list(fractions)}")
    if not noise or any(not 0 <= r <= 0.5 for r in noise):
        raise ConfigError(f"noise rates must be in [0, 0.5], got {list(noise)}")
    if noise_kind == "adjacent" and y_kind != "kl" and any(r > 0 for r in noise):
        raise ConfigError("adjacent (KL) noise needs KL grades")


class ProbeGrid:
    """A grid of frozen-feature probes over label fractions × noise rates × seeds.

    features: {name: float array [N, D_name]} over all N cohort rows, or a ``RandomFeatures``
    recipe, drawn afresh for every seed.
    y: int labels [N]: KL grades (``y_kind='kl'``) or binary OA (``y_kind='oa'``).
    target: 'oa' (AUC, accuracy, balanced accuracy, macro-F1) or 'kl' (the same
    with one-vs-rest macro AUC, plus quadratic-weighted kappa).
    classifier: 'logreg' (StandardScaler + LogisticRegression(C)), 'knn' (k
    neighbours), 'linear' (torch linear layer, Adam, ``linear_epochs``).
    backend: joblib backend name (None = threads; 'loky', 'dask', 'ray' when installed).
    """

    def __init__(self, features: Mapping[str, np.ndarray], y: np.ndarray, target: str = "oa",
                 fractions: Sequence[float] = (0.05, 0.1, 0.25, 0.5, 1.0), noise: Sequence[float] = (0.0, 0.1),
                 noise_kind: str = "symmetric", seeds: int | Sequence[int] = 5, classifier: str = "logreg",
                 n_jobs: int = -1, backend: str | None = None, y_kind: str = "kl", C: float = 1.0, k: int = 5,
                 linear_epochs: int = 200):
        self.features = features
        self.y = y
        self.target = target
        self.fractions = fractions
        self.noise = noise
        self.noise_kind = noise_kind
        self.seeds = seeds
        self.classifier = classifier
        self.n_jobs = n_jobs
        self.backend = backend
        self.y_kind = y_kind
        self.C = C
        self.k = k
        self.linear_epochs = linear_epochs

    def plan(self, train_idx: np.ndarray) -> dict[int, list[tuple]]:
        """{seed: [(seed, fraction, noise, positions into train_idx, noisy labels), …]}, shared by all feature sets."""
        y_tr = np.asarray(self.y)[np.asarray(train_idx)]
        return {s: [(s, float(f), float(r), *label_plan(y_tr, f, r, self.noise_kind, s, self.target, self.y_kind))
                    for f in self.fractions for r in self.noise]
                for s in _seed_list(self.seeds)}

    def _validate(self, train_idx, test_idx):
        check_grid(self.fractions, self.noise, self.noise_kind, self.target, self.classifier, self.y_kind)
        if not self.features:
            raise ConfigError("no feature sets given")
        y = np.asarray(self.y)
        n = len(y)
        for name, X in self.features.items():
            if isinstance(X, RandomFeatures):
                continue
            if np.ndim(X) != 2 or len(X) != n:
                raise ConfigError(f"feature set {name!r} has shape {np.shape(X)}; expected [{n}, D]")
            if not np.isfinite(X).all():
                raise ConfigError(f"feature set {name!r} has non-finite values")
        if len(train_idx) == 0 or len(test_idx) == 0:
            raise ConfigError("the train and test rows must both be non-empty")
        if np.intersect1d(train_idx, test_idx).size:
            raise ConfigError("train and test rows overlap")
        for part in (train_idx, test_idx):
            yy = y[part]
            if yy.dtype.kind == "f" and np.isnan(yy).any():
                raise ConfigError("some train/test rows have no label")
        bad = (y[np.concatenate([train_idx, test_idx])] < 0).any() or \
            (y[np.concatenate([train_idx, test_idx])] > (4 if self.y_kind == "kl" else 1)).any()
        if bad:
            raise ConfigError(f"labels outside the range of y_kind={self.y_kind!r}")

    def run(self, train_idx: np.ndarray, test_idx: np.ndarray,
            progress: Callable[[int, int], None] | None = None) -> pd.DataFrame:
        """Fit every cell; tidy DataFrame (feature, fraction, noise, noise_kind, seed, metric, value).

        ``progress(done, total)`` is called in this process as (feature set, seed) batches finish.
        """
        train_idx, test_idx = np.asarray(train_idx), np.asarray(test_idx)
        self._validate(train_idx, test_idx)
        plan = self.plan(train_idx)
        y_te = target_labels(np.asarray(self.y)[test_idx], self.target, self.y_kind)
        tasks = []
        n = len(self.y)
        for name, X in self.features.items():
            fixed = None if isinstance(X, RandomFeatures) else np.asarray(X, dtype=np.float32)
            for seed, cells in plan.items():
                # random features: a fresh N(0, I) draw per seed, so seeds do not share one lucky draw
                X_s = X.draw(n, seed) if fixed is None else fixed
                X_tr, X_te = X_s[train_idx], X_s[test_idx]
                tasks.append(joblib.delayed(_fit_cells)(name, X_tr, X_te, y_te, cells, self.target,
                                                        self.classifier, self.C, self.k, self.linear_epochs,
                                                        self.noise_kind))
        rows: list[tuple] = []
        # One BLAS/OpenMP thread per fit: the parallelism is across fits, and nested
        # BLAS threads on a busy 2-core machine made a 0.1 s fit take 8 s.
        with _backend(self.backend, self.n_jobs), threadpool_limits(limits=1):
            results = joblib.Parallel(return_as="generator")(tasks)
            for i, part in enumerate(results, 1):
                rows += part
                if progress is not None:
                    progress(i, len(tasks))
        return pd.DataFrame(rows, columns=COLUMNS)


@contextlib.contextmanager
def _backend(backend: str | None, n_jobs: int):
    name = backend or DEFAULT_BACKEND
    with contextlib.ExitStack() as stack:
        if name == "ray":
            try:
                from ray.util.joblib import register_ray
            except ImportError:
                raise ConfigError("backend 'ray' needs the ray package") from None
            register_ray()
        elif name == "dask":
            stack.enter_context(dask_client())
        # loky workers are fresh processes: tell them to fit with one BLAS thread each too.
        stack.enter_context(joblib.parallel_config(backend=name, n_jobs=n_jobs,
                                                   inner_max_num_threads=1 if name == "loky" else None))
        yield


@contextlib.contextmanager
def dask_client():
    """A dask.distributed Client for joblib's dask backend, for the block: the one already running in
    this process; else one to the scheduler that dask's config names (``DASK_SCHEDULER_ADDRESS``,
    e.g. ``tcp://head-node:8786`` of a ``dask scheduler`` / ``dask worker`` cluster); else a
    LocalCluster on this machine. A client it opened is closed after the block."""
    try:
        import distributed
    except ImportError:
        raise ConfigError("backend 'dask' needs dask.distributed (pip install 'distributed==2026.8.0')") from None
    try:
        distributed.get_client()
        running = True
    except ValueError:  # no client in this process
        running = False
    if running:
        yield
        return
    with distributed.Client():  # address from the config, or a fresh LocalCluster
        yield


def summarise(df: pd.DataFrame) -> pd.DataFrame:
    """Mean, std (ddof 1; 0 for one seed) and count per (feature, fraction, noise, noise_kind, metric)."""
    g = df.groupby(KEYS, sort=True)["value"]
    out = g.agg(mean="mean", std="std", n="count").reset_index()
    out["std"] = out["std"].fillna(0.0)
    return out
