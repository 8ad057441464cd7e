"""`oaviz future` / `oaviz exchange` and their services, with tiny untrained checkpoints on the tiny cohort."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image

from oaviz.analysis.progression_risk import progression_risk
from oaviz.cli import main as cli
from oaviz.data.cohort import load_cohort
from oaviz.data.errors import DataError
from oaviz.models.base import ConfigError
from oaviz.services.exchange import exchange_pair
from oaviz.services.future import follow_up_row, generate_futures, load_future_models, rows_for_ids
from oaviz.services.model_io import model_inputs
from oaviz.training.checkpoint import load_checkpoint
from tests.tiny_checkpoints import future_and_exchange_checkpoints


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def ckpts(tmp_path_factory, tiny_cohort):
    """Untrained but initialised 32 px checkpoints: the commands' plumbing is what is tested here."""
    return future_and_exchange_checkpoints(tmp_path_factory.mktemp("ckpts"), load_cohort(tiny_cohort))


@pytest.fixture(scope="module")
def cohort(tiny_cohort):
    return load_cohort(tiny_cohort)


# ----------------------------------------------------------------- future: service
def test_generate_futures_values_seed_and_real_follow_up(ckpts, cohort):
    models = load_future_models(ckpts / "ld")
    row = rows_for_ids(cohort, ["S00001_L_V000"])[0]
    r = generate_futures(models, cohort=cohort, row=row, n_samples=3, steps=2, seed=4)
    assert r.futures.shape == (3, 32, 32) and r.today.shape == (32, 32)
    assert ((r.futures >= 0) & (r.futures <= 1)).all()
    np.testing.assert_allclose(r.mean, r.futures.mean(0), rtol=1e-6)
    np.testing.assert_allclose(r.std, r.futures.std(0), rtol=1e-5)
    np.testing.assert_allclose(r.difference, r.mean - r.today, rtol=1e-6)
    assert "today's image plus the change" in r.method       # the page shows how futures are built
    assert r.std.max() > 0                                             # the samples differ
    np.testing.assert_allclose(r.kl_probs_future, r.kl_probs_samples.mean(0))
    assert r.kl_probs_now.sum() == pytest.approx(1.0) and r.kl_probs_future.sum() == pytest.approx(1.0)
    # risk = Σ_{i<j} p_now[i]·p̄_future[j]
    brute = sum(r.kl_probs_now[i] * r.kl_probs_future[j] for i in range(5) for j in range(i + 1, 5))
    assert r.risk == pytest.approx(brute) and 0 <= r.risk <= 1
    # the cohort's own follow-up 12 months later, at model size
    nxt = rows_for_ids(cohort, ["S00001_L_V012"])[0]
    assert r.real_future_row == nxt and r.real_future_id == "S00001_L_V012" and r.horizon_months == 12
    np.testing.assert_array_equal(r.real_future, model_inputs(models.diffusion, cohort, [nxt])[0, 0].numpy())
    # same seed, same futures; another seed, others
    again = generate_futures(models, cohort=cohort, row=row, n_samples=3, steps=2, seed=4)
    other = generate_futures(models, cohort=cohort, row=row, n_samples=3, steps=2, seed=5)
    np.testing.assert_array_equal(r.futures, again.futures)
    assert not np.array_equal(r.futures, other.futures)     # (an untrained tiny decoder changes little)


