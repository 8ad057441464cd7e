"""Probe engine: subsets, noise, metrics, classifiers, the grid, feature sets, the CLI (clustering and the CNN
arm have their own files)."""

from __future__ import annotations

import base64
import json
import re

import numpy as np
import pandas as pd
import pytest
import torch
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import accuracy_score, balanced_accuracy_score, cohen_kappa_score, f1_score, roc_auc_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from oaviz.analysis import probes
from oaviz.analysis.feature_sets import random_features, raw_pixel_features
from oaviz.analysis.clustering import digits_cohort
from oaviz.analysis.label_noise import inject_noise
from oaviz.analysis.subsample import stratified_subset
from oaviz.cli import main as cli
from oaviz.data.cohort import load_cohort
from oaviz.models.base import ConfigError, build_model, make_config
from oaviz.services import probe_lab
from oaviz.training.checkpoint import save_checkpoint

Y_KL = np.repeat([0, 1, 2, 3, 4], [40, 20, 25, 10, 3])


# ----------------------------------------------------------------- subsets
@pytest.mark.parametrize("fraction", [0.05, 0.1, 0.25, 0.5, 1.0])
def test_subset_is_stratified_deterministic_and_keeps_every_class(fraction):
    idx = stratified_subset(Y_KL, fraction, seed=3)
    assert np.array_equal(idx, stratified_subset(Y_KL, fraction, seed=3))
    assert np.all(np.diff(idx) > 0)
    for c, n_c in zip(range(5), [40, 20, 25, 10, 3]):
        assert (Y_KL[idx] == c).sum() == max(1, round(fraction * n_c))


def test_subsets_are_nested_per_seed_and_differ_between_seeds():
    small, big = stratified_subset(Y_KL, 0.1, 1), stratified_subset(Y_KL, 0.5, 1)
    assert set(small) <= set(big)
    assert not np.array_equal(stratified_subset(Y_KL, 0.25, 1), stratified_subset(Y_KL, 0.25, 2))
    assert np.array_equal(stratified_subset(Y_KL, 1.0, 7), np.arange(len(Y_KL)))


@pytest.mark.parametrize("bad", [0.0, -0.1, 1.5])
def test_subset_rejects_bad_fractions(bad):
    with pytest.raises(ValueError, match=rf"fraction must be in \(0, 1\], got {re.escape(str(bad))}$"):
        stratified_subset(Y_KL, bad, 0)


# ----------------------------------------------------------------- noise
@pytest.mark.parametrize("rate", [0.0, 0.1, 0.25, 0.5])
def test_symmetric_noise_flips_exactly_the_share(rate):
    y = (Y_KL >= 2).astype(int)
    noisy = inject_noise(y, rate, "symmetric", seed=0, n_classes=2)
    assert (noisy != y).sum() == round(rate * len(y))
    assert set(np.unique(noisy)) <= {0, 1}


def test_symmetric_multiclass_noise_never_keeps_the_label():
    noisy = inject_noise(Y_KL, 0.3, "symmetric", seed=1, n_classes=5)
    changed = noisy != Y_KL
    assert changed.sum() == round(0.3 * len(Y_KL))
    assert noisy.min() >= 0 and noisy.max() <= 4


def test_adjacent_noise_moves_exactly_the_share_by_one_grade():
    noisy = inject_noise(Y_KL, 0.2, "adjacent", seed=2, n_classes=5)
    changed = noisy != Y_KL
    assert changed.sum() == round(0.2 * len(Y_KL))
    assert np.all(np.abs(noisy - Y_KL)[changed] == 1)
    assert np.all(noisy[changed & (Y_KL == 0)] == 1) and np.all(noisy[changed & (Y_KL == 4)] == 3)
    assert np.array_equal(noisy, inject_noise(Y_KL, 0.2, "adjacent", seed=2, n_classes=5))


def test_noise_rejects_bad_input():
    with pytest.raises(ValueError, match="noise kind must be one of .*got 'gaussian'"):
        inject_noise(Y_KL, 0.1, "gaussian", n_classes=5)
    with pytest.raises(ValueError, match=r"labels must be in 0\.\.1$"):
        inject_noise(Y_KL, 0.1, "symmetric", n_classes=2)  # KL labels are not binary


