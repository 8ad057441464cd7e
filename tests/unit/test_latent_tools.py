"""Latent tools: the services built on the latent analysis (reconstruct, KL probe, interpolate, sample,
severity walk, prototypes) on the tiny cohort with tiny untrained models."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy import stats

from oaviz.analysis.latent_paths import prior_log_density
from oaviz.analysis.prototype_stats import assign
from oaviz.data import disk_cache
from oaviz.data.cohort import load_cohort
from oaviz.services.kl_probe import labelled_rows
from oaviz.data.errors import DataError
from oaviz.models.checkpoints import checkpoint_hash

TINY = {"image_size": 64, "widths": [4, 8, 8, 8], "latent_dim": 8}


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


def test_severity_map_puts_the_axis_on_x_and_the_rest_on_y(tiny_cohort, checkpoints, home):
    """x = the held-out severity axis in grade units; y ignores anything along the axis (PC1 of the rest)."""
    from oaviz.services.kl_probe import cohort_latents
    from oaviz.services.model_io import as_checkpoint
    from oaviz.services.sampling import MAP_METHOD, fit_severity_axis, severity_map

    c = load_cohort(tiny_cohort)
    ck = as_checkpoint(checkpoints["beta_vae"])
    m = severity_map(ck, c)
    axis, stats = fit_severity_axis(ck, c, MAP_METHOD)
    Z = cohort_latents(ck, c)
    t = m.table
    assert len(t) == len(c) and list(t["row"]) == list(range(len(c)))
    np.testing.assert_allclose(t["x"], axis.to_grades(Z), atol=1e-9)
    assert m.stats.spearman_kl == pytest.approx(stats.spearman_kl)
    # moving every knee along the axis moves x, never y
    from sklearn.decomposition import PCA
    d = axis.direction_
    tr, _ = labelled_rows(c, "train")
    resid = Z - np.outer(Z @ d, d)
    pca = PCA(1, random_state=0).fit(resid[tr])
    shifted = Z + 3.0 * d
    np.testing.assert_allclose(pca.transform(shifted - np.outer(shifted @ d, d))[:, 0], t["y"], atol=1e-9)
    assert abs(np.corrcoef(t["y"], Z @ d)[0, 1]) < 0.99 and 0 < m.y_variance_share <= 1


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


def test_measured_jsw_on_shown_images_follows_the_truth_in_mm(tiny_cohort):
    """The JSW a page prints under a generated image: landmark-free, in mm at the image's own size."""
    from oaviz.data.transforms import resize_images
    from oaviz.services.measure import images_pixel_mm, jsw_caption, measured_jsw

    c = load_cohort(tiny_cohort)
    x = resize_images(np.asarray(c.images), 64, 255.0)[:, 0].numpy()        # as a 64-px model would show them
    assert images_pixel_mm(c, 32) == pytest.approx(c.info["pixel_spacing_mm"] * c.images.shape[-1] / 32)
    assert images_pixel_mm(c, 64) == pytest.approx(c.info["pixel_spacing_mm"])
    js = measured_jsw(x, c)
    truth = c.metadata["jsw_mm"].to_numpy()
    ok = np.isfinite(js.medial_mm)
    assert ok.mean() > 0.8 and np.corrcoef(js.medial_mm[ok], truth[ok])[0, 1] > 0.8
    assert jsw_caption(js, int(np.flatnonzero(ok)[0])).endswith(" mm") and "JSW med " in jsw_caption(js, 0)
    assert measured_jsw(x, None).medial_mm[ok].size and np.isnan(measured_jsw(x, None).medial_mm).all()
    assert jsw_caption(measured_jsw(x, None), int(np.flatnonzero(ok)[0])).endswith(" px")
