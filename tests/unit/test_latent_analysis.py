"""Latent analysis: image metrics, joint-space width, latent paths, severity axis, prototype statistics
(hand-derived values; the services built on them are in test_latent_tools.py)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import ndimage, stats
from sklearn.metrics.pairwise import cosine_similarity

from oaviz.analysis.image_metrics import (
    SSIM_K1, SSIM_K2, gap_width_px, joint_space_width, mse, psnr, ssim,
)
from oaviz.analysis.latent_paths import lerp, nearest_distance, prior_log_density, slerp
from oaviz.analysis.prototype_stats import assign, nearest_real, prototype_table, similarity_matrix
from oaviz.analysis.severity_axis import SeverityAxis, orthonormal_basis
from oaviz.data.cohort import decode_landmarks
from oaviz.data.errors import DataError

TINY = {"image_size": 64, "widths": [4, 8, 8, 8], "latent_dim": 8}


# ----------------------------------------------------------------- image metrics
def test_mse_and_psnr_hand_values():
    x = np.zeros((2, 16, 16))
    y = np.stack([np.full((16, 16), 0.1), np.zeros((16, 16))])
    np.testing.assert_allclose(mse(x, y), [0.01, 0.0])
    p = psnr(x, y)
    assert p[0] == pytest.approx(20.0) and np.isinf(p[1])
    assert psnr(x[0], y[0], data_range=2.0)[0] == pytest.approx(20.0 + 20 * np.log10(2))


def _ssim_reference(x, y):
    """scikit-image's Gaussian SSIM (filter with σ = 1.5, truncate 3.5, crop the 5-pixel border)."""
    f = lambda a: ndimage.gaussian_filter(a, 1.5, truncate=3.5, mode="reflect")  # noqa: E731
    mx, my = f(x), f(y)
    sxx, syy, sxy = f(x * x) - mx ** 2, f(y * y) - my ** 2, f(x * y) - mx * my
    c1, c2 = SSIM_K1 ** 2, SSIM_K2 ** 2
    s = (2 * mx * my + c1) * (2 * sxy + c2) / ((mx ** 2 + my ** 2 + c1) * (sxx + syy + c2))
    return s[5:-5, 5:-5].mean()


def test_ssim_against_reference_formula_and_properties():
    rng = np.random.default_rng(0)
    x = ndimage.gaussian_filter(rng.uniform(0, 1, (40, 48)), 2)
    noisy = [np.clip(x + rng.normal(0, s, x.shape), 0, 1) for s in (0.02, 0.1, 0.3)]
    assert ssim(x, x)[0] == pytest.approx(1.0)
    vals = ssim(np.stack([x] * 3), np.stack(noisy))
    assert vals[0] > vals[1] > vals[2]
    for y, v in zip(noisy, vals):
        assert v == pytest.approx(_ssim_reference(x, y), abs=1e-10)
    # Constant images: only the luminance term is left, (2ab + C1) / (a² + b² + C1).
    a, b = 0.3, 0.6
    expect = (2 * a * b + SSIM_K1 ** 2) / (a * a + b * b + SSIM_K1 ** 2)
    assert ssim(np.full((16, 16), a), np.full((16, 16), b))[0] == pytest.approx(expect)
    with pytest.raises(DataError, match=r"at least 11×11 for SSIM, got \(8, 8\)"):
        ssim(np.zeros((8, 8)), np.zeros((8, 8)))


def test_gap_width_on_a_hand_made_joint():
    img = np.ones((64, 64))
    img[25:35] = 0.1                           # a 10-pixel dark gap between two bright blocks
    img = ndimage.gaussian_filter(img, 1.2)
    w = gap_width_px(img, np.array([32.0, 24.5]), np.array([32.0, 34.5]), half_height=12, half_width=3)
    assert w == pytest.approx(10.0, abs=0.25)
    assert np.isnan(gap_width_px(img, np.array([32.0, 2.0]), np.array([32.0, 10.0]), 12, 3))  # leaves the image