def test_label_plan_binarises_adjacent_noise_after_moving_kl():
    pos, noisy = probes.label_plan(Y_KL, 1.0, 0.2, "adjacent", seed=4, target="oa")
    kl_noisy = inject_noise(Y_KL, 0.2, "adjacent", probes.noise_seed(4, 1.0, 0.2, "adjacent"), n_classes=5)
    assert np.array_equal(pos, np.arange(len(Y_KL)))
    assert np.array_equal(noisy, (kl_noisy >= 2).astype(int))
    pos, clean = probes.label_plan(Y_KL, 0.5, 0.0, "symmetric", seed=4, target="kl")
    assert np.array_equal(clean, Y_KL[pos])


# ----------------------------------------------------------------- metrics
def test_oa_metrics_match_sklearn():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 60)
    p1 = np.clip(0.3 * y + 0.7 * rng.random(60), 0, 1)
    proba = np.stack([1 - p1, p1], 1)
    got = probes.score(y, proba, "oa")
    pred = proba.argmax(1)
    assert got["auc"] == pytest.approx(roc_auc_score(y, p1))
    assert got["accuracy"] == pytest.approx(accuracy_score(y, pred))
    assert got["balanced_accuracy"] == pytest.approx(balanced_accuracy_score(y, pred))
    assert got["f1"] == pytest.approx(f1_score(y, pred, average="macro"))
    assert set(got) == set(probes.METRICS["oa"])


def test_kl_metrics_match_sklearn():
    rng = np.random.default_rng(1)
    y = np.tile(np.arange(5), 12)
    logits = rng.normal(size=(60, 5)) + 2.0 * np.eye(5)[y]
    proba = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
    got = probes.score(y, proba, "kl")
    pred = proba.argmax(1)
    assert got["auc"] == pytest.approx(roc_auc_score(y, proba, multi_class="ovr", average="macro"))
    assert got["f1"] == pytest.approx(f1_score(y, pred, average="macro"))
    # κ is scored on the expected grade (the call its squared penalty asks for), not the argmax
    call = np.clip(np.floor(proba @ np.arange(5) + 0.5), 0, 4)
    assert got["qwk"] == pytest.approx(cohen_kappa_score(y, call, weights="quadratic"))
    assert got["qwk"] != pytest.approx(cohen_kappa_score(y, pred, weights="quadratic"))
    # A test split missing a grade: macro AUC over the grades present.
    keep = y != 4
    expect = np.mean([roc_auc_score(y[keep] == c, proba[keep, c]) for c in range(4)])
    assert probes.macro_auc(y[keep], proba[keep]) == pytest.approx(expect)


# ----------------------------------------------------------------- classifiers
def _blobs(n=120, d=6, seed=0, shift=3.0):
    rng = np.random.default_rng(seed)
    y = np.arange(n) % 2
    X = rng.normal(size=(n, d)).astype(np.float32)
    X[:, 0] += shift * y
    return X, y


def test_logreg_probe_is_the_sklearn_pipeline():
    X, y = _blobs()
    got = probes.fit_predict_proba(X[:80], y[:80], X[80:], "logreg", 2)
    ref = make_pipeline(StandardScaler(), LogisticRegression(max_iter=5000)).fit(X[:80], y[:80])
    np.testing.assert_allclose(got, ref.predict_proba(X[80:]), atol=1e-6)


@pytest.mark.parametrize("clf", ["knn", "linear"])
def test_other_probes_learn_separable_data(clf):
    X, y = _blobs(shift=8.0)
    proba = probes.fit_predict_proba(X[:80], y[:80], X[80:], clf, 2, seed=0)
    assert proba.shape == (40, 2)
    np.testing.assert_allclose(proba.sum(1), 1.0, atol=1e-6)
    assert (proba.argmax(1) == y[80:]).mean() == 1.0


def test_linear_probe_is_seeded_and_single_class_is_constant():
    X, y = _blobs()
    a = probes.fit_predict_proba(X[:80], y[:80], X[80:], "linear", 2, seed=5, linear_epochs=20)
    b = probes.fit_predict_proba(X[:80], y[:80], X[80:], "linear", 2, seed=5, linear_epochs=20)
    np.testing.assert_array_equal(a, b)
    const = probes.fit_predict_proba(X[:5], np.full(5, 3), X[80:], "logreg", 5)
    assert np.all(const[:, 3] == 1.0)


# ----------------------------------------------------------------- the grid
def _grid_data(n=300, seed=0):
    rng = np.random.default_rng(seed)
    kl = rng.choice(5, n, p=[0.4, 0.2, 0.2, 0.15, 0.05])
    X = rng.normal(size=(n, 8)).astype(np.float32)
    X[:, 0] += 1.5 * kl
    return X, kl, np.arange(0, 200), np.arange(200, n)


