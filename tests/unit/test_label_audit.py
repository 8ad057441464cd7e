"""Label audit: planted flips are found; precision/recall at k; the service report and corrections."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from oaviz.analysis.label_audit import LabelAudit, precision_recall_at
from oaviz.data.cohort import load_cohort
from oaviz.models.base import build_model, make_config
from oaviz.training.checkpoint import save_checkpoint


def _planted(n_per=60, n_classes=4, rate=0.05, seed=0):
    """Well-separated Gaussian clusters whose labels are flipped for ``rate`` of the points."""
    rng = np.random.default_rng(seed)
    truth = np.repeat(np.arange(n_classes), n_per)
    Z = rng.normal(size=(len(truth), 5)) + 8.0 * np.eye(5)[truth]
    labels = truth.copy()
    flip = rng.choice(len(truth), int(rate * len(truth)), replace=False)
    labels[flip] = (labels[flip] + rng.integers(1, n_classes, len(flip))) % n_classes
    return Z, labels, labels != truth, truth


@pytest.mark.parametrize("method", ["knn", "oof"])
def test_planted_flips_rank_first(method):
    Z, labels, flipped, truth = _planted()
    audit = LabelAudit(method=method, k=10).fit(Z, labels)
    k = int(flipped.sum())
    precision, recall = precision_recall_at(audit.suspect_order_, flipped, k)
    assert precision >= 0.9 and recall >= 0.9
    # Suggestions restore the truth for the flipped points; confident-learning flags (meant for
    # calibrated probabilities, so checked on the out-of-fold ones) catch them.
    assert (audit.suggested_[flipped] == truth[flipped]).mean() >= 0.9
    if method == "oof":
        assert audit.issues_[flipped].mean() >= 0.9 and audit.issues_[~flipped].mean() <= 0.05
    assert audit.proba_.shape == (len(Z), 4)
    np.testing.assert_allclose(audit.proba_.sum(1), 1.0)
    np.testing.assert_allclose(audit.scores_, 1 - audit.proba_[np.arange(len(Z)), labels])


def test_knn_vote_by_hand():
    # Points on a line; with k = 2 each point's two nearest neighbours are its line neighbours.
    Z = np.array([[0.0], [1.0], [2.1], [3.3], [4.6]])
    labels = np.array([0, 0, 1, 1, 1])
    audit = LabelAudit(method="knn", k=2).fit(Z, labels)
    # Point 2 (label 1): neighbours 1 (label 0) and 3 (label 1) -> vote 0.5, score 0.5.
    assert audit.scores_[2] == pytest.approx(0.5)
    # Point 1 (label 0): neighbours 0 (0) and 2 (1) -> 0.5; point 4: neighbours 3, 2 (both 1) -> 0.
    assert audit.scores_[1] == pytest.approx(0.5) and audit.scores_[4] == pytest.approx(0.0)
    assert audit.suspect_order_[-1] in (3, 4)


def test_precision_recall_at_by_hand():
    order = np.array([0, 2, 4, 1, 3])
    flipped = np.array([False, False, True, True, True])
    assert precision_recall_at(order, flipped, 2) == (0.5, pytest.approx(1 / 3))
    assert precision_recall_at(order, flipped, 5) == (0.6, 1.0)
    p, r = precision_recall_at(order, np.zeros(5, bool), 3)
    assert p == 0.0 and np.isnan(r)


def test_audit_validates_inputs():
    Z, labels, _, _ = _planted()
    with pytest.raises(ValueError, match="method must be one of .*got 'vote'"):
        LabelAudit(method="vote").fit(Z, labels)
    with pytest.raises(ValueError, match=r"k must be in \[1, 239\], got 0"):
        LabelAudit(k=0).fit(Z, labels)
    with pytest.raises(ValueError, match="need at least two distinct labels"):
        LabelAudit().fit(Z, np.zeros(len(Z)))
    with pytest.raises(ValueError, match=r"Z must be \[N, D\] with one label per row; got \(5, 5\) and \(240,\)"):
        LabelAudit().fit(Z[:5], labels)


def test_service_report_on_a_synthetic_cohort(tmp_path, tiny_cohort, monkeypatch):
    from oaviz.services.probe_lab import audit_neighbours, corrected_labels, label_audit_report

    monkeypatch.setenv("OAVIZ_HOME", str(tmp_path / "home"))
    torch.manual_seed(0)
    cfg = make_config("beta_vae", "demo", {"image_size": 32, "widths": [4, 8, 8], "latent_dim": 6})
    ck = save_checkpoint(build_model("beta_vae", cfg).eval(), tmp_path / "vae", preset="demo")
    c = load_cohort(tiny_cohort)
    rep = label_audit_report(ck, c, method="knn", k=5, at=10)
    meta = c.metadata
    flipped = (meta["kl"] != meta["kl_true"]).to_numpy()
    assert len(rep.table) == len(c) and rep.n_flipped == int(flipped.sum())
    assert list(rep.table["rank"]) == list(range(1, len(c) + 1))
    assert rep.table["score"].is_monotonic_decreasing
    top = rep.table["row"].to_numpy()[:10]
    assert rep.precision_at == pytest.approx(flipped[top].mean())
    first = rep.table.iloc[0]
    fixed = corrected_labels(c, {first["image_id"]: int(first["suggested"])})
    assert len(fixed) == len(c) and fixed["changed"].sum() == int(first["suggested"] != first["given"])
    near = audit_neighbours(ck, c, int(first["row"]), k=4)
    assert len(near) == 4 and int(first["row"]) not in set(near["row"])
    assert near["distance"].is_monotonic_increasing
