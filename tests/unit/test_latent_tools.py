"""Latent tools: image metrics, joint-space width, latent paths, severity axis, prototype
statistics, and the services built on them (on the tiny cohort with tiny untrained models)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch
from scipy import ndimage, stats
from sklearn.metrics.pairwise import cosine_similarity

from oaviz.analysis.image_metrics import (
    SSIM_K1, SSIM_K2, gap_width_px, joint_space_width, mse, psnr, ssim,
)
from oaviz.analysis.latent_paths import lerp, nearest_distance, prior_log_density, slerp
from oaviz.analysis.prototype_stats import assign, nearest_real, prototype_table, similarity_matrix
from oaviz.analysis.severity_axis import SeverityAxis, orthonormal_basis
from oaviz.data import disk_cache
from oaviz.data.cohort import decode_landmarks, load_cohort
from oaviz.data.errors import DataError
from oaviz.models.checkpoints import checkpoint_hash

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


@pytest.mark.parametrize("method", ["centroid", "fisher", "probe"])
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


# ----------------------------------------------------------------- services
@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory):
    from oaviz.models.base import build_model, make_config
    from oaviz.training.checkpoint import save_checkpoint

    torch.manual_seed(0)
    root = tmp_path_factory.mktemp("ckpts")
    bv = build_model("beta_vae", make_config("beta_vae", "demo", TINY))
    vs = build_model("vaesim", make_config("vaesim", "demo", {**TINY, "n_prototypes": 4}))
    vs.train()
    vs.loss({"image": torch.rand(8, 1, 64, 64)}, 0)   # initialises the prototypes from a batch
    vs.on_train_step_end(None, 0)
    return {"beta_vae": save_checkpoint(bv, root / "bv"), "vaesim": save_checkpoint(vs, root / "vs")}


@pytest.fixture(scope="module")
def home(tmp_path_factory):
    """One OAVIZ_HOME for the module's service tests, so the embedding cache is shared."""
    path = tmp_path_factory.mktemp("home")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("OAVIZ_HOME", str(path))
        yield path


def test_window_level():
    from oaviz.services.reconstructions import window_level

    out = window_level(np.array([0.0, 0.25, 0.5, 0.75, 1.0]), window=0.5, level=0.5)
    np.testing.assert_allclose(out, [0, 0, 0.5, 1, 1])
    with pytest.raises(DataError, match="window must be positive, got 0"):
        window_level(np.zeros(3), 0, 0.5)


def test_reconstruct_and_report(tiny_cohort, checkpoints, home):
    from oaviz.services.reconstructions import REPORT_VERSION, reconstruct, reconstruction_report
    from oaviz.training.checkpoint import load_checkpoint

    c = load_cohort(tiny_cohort)
    loaded = load_checkpoint(checkpoints["beta_vae"])
    loaded.model.train()                      # a caller's mode is left as it was
    before = {k: v.clone() for k, v in loaded.model.state_dict().items()}
    orig, recon, err = reconstruct(loaded, c, [3, 0])
    assert loaded.model.training
    assert all(torch.equal(before[k], v) for k, v in loaded.model.state_dict().items())
    assert orig.shape == recon.shape == err.shape == (2, 64, 64)
    np.testing.assert_allclose(orig[0], c.images_float([3])[0], atol=1e-6)
    np.testing.assert_allclose(err, recon - orig)
    assert recon.min() >= 0 and recon.max() <= 1

    rep = reconstruction_report(checkpoints["beta_vae"], c)
    assert len(rep) == len(c) and rep["mse"].is_monotonic_decreasing
    r3 = rep.set_index("row").loc[3]
    assert r3["mse"] == pytest.approx(float(((recon[0] - orig[0]) ** 2).mean()), rel=1e-5)
    assert r3["image_id"] == c.metadata["image_id"][3]
    # JSW on the (64 px, 1.6 mm) originals follows the true width; a sub-pixel gap is NaN (not resolved).
    assert rep["jsw_medial_orig_mm"].notna().mean() > 0.95
    merged = rep.merge(c.metadata[["image_id", "jsw_mm"]], on="image_id").dropna(subset=["jsw_medial_orig_mm"])
    assert stats.pearsonr(merged["jsw_medial_orig_mm"], merged["jsw_mm"]).statistic > 0.6
    key = {"v": REPORT_VERSION, "checkpoint": checkpoint_hash(loaded.path), "cohort": c.fingerprint}
    assert disk_cache.cache_file("reconstructions", key, disk_cache.PARQUET).is_file()
    sub = reconstruction_report(checkpoints["beta_vae"], c, grades=[2, 3], limit=4)
    assert len(sub) <= 4 and sub["kl"].isin([2, 3]).all() and sub["mse"].is_monotonic_decreasing
    picked = reconstruction_report(checkpoints["beta_vae"], c, rows=[5, 1], use_cache=False)
    assert sorted(picked["row"]) == [1, 5]
    assert picked.set_index("row").loc[5, "mse"] == pytest.approx(rep.set_index("row").loc[5, "mse"])


