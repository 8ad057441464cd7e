"""Image statistics, separability and the realism benchmark end to end on generated stand-ins.

No real knee is used here: a generated cohort written out in the KL-folder layout
plays the "real" folder (stems like 9000001L.png), so the test runs anywhere.
"""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from oaviz.analysis.image_stats import (block_mahalanobis, block_means, compare_sets, disease_signature, frechet_pixels,
                                       hist_distances, histogram, profile_summary, psd_slope)
from oaviz.data.errors import DataError
from oaviz.analysis.separability import cnn_auc, pixel_lr_auc

REPO = Path(__file__).resolve().parents[2]


def _power_law_noise(rng, n, size, beta):
    """Images whose radial power falls as f^-beta."""
    fy, fx = np.meshgrid(np.fft.fftfreq(size), np.fft.fftfreq(size), indexing="ij")
    r = np.hypot(fy, fx)
    r[0, 0] = 1.0
    amp = r ** (-beta / 2)
    amp[0, 0] = 0
    spec = np.fft.fft2(rng.standard_normal((n, size, size))) * amp
    x = np.real(np.fft.ifft2(spec))
    return (x - x.min()) / (x.max() - x.min())


def test_psd_slope_recovers_the_exponent():
    rng = np.random.default_rng(0)
    for beta in (1.0, 2.0, 3.0):
        s = psd_slope(_power_law_noise(rng, 6, 128, beta))
        assert abs(np.median(s) + beta) < 0.25, (beta, s)


def test_histogram_distances_and_profiles():
    a = histogram(np.full(100, 0.2))
    assert hist_distances(a, a)["js"] == pytest.approx(0.0, abs=1e-9)
    d = hist_distances(a, histogram(np.full(100, 0.8)))
    assert d["js"] == pytest.approx(1.0) and d["w1"] == pytest.approx(0.6, abs=0.02)
    x = np.zeros((3, 100, 100))
    x[:, :, 20:80] = 0.8                        # bones 60 px wide
    x[:, 55:58, 20:80] = 0.3                    # a dark joint line at rows 55–57
    p = profile_summary(x)
    assert p["joint_row"] in (55, 56, 57) and p["bone_width_px"] == 60
    c = compare_sets(x, x)
    assert c["intensity_hist"]["js"] == pytest.approx(0.0, abs=1e-9) and c["row_profile_r"] == pytest.approx(1.0)


def test_block_means_and_frechet_pixels():
    x = np.zeros((2, 16, 16))
    x[:, :8, :8] = 1.0                           # top-left quarter bright
    m = block_means(x, 2)
    assert m.shape == (2, 4) and np.allclose(m[0], [1, 0, 0, 0])
    rng = np.random.default_rng(0)
    a, b = rng.uniform(0, 1, (300, 32, 32)), rng.uniform(0, 1, (300, 32, 32))
    same = frechet_pixels(a, b)
    assert same["fd"] < 0.06                     # two draws of one population: a small floor (sampling error)
    shifted = frechet_pixels(a, np.clip(b + 0.2, 0, 1))
    assert shifted["mean_term"] > 30 * same["fd"]
    # more spread (same mean) shows in the covariance term, not the mean term
    spread = frechet_pixels(a, 0.5 + 2.0 * (b - 0.5))
    assert spread["cov_term"] > 8 * same["cov_term"] and spread["mean_term"] < 0.02
    with pytest.raises(DataError, match="needs more than 64"):
        frechet_pixels(a[:40], b)


def test_block_mahalanobis_counts_a_shift_where_the_sets_vary_little():
    rng = np.random.default_rng(1)
    bright = rng.normal(0, 0.2, (400, 1, 1))          # the whole image varies a lot, together ...
    a = np.clip(0.5 + bright + 0.01 * rng.standard_normal((400, 16, 16)), 0, 1)
    b = np.clip(0.5 + rng.normal(0, 0.2, (400, 1, 1)) + 0.01 * rng.standard_normal((400, 16, 16)), 0, 1)
    same = block_mahalanobis(a, b, 4)
    assert same < 0.2
    tilted = b.copy()
    tilted[:, :, :8] += 0.02                           # ... but left minus right hardly at all
    d2 = block_mahalanobis(a, tilted, 4)
    assert d2 > 25 * max(same, 0.01)
    # the Fréchet distance barely sees that shift (grey levels, not spreads): not above two draws' difference
    assert frechet_pixels(a, tilted, 4)["fd"] < 3 * frechet_pixels(a, b, 4)["fd"]
    with pytest.raises(DataError, match="at least 3"):
        block_mahalanobis(a[:2], b, 4)


def test_disease_signature_reads_where_the_disease_brightens():
    rng = np.random.default_rng(0)
    h = w = 112
    x = 0.6 + 0.02 * rng.standard_normal((200, h, w))
    x[:, 64:68, 20:92] = 0.3                       # the dark joint gap (rows 57-61 % of H)
    kl = np.repeat([0, 1, 2, 3, 4], 40).astype(float)
    sick = kl >= 3
    x[np.ix_(sick, np.arange(64, 68), np.arange(70, 88))] += 0.1      # the medial gap greys at KL 3-4
    x[np.ix_(kl == 4, np.arange(46, 60), np.arange(46, 66))] += 0.05  # the notch fills at KL 4
    sig = disease_signature(x, kl)
    assert abs(sig["joint_row_frac"] - 64 / h) <= 4 / h
    g = sig["grades"]
    assert set(g) == {1, 2, 3, 4} and g[3]["n"] == 40
    assert 0.07 < g[3]["medial_joint"] < 0.11 and abs(g[3]["lateral_joint"]) < 0.02 and abs(g[3]["notch"]) < 0.01
    assert 0.03 < g[4]["notch"] < 0.06 and abs(g[1]["medial_joint"]) < 0.02
    # a mirrored set (medial on the left) reads its greying as lateral: orientation matters
    flipped = disease_signature(x[:, :, ::-1], kl)["grades"][3]
    assert flipped["lateral_joint"] > 0.07 and abs(flipped["medial_joint"]) < 0.02
    with pytest.raises(DataError, match="KL 0"):
        disease_signature(x[40:], kl[40:])
    with pytest.raises(DataError, match="grades for"):
        disease_signature(x, kl[:10])


