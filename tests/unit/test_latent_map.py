"""Latent map: projections forwards and backwards, structure metrics, and the service on a tiny cohort."""

from __future__ import annotations

import io

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image
from sklearn.metrics import silhouette_score
from sklearn.model_selection import StratifiedGroupKFold

from oaviz.analysis import latent_structure as ls
from oaviz.analysis.projections import Projector
from oaviz.data.cohort import load_cohort
from oaviz.data.errors import DataError
from oaviz.models.base import ConfigError, build_model, make_config
from oaviz.services import latent_map as lm
from oaviz.services.embeddings import embed_arrays
from oaviz.training.checkpoint import load_checkpoint, save_checkpoint


def blobs(n=200, d=8, seed=0):
    """Two overlapping Gaussian groups in d dimensions: (Z [n, d] float32, y [n] int)."""
    rng = np.random.default_rng(seed)
    y = np.arange(n) % 2
    Z = rng.normal(size=(n, d)) + 1.5 * y[:, None] * np.eye(d)[0]
    return Z.astype(np.float32), y


# ----------------------------------------------------------------- projections
def test_pca_inverse_is_exact():
    rng = np.random.default_rng(1)
    # Latents on a 2-D affine plane in R^8: the 2-D map loses nothing, so inverse(transform) = identity.
    Z = (rng.normal(size=(50, 2)) @ rng.normal(size=(2, 8)) + rng.normal(size=8)).astype(np.float32)
    p = Projector("pca").fit(Z)
    np.testing.assert_allclose(p.inverse_transform(p.embedding_), Z, atol=1e-4)
    # General latents: transform(inverse(P)) = P for any map point.
    Zg, _ = blobs()
    pg = Projector("pca").fit(Zg)
    P = rng.normal(size=(7, 2)).astype(np.float32) * 3
    np.testing.assert_allclose(pg.transform(pg.inverse_transform(P)), P, atol=1e-4)
    np.testing.assert_allclose(pg.transform(Zg), pg.embedding_, atol=1e-5)


def test_inverse_weighted_average_and_distance_by_hand():
    Z = np.array([[0, 0], [10, 0], [0, 10], [5, 5]], np.float32)
    emb = np.array([[0, 0], [1, 0], [0, 1], [5, 5]], np.float32)
    p = Projector.from_embedding(Z, emb, method="tsne", k=3, perplexity=2.0)
    P = np.array([[0.2, 0.1]], np.float32)
    d = np.linalg.norm(emb[:3] - P, axis=1)           # the 3 nearest embedded points are rows 0-2
    w = 1 / (d + p.eps_2d_)
    want = (w[:, None] * Z[:3]).sum(0) / w.sum()
    got, dist = p.inverse_transform(P, return_distance=True)
    np.testing.assert_allclose(got[0], want, rtol=1e-5)
    assert dist[0] == pytest.approx(np.hypot(0.2, 0.1), rel=1e-5)
    # An exact hit returns (almost) that point's latent and distance 0.
    got, dist = p.inverse_transform(emb[3:4], return_distance=True)
    np.testing.assert_allclose(got[0], Z[3], atol=1e-3)
    assert dist[0] == 0


def test_tsne_deterministic_and_transform_of_training_points():
    Z, _ = blobs(200)
    a = Projector("tsne", perplexity=20, random_state=3).fit(Z)
    b = Projector("tsne", perplexity=20, random_state=3).fit(Z)
    np.testing.assert_array_equal(a.embedding_, b.embedding_)
    # t-SNE transform: IDW of nearest training latents, so a training point lands on itself.
    np.testing.assert_allclose(a.transform(Z[:20]), a.embedding_[:20], atol=1e-3 * np.ptp(a.embedding_))
    z_back, dist = a.inverse_transform(a.embedding_[:5], return_distance=True)
    np.testing.assert_allclose(z_back, Z[:5], atol=1e-3)
    assert (dist == 0).all()