def test_joint_space_width_tracks_the_true_medial_width():
    from oaviz.data.synthetic import SynthConfig, generate_arrays

    size = 128
    images, _, meta, info = generate_arrays(SynthConfig(subjects=8, size=size, seed=11, progressor_fraction=0.6))
    med, lat = [], []
    for img, text in zip(images, meta["landmarks"]):
        r = joint_space_width(img / 255.0, decode_landmarks(text) / size, info["pixel_spacing_mm"])
        med.append(r["medial_mm"])
        lat.append(r["lateral_mm"])
    med, truth = np.array(med), meta["jsw_mm"].to_numpy()
    assert np.isfinite(med).all() and np.isfinite(lat).all()
    assert truth.std() > 0.5                                  # the cohort spans a real range of widths
    assert stats.pearsonr(med, truth).statistic > 0.85
    assert np.median(np.abs(med - truth)) < 1.0               # mm, magnification and blur included
    assert np.mean(lat) > np.mean(med)                        # lateral narrows less than medial
    nan_lm = np.full((16, 2), np.nan)
    assert np.isnan(joint_space_width(images[0] / 255.0, nan_lm, 0.78)["medial_mm"])


# ----------------------------------------------------------------- latent paths
def test_lerp_endpoints_and_spacing():
    z0, z1 = np.array([0.0, 1.0, 2.0]), np.array([4.0, -1.0, 2.0])
    P = lerp(z0, z1, 5)
    assert P.shape == (5, 3)
    np.testing.assert_allclose(P[0], z0)
    np.testing.assert_allclose(P[-1], z1)
    np.testing.assert_allclose(np.diff(P, axis=0), np.tile((z1 - z0) / 4, (4, 1)))
    with pytest.raises(DataError, match="a path needs at least 2 steps, got 1"):
        lerp(z0, z1, 1)


def test_slerp_keeps_norm_and_constant_angle():
    rng = np.random.default_rng(1)
    z0 = rng.normal(size=32)
    z1 = rng.normal(size=32)
    z1 *= np.linalg.norm(z0) / np.linalg.norm(z1)
    P = slerp(z0, z1, 9)
    np.testing.assert_allclose(P[0], z0)
    np.testing.assert_allclose(P[-1], z1)
    np.testing.assert_allclose(np.linalg.norm(P, axis=1), np.linalg.norm(z0), rtol=1e-12)
    U = P / np.linalg.norm(P, axis=1, keepdims=True)
    steps = np.arccos(np.clip((U[:-1] * U[1:]).sum(1), -1, 1))
    np.testing.assert_allclose(steps, steps[0], rtol=1e-8)
    mid = (z0 / np.linalg.norm(z0) + z1 / np.linalg.norm(z1))
    np.testing.assert_allclose(U[4], mid / np.linalg.norm(mid), atol=1e-12)
    # Different norms: the norm moves linearly between them.
    P2 = slerp(z0, 3 * z1, 5)
    np.testing.assert_allclose(np.linalg.norm(P2, axis=1), np.linalg.norm(z0) * np.linspace(1, 3, 5))


def test_slerp_near_parallel_and_antipodal():
    z0 = np.array([1.0, 2.0, 3.0])
    P = slerp(z0, z0 * (1 + 1e-12) + 1e-14, 4)
    assert np.isfinite(P).all()
    np.testing.assert_allclose(P, np.tile(z0, (4, 1)), atol=1e-9)
    A = slerp(z0, -z0, 5)
    assert np.isfinite(A).all()
    np.testing.assert_allclose(np.linalg.norm(A, axis=1), np.linalg.norm(z0))
    np.testing.assert_allclose(A[-1], -z0)
    assert abs(A[2] @ z0) < 1e-9  # halfway round the circle: perpendicular


def test_prior_log_density_matches_scipy():
    Z = np.random.default_rng(2).normal(size=(6, 5)) * 2
    np.testing.assert_allclose(prior_log_density(Z), stats.norm.logpdf(Z).sum(1))