def test_separability_chance_and_obvious():
    rng = np.random.default_rng(1)
    a, b = rng.uniform(0, 1, (60, 32, 32)), rng.uniform(0, 1, (60, 32, 32))
    groups = np.repeat(np.arange(30), 2)          # two images per subject
    assert abs(pixel_lr_auc(a, b, groups, groups, folds=3) - 0.5) < 0.2
    b2 = b.copy()
    b2[:, 8:24, 8:24] += 0.5                      # a bright square: trivially told apart
    assert pixel_lr_auc(a, b2, groups, groups, folds=3) > 0.95
    assert cnn_auc(a, b2, groups, groups, size=32, folds=2, epochs=4) > 0.9


def _bench():
    spec = importlib.util.spec_from_file_location("bench_realism", REPO / "bench" / "bench_realism.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


@pytest.fixture(scope="module")
def fake_real(tmp_path_factory):
    """A generated cohort saved as KL-folder PNGs with OAI-style stems (left knees un-mirrored)."""
    import torch

    from oaviz.data.synthetic import SynthConfig, generate_arrays

    with torch.inference_mode():
        images, _, meta, _ = generate_arrays(SynthConfig(subjects=60, visits=(0,), size=128, seed=9))
    root = tmp_path_factory.mktemp("fake-real")
    for i, (img, r) in enumerate(zip(images, meta.itertuples())):
        split = ("train", "train", "train", "val", "test")[i % 5]
        d = root / split / str(r.kl)
        d.mkdir(parents=True, exist_ok=True)
        img = img[:, ::-1] if r.side == "L" else img
        Image.fromarray(np.ascontiguousarray(img)).save(d / f"{9000000 + i // 2}{r.side}.png")
    return root


def test_bench_end_to_end(fake_real, tiny_cohort, tmp_path):
    bench = _bench()
    out_json, grid = tmp_path / "r.json", tmp_path / "grid.png"
    rc = bench.main(["--real", str(fake_real), "--cohort", str(tiny_cohort), "--work", str(tmp_path / "work"),
                     "--json", str(out_json), "--grid", str(grid), "--folds", "2", "--cnn-epochs", "1",
                     "--epochs", "1"])
    assert rc == 0
    r = json.loads(out_json.read_text())
    assert 0.0 <= r["separability"]["pixel_lr_auc"] <= 1.0
    assert r["targets"]["pixel_lr_auc <= 0.80"]["value"] == r["separability"]["pixel_lr_auc"]
    t = r["transfer"]
    assert len(t["scratch_5"]["oa_auc"]["runs"]) == 3 and len(t["pretrained_5"]["oa_auc"]["runs"]) == 3
    assert t["pretrained_100"]["n_labels"] == t["n_real_train"]
    assert t["scratch_5"]["selection"][0]["epochs_run"] == 1 and t["synthetic_only"]["kept_epoch"] == 0
    assert Image.open(grid).size[1] == 24 + 5 * 224
    fd = r["stats"]["frechet_8x8"]               # few knees here: a coarser grid
    assert 2 <= fd["size"] < 8 and fd["synthetic_test"]["fd"] >= 0 and fd["real_test"]["fd"] >= 0
    assert set(fd["mahalanobis"]) <= {"4", "8"} and all(v["synthetic_test"] >= 0 for v in fd["mahalanobis"].values())
    sig = r["signature"]
    assert "skipped" not in sig                  # the tiny cohorts have enough KL 0 knees to compare against
    assert 0.3 < sig["real"]["joint_row_frac"] < 0.8 and sig["real"]["grades"] and sig["synthetic"]["grades"]
    events = [json.loads(s) for s in (tmp_path / "work/runs/pretrained-100-s0/events.jsonl").read_text().splitlines()]
    assert events[0]["event"] == "start" and events[0]["start_epoch"] == 0


def test_fine_tuning_starts_from_the_given_weights(tiny_cohort, tmp_path):
    import torch

    from oaviz.models.base import build_model, make_config
    from oaviz.training.checkpoint import save_checkpoint

    bench = _bench()
    torch.manual_seed(5)
    model = build_model("dual_head", make_config("dual_head", "demo"))
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.5)                                  # weights no fresh initialisation would have
    init = save_checkpoint(model, tmp_path / "init", preset="demo")
    w0 = {k: v.clone() for k, v in model.state_dict().items() if v.is_floating_point()}

    def dist(ckpt) -> float:
        w = _w(ckpt)
        return sum(float((w[k] - w0[k]).pow(2).sum()) for k in w0 if "running" not in k)

    tuned = bench._train("ft", tiny_cohort, tmp_path, 1, 0, max_images=16, init=init)
    fresh = bench._train("fresh", tiny_cohort, tmp_path, 1, 0, max_images=16)
    assert dist(tuned) < 0.05 * dist(fresh)


def _w(ckpt):
    from safetensors.torch import load_file
    return load_file(str(ckpt / "model.safetensors"))


def test_bench_without_real_folder_skips(monkeypatch, capsys, tmp_path):
    monkeypatch.setenv("OAVIZ_REALKNEE_DIR", str(tmp_path / "absent"))
    assert _bench().main([]) == 0
    assert "skipped" in capsys.readouterr().out