@pytest.mark.slow  # numba compiles UMAP's layout on first use (~10 s on two cores)
def test_umap_deterministic_and_cached_transform():
    Z, _ = blobs(150)
    a = Projector("umap", n_neighbors=10, random_state=0).fit(Z)
    b = Projector("umap", n_neighbors=10, random_state=0).fit(Z)
    np.testing.assert_array_equal(a.embedding_, b.embedding_)
    # Rebuilt from the cached map: transform refits lazily and places points against the cached layout.
    shifted = a.embedding_ + np.float32(100.0)
    c = Projector.from_embedding(Z, shifted, method="umap", n_neighbors=10, random_state=0)
    assert c.model_ is None
    xy = c.transform(Z[:10])
    assert c.model_ is not None
    spread = np.ptp(shifted, axis=0).max()
    assert np.abs(xy - shifted[:10]).max(axis=1).mean() < 0.15 * spread


@pytest.mark.parametrize("kwargs, data, match", [
    ({"method": "pca"}, np.array([[0.0, np.nan], [1, 2], [3, 4]]), "non-finite"),
    ({"method": "pca"}, np.zeros(5), "2-D"),
    ({"method": "pca"}, np.zeros((2, 4)), "at least 3"),
    ({"method": "umap", "n_neighbors": 15}, np.zeros((10, 4)), "n_neighbors"),
    ({"method": "tsne", "perplexity": 30.0}, np.zeros((10, 4)), "perplexity"),
    ({"method": "mds"}, np.zeros((10, 4)), "method"),
    ({"method": "pca", "n_jobs": 0}, np.zeros((10, 4)), "n_jobs"),
])
def test_projector_rejects_bad_input(kwargs, data, match):
    with pytest.raises(ValueError, match=match):
        Projector(**kwargs).fit(data)


def test_projector_transform_checks_dimensions_and_fitting():
    Z, _ = blobs(30, d=4)
    with pytest.raises(ValueError, match="not fitted"):
        Projector().transform(Z)
    p = Projector().fit(Z)
    with pytest.raises(ValueError, match="4 columns"):
        p.transform(np.zeros((2, 3)))
    with pytest.raises(ValueError, match="2 columns"):
        p.inverse_transform(np.zeros((2, 3)))


# ----------------------------------------------------------------- structure
def test_group_distances_by_hand():
    # 1-D positions (as 2-D points): OA at 0 and 2, no-OA at 10, 13, 16; one unknown (NaN) and one -1 dropped.
    x = np.array([0, 2, 10, 13, 16, 100, -50], float)
    Z = np.stack([x, np.zeros_like(x)], 1)
    oa = np.array([1, 1, 0, 0, 0, np.nan, -1])
    d = ls.group_distances(Z, oa)
    assert d["intra_oa"] == pytest.approx(2.0)
    assert d["intra_no_oa"] == pytest.approx((3 + 6 + 3) / 3)
    assert d["inter"] == pytest.approx((10 + 13 + 16 + 8 + 11 + 14) / 6)
    # Pandas nullable labels behave the same.
    d2 = ls.group_distances(Z, pd.array([1, 1, 0, 0, 0, pd.NA, -1], dtype="Int64"))
    assert d2 == d


def test_group_distances_subsample_is_seeded_and_close():
    Z, y = blobs(400)
    full = ls.group_distances(Z, y)
    s1 = ls.group_distances(Z, y, max_points=120, random_state=5)
    assert s1 == ls.group_distances(Z, y, max_points=120, random_state=5)
    for k in full:
        assert s1[k] == pytest.approx(full[k], rel=0.05)


def test_trustworthiness_of_identity_is_one():
    rng = np.random.default_rng(0)
    Y = rng.normal(size=(60, 2))
    assert ls.trustworthiness(Y, Y, k=5) == pytest.approx(1.0)
    assert ls.trustworthiness(Y, rng.permutation(Y), k=5) < 0.8


def test_knn_accuracy_matches_a_hand_computed_grouped_cv():
    Z, y = blobs(60, d=3, seed=2)
    groups = np.arange(60) // 2          # two visits per subject
    got = ls.knn_accuracy(Z, y, groups, k=5, random_state=7)
    accs = []
    for tr, te in StratifiedGroupKFold(5, shuffle=True, random_state=7).split(Z, y, groups):
        assert not set(groups[tr]) & set(groups[te])
        d = np.linalg.norm(Z[te][:, None] - Z[tr][None], axis=2)
        nn = np.argsort(d, axis=1)[:, :5]
        pred = (y[tr][nn].sum(1) >= 3).astype(int)   # majority of 5 binary votes
        accs.append((pred == y[te]).mean())
    assert got == pytest.approx(np.mean(accs))
    assert 0.5 < got < 1.0  # overlapping blobs: better than chance, not perfect