def test_nearest_distance_matches_brute_force():
    rng = np.random.default_rng(3)
    Z, R = rng.normal(size=(7, 4)), rng.normal(size=(20, 4))
    d, i = nearest_distance(Z, R)
    D = np.linalg.norm(Z[:, None] - R[None], axis=2)
    np.testing.assert_array_equal(i, D.argmin(1))
    np.testing.assert_allclose(d, D.min(1))


# ----------------------------------------------------------------- severity axis
def _graded_latents(seed=0, n=600, d=16, side_bias=0.0):
    rng = np.random.default_rng(seed)
    u = rng.normal(size=d)
    u /= np.linalg.norm(u)
    v = rng.normal(size=d)
    v -= (v @ u) * u
    v /= np.linalg.norm(v)
    kl = rng.integers(0, 5, n)
    # Side R is likelier at high grades when side_bias > 0, so the raw grade direction picks up v.
    side = np.where(rng.uniform(0, 1, n) < 0.5 + side_bias * (kl - 2) / 2, "R", "L")
    Z = kl[:, None] * u + 1.5 * (side == "R")[:, None] * v + 0.3 * rng.normal(size=(n, d))
    return Z, kl, side, u, v


@pytest.mark.parametrize("method", ["centroid", "fisher", "probe", "regression"])
def test_severity_axis_recovers_the_grade_direction(method):
    Z, kl, side, u, v = _graded_latents()
    ax = SeverityAxis(method=method).fit(Z, kl, {"side": side})
    assert ax.direction_ @ u > 0.9
    assert np.linalg.norm(ax.direction_) == pytest.approx(1.0)
    assert ax.grade_step_ == pytest.approx(ax.direction_ @ u, rel=0.1)  # true spacing: 1 along u
    assert ax.spearman(Z, kl) > 0.9
    moved = ax.move(Z[0], [-1.0, 0.0, 2.0])
    np.testing.assert_allclose(moved[1], Z[0])
    np.testing.assert_allclose(ax.project(moved) - ax.project(Z[:1]), np.array([-1, 0, 2]) * ax.grade_step_,
                               atol=1e-12)
    np.testing.assert_allclose(ax.to_grades(moved)[2] - ax.to_grades(moved)[1], 2.0)


def test_fisher_axis_ignores_a_high_variance_direction():
    rng = np.random.default_rng(4)
    n, d = 800, 12
    u = np.eye(d)[0]
    a = (np.eye(d)[0] + np.eye(d)[1]) / np.sqrt(2)          # a loud anatomical direction, half along u
    kl = rng.integers(0, 5, n)
    Z = 0.5 * kl[:, None] * u + 4.0 * rng.normal(size=(n, 1)) * a + 0.3 * rng.normal(size=(n, d))
    rho = {m: SeverityAxis(method=m).fit(Z, kl).spearman(Z, kl) for m in ("centroid", "fisher")}
    assert rho["fisher"] > 0.85 and rho["fisher"] > rho["centroid"] + 0.2


def test_regression_axis_orders_every_grade_where_the_extremes_mislead():
    """Two markers of KL 4 alone (as bone-on-bone contact would be): a loud one dominates the KL 4 − KL 0
    centroid difference, a tight one (small within-grade spread) dominates Fisher's direction; both axes then
    rank KL 0–3 by noise. The ridge regression of the grade uses every grade's order and follows the gradual
    direction u."""
    rng = np.random.default_rng(7)
    n, d = 1500, 12
    u = np.eye(d)[0]
    kl = rng.integers(0, 5, n)
    Z = 0.3 * kl[:, None] * u + 0.3 * rng.normal(size=(n, d))
    Z[:, 1] = 2.0 * (kl == 4) + 0.1 * rng.normal(size=n)      # tight: Fisher's pick
    Z[:, 2] = 3.0 * (kl == 4) + 0.6 * rng.normal(size=n)      # loud: the centroid difference's pick
    tr, mild = np.arange(n) < 1000, (np.arange(n) >= 1000) & (kl <= 3)
    axes = {m: SeverityAxis(method=m).fit(Z[tr], kl[tr]) for m in ("centroid", "fisher", "regression")}
    rho = {m: ax.spearman(Z[mild], kl[mild]) for m, ax in axes.items()}
    assert rho["regression"] > 0.65 and rho["regression"] > max(rho["centroid"], rho["fisher"]) + 0.3, rho
    assert axes["regression"].direction_ @ u > 0.85


