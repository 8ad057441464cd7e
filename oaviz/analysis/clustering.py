"""How well a latent space is organised into clusters: VAESim against VAE + KMeans.

Metrics (as in the VAESim paper): statistical-mapping accuracy (each cluster
predicts its majority label), kNN accuracy (k = 5), linear accuracy and
normalised mutual information between clusters and labels. Every figure is held
out by subject: fitted on the train split and scored on the test split (or, with
``groups``, cross-validated with folds grouped by subject), because the visits of
one knee share its anatomy and would otherwise answer for each other.
Also builds scikit-learn's bundled handwritten digits as an oaviz cohort.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.cluster import KMeans
from sklearn.metrics import normalized_mutual_info_score
from sklearn.base import clone
from sklearn.model_selection import StratifiedGroupKFold, cross_val_score
from sklearn.neighbors import KNeighborsClassifier
from threadpoolctl import threadpool_limits

from oaviz.analysis.probes import logistic_probe


def cluster_label_map(clusters: np.ndarray, y: np.ndarray) -> dict[int, int]:
    """cluster id -> its majority label (ties: the smaller label), learned from [N] clusters and labels."""
    clusters, y = np.asarray(clusters), np.asarray(y)
    if len(clusters) != len(y) or len(y) == 0:
        raise ValueError("clusters and y must be non-empty and of equal length")
    table = pd.crosstab(clusters, y)
    return {int(k): int(v) for k, v in table.idxmax(axis=1).items()}


def statistical_mapping_accuracy(clusters_train: np.ndarray, y_train: np.ndarray,
                                 clusters_test: np.ndarray, y_test: np.ndarray) -> float:
    """Held-out accuracy of "each cluster predicts its majority label".

    The cluster -> label map is learned on the train rows and scored on the test
    rows; a test cluster that no training image fell into predicts the training
    set's majority label.
    """
    mapping = cluster_label_map(clusters_train, y_train)
    y_test = np.asarray(y_test)
    if len(y_test) == 0 or len(y_test) != len(clusters_test):
        raise ValueError("clusters_test and y_test must be non-empty and of equal length")
    fallback = int(pd.Series(np.asarray(y_train)).value_counts().sort_index().idxmax())
    pred = np.array([mapping.get(int(k), fallback) for k in np.asarray(clusters_test)])
    return float((pred == y_test).mean())


def heldout_accuracy(estimator, Z: np.ndarray, y: np.ndarray, *, train: np.ndarray | None = None,
                     groups: np.ndarray | None = None, n_splits: int = 5, random_state: int = 0) -> float:
    """Accuracy of a scikit-learn classifier on latents Z [N, D] for labels y [N], never scored on a
    subject it was fitted on.

    train [N] bool: fit on those rows, score on the others (the cohort's subject-level split).
    groups [N]: subject ids; stratified folds grouped by subject (StratifiedGroupKFold), mean over folds.
    One of the two is required: with image-level folds a knee's other visits, whose anatomy is the same,
    would answer the question.
    """
    Z, y = np.asarray(Z), np.asarray(y)
    if len(Z) != len(y):
        raise ValueError(f"Z has {len(Z)} rows but y has {len(y)} labels")
    if train is not None:
        train = np.asarray(train, bool)
        if not train.any() or train.all():
            raise ValueError("the train mask must leave rows on both sides (train and held-out)")
        return float(clone(estimator).fit(Z[train], y[train]).score(Z[~train], y[~train]))
    if groups is None:
        raise ValueError("pass subject ids (groups) or a train mask: image-level folds leak repeated visits")
    groups = np.asarray(groups)
    n_groups = len(np.unique(groups))
    if n_groups < 2:
        raise ValueError(f"grouped cross-validation needs at least 2 subjects, got {n_groups}")
    cv = StratifiedGroupKFold(n_splits=max(2, min(n_splits, n_groups)), shuffle=True, random_state=random_state)
    with warnings.catch_warnings():
        # A rare class (e.g. KL 4) with fewer subjects than folds is still scored.
        warnings.filterwarnings("ignore", message=".*least populated class.*")
        return float(cross_val_score(estimator, Z, y, groups=groups, cv=cv).mean())


def knn_accuracy(Z: np.ndarray, y: np.ndarray, *, k: int = 5, train: np.ndarray | None = None,
                 groups: np.ndarray | None = None, n_splits: int = 5, random_state: int = 0) -> float:
    """Held-out accuracy of a k-nearest-neighbour classifier (see ``heldout_accuracy``)."""
    n_fit = int(np.sum(train)) if train is not None else len(y) * (n_splits - 1) // n_splits
    if n_fit <= k:
        raise ValueError(f"too few points ({n_fit} to fit on) for k = {k} neighbours")
    return heldout_accuracy(KNeighborsClassifier(n_neighbors=k), Z, y, train=train, groups=groups,
                            n_splits=n_splits, random_state=random_state)


def linear_accuracy(Z: np.ndarray, y: np.ndarray, *, train: np.ndarray | None = None,
                    groups: np.ndarray | None = None, n_splits: int = 5, random_state: int = 0) -> float:
    """Held-out accuracy of a standardised logistic regression (see ``heldout_accuracy``)."""
    return heldout_accuracy(logistic_probe(random_state=random_state), Z, y, train=train, groups=groups, n_splits=n_splits, random_state=random_state)


def nmi(clusters: np.ndarray, y: np.ndarray) -> float:
    """Normalised mutual information (arithmetic mean normalisation, as sklearn)."""
    return float(normalized_mutual_info_score(y, clusters))


def fit_kmeans(Z_train: np.ndarray, K: int, seed: int = 0, n_init: int = 10) -> KMeans:
    """KMeans with K clusters fitted on the training latents [n, D] (predict() assigns any latent)."""
    return KMeans(n_clusters=int(K), n_init=n_init, random_state=seed).fit(np.asarray(Z_train, np.float64))


def elbow_k(Z_train: np.ndarray, k_min: int = 2, k_max: int = 30, seed: int = 0) -> int:
    """K at the elbow of the KMeans inertia curve on [n, D] latents, k_min..k_max.

    The elbow is the K whose (K, inertia) point lies farthest from the chord joining
    the curve's ends, both axes scaled to [0, 1] (the Kneedle construction).
    """
    k_max = min(k_max, len(Z_train) - 1)
    if k_max <= k_min:
        raise ValueError(f"too few latents ({len(Z_train)}) to choose K between {k_min} and {k_max}")
    ks = np.arange(k_min, k_max + 1)
    inertia = np.array([fit_kmeans(Z_train, k, seed, n_init=3).inertia_ for k in ks])
    x = (ks - ks[0]) / (ks[-1] - ks[0])
    span = inertia[0] - inertia[-1]
    yv = (inertia - inertia[-1]) / span if span > 0 else np.zeros_like(inertia)
    # distance below the chord from (0, 1) to (1, 0): 1 - x - y (up to a constant factor)
    return int(ks[np.argmax(1 - x - yv)])


def cluster_metrics(Z: np.ndarray, clusters: np.ndarray, y: np.ndarray, train: np.ndarray, k: int = 5,
                    random_state: int = 0) -> dict[str, float]:
    """The four metrics of one latent space Z [N, D] and its clustering [N], all held out.

    train [N] bool: the rows the cluster -> label map, kNN and the linear probe are fitted on;
    every metric (NMI too) is scored on the other rows.
    """
    train = np.asarray(train, bool)
    test = ~train
    with threadpool_limits(limits=1):  # many tiny fits: nested BLAS threads only add contention
        return {
            "statistical_mapping_accuracy": statistical_mapping_accuracy(clusters[train], y[train],
                                                                         clusters[test], y[test]),
            "knn_accuracy": knn_accuracy(Z, y, k=k, train=train),
            "linear_accuracy": linear_accuracy(Z, y, train=train),
            "nmi": nmi(clusters[test], y[test]),
            "clusters_used": int(len(np.unique(clusters[test]))),
        }


def compare_clustering(Z_vaesim: np.ndarray, clusters_vaesim: np.ndarray, Z_vae: np.ndarray, y: np.ndarray,
                       train: np.ndarray, K: int, seed: int = 0, elbow: bool = True) -> pd.DataFrame:
    """One row per method with the held-out metrics of ``cluster_metrics`` and how its K was chosen.

    'VAESim': its prototype assignments (K prototypes); 'VAE + KMeans': KMeans fitted on the
    training latents of the baseline VAE with the same K ("matched"), and, with ``elbow``, again
    with K at the elbow of the inertia curve ("elbow").
    """
    y, train = np.asarray(y), np.asarray(train, bool)
    rows = [{"method": "VAESim", "K": int(K), "K_rule": "prototypes",
             **cluster_metrics(Z_vaesim, np.asarray(clusters_vaesim), y, train, random_state=seed)}]
    choices = [(int(K), "matched to VAESim")]
    if elbow:
        choices.append((elbow_k(Z_vae[train], seed=seed), "elbow of the inertia curve"))
    for k_, rule in choices:
        base = fit_kmeans(Z_vae[train], k_, seed).predict(np.asarray(Z_vae, np.float64))
        rows.append({"method": "VAE + KMeans", "K": k_, "K_rule": rule,
                     **cluster_metrics(Z_vae, base, y, train, random_state=seed)})
    return pd.DataFrame(rows)


def digits_cohort(out: str | Path, size: int = 128, overwrite: bool = False) -> Path:
    """Write scikit-learn's bundled 8×8 handwritten digits (1797 images, no download) as a cohort.

    Images are scaled from 0–16 to 0–255 and resized to size×size (bilinear);
    label = the digit, KL empty; every image is its own subject, split 70/10/20.
    """
    import torch
    from sklearn.datasets import load_digits
    from torch.nn import functional as F

    from oaviz.data.cohort import assign_splits, write_cohort

    if not 8 <= size <= 1024:
        raise ValueError(f"size must be between 8 and 1024, got {size}")
    d = load_digits()
    x = torch.from_numpy(d.images.astype(np.float32) / 16.0)[:, None]
    x = F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False)
    images = (x[:, 0].clamp(0, 1).numpy() * 255).round().astype(np.uint8)
    ids = [f"D{i:04d}" for i in range(len(images))]
    meta = pd.DataFrame({
        "image_id": ids, "subject_id": ids, "visit_month": 0, "side": "",
        "label": d.target.astype(int), "kl": pd.array([pd.NA] * len(ids), dtype="Int64"),
        "split": assign_splits(ids, seed=0),
    })
    info = {"source": "sklearn-digits", "preprocessing": [f"8×8 (0–16) scaled to 0–255, bilinear to {size}×{size}"],
            "labels": "other", "label_names": [str(i) for i in range(10)], "pixel_spacing_mm": None}
    return write_cohort(out, images, meta, info, overwrite=overwrite)
