"""Cluster metrics of a latent space, all held out by subject: VAESim against VAE + KMeans."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import normalized_mutual_info_score
from sklearn.model_selection import StratifiedKFold, cross_val_score
from sklearn.neighbors import KNeighborsClassifier

from oaviz.analysis.clustering import (cluster_label_map, compare_clustering, digits_cohort, elbow_k, fit_kmeans,
                                       knn_accuracy, linear_accuracy, nmi, statistical_mapping_accuracy)
from oaviz.data.cohort import load_cohort


def test_statistical_mapping_accuracy_learns_the_map_on_train_and_scores_test():
    clusters = np.array([0, 0, 0, 1, 1, 2, 2, 2, 2])
    y = np.array([1, 1, 0, 2, 2, 0, 0, 1, 3])
    assert cluster_label_map(clusters, y) == {0: 1, 1: 2, 2: 0}
    # train map {0: 1, 1: 2, 2: 0}; cluster 3 is unseen in train -> the train majority (grade 0, ties: smaller)
    got = statistical_mapping_accuracy(clusters, y, np.array([0, 1, 2, 2, 3]), np.array([1, 0, 0, 3, 0]))
    assert got == pytest.approx(3 / 5)
    assert nmi(clusters, y) == pytest.approx(normalized_mutual_info_score(y, clusters))


def test_statistical_mapping_accuracy_is_not_in_sample():
    """Clusters that are one per image are perfect in sample; held out they score the fallback only."""
    y = np.arange(40) % 2
    assert statistical_mapping_accuracy(np.arange(20), y[:20], np.arange(20, 40), y[20:]) == pytest.approx(0.5)


def repeated_visits(n_subjects=60, visits=3, d=8, seed=0):
    """Latents of knees seen several times: each subject's visits sit together, labels random per subject."""
    rng = np.random.default_rng(seed)
    centre = rng.normal(size=(n_subjects, d)) * 10
    subj = np.repeat(np.arange(n_subjects), visits)
    Z = centre[subj] + 0.01 * rng.normal(size=(len(subj), d))
    y = rng.integers(0, 2, n_subjects)[subj]    # nothing in Z predicts y across subjects
    return Z, y, subj


def test_knn_and_linear_accuracy_cannot_leak_through_repeated_visits():
    Z, y, subj = repeated_visits()
    # image-level folds would score ~1.0 here (a knee's other visit answers); grouped folds ~ chance
    leaky = cross_val_score(KNeighborsClassifier(1), Z, y, cv=StratifiedKFold(5, shuffle=True, random_state=0))
    assert leaky.mean() > 0.95
    assert knn_accuracy(Z, y, k=1, groups=subj) < 0.7
    train = subj < 40
    assert knn_accuracy(Z, y, k=1, train=train) < 0.7
    assert linear_accuracy(Z, y, groups=subj) < 0.7
    with pytest.raises(ValueError, match="image-level folds leak"):
        knn_accuracy(Z, y)


def test_clustering_metrics_on_separated_blobs():
    rng = np.random.default_rng(0)
    y = np.repeat(np.arange(3), 30)
    Z = rng.normal(size=(90, 4)) + 10 * np.eye(4)[y]
    train = np.arange(90) % 3 != 0
    km = fit_kmeans(Z[train], 3, seed=0).predict(Z)
    assert statistical_mapping_accuracy(km[train], y[train], km[~train], y[~train]) == 1.0
    assert knn_accuracy(Z, y, train=train) == 1.0 and linear_accuracy(Z, y, train=train) == 1.0
    df = compare_clustering(Z, y, Z + rng.normal(scale=20, size=Z.shape), y, train, K=3)
    assert list(df.method) == ["VAESim", "VAE + KMeans", "VAE + KMeans"]
    assert list(df.K_rule) == ["prototypes", "matched to VAESim", "elbow of the inertia curve"]
    assert df.loc[0, "nmi"] == pytest.approx(1.0) and df.loc[1, "nmi"] < 0.9


def test_elbow_k_finds_the_number_of_blobs():
    rng = np.random.default_rng(1)
    y = np.repeat(np.arange(4), 50)
    Z = rng.normal(size=(200, 3)) + 12 * rng.normal(size=(4, 3))[y]
    assert elbow_k(Z, 2, 12) == 4


def test_digits_cohort(tmp_path):
    out = digits_cohort(tmp_path / "digits", size=16)
    c = load_cohort(out)
    assert c.images.shape == (1797, 16, 16) and not c.has_kl
    assert sorted(c.metadata["label"].unique()) == list(range(10))
    assert set(c.metadata["split"]) == {"train", "val", "test"}