def test_kl_probe_matches_sklearn_and_is_cached(tiny_cohort, checkpoints, home, monkeypatch):
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    import oaviz.services.kl_probe as kp

    c = load_cohort(tiny_cohort)
    probe = kp.kl_probe(checkpoints["beta_vae"], c)
    Z = kp.cohort_latents(checkpoints["beta_vae"], c)
    tr, y = kp.labelled_rows(c, "train")
    ref = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000, random_state=0)).fit(Z[tr], y)
    P = probe.predict_proba(Z)
    assert P.shape == (len(c), 5)
    np.testing.assert_allclose(P[:, ref[1].classes_], ref.predict_proba(Z), atol=1e-8)
    np.testing.assert_allclose(P.sum(1), 1.0)
    te, yte = kp.labelled_rows(c, "test")
    assert probe.test_accuracy == pytest.approx((ref.predict(Z[te]) == yte).mean())
    assert probe.n_train == len(tr) and probe.n_test == len(te)
    key = {"v": kp.PROBE_VERSION, "checkpoint": checkpoint_hash(checkpoints["beta_vae"]), "cohort": c.fingerprint}
    np.load(disk_cache.cache_file("kl_probe", key, disk_cache.NPZ), allow_pickle=False)["coef"]  # plain arrays, no pickle
    # Two grades only: sklearn fits one sigmoid score; the probe still yields 5 columns.
    y2 = np.where(y >= 2, 2, 0)
    two = kp.fit_kl_probe(Z[tr], y2)
    ref2 = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000, random_state=0)).fit(Z[tr], y2)
    P2 = kp.KLProbe.from_arrays(two.to_arrays()).predict_proba(Z)
    np.testing.assert_allclose(P2[:, [0, 2]], ref2.predict_proba(Z), atol=1e-8)
    assert np.all(P2[:, [1, 3, 4]] == 0)
    monkeypatch.setattr(kp, "fit_kl_probe", lambda *a, **k: pytest.fail("refitted instead of cached"))
    again = kp.kl_probe(checkpoints["beta_vae"], c)
    np.testing.assert_allclose(again.predict_proba(Z), P)


def test_interpolate(tiny_cohort, checkpoints, home):
    from oaviz.services.interpolation import interpolate
    from oaviz.services.model_io import as_checkpoint, encode, model_inputs

    c = load_cohort(tiny_cohort)
    ck = as_checkpoint(checkpoints["beta_vae"])
    a, b = int(c.split_indices("train")[0]), int(c.split_indices("test")[0])
    res = interpolate(ck, c, a, b, steps=6, path="slerp")
    za, zb = encode(ck.model, model_inputs(ck.model, c, [a, b]))
    np.testing.assert_allclose(res.Z[0], za, atol=1e-6)
    np.testing.assert_allclose(res.Z[-1], zb, atol=1e-6)
    assert res.images.shape == (6, 64, 64) and res.kl_probs.shape == (6, 5)
    np.testing.assert_allclose(res.kl_probs.sum(1), 1.0)
    np.testing.assert_array_equal(res.pred_kl, res.kl_probs.argmax(1))
    assert res.nearest_row[0] == a and res.nearest_distance[0] < 1e-5   # a training knee is its own neighbour
    assert res.reference > 0 and res.manifold_ratio.shape == (6,)
    np.testing.assert_allclose(res.log_density, prior_log_density(res.Z))
    up = interpolate(ck, c, a, c.images_float([b])[0], steps=3)       # an uploaded image as endpoint
    np.testing.assert_allclose(up.Z[-1], zb, atol=1e-5)
    assert up.rows == (a, None)
    with pytest.raises(DataError, match=r"path must be one of \[\'linear\', \'slerp\'\], got \'cubic\'"):
        interpolate(ck, c, a, b, path="cubic")
    with pytest.raises(DataError, match=r"finite values in \[0, 1\]"):
        interpolate(ck, c, a, np.full((64, 64), 2.0))