def test_every_feature_set_sees_the_same_subsets_and_labels():
    X, kl, tr, te = _grid_data()
    grid = probes.ProbeGrid({"a": X, "b": X.copy()}, kl, fractions=(0.1, 1.0), noise=(0.0, 0.2), seeds=2,
                            n_jobs=2)
    df = grid.run(tr, te)
    assert list(df.columns) == probes.COLUMNS
    a = df[df.feature == "a"].drop(columns="feature").reset_index(drop=True)
    b = df[df.feature == "b"].drop(columns="feature").reset_index(drop=True)
    pd.testing.assert_frame_equal(a, b)
    plan = grid.plan(tr)
    for seed, cells in plan.items():
        for s, f, r, pos, noisy in cells:
            ref_pos, ref_y = probes.label_plan(kl[tr], f, r, "symmetric", s)
            assert np.array_equal(pos, ref_pos) and np.array_equal(noisy, ref_y)


def test_grid_separates_informative_from_random_features_and_summarises():
    X, kl, tr, te = _grid_data()
    feats = {"signal": X, "random": random_features(len(X), 8, 0)}
    seen = []
    df = probes.ProbeGrid(feats, kl, fractions=(0.25, 1.0), noise=(0.0,), seeds=3).run(
        tr, te, progress=lambda i, n: seen.append((i, n)))
    assert seen[-1] == (6, 6)
    assert len(df) == 2 * 2 * 1 * 3 * 4
    s = probes.summarise(df)
    auc = s[s.metric == "auc"].set_index(["feature", "fraction"])["mean"]
    assert auc[("signal", 1.0)] > 0.9 and abs(auc[("random", 1.0)] - 0.5) < 0.15
    cell = df[(df.feature == "signal") & (df.fraction == 0.25) & (df.metric == "accuracy")]["value"]
    row = s[(s.feature == "signal") & (s.fraction == 0.25) & (s.metric == "accuracy")].iloc[0]
    assert row["mean"] == pytest.approx(cell.mean()) and row["std"] == pytest.approx(cell.std(ddof=1))
    assert row["n"] == 3


def test_kl_target_and_backends_agree():
    X, kl, tr, te = _grid_data()
    kw = dict(target="kl", fractions=(0.5,), noise=(0.1,), noise_kind="adjacent", seeds=2)
    thr = probes.ProbeGrid({"x": X}, kl, backend="threading", **kw).run(tr, te)
    seq = probes.ProbeGrid({"x": X}, kl, backend="sequential", n_jobs=1, **kw).run(tr, te)
    pd.testing.assert_frame_equal(thr, seq)
    assert set(thr.metric) == set(probes.METRICS["kl"])


@pytest.mark.parametrize("kwargs, match", [
    (dict(fractions=(0.0,)), r"label fractions must be in \(0, 1\], got \[0.0\]"),
    (dict(fractions=(1.2,)), r"label fractions must be in \(0, 1\], got \[1.2\]"),
    (dict(noise=(0.6,)), r"noise rates must be in \[0, 0.5\], got \[0.6\]"),
    (dict(target="grade"), "target must be one of .*got 'grade'"),
    (dict(classifier="svm"), "classifier must be one of .*got 'svm'"),
    (dict(noise_kind="pink"), "noise kind must be one of .*got 'pink'")])
def test_grid_rejects_bad_settings(kwargs, match):
    X, kl, tr, te = _grid_data()
    with pytest.raises(ConfigError, match=match):
        probes.ProbeGrid({"x": X}, kl, **kwargs).run(tr, te)


def test_grid_rejects_misshapen_features():
    X, kl, tr, te = _grid_data()
    with pytest.raises(ConfigError, match="shape"):
        probes.ProbeGrid({"x": X[:10]}, kl).run(tr, te)


