"""How well a latent space is organised into clusters: VAESim against VAE + KMeans.

Metrics (as in the VAESim paper): statistical-mapping accuracy (each cluster
predicts its majority label), kNN accuracy (k = 5) and linear accuracy, both
cross-validated, and normalised mutual information between clusters and labels.
Also builds scikit-learn's bundled handwritten digits as an oaviz cohort.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.cluster import KMeans
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import normalized_mutual_info_score
from sklearn.model_selection import StratifiedKFold, cross_val_score
from sklearn.neighbors import KNeighborsClassifier
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from threadpoolctl import threadpool_limits


def statistical_mapping_accuracy(clusters: np.ndarray, y: np.ndarray) -> float:
    """Accuracy when every cluster predicts its majority label (ties: the smaller label)."""
    clusters, y = np.asarray(clusters), np.asarray(y)
    if len(clusters) != len(y) or len(y) == 0:
        raise ValueError("clusters and y must be non-empty and of equal length")
    table = pd.crosstab(clusters, y)
    return float(table.max(axis=1).sum() / len(y))


def _cv(y: np.ndarray, n_splits: int, random_state: int) -> StratifiedKFold:
    # No more folds than the rarest class has members (at least 2).
    smallest = int(np.bincount(np.unique(y, return_inverse=True)[1]).min())
    return StratifiedKFold(max(2, min(n_splits, smallest)), shuffle=True, random_state=random_state)


def knn_accuracy(Z: np.ndarray, y: np.ndarray, k: int = 5, n_splits: int = 5, random_state: int = 0) -> float:
    """Mean cross-validated accuracy of a k-nearest-neighbour classifier on Z [N, D]."""
    return float(cross_val_score(KNeighborsClassifier(n_neighbors=k), Z, y,
                                 cv=_cv(np.asarray(y), n_splits, random_state)).mean())


def linear_accuracy(Z: np.ndarray, y: np.ndarray, n_splits: int = 5, random_state: int = 0) -> float:
    """Mean cross-validated accuracy of a standardised logistic regression on Z [N, D]."""
    clf = make_pipeline(StandardScaler(), LogisticRegression(max_iter=5000))
    return float(cross_val_score(clf, Z, y, cv=_cv(np.asarray(y), n_splits, random_state)).mean())


def nmi(clusters: np.ndarray, y: np.ndarray) -> float:
    """Normalised mutual information (arithmetic mean normalisation, as sklearn)."""
    return float(normalized_mutual_info_score(y, clusters))


def vae_kmeans_baseline(Z: np.ndarray, K: int, seed: int = 0) -> np.ndarray:
    """KMeans cluster ids [N] of the latents Z [N, D] with K clusters."""
    return KMeans(n_clusters=int(K), n_init=10, random_state=seed).fit_predict(np.asarray(Z, np.float64))


def cluster_metrics(Z: np.ndarray, clusters: np.ndarray, y: np.ndarray, k: int = 5,
                    random_state: int = 0) -> dict[str, float]:
    """The four metrics of one latent space and its clustering (and how many clusters are used)."""
    with threadpool_limits(limits=1):  # many tiny fits: nested BLAS threads only add contention
        return {
            "statistical_mapping_accuracy": statistical_mapping_accuracy(clusters, y),
            "knn_accuracy": knn_accuracy(Z, y, k, random_state=random_state),
            "linear_accuracy": linear_accuracy(Z, y, random_state=random_state),
            "nmi": nmi(clusters, y),
            "clusters_used": int(len(np.unique(clusters))),
        }


def compare_clustering(Z_vaesim: np.ndarray, clusters_vaesim: np.ndarray, Z_vae: np.ndarray, y: np.ndarray,
                       K: int, seed: int = 0) -> pd.DataFrame:
    """One row per method ('VAESim', 'VAE + KMeans') with the metrics of ``cluster_metrics``.

    VAESim's clusters are its prototype assignments; the baseline clusters the
    VAE latents with KMeans using the same K.
    """
    y = np.asarray(y)
    base = vae_kmeans_baseline(Z_vae, K, seed)
    rows = [{"method": "VAESim", "K": int(K), **cluster_metrics(Z_vaesim, clusters_vaesim, y, random_state=seed)},
            {"method": "VAE + KMeans", "K": int(K), **cluster_metrics(Z_vae, base, y, random_state=seed)}]
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