def test_severity_axis_removes_a_correlated_nuisance():
    Z, kl, side, u, v = _graded_latents(seed=1, side_bias=0.9)
    raw = SeverityAxis().fit(Z, kl)
    clean = SeverityAxis(nuisance=["side"]).fit(Z, kl, {"side": side, "unused": kl})
    assert abs(raw.direction_ @ v) > 0.3                        # side leaked into the raw direction
    assert abs(clean.direction_ @ v) < 0.1
    assert np.abs(clean.nuisance_basis_ @ clean.direction_).max() < 1e-10
    assert clean.nuisance_names_ == ["side=R"] and clean.direction_ @ u > 0.95
    # A numeric acquisition covariate (exposure) is removed through its principal component.
    w = np.random.default_rng(5).normal(size=Z.shape[1])
    w -= (w @ u) * u
    w /= np.linalg.norm(w)
    exposure = 0.5 * kl + np.random.default_rng(6).normal(size=len(kl))
    Z2 = Z + exposure[:, None] * w
    acq = np.c_[exposure, 2 * exposure + 0.01]
    a = SeverityAxis(nuisance=["acquisition"], n_components=1).fit(Z2, kl, {"acquisition": acq})
    assert abs(a.direction_ @ w) < 0.1 and a.direction_ @ u > 0.9
    with pytest.raises(DataError, match=r"nuisance factor\(s\) \[\'scanner\'\] not given to fit"):
        SeverityAxis(nuisance=["scanner"]).fit(Z, kl, {"side": side})
    with pytest.raises(DataError, match=r"needs at least two KL grades, found \[0\]"):
        SeverityAxis().fit(Z, np.zeros(len(Z)))


def test_orthonormal_basis_drops_dependent_rows():
    B = orthonormal_basis(np.array([[1.0, 1, 0], [2, 2, 0], [0, 1, 0]]))
    assert B.shape == (2, 3)
    np.testing.assert_allclose(B @ B.T, np.eye(2), atol=1e-12)


# ----------------------------------------------------------------- prototype statistics
def test_prototype_table_on_a_constructed_case():
    Q = np.eye(3) * 2.0
    Z = np.array([[1, 0.1, 0], [2, 0, 0.2], [1, 0, 0], [3, 0.3, 0.3],   # prototype 0
                  [0.1, 1, 0], [0, 5, 1], [0.2, 2, 0]])                    # prototype 1; prototype 2 empty
    kl = pd.array([0, 0, 0, 1, 2, 2, None], dtype="Int64")
    t = prototype_table(Z, Q, kl)
    assert t["size"].tolist() == [4, 3, 0]
    assert t["n_labelled"].tolist() == [4, 2, 0]
    assert t.loc[0, "purity"] == pytest.approx(0.75) and t.loc[0, "majority_kl"] == 0
    assert t.loc[0, "share_kl1"] == pytest.approx(0.25)
    assert t.loc[1, "purity"] == pytest.approx(1.0) and t.loc[1, "majority_kl"] == 2
    assert pd.isna(t.loc[2, "majority_kl"]) and np.isnan(t.loc[2, "purity"])
    cos0 = (Z[:4, 0] / np.linalg.norm(Z[:4], axis=1)).mean()
    assert t.loc[0, "mean_cosine"] == pytest.approx(cos0)
    np.testing.assert_array_equal(assign(Z, Q), [0, 0, 0, 0, 1, 1, 1])
    np.testing.assert_array_equal(nearest_real(Z, Q, 2)[0], [2, 0])   # row 2 is exactly on prototype 0
    assert nearest_real(Z, Q, 50).shape == (3, 7)
    Q2 = np.random.default_rng(0).normal(size=(4, 3))
    np.testing.assert_allclose(similarity_matrix(Q2), cosine_similarity(Q2), atol=1e-12)