# ----------------------------------------------------------------- feature sets
def test_raw_pixels_are_standardised_with_train_statistics(tiny_cohort):
    c = load_cohort(tiny_cohort)
    R = raw_pixel_features(c, size=16)
    tr = c.split_indices("train")
    assert R.shape == (len(c), 256) and R.dtype == np.float32
    np.testing.assert_allclose(R[tr].mean(0), 0, atol=1e-4)
    std = R[tr].std(0)
    assert np.all((np.abs(std - 1) < 1e-3) | (std == 0))
    # Area averaging: a 64 px image to 16 px is a mean over 4×4 blocks.
    img = c.images_float([0])[0]
    block = img.reshape(16, 4, 16, 4).mean((1, 3)).ravel()
    mean = c.images_float(tr).reshape(len(tr), 16, 4, 16, 4).mean((2, 4)).reshape(len(tr), -1)
    sd = mean.std(0)
    ok = sd > 1e-6
    np.testing.assert_allclose(R[0][ok], ((block - mean.mean(0)) / np.where(ok, sd, 1))[ok], atol=1e-3)


def test_random_baseline_is_drawn_afresh_for_every_seed(tiny_cohort):
    """At 100 % labels and no noise the seeds differ only by the random draw: their scores must differ."""
    c = load_cohort(tiny_cohort)
    feats = probe_lab.build_feature_sets(c, ["random"], random_dim=8)
    kl = c.metadata["kl"].to_numpy(int)
    df = probes.ProbeGrid(feats, kl, fractions=(1.0,), noise=(0.0,), seeds=3, n_jobs=1).run(
        c.split_indices("train"), c.split_indices("test"))
    auc = df[df.metric == "auc"].sort_values("seed")["value"].to_numpy()
    assert len(auc) == 3 and len(np.unique(np.round(auc, 9))) == 3
    assert np.array_equal(feats["random"].draw(10, 1), feats["random"].draw(10, 1))


def test_random_features_are_seeded_standard_normal():
    a = random_features(2000, 4, 1)
    assert np.array_equal(a, random_features(2000, 4, 1)) and not np.array_equal(a, random_features(2000, 4, 2))
    assert abs(a.mean()) < 0.05 and abs(a.std() - 1) < 0.05


# ----------------------------------------------------------------- CLI and service
def _tiny_vae(path):
    torch.manual_seed(0)
    m = build_model("beta_vae", make_config("beta_vae", "demo", {"image_size": 32, "widths": [4, 8, 8],
                                                                 "latent_dim": 6}))
    return save_checkpoint(m.eval(), path, preset="demo")


def test_cli_writes_every_file(tmp_path, tiny_cohort):
    out = tmp_path / "probe"
    rc = cli(["probe", "--data", str(tiny_cohort), "--features", "raw,random", "--target", "oa",
              "--fractions", "0.25,1", "--noise", "0,0.1", "--noise-kind", "symmetric", "--seeds", "2",
              "--classifier", "logreg", "--raw-size", "16", "--out", str(out)])
    assert rc == 0
    res = pd.read_csv(out / "results.csv")
    assert list(res.columns) == probes.COLUMNS
    assert set(res.feature) == {"raw", "random"} and len(res) == 2 * 2 * 2 * 2 * 4
    summ = pd.read_csv(out / "summary.csv")
    assert {"mean", "std", "n"} <= set(summ.columns) and (summ["n"] == 2).all()
    settings = json.loads((out / "settings.json").read_text())
    assert settings["fractions"] == [0.25, 1.0] and settings["cohort"]["fingerprint"]
    check_probe_figure((out / "figures.html").read_text(), summ, metrics=probes.METRICS["oa"], fractions=[0.25, 1.0],
                       lines={("raw", 0.0), ("raw", 0.1), ("random", 0.0), ("random", 0.1)})
    events = [json.loads(x) for x in (out / "events.jsonl").read_text().splitlines()]
    assert events[0]["event"] == "start" and events[-1]["event"] == "end"
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temp folder left
    assert cli(["probe", "--data", str(tiny_cohort), "--features", "raw", "--out", str(out)]) == 2  # exists


def plotly_figure(html: str) -> tuple[list[dict], dict]:
    """(traces, layout) of the one figure in a standalone plotly HTML page; typed arrays decoded to lists."""
    assert html.count("Plotly.newPlot(") == 1
    dec = json.JSONDecoder()
    rest = html[html.index("Plotly.newPlot(") + len("Plotly.newPlot("):]
    parts = []
    for _ in range(3):                                   # div id, data, layout
        rest = rest.lstrip().lstrip(",").lstrip()
        obj, end = dec.raw_decode(rest)
        parts.append(obj)
        rest = rest[end:]

    def plain(v):
        if isinstance(v, dict) and "bdata" in v:
            return np.frombuffer(base64.b64decode(v["bdata"]), dtype=np.dtype(v["dtype"])).tolist()
        return v
    return [{k: plain(v) for k, v in t.items()} for t in parts[1]], parts[2]