def test_structure_table_knn_is_grouped_by_subject():
    """Three near-identical visits per subject, labels unrelated to anatomy: no leak through the visits."""
    rng = np.random.default_rng(0)
    subj = np.repeat(np.arange(50), 3)
    Z = (10 * rng.normal(size=(50, 6)))[subj] + 0.01 * rng.normal(size=(150, 6))
    y = rng.integers(0, 2, 50)[subj]
    v = ls.structure_table(Z, Z[:, :2], y, y, subj).set_index("metric")
    assert v.loc["kNN accuracy (OA)", "value"] < 0.7


def test_silhouette_drops_missing_labels():
    Z, y = blobs(50)
    lab = y.astype(float)
    lab[:4] = np.nan
    assert ls.silhouette(Z, lab) == pytest.approx(silhouette_score(Z[4:], y[4:]))


def test_structure_table_rows_and_nan_with_reason():
    Z, y = blobs(80)
    Y2 = Z[:, :2]
    t = ls.structure_table(Z, Y2, y, np.full(80, np.nan), np.arange(80))
    assert list(t.columns) == ["metric", "value", "meaning", "note"]
    assert list(t.metric) == ["intra-OA distance", "intra-no-OA distance", "inter-group distance",
                              "silhouette (OA)", "silhouette (KL)", "kNN accuracy (OA)", "kNN accuracy (KL)",
                              "trustworthiness"]
    v = t.set_index("metric")
    assert np.isnan(v.loc["silhouette (KL)", "value"]) and v.loc["silhouette (KL)", "note"]
    assert np.isnan(v.loc["kNN accuracy (KL)", "value"])
    assert v.loc["kNN accuracy (OA)", "value"] == pytest.approx(ls.knn_accuracy(Z, y, np.arange(80)))
    assert np.isfinite(v.loc["trustworthiness", "value"]) and v.loc["trustworthiness", "note"] == ""


# ----------------------------------------------------------------- service
TINY = {"image_size": 32, "widths": [4, 8, 8], "latent_dim": 8}


@pytest.fixture(scope="module")
def tiny_ckpts(tmp_path_factory):
    out = tmp_path_factory.mktemp("ck")
    torch.manual_seed(0)
    vae = save_checkpoint(build_model("beta_vae", make_config("beta_vae", "demo", TINY)), out / "vae")
    cnn = save_checkpoint(build_model("cnn", make_config("cnn", "demo", {"image_size": 32, "widths": [4, 4, 8, 8],
                                                                          "hidden": 8})), out / "cnn")
    return vae, cnn


def test_vaesim_map_has_prototype_clusters(tiny_cohort, tiny_ckpts, home):
    torch.manual_seed(0)
    model = build_model("vaesim", make_config("vaesim", "demo", {**TINY, "n_prototypes": 3}))
    model.eval()
    cohort = load_cohort(tiny_cohort)
    Z, _ = embed_arrays(model, cohort.images)
    # Prototypes at three real latents: each of those images must fall in its own cluster.
    model.prototypes.copy_(torch.from_numpy(Z[[0, 30, 60]]))
    ck = save_checkpoint(model, home / "vaesim")
    r = lm.build_latent_map(ck, tiny_cohort, method="pca", use_cache=False)
    sims = torch.nn.functional.normalize(torch.from_numpy(r.Z), dim=1) @ \
        torch.nn.functional.normalize(model.prototypes, dim=1).T
    np.testing.assert_array_equal(r.table.cluster.to_numpy(), sims.argmax(1).numpy())
    assert r.model_type == "vaesim" and list(r.table.cluster[[0, 30, 60]]) == [0, 1, 2]


@pytest.fixture()
def home(tmp_path, monkeypatch):
    monkeypatch.setenv("OAVIZ_HOME", str(tmp_path))
    return tmp_path


