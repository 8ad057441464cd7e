"""McNemar, paired bootstrap, and the dual-head hierarchy comparison built on them."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy import stats
from sklearn.metrics import accuracy_score, roc_auc_score
from torch import nn

from oaviz.analysis.hierarchy import (compare_variants, evaluate_variant, joint_space_masks, landmark_band,
                                      pc1_ordering, saliency_in_mask)
from oaviz.analysis.paired_tests import bootstrap_ci, bootstrap_diff, discordant, mcnemar, mcnemar_clustered
from oaviz.data.cohort import load_cohort
from oaviz.models.base import build_model, make_config
from oaviz.training.checkpoint import save_checkpoint


def _pairs(b: int, c: int, both: int = 10, neither: int = 5):
    """Decisions with b images only A gets right and c only B gets right."""
    y = np.ones(b + c + both + neither, int)
    a = np.r_[np.ones(b), np.zeros(c), np.ones(both), np.zeros(neither)].astype(int)
    bb = np.r_[np.zeros(b), np.ones(c), np.ones(both), np.zeros(neither)].astype(int)
    return y, a, bb


# ----------------------------------------------------------------- McNemar
@pytest.mark.parametrize("b, c", [(3, 9), (0, 6), (7, 7), (1, 12)])
def test_mcnemar_exact_matches_scipy_binomtest(b, c):
    y, a, bb = _pairs(b, c)
    assert discordant(y, a, bb) == (b, c)
    stat, p = mcnemar(y, a, bb)
    assert stat == min(b, c)
    assert p == pytest.approx(stats.binomtest(min(b, c), b + c, 0.5).pvalue)


def test_mcnemar_chi_square_with_continuity_by_hand():
    y, a, bb = _pairs(30, 12)
    stat, p = mcnemar(y, a, bb)
    assert stat == pytest.approx((abs(30 - 12) - 1) ** 2 / 42)
    assert p == pytest.approx(stats.chi2.sf(stat, 1))
    assert mcnemar(y, a, bb, exact=True)[1] == pytest.approx(stats.binomtest(12, 42, 0.5).pvalue)


def test_mcnemar_identical_predictions_give_p_one():
    rng = np.random.default_rng(0)
    y, pred = rng.integers(0, 2, 50), rng.integers(0, 2, 50)
    assert mcnemar(y, pred, pred) == (0.0, 1.0)


# ----------------------------------------------------------------- bootstrap
def test_bootstrap_known_answers():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 80)
    s = rng.random(80)
    assert bootstrap_diff(roc_auc_score, y, s, s, n_boot=200) == (0.0, 0.0, 0.0, 1.0)
    acc = lambda t, p: accuracy_score(t, p >= 0.5)  # noqa: E731
    perfect, wrong = y.astype(float), 1.0 - y
    assert bootstrap_diff(acc, y, perfect, wrong, n_boot=200) == (1.0, 1.0, 1.0, 0.0)


def test_bootstrap_ci_of_an_accuracy_difference_matches_the_normal_approximation():
    rng = np.random.default_rng(1)
    n = 400
    y = np.ones(n, int)
    ok_a, ok_b = rng.random(n) < 0.8, rng.random(n) < 0.7
    acc = lambda t, p: float((t == p).mean())  # noqa: E731
    diff, lo, hi, p = bootstrap_diff(acc, y, ok_a.astype(int), ok_b.astype(int), n_boot=2000, seed=3)
    d = ok_a.astype(float) - ok_b.astype(float)
    assert diff == pytest.approx(d.mean())
    half = 1.96 * d.std(ddof=1) / np.sqrt(n)
    assert lo == pytest.approx(d.mean() - half, abs=0.012) and hi == pytest.approx(d.mean() + half, abs=0.012)
    z = d.mean() / (d.std(ddof=1) / np.sqrt(n))
    assert p == pytest.approx(2 * stats.norm.sf(abs(z)), abs=0.01)
    assert bootstrap_diff(acc, y, ok_a.astype(int), ok_b.astype(int), n_boot=2000, seed=3) == (diff, lo, hi, p)


def test_bootstrap_resamples_subjects_when_visits_repeat():
    """Three identical visits per subject carry one subject's information, not three: the subject-level
    CI equals the CI of the data seen once, and is about sqrt(3) wider than an image-level one."""
    rng = np.random.default_rng(1)
    n = 300
    y = np.ones(n, int)
    ok_a, ok_b = (rng.random(n) < 0.8).astype(int), (rng.random(n) < 0.7).astype(int)
    acc = lambda t, p: float((t == p).mean())  # noqa: E731
    once = bootstrap_diff(acc, y, ok_a, ok_b, n_boot=2000, seed=0)
    rep = lambda v: np.repeat(v, 3)  # noqa: E731
    naive = bootstrap_diff(acc, rep(y), rep(ok_a), rep(ok_b), n_boot=2000, seed=0)
    grouped = bootstrap_diff(acc, rep(y), rep(ok_a), rep(ok_b), n_boot=2000, seed=0, groups=rep(np.arange(n)))
    width = lambda r: r[2] - r[1]  # noqa: E731
    assert width(grouped) == pytest.approx(width(once), rel=0.1)
    assert width(grouped) / width(naive) == pytest.approx(np.sqrt(3), rel=0.15)
    value, lo, hi = bootstrap_ci(acc, rep(y), rep(ok_a), groups=rep(np.arange(n)), n_boot=1000)
    assert value == pytest.approx(ok_a.mean()) and lo < value < hi
    half = 1.96 * ok_a.std() / np.sqrt(n)                     # subjects, not images, set the width
    assert hi - lo == pytest.approx(2 * half, rel=0.15)


def test_clustered_mcnemar_counts_subjects_not_images():
    rng = np.random.default_rng(2)
    y = rng.integers(0, 2, 200)
    a = np.where(rng.random(200) < 0.85, y, 1 - y)
    b = np.where(rng.random(200) < 0.75, y, 1 - y)
    nb, nc = discordant(y, a, b)
    stat, p = mcnemar_clustered(y, a, b, np.arange(200))      # one image per subject: plain McNemar
    assert stat == pytest.approx((nb - nc) ** 2 / (nb + nc)) and p == pytest.approx(stats.chi2.sf(stat, 1))
    rep = lambda v: np.repeat(v, 3)  # noqa: E731
    stat3, p3 = mcnemar_clustered(rep(y), rep(a), rep(b), rep(np.arange(200)))
    assert stat3 == pytest.approx(stat)                       # copies add no evidence
    assert mcnemar(rep(y), rep(a), rep(b))[0] > 2.5 * stat    # the image-level test would triple it
    assert mcnemar_clustered(y, a, a, np.arange(200)) == (0.0, 1.0)


def test_bootstrap_skips_undefined_replicates():
    y = np.r_[np.zeros(19), 1].astype(int)  # many resamples contain no positive
    s = np.linspace(0, 1, 20)
    diff, lo, hi, _ = bootstrap_diff(roc_auc_score, y, s, s[::-1], n_boot=300)
    assert diff == pytest.approx(1.0) and np.isfinite([lo, hi]).all()


# ----------------------------------------------------------------- PC1 ordering
def test_pc1_ordering_recovers_a_severity_axis_with_either_sign():
    rng = np.random.default_rng(0)
    kl = np.repeat(np.arange(5), 40)
    direction = rng.normal(size=16)
    F = np.outer(kl, direction) + 0.3 * rng.normal(size=(200, 16))
    rho, order = pc1_ordering(F, kl)
    assert rho > 0.9 and list(order) == [0, 1, 2, 3, 4]
    rho2, order2 = pc1_ordering(-F, kl)
    assert rho2 == pytest.approx(rho) and list(order2) == [0, 1, 2, 3, 4]
    expect = abs(stats.spearmanr(F @ direction, kl).statistic)
    assert rho == pytest.approx(expect, abs=0.02)


# ----------------------------------------------------------------- saliency
class _SumInBox(nn.Module):
    """OA logit = sum of the pixels in rows 8–15, columns 4–11 (gradient 1 there, 0 elsewhere)."""

    def __init__(self):
        super().__init__()
        self.config = type("C", (), {"image_size": 32})()
        self.w = nn.Parameter(torch.zeros(1))

    def forward(self, x):
        return x[:, 0, 8:16, 4:12].sum((1, 2)) + self.w


def test_saliency_share_inside_the_mask():
    rng = np.random.default_rng(0)
    images = rng.integers(0, 255, (3, 32, 32), dtype=np.uint8)
    inside = np.zeros((3, 32, 32), np.uint8)
    inside[:, 8:16, 4:12] = 1
    half = np.zeros_like(inside)
    half[:, 8:16, 4:8] = 1
    r = saliency_in_mask(_SumInBox(), images, inside)
    np.testing.assert_allclose(r.share, 1.0)
    np.testing.assert_allclose(r.mask_area, 64 / 1024)
    np.testing.assert_allclose(saliency_in_mask(_SumInBox(), images, half).share, 0.5)
    # Masks at another resolution are resized to the model input.
    big = np.kron(inside, np.ones((1, 2, 2), np.uint8))
    big_images = np.kron(images, np.ones((1, 2, 2), np.uint8))
    np.testing.assert_allclose(saliency_in_mask(_SumInBox(), big_images, big).share, 1.0)


def test_landmark_band_covers_the_joint_space():
    lm = np.zeros((1, 16, 2), np.float32)
    lm[0, :, 0] = np.linspace(10, 50, 16)
    lm[0, [2, 3], 1] = 20
    lm[0, 5:13, 1] = 30
    band = landmark_band(lm, (64, 64))[0]
    ys, xs = np.nonzero(band)
    assert ys.min() == 19 and ys.max() == 31  # 20 − 1.28 … 30 + 1.28
    assert xs.min() >= 10 and xs.max() <= 50


# ----------------------------------------------------------------- dual-head comparison
def _variant(tmp_path, variant, seed):
    torch.manual_seed(seed)
    cfg = make_config("dual_head", "demo", {"image_size": 32, "widths": [4, 8, 8], "feature_dim": 8,
                                            "variant": variant})
    return save_checkpoint(build_model("dual_head", cfg).eval(), tmp_path / variant, preset="demo")


def test_compare_variants_on_tiny_models(tmp_path, tiny_cohort):
    c = load_cohort(tiny_cohort)
    ckpts = [_variant(tmp_path, v, i) for i, v in enumerate(["single_oa", "single_kl", "dual"])]
    res = compare_variants(ckpts, c, n_boot=50)
    m = res["metrics"].set_index("variant")
    assert list(m.index) == ["single_oa", "single_kl", "dual"]
    assert np.isnan(m.loc["single_oa", "kl_qwk"]) and np.isfinite(m.loc["dual", "kl_qwk"])
    assert (m["n"] == len(c.split_indices("test"))).all()
    assert len(res["mcnemar"]) == 3 and res["mcnemar"]["p"].between(0, 1).all()
    assert res["bootstrap"]["p"].between(0, 1).all()
    assert (m["oa_auc_lo"] <= m["oa_auc"]).all() and (m["oa_auc"] <= m["oa_auc_hi"]).all()
    kl_rows = res["bootstrap"][res["bootstrap"].metric == "kl_qwk"]
    assert set(zip(kl_rows.a, kl_rows.b)) == {("single_kl", "dual")}
    assert set(res["pca"].variant) == set(m.index)
    single = evaluate_variant(ckpts[2], c)
    assert single["oa_auc"] == pytest.approx(m.loc["dual", "oa_auc"])
    same = compare_variants({"x": ckpts[0], "y": ckpts[0]}, c, n_boot=20)
    assert same["mcnemar"].loc[0, "p"] == 1.0


def test_hierarchy_report_uses_the_cohort_masks(tmp_path, tiny_cohort, monkeypatch):
    from oaviz.services.hierarchy import hierarchy_report

    monkeypatch.setenv("OAVIZ_HOME", str(tmp_path / "home"))
    c = load_cohort(tiny_cohort)
    masks, source = joint_space_masks(c, np.arange(3))
    assert source == "masks.npy" and masks.shape == (3, 64, 64) and masks.any()
    ckpts = [_variant(tmp_path, v, i) for i, v in enumerate(["single_oa", "dual"])]
    rep = hierarchy_report(ckpts, c, n_boot=20, n_saliency=3)
    assert list(rep.metrics.variant) == ["single_oa", "dual"] and len(rep.mcnemar) == 1
    assert set(rep.saliency) == {"single_oa", "dual"} and rep.mask_source == "masks.npy"
    s = rep.saliency["dual"]
    assert s.saliency.shape == (3, 32, 32) and ((s.share >= 0) & (s.share <= 1)).all()
    assert {"image_id", "pc1", "pc2"} <= set(rep.pca.columns)


def test_dual_head_checkpoints_are_found_by_variant(tmp_path):
    from oaviz.services.hierarchy import dual_head_checkpoints

    for i, v in enumerate(["single_oa", "dual"]):
        _variant(tmp_path / "bundled", v, i)
    run = tmp_path / "runs" / "dual_head-1"
    _variant(run, "single_kl", 3)
    (run / "single_kl").rename(run / "checkpoint")
    found = dual_head_checkpoints([tmp_path / "bundled", tmp_path / "runs"])
    assert set(found) == {"single_oa", "dual", "single_kl"}
    assert found["single_kl"] == run / "checkpoint"


def test_fast_metrics_equal_sklearn():
    from sklearn.metrics import cohen_kappa_score, f1_score

    from oaviz.analysis.paired_tests import fast_auc, macro_f1, quadratic_kappa

    rng = np.random.default_rng(5)
    for _ in range(5):
        y = rng.integers(0, 5, 70)
        pred = np.where(rng.random(70) < 0.5, y, rng.integers(0, 4, 70))  # grade 4 never predicted
        s = np.round(rng.random(70) + 0.3 * (y >= 2), 1)  # rounded: ties
        assert fast_auc(y >= 2, s) == pytest.approx(roc_auc_score(y >= 2, s))
        assert macro_f1(y, pred, 5) == pytest.approx(f1_score(y, pred, labels=range(5), average="macro",
                                                              zero_division=0))
        assert quadratic_kappa(y, pred, 5) == pytest.approx(cohen_kappa_score(y, pred, labels=range(5),
                                                                              weights="quadratic"))
    assert np.isnan(fast_auc(np.zeros(4), np.arange(4)))


def test_expected_grade_minimises_expected_squared_grade_error():
    from oaviz.analysis.paired_tests import expected_grade

    rng = np.random.default_rng(3)
    P = rng.dirichlet(np.full(5, 0.4), size=500)
    call = expected_grade(P)
    g = np.arange(5)
    cost = ((g[None, :, None] - g[None, None, :]) ** 2 * P[:, None, :]).sum(2)   # [N, call, grade]
    assert np.allclose(cost[np.arange(500), call], cost.min(1))
    # mass split between KL 0 and KL 4: the argmax picks an end, the call the middle grade
    assert expected_grade(np.array([[0.51, 0, 0, 0, 0.49]]))[0] == 2
    assert expected_grade(np.array([[0.0, 0.0, 0.0, 0.0, 1.0]]))[0] == 4
    with pytest.raises(ValueError, match=r"\[N, K\]"):
        expected_grade(np.ones(5))


def test_variant_kappa_is_scored_on_the_expected_grade():
    from oaviz.analysis.hierarchy import VariantOutput, variant_metrics
    from oaviz.analysis.paired_tests import expected_grade, quadratic_kappa

    rng = np.random.default_rng(4)
    y = rng.integers(0, 5, 200)
    P = rng.dirichlet(np.ones(5), size=200) + np.eye(5)[y] * rng.random((200, 1))
    P /= P.sum(1, keepdims=True)
    out = VariantOutput(name="dual", rows=np.arange(200), kl=y, p_oa=P[:, 2:].sum(1), p_kl=P,
                        features=np.zeros((200, 2), np.float32))
    m = variant_metrics(out)
    assert m["kl_qwk"] == pytest.approx(quadratic_kappa(y, expected_grade(P), 5))
    assert m["kl_qwk"] != pytest.approx(quadratic_kappa(y, P.argmax(1), 5))
    assert m["kl_accuracy"] == pytest.approx(float((P.argmax(1) == y).mean()))
    # the paired bootstrap of the dual-head comparison scores κ the same way
    from oaviz.analysis.hierarchy import _bootstrap_metrics
    fn, which = _bootstrap_metrics(True)["kl_qwk"]
    assert which == "p_kl" and fn(y, P) == pytest.approx(m["kl_qwk"])