def check_probe_figure(html, summary, metrics, fractions, lines):
    """One panel per metric; per (feature, noise) a mean line (solid when clean, dashed when noisy) whose
    points are summary.csv's means, and a band of mean ± std."""
    traces, layout = plotly_figure(html)
    assert "OA target" in layout["title"]["text"]
    assert [a["text"] for a in layout["annotations"]] == list(metrics)          # subplot titles
    means = [t for t in traces if t.get("mode") == "lines+markers"]
    bands = [t for t in traces if t.get("fill") == "toself"]
    assert len(means) == len(bands) == len(metrics) * len(lines)
    for t in means:
        metric = metrics[int(t["xaxis"][1:] or 1) - 1]
        feature, rate = t["name"].split(" (noise ")
        rate = float(rate.rstrip(")"))
        cell = summary[(summary.metric == metric) & (summary.feature == feature) & np.isclose(summary.noise, rate)]
        cell = cell.sort_values("fraction")
        assert t["x"] == fractions == cell.fraction.tolist()
        np.testing.assert_allclose(t["y"], cell["mean"], rtol=1e-12)
        assert t["line"]["dash"] == ("solid" if rate == 0 else "dash")
        band = next(b for b in bands if b["legendgroup"] == t["name"] and b["xaxis"] == t["xaxis"])
        np.testing.assert_allclose(band["y"][:len(fractions)], cell["mean"] + cell["std"], rtol=1e-12)
    assert {(t["name"].split(" (noise ")[0], float(t["name"].split(" (noise ")[1][:-1])) for t in means} == lines


@pytest.mark.parametrize("extra", [["--fractions", "0,0.5"], ["--noise", "0.7"], ["--features", "nope"],
                                   ["--target", "grade"], ["--fractions", "a,b"]])
def test_cli_bad_input_is_exit_2_and_writes_nothing(tmp_path, tiny_cohort, extra, capsys):
    args = ["probe", "--data", str(tiny_cohort), "--features", "raw", "--out", str(tmp_path / "o")]
    rc = cli(args + extra)
    assert rc == 2 and "error" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []


def test_cli_kl_target_needs_kl(tmp_path):
    digits = digits_cohort(tmp_path / "digits", size=8)
    assert cli(["probe", "--data", str(digits), "--features", "random", "--target", "kl",
                "--out", str(tmp_path / "o")]) == 2


def test_service_grid_is_cached_and_uses_checkpoints(tmp_path, tiny_cohort, monkeypatch):
    from oaviz.services import probe_lab

    monkeypatch.setenv("OAVIZ_HOME", str(tmp_path / "home"))
    ck = _tiny_vae(tmp_path / "vae-tiny")
    kw = dict(fractions=(0.5, 1.0), noise=(0.0,), seeds=2, raw_size=8)
    df = probe_lab.run_frozen_grid(tiny_cohort, [str(ck), "raw", "random"], **kw)
    assert list(dict.fromkeys(df.feature)) == ["vae-tiny", "raw", "random"]
    cached = list((tmp_path / "home" / "cache" / "probes").glob("*.parquet"))
    assert len(cached) == 1
    again = probe_lab.run_frozen_grid(tiny_cohort, [str(ck), "raw", "random"], **kw,
                                      progress=lambda *a: pytest.fail("should come from the cache"))
    pd.testing.assert_frame_equal(df, again)
    feats = probe_lab.build_feature_sets(tiny_cohort, [str(ck), "random"])
    assert feats["random"].dim == 6  # same dimension as the checkpoint's latent
    args = probe_lab.cnn_job_args(tiny_cohort, tmp_path / "o", tmp_path / "run", epochs=1)
    assert args[0] == "probe" and "--cnn" in args and "--run-dir" in args


def test_digits_command_writes_a_labelled_cohort(tmp_path):
    from oaviz.cli import main as cli
    from oaviz.data.cohort import load_cohort

    assert cli(["digits", "--out", str(tmp_path / "dg"), "--size", "16"]) == 0
    c = load_cohort(tmp_path / "dg")
    assert c.images.shape == (1797, 16, 16)
    assert sorted(c.metadata["label"].unique()) == list(range(10))
    assert cli(["digits", "--out", str(tmp_path / "bad"), "--size", "4"]) == 2
    assert not (tmp_path / "bad").exists()