def test_horizons_uploads_and_bad_input(ckpts, cohort):
    models = load_future_models(ckpts / "ld")
    row = rows_for_ids(cohort, ["S00002_L_V000"])[0]
    two = generate_futures(models, cohort=cohort, row=row, n_samples=2, steps=2, seed=0, horizon=24)
    assert two.horizon_months == 24 and two.real_future_id == "S00002_L_V024"   # two chained 12-month steps
    last = rows_for_ids(cohort, ["S00002_L_V024"])[0]
    assert follow_up_row(cohort, last, 12) is None
    assert generate_futures(models, cohort=cohort, row=last, n_samples=1, steps=2).real_future is None
    with pytest.raises(DataError, match="multiple of 12"):
        generate_futures(models, cohort=cohort, row=row, n_samples=1, horizon=18)
    up = generate_futures(models, cohort.images_float(row), n_samples=2, steps=2, seed=0)
    assert up.row is None and up.real_future is None and up.futures.shape == (2, 32, 32)
    with pytest.raises(DataError, match="not in the cohort"):
        rows_for_ids(cohort, ["S00002_L_V000", "nope"])
    with pytest.raises(ConfigError, match="kecae"):
        load_future_models(ckpts / "ke")


# ----------------------------------------------------------------- future: CLI
def test_future_cli_two_ids(ckpts, tiny_cohort, tmp_path):
    out = tmp_path / "fut"
    ids = ["S00000_L_V000", "S00003_L_V012"]
    rc = cli(["future", "--checkpoint", str(ckpts / "ld"), "--image-id", ",".join(ids), "--data", str(tiny_cohort),
              "--samples", "2", "--steps", "2", "--seed", "1", "--out", str(out)])
    assert rc == 0
    table = pd.read_csv(out / "results.csv")
    assert table.image_id.tolist() == ids
    for i in ids:
        files = {p.name for p in (out / i).iterdir()}
        assert {"today.png", "future_00.png", "future_01.png", "mean.png", "std.png", "difference.png",
                "real_future.png", "result.json"} <= files
        res = json.loads((out / i / "result.json").read_text())
        assert 0 <= res["risk"] <= 1 and sum(res["kl_probs_now"]) == pytest.approx(1, abs=1e-5)
        assert len(res["kl_probs_future"]) == 5 and res["steps"] == 2 and res["n_samples"] == 2
        risk = progression_risk(np.array([res["kl_probs_now"]]), np.array([res["kl_probs_samples"]]))[0]
        assert res["risk"] == pytest.approx(risk, abs=1e-5)
        assert table.set_index("image_id").loc[i, "risk"] == pytest.approx(res["risk"])
        png = np.asarray(Image.open(out / i / "future_00.png"))
        assert png.shape == (32, 32) and png.dtype == np.uint8
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]        # no temp folder left


def test_future_cli_image_file(ckpts, cohort, tmp_path):
    img = tmp_path / "knee.png"
    Image.fromarray(np.asarray(cohort.images[0])).save(img)
    out = tmp_path / "fut"
    assert cli(["future", "--checkpoint", str(ckpts / "ld"), "--image", str(img), "--samples", "1",
                "--steps", "2", "--out", str(out)]) == 0
    res = json.loads((out / "knee" / "result.json").read_text())
    assert res["image_id"] is None and 0 <= res["risk"] <= 1 and (out / "knee" / "future_00.png").is_file()


def test_future_cli_bad_input_exits_2_and_writes_nothing(ckpts, tiny_cohort, tmp_path, capsys):
    out = tmp_path / "fut"
    base = ["future", "--data", str(tiny_cohort), "--samples", "1", "--steps", "2", "--out", str(out)]
    assert cli([*base, "--checkpoint", str(ckpts / "ld"), "--image-id", "S00000_L_V000,missing"]) == 2
    assert "missing" in capsys.readouterr().err
    assert cli([*base, "--checkpoint", str(ckpts / "ke"), "--image-id", "S00000_L_V000"]) == 2
    assert "latent_diffusion" in capsys.readouterr().err
    assert cli(["future", "--checkpoint", str(ckpts / "ld"), "--image-id", "S00000_L_V000", "--out", str(out)]) == 2
    assert not out.exists() and not list(tmp_path.iterdir())
    out.mkdir()
    assert cli([*base, "--checkpoint", str(ckpts / "ld"), "--image-id", "S00000_L_V000"]) == 2   # exists
    assert "overwrite" in capsys.readouterr().err