def test_build_latent_map_table_and_cache_hit_without_refit(tiny_cohort, tiny_ckpts, home, monkeypatch):
    vae, _ = tiny_ckpts
    cohort = load_cohort(tiny_cohort)
    r = lm.build_latent_map(vae, cohort, method="pca")
    assert not r.cached and r.subsampled is None
    n = len(cohort)
    assert len(r.table) == n and r.Z.shape == (n, 8) and r.Z.dtype == np.float32
    meta_cols = [c for c in cohort.metadata.columns if c not in ("image_id", "landmarks")]
    assert list(r.table.columns[:4]) == ["row", "image_id", "x", "y"]
    assert set(meta_cols + ["recon_error", "pred_kl"]) <= set(r.table.columns)
    assert "landmarks" not in r.table.columns and "cluster" not in r.table.columns
    assert (r.table.row.to_numpy() == np.arange(n)).all()
    assert r.table.kl.dtype == "Int64" and r.table.pred_kl.isin([0, 1, 2, 3, 4]).all()
    # one KL probe: the map names the grade the interpolation and sampling pages name for the same knee
    from oaviz.services.kl_probe import cohort_latents, kl_probe
    probe = kl_probe(vae, cohort)
    np.testing.assert_array_equal(r.table.pred_kl.to_numpy(int), probe.predict(cohort_latents(vae, cohort)))
    np.testing.assert_allclose(r.table[["x", "y"]].to_numpy(), r.projector.embedding_)
    assert len(r.structure) == 8 and r.timings["total_s"] > 0

    calls = []
    monkeypatch.setattr(Projector, "fit", lambda self, Z: calls.append(1) or pytest.fail("refit on cache hit"))
    monkeypatch.setattr(Projector, "_fit_estimator", lambda self, Z: calls.append(1) or pytest.fail("refit"))
    r2 = lm.build_latent_map(vae, cohort, method="pca")
    assert r2.cached and not calls
    pd.testing.assert_frame_equal(r2.table, r.table)
    pd.testing.assert_frame_equal(r2.structure, r.structure)

    monkeypatch.undo()
    # A truncated cache entry is recomputed and overwritten, not an error.
    for f in (home / "cache" / "projections").glob("*.parquet"):
        f.write_bytes(b"PAR1 truncated")
    r3 = lm.build_latent_map(vae, cohort, method="pca")
    assert not r3.cached and lm.build_latent_map(vae, cohort, method="pca").cached
    np.testing.assert_array_equal(r3.table[["x", "y"]].to_numpy(), r.table[["x", "y"]].to_numpy())

    sub = lm.build_latent_map(vae, tiny_cohort, method="pca", max_points=40, seed=1, use_cache=False)
    assert len(sub.table) == 40 and sub.table.row.is_monotonic_increasing
    assert sub.subsampled == f"showing 40 of {n} images (random, seed 1)"


def test_bad_params_are_config_errors(tiny_cohort, tiny_ckpts, home):
    vae, _ = tiny_ckpts
    with pytest.raises(ConfigError, match="unknown projection parameter"):
        lm.build_latent_map(vae, tiny_cohort, method="umap", params={"neighbours": 5})
    with pytest.raises(ConfigError, match="unknown projection"):
        lm.build_latent_map(vae, tiny_cohort, method="isomap")
    with pytest.raises(ConfigError, match="min_dist"):
        lm.build_latent_map(vae, tiny_cohort, method="umap", params={"min_dist": 5.0})


@pytest.fixture()
def tiny_map(tiny_cohort, tiny_ckpts, home):
    return lm.build_latent_map(tiny_ckpts[0], tiny_cohort, method="pca")


def test_neighbours_are_sorted_and_exclude_self(tiny_map):
    nb = lm.neighbours(tiny_map, row=5, k=4)
    assert len(nb) == 4 and 5 not in nb.row.to_list()
    d = np.linalg.norm(tiny_map.Z - tiny_map.Z[5], axis=1)
    d[5] = np.inf
    np.testing.assert_allclose(nb.distance.to_numpy(), np.sort(d)[:4], rtol=1e-5)
    with pytest.raises(DataError, match="not on this map"):
        lm.neighbours(tiny_map, row=10_000)


