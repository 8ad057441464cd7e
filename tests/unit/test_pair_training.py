"""The training engine fed with pairs: visit pairs (latent diffusion) and grade pairs (KECAE), on the tiny cohort."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
import torch

from oaviz.cli import main as cli
from oaviz.data.cohort import load_cohort, write_cohort
from oaviz.data.errors import DataError
from oaviz.models.base import build_model, make_config
from oaviz.training import ddp
from oaviz.training.checkpoint import load_checkpoint, read_checkpoint_info
from oaviz.training.data import (BATCH_KINDS, PairTensors, grade_pair_tensors, pair_seed, resize_images,
                                 training_data, visit_pair_tensors)
from oaviz.training.events import read_events

VQ = ["--set", "image_size=32", "--set", "widths=[4,8,8]", "--set", "res_blocks=1", "--set", "embedding_dim=2",
      "--set", "codebook_size=16"]
LD = ["--set", "image_size=32", "--set", "width=8", "--set", "mults=[1,2]", "--set", "res_blocks=1",
      "--set", "num_steps=100", "--set", "sample_steps=3"]
KE = ["--set", "image_size=32", "--set", "widths=[4,8,8]", "--set", "disc_widths=[4,8]",
      "--set", "discriminator_pretrain_steps=2"]


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def cohort(tiny_cohort):
    return load_cohort(tiny_cohort)


def ld_config(**extra):
    return make_config("latent_diffusion", "demo", {"image_size": 32, "vqvae_checkpoint": "unused", **extra})


def kecae_config(**extra):
    return make_config("kecae", "demo", {"image_size": 32, "widths": [4, 8, 8], **extra})


# ----------------------------------------------------------------- visit pairs
def test_engine_feeds_all_batch_kinds():
    assert set(BATCH_KINDS) == {"images", "visit_pairs", "grade_pairs"}


def test_visit_pairs_are_one_knee_a_visit_later_within_the_split(cohort):
    m = cohort.metadata
    train, val = training_data(cohort, "visit_pairs", ld_config(), None, 0)
    assert isinstance(train, PairTensors) and isinstance(val, PairTensors)
    for data, split in ((train, "train"), (val, "val")):
        pr = data.pair_rows
        now, nxt = m.iloc[pr[:, 0]], m.iloc[pr[:, 1]]
        assert (now.subject_id.to_numpy() == nxt.subject_id.to_numpy()).all()        # never mixes subjects …
        assert (now.side.to_numpy() == nxt.side.to_numpy()).all()                    # … or sides
        assert ((nxt.visit_month.to_numpy() - now.visit_month.to_numpy()) == 12).all()  # follow-up is later
        assert (now.split == split).all() and (nxt.split == split).all()
        # every knee of the split with visits 0, 12, 24 gives exactly two pairs
        knees = m[m.split == split].groupby(["subject_id", "side"]).size()
        assert len(data) == int((knees - 1).sum())
        assert len(data.image) == len(data.kl) == len(data.oa) == len(data.rows) == len(data)
    # the two splits share no subject
    assert not set(m.subject_id.iloc[train.rows]) & set(m.subject_id.iloc[val.rows])


def test_visit_pair_batches_hold_the_right_images_and_grades(cohort):
    train, _ = training_data(cohort, "visit_pairs", ld_config(), None, 0)
    idx = [0, 3, len(train) - 1]
    b = train.batch(idx, "cpu")
    assert set(b) == {"image", "image_next", "kl", "kl_next", "oa", "label", "landmarks", "landmarks_next", "progressed"}
    pr = train.pair_rows[idx]
    h, w = cohort.image_size
    lm = cohort.landmarks()
    torch.testing.assert_close(b["landmarks_next"], torch.from_numpy(lm[pr[:, 1]] / np.array([w, h], np.float32)))
    torch.testing.assert_close(b["image"], resize_images(cohort.images[pr[:, 0]], 32, 255.0))
    torch.testing.assert_close(b["image_next"], resize_images(cohort.images[pr[:, 1]], 32, 255.0))
    kl = cohort.metadata.kl.to_numpy()
    assert b["kl"].tolist() == kl[pr[:, 0]].tolist() and b["kl_next"].tolist() == kl[pr[:, 1]].tolist()
    assert b["progressed"].tolist() == (kl[pr[:, 1]] > kl[pr[:, 0]]).astype(int).tolist()
    # the first-image attributes validation metrics read are those of column 0
    torch.testing.assert_close(train.image[idx], b["image"])
    # the union of images is resized once: no more rows than the pairs use
    assert len(train.base) == len(np.unique(train.pair_rows))


def test_visit_pairs_horizon_and_cap(cohort):
    tr = cohort.split_indices("train")
    with pytest.raises(DataError, match=r"24 months apart.*\[12\]"):
        visit_pair_tensors(cohort, tr, 32, horizon_months=24)
    full = visit_pair_tensors(cohort, tr, 32, horizon_months=12)
    capped = visit_pair_tensors(cohort, tr, 32, horizon_months=12, max_pairs=5, seed=1)
    assert len(capped) == 5 and len(capped.base) <= 10
    assert {tuple(p) for p in capped.pair_rows} <= {tuple(p) for p in full.pair_rows}
    assert "visit pairs" in capped.describe()


def _baseline_only(cohort, path):
    keep = np.flatnonzero(cohort.metadata.visit_month.to_numpy() == 0)
    meta = cohort.metadata.iloc[keep].reset_index(drop=True)
    return write_cohort(path, np.asarray(cohort.images[keep]), meta, {"source": "synthetic"})


def test_cohort_without_follow_ups_is_a_clear_error(cohort, tmp_path, capsys):
    path = _baseline_only(cohort, tmp_path / "baseline-only")
    with pytest.raises(DataError, match="no follow-up visits"):
        training_data(load_cohort(path), "visit_pairs", ld_config(), None, 0)
    # through the CLI: exit 2 before any model is built (the VQ-VAE path is not even checked), nothing written
    rc = cli(["train", "latent_diffusion", "--data", str(path), "--out", str(tmp_path / "ck"),
              "--run-dir", str(tmp_path / "run"), *LD, "--set", "vqvae_checkpoint=/nowhere"])
    assert rc == 2 and "no follow-up visits" in capsys.readouterr().err
    assert not (tmp_path / "ck").exists()


# ----------------------------------------------------------------- grade pairs
def test_grade_pairs_pair_kl0_with_kl2_and_are_redrawn_per_epoch(cohort):
    kl = cohort.metadata.kl.to_numpy()
    train, val = training_data(cohort, "grade_pairs", kecae_config(), None, 3)
    tr = cohort.split_indices("train")
    n0, n2 = int((kl[tr] == 0).sum()), int((kl[tr] == 2).sum())
    assert len(train) == max(n0, n2)
    pr = train.pair_rows
    assert (kl[pr[:, 0]] == 0).all() and (kl[pr[:, 1]] == 2).all()
    assert set(pr[:, 1]) == set(tr[kl[tr] == 2])            # every image of the rarer grade is used
    assert set(pr[:, 0]) == set(tr[kl[tr] == 0])
    b = train.batch([0, 1], "cpu")
    torch.testing.assert_close(b["image_pair"], resize_images(cohort.images[pr[:2, 1]], 32, 255.0))
    assert b["kl_pair"].tolist() == [2, 2] and "image_next" not in b
    first = train.pairs.copy()
    train.set_epoch(1)
    assert len(train) == len(first) and not np.array_equal(first, train.pairs)
    train.set_epoch(0)
    assert np.array_equal(first, train.pairs)               # seeded by (seed, epoch): a resume redraws the same
    assert pair_seed(3, 1) != pair_seed(3, 2) and pair_seed(3, 1) == pair_seed(3, 1)
    v0 = val.pairs.copy()
    val.set_epoch(5)
    assert np.array_equal(v0, val.pairs)                    # validation pairs stay fixed
    assert len(grade_pair_tensors(cohort, tr, 32, max_pairs=4)) == 4


def test_grade_pairs_need_both_grades(cohort):
    tr = cohort.split_indices("train")
    no_kl2 = tr[cohort.metadata.kl.to_numpy()[tr] != 2]
    with pytest.raises(DataError, match="KL 0 and KL 2"):
        grade_pair_tensors(cohort, no_kl2, 32)
    with pytest.raises(DataError, match="KL 1 and KL 4"):      # the config's grades are used
        training_data(cohort, "grade_pairs", kecae_config(grade_a=1, grade_b=4), None, 0)


def test_ddp_looks_for_unused_parameters_only_where_needed():
    assert ddp.needs_unused_parameter_search(build_model("kecae", kecae_config(widths=[4, 8, 8], disc_widths=[4, 8])))
    assert not ddp.needs_unused_parameter_search(build_model("beta_vae", make_config(
        "beta_vae", "demo", {"image_size": 32, "widths": [4, 8, 8]})))


# ----------------------------------------------------------------- end to end through the CLI
def test_train_vqvae_then_latent_diffusion_on_visit_pairs(tmp_path, tiny_cohort):
    vq = tmp_path / "vq"
    assert cli(["train", "vqvae", "--data", str(tiny_cohort), "--out", str(vq), "--run-dir", str(tmp_path / "r1"),
                "--epochs", "1", "--batch-size", "16", *VQ]) == 0
    out, run = tmp_path / "ld", tmp_path / "r2"
    assert cli(["train", "latent_diffusion", "--data", str(tiny_cohort), "--out", str(out), "--run-dir", str(run),
                "--epochs", "1", "--batch-size", "4", "--max-images", "8", *LD,
                "--set", f"vqvae_checkpoint={vq}"]) == 0
    ev = read_events(run / "events.jsonl")
    start = ev[0]
    assert start["batch_kind"] == "visit_pairs" and start["n_train"] == 8 and start["steps_per_epoch"] == 2
    assert start["n_val"] == 4                                  # the val split's two knees, two pairs each
    epoch = next(e for e in ev if e["event"] == "epoch")
    assert np.isfinite(epoch["train"]["mse_v"]) and np.isfinite(epoch["val"]["loss"])
    info = read_checkpoint_info(out)
    assert info["cohort"]["n_train"] == 8 and info["cohort"]["batch_kind"] == "visit_pairs"
    card = info["card"]
    assert card["vqvae"] == str(vq) and card["horizon_months"] == "12" and "8 visit pairs" in card["training_data"]
    assert card["summary"].startswith("conditional latent diffusion")     # notes never replace the standard keys
    m = load_checkpoint(out).model
    assert bool(m.stats_initialised)
    x = torch.rand(1, 1, 32, 32)
    assert m.sample_future(x, 2, seed=0).shape == (1, 2, 1, 32, 32)


def test_kecae_trains_an_epoch_on_grade_pairs(tmp_path, tiny_cohort):
    out, run = tmp_path / "ke", tmp_path / "r"
    assert cli(["train", "kecae", "--data", str(tiny_cohort), "--out", str(out), "--run-dir", str(run),
                "--epochs", "1", "--batch-size", "8", *KE]) == 0
    start = read_events(run / "events.jsonl")[0]
    meta = pd.read_csv(tiny_cohort / "metadata.csv")
    tr = meta[meta.split == "train"]
    assert start["batch_kind"] == "grade_pairs" and start["n_train"] == max((tr.kl == 0).sum(), (tr.kl == 2).sum())
    info = read_checkpoint_info(out)
    assert "frozen" in info["card"]["discriminator"] and "Fisher" in info["card"]["loss"]
    assert "redrawn every epoch" in info["card"]["training_data"]
    assert "val_mse" in info["metrics"]                      # reconstruction of the first (KL 0) images
    m = load_checkpoint(out).model
    x = torch.rand(2, 1, 32, 32)
    assert m.exchange(x[:1], x[1:])["exchanged_a"].shape == (1, 1, 32, 32)


def test_kecae_under_torchrun_two_processes(tmp_path, tiny_cohort):
    """The frozen discriminator gets no gradient after its pretraining steps: DDP must be told to look for
    unused parameters, or the second step fails ("Expected to have finished reduction …")."""
    out, run = tmp_path / "ddp", tmp_path / "run"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    torchrun = os.path.join(os.path.dirname(sys.executable), "torchrun")
    r = subprocess.run([torchrun, "--nproc-per-node", "2", "-m", "oaviz", "train", "kecae", "--data", str(tiny_cohort),
                        "--out", str(out), "--run-dir", str(run), "--epochs", "2", "--batch-size", "4", *KE],
                       env=env, capture_output=True, text=True, timeout=240)
    assert r.returncode == 0, r.stderr[-2000:]
    info = read_checkpoint_info(out)
    assert info["training"]["world_size"] == 2 and info["training"]["epochs"] == 2
    steps = [e for e in read_events(run / "events.jsonl") if e["event"] == "epoch"]
    assert [e["train"]["disc_training"] for e in steps][-1] == 0.0     # the frozen regime was reached