# ----------------------------------------------------------------- exchange
def test_exchange_service_matches_the_model(ckpts, cohort):
    a, b = rows_for_ids(cohort, ["S00000_L_V000", "S00002_L_V000"])
    res = exchange_pair(ckpts / "ke", cohort, a, b)
    m = load_checkpoint(ckpts / "ke").model
    x = model_inputs(m, cohort, [a, b])
    with torch.no_grad():
        ref = m.exchange(x[:1], x[1:])
        for k in ("recon_a", "recon_b", "exchanged_a", "exchanged_b"):
            np.testing.assert_allclose(getattr(res, k), ref[k][0, 0].numpy(), atol=1e-6)
            assert res.p_grade_b[k] == pytest.approx(float(m.discriminator_proba(ref[k])[0]), abs=1e-6)
    np.testing.assert_allclose(res.diff_a, np.abs(res.exchanged_a - res.recon_a))
    assert res.kl_a == int(cohort.metadata.kl.iloc[a]) and (res.grade_a, res.grade_b) == (0, 2)
    assert res.flipped["exchanged_a"] == (res.p_grade_b["exchanged_a"] >= 0.5)
    with pytest.raises(DataError, match="pick two different knees"):
        exchange_pair(ckpts / "ke", cohort, a, a)


def test_exchange_cli(ckpts, tiny_cohort, tmp_path, capsys):
    out = tmp_path / "ex"
    rc = cli(["exchange", "--checkpoint", str(ckpts / "ke"), "--pair", "S00000_L_V000", "S00002_L_V024",
              "--data", str(tiny_cohort), "--out", str(out)])
    assert rc == 0
    assert sorted(p.name for p in out.iterdir()) == ["discriminator.json", "exchanged_a.png", "exchanged_b.png",
                                                     "recon_a.png", "recon_b.png"]
    d = json.loads((out / "discriminator.json").read_text())
    assert set(d["p_grade_b"]) == {"image_a", "image_b", "recon_a", "recon_b", "exchanged_a", "exchanged_b"}
    assert all(0 <= p <= 1 for p in d["p_grade_b"].values())
    assert all(d["p_grade_a"][k] == pytest.approx(1 - d["p_grade_b"][k]) for k in d["p_grade_b"])
    assert d["image_a"]["image_id"] == "S00000_L_V000" and d["image_b"]["image_id"] == "S00002_L_V024"
    assert np.asarray(Image.open(out / "exchanged_a.png")).shape == (32, 32)
    bad = tmp_path / "bad"
    assert cli(["exchange", "--checkpoint", str(ckpts / "ke"), "--pair", "S00000_L_V000", "nope",
                "--data", str(tiny_cohort), "--out", str(bad)]) == 2
    assert cli(["exchange", "--checkpoint", str(ckpts / "vq"), "--pair", "S00000_L_V000", "S00002_L_V024",
                "--data", str(tiny_cohort), "--out", str(bad)]) == 2
    assert "kecae" in capsys.readouterr().err and not bad.exists()


def test_augment_writes_a_cohort_of_exchanged_images(ckpts, tiny_cohort, tmp_path):
    out = tmp_path / "aug"
    assert cli(["augment", "--checkpoint", str(ckpts / "ke"), "--data", str(tiny_cohort), "--pairs", "5",
                "--out", str(out)]) == 0
    aug = load_cohort(out)
    assert len(aug) == 10 and aug.info["source"] == "kecae-augmentation"
    assert sorted(aug.metadata["kl"].value_counts().to_dict().items()) == [(0, 5), (2, 5)]
    assert (aug.metadata["split"] == "train").all()
    # the grade the exchange implies: "a" images carry the KL 2 key
    assert (aug.metadata.loc[aug.metadata["image_id"].str.endswith("a"), "kl"] == 2).all()
    assert cli(["augment", "--checkpoint", str(ckpts / "ke"), "--data", str(tiny_cohort), "--pairs", "0",
                "--out", str(tmp_path / "bad")]) == 2
    assert not (tmp_path / "bad").exists()