def test_decode_at_and_reconstruct(tiny_cohort, tiny_ckpts, tiny_map):
    vae, cnn = tiny_ckpts
    x, y = tiny_map.table.loc[7, ["x", "y"]]
    d = lm.decode_at(vae, tiny_map, float(x) + 0.01, float(y))
    assert d.image.shape == (32, 32) and d.image.dtype == np.float32
    assert 0 <= d.image.min() <= d.image.max() <= 1 and d.z.shape == (8,)
    dist2 = np.hypot(tiny_map.table.x - x - 0.01, tiny_map.table.y - y)
    assert d.nearest_row == int(tiny_map.table.row[dist2.idxmin()])
    assert d.nearest_distance_2d == pytest.approx(float(dist2.min()), abs=1e-5)
    with pytest.raises(lm.NotAnAutoencoder, match="a 'cnn' checkpoint has no latent decoder; pick a beta_vae or vaesim checkpoint"):
        lm.decode_at(cnn, tiny_map, 0.0, 0.0)

    from oaviz.services.reconstructions import reconstruct
    orig, rec, err = reconstruct(load_checkpoint(vae), tiny_cohort, [9, 2])
    assert orig.shape == rec.shape == err.shape == (2, 32, 32)
    # The mean squared error map is the recon_error that embed_cohort put in the table.
    np.testing.assert_allclose((err ** 2).mean((1, 2)), tiny_map.table.recon_error.to_numpy()[[9, 2]], rtol=1e-4)
    with pytest.raises(lm.NotAnAutoencoder, match="a 'cnn' checkpoint has no latent decoder; pick a beta_vae or vaesim checkpoint"):
        reconstruct(cnn, tiny_cohort, [0])


def test_selection_stats(tiny_cohort, tiny_map):
    cohort = load_cohort(tiny_cohort)
    rows = [3, 1, 20, 40, 41, 3]
    s = lm.selection_stats(cohort, tiny_map, rows)
    assert s.n == 5 and s.grade_mix["count"].sum() == 5
    assert s.grade_mix["percent"].sum() == pytest.approx(100.0)
    want = cohort.metadata.kl.iloc[[1, 3, 20, 40, 41]].value_counts()
    got = s.grade_mix.set_index("kl")["count"]
    assert all(got[g] == want.get(g, 0) for g in range(5))
    np.testing.assert_allclose(s.mean_image, cohort.images_float(np.array([1, 3, 20, 40, 41])).mean(0), atol=1e-6)
    assert s.table.row.to_list() == [1, 3, 20, 40, 41] and s.mean_of == 5
    with pytest.raises(DataError, match="outside the cohort"):
        lm.selection_stats(cohort, tiny_map, [10_000])


def test_selection_mean_image_above_its_cap_is_a_stated_seeded_sample(tiny_cohort, tiny_map, monkeypatch):
    cohort = load_cohort(tiny_cohort)
    monkeypatch.setattr(lm, "MEAN_IMAGE_MAX", 10)
    rows = np.arange(len(cohort))
    s = lm.selection_stats(cohort, tiny_map, rows)
    assert s.n == len(cohort) and s.grade_mix["count"].sum() == len(cohort) and s.mean_of == 10  # stats: all
    sample = np.sort(np.random.default_rng(0).choice(rows, 10, replace=False))
    np.testing.assert_allclose(s.mean_image, cohort.images_float(sample).mean(0), atol=1e-6)
    assert lm.selection_stats(cohort, tiny_map, rows).mean_image.tobytes() == s.mean_image.tobytes()  # seeded


def test_embed_upload_png_lands_on_its_own_point(tiny_cohort, tiny_ckpts, tiny_map):
    cohort = load_cohort(tiny_cohort)
    buf = io.BytesIO()
    Image.fromarray(np.asarray(cohort.images[11])).save(buf, format="PNG")
    up = lm.embed_upload(tiny_ckpts[0], cohort, tiny_map, buf.getvalue(), "knee.png", k=3)
    assert up.image.shape == cohort.image_size and up.recon.shape == (32, 32)
    np.testing.assert_allclose(up.z, tiny_map.Z[11], atol=1e-5)
    assert (up.x, up.y) == pytest.approx(tuple(tiny_map.table.loc[11, ["x", "y"]]), abs=1e-4)
    assert up.neighbours.row.iloc[0] == 11 and up.neighbours.distance.iloc[0] == pytest.approx(0, abs=1e-4)
    assert up.neighbours.distance.is_monotonic_increasing and len(up.neighbours) == 3
    with pytest.raises(DataError, match="not an image Pillow can read"):
        lm.embed_upload(tiny_ckpts[0], cohort, tiny_map, b"not an image at all", "knee.png")
    with pytest.raises(DataError, match=r"empty file \(0 bytes\)"):
        lm.embed_upload(tiny_ckpts[0], cohort, tiny_map, b"", "empty.png")