def test_prior_and_prototype_sampling(tiny_cohort, checkpoints, home):
    from oaviz.services.prototypes import NotAPrototypeModel
    from oaviz.services.sampling import sample_near_prototype, sample_prior

    s1 = sample_prior(checkpoints["beta_vae"], n=4, seed=3)
    s2 = sample_prior(checkpoints["beta_vae"], n=4, seed=3, temperature=2.0, cohort=tiny_cohort)
    assert s1.images.shape == (4, 64, 64) and s1.pred_kl is None
    np.testing.assert_allclose(s2.Z, 2 * s1.Z, rtol=1e-6)
    assert s2.pred_kl.shape == (4,) and s2.nearest_distance.shape == (4,)
    ps = sample_near_prototype(checkpoints["vaesim"], k=1, n=5, threshold=0.6, seed=0, cohort=tiny_cohort)
    assert 1 <= len(ps.similarity) <= 5 and (ps.similarity >= 0.6).all()
    assert ps.images.shape[1:] == (64, 64) and ps.pred_kl.shape == (len(ps.similarity),)
    with pytest.raises(NotAPrototypeModel, match="a 'beta_vae' checkpoint has no prototypes; pick a vaesim checkpoint"):
        sample_near_prototype(checkpoints["beta_vae"], k=0)
    with pytest.raises(DataError, match="prototype index must be in 0–3, got 9"):
        sample_near_prototype(checkpoints["vaesim"], k=9)


def test_severity_walk(tiny_cohort, checkpoints, home):
    from oaviz.services.model_io import as_checkpoint, encode, model_inputs
    from oaviz.services.sampling import severity_walk

    c = load_cohort(tiny_cohort)
    ck = as_checkpoint(checkpoints["beta_vae"])
    w = severity_walk(ck, c, 4, grades=(-1, 0, 1, 2))
    z = encode(ck.model, model_inputs(ck.model, c, [4]))[0]
    np.testing.assert_allclose(w.Z[1], z, atol=1e-6)
    step = w.axis.grade_step_ * w.axis.direction_
    np.testing.assert_allclose(w.Z[3] - w.Z[1], 2 * step, atol=1e-5)
    assert w.images.shape == (4, 64, 64) and w.pred_kl.shape == (4,)
    assert w.stats.nuisance_names == ["side=R"] and -1 <= w.stats.spearman_kl <= 1
    assert np.isfinite(w.stats.spearman_severity) and w.stats.n_eval == len(c.split_indices("test"))
    assert abs(w.axis.nuisance_basis_ @ w.axis.direction_).max() < 1e-8


def test_prototype_report(tiny_cohort, checkpoints, home):
    from oaviz.services.kl_probe import cohort_latents
    from oaviz.services.prototypes import NotAPrototypeModel, prototype_report
    from oaviz.training.checkpoint import load_checkpoint

    c = load_cohort(tiny_cohort)
    ck = load_checkpoint(checkpoints["vaesim"])
    rep = prototype_report(ck, c, k=3)
    Q = ck.model.prototypes.numpy()
    assert rep.decoded.shape == (4, 64, 64) and rep.similarity.shape == (4, 4)
    np.testing.assert_allclose(rep.prototypes, Q, rtol=1e-6)
    Z = cohort_latents(ck, c)
    np.testing.assert_array_equal(rep.assignments, assign(Z, Q))
    np.testing.assert_array_equal(rep.assignments, ck.model.assign(torch.from_numpy(Z).float()).numpy())
    assert rep.table["size"].sum() == len(c) and rep.nearest_rows.shape == (4, 3)
    with pytest.raises(NotAPrototypeModel, match="a 'beta_vae' checkpoint has no prototypes; pick a vaesim checkpoint"):
        prototype_report(checkpoints["beta_vae"], c)
