"""KECAE with a tiny config: sizes, the exchange, the hybrid loss term by term, the discriminator modes."""

from __future__ import annotations

import pytest
import torch
from torch.nn import functional as F

from oaviz.data.errors import DataError
from oaviz.models.base import ConfigError, build_model, config_to_dict, make_config
from oaviz.models.kecae import encoder_sizes, fisher_ratio
from oaviz.training.checkpoint import load_checkpoint, read_checkpoint_info, save_checkpoint
from tests.tiny_checkpoints import TINY_CONFIGS

TINY = TINY_CONFIGS["kecae"]


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def tiny(**extra):
    return build_model("kecae", make_config("kecae", "demo", {**TINY, **extra}))


def pairs(n=4, seed=0):
    g = torch.Generator().manual_seed(seed)
    return {"image": torch.rand(n, 1, 32, 32, generator=g), "image_pair": torch.rand(n, 1, 32, 32, generator=g)}


def grads_of(module):
    return [p.grad for p in module.parameters()]


def test_sizes_and_shapes():
    assert encoder_sizes(299, 7) == [299, 149, 74, 36, 17, 8, 3, 1]     # paper: 2048×1×1 vectors
    assert encoder_sizes(128, 6)[-1] == 1                                  # demo preset
    torch.manual_seed(0)
    m = tiny()
    b = pairs()
    assert m.latent_shape == (8, 3, 3) and m.embed_dim == 72
    out = m.forward_pair(b["image"], b["image_pair"])
    for k in ("recon_a", "recon_b", "exchanged_a", "exchanged_b"):
        assert out[k].shape == (4, 1, 32, 32) and (out[k] >= 0).all() and (out[k] <= 1).all()
    assert out["key_a"].shape == (4, 8, 3, 3)
    m.eval()                                 # the contract (determinism, save/load, …): test_model_contract.py
    x = b["image"]
    enc = m.encode(x)
    torch.testing.assert_close(m.decode(enc.z.flatten(1)), m.decode(enc.z))   # flat or spatial latents


def test_exchange_decodes_own_nonkey_plus_other_key():
    torch.manual_seed(0)
    m = tiny()
    m.eval()
    b = pairs()
    xa, xb = b["image"], b["image_pair"]
    ex = m.exchange(xa, xb)
    ka, na = m.encode_parts(xa)
    kb, nb = m.encode_parts(xb)
    torch.testing.assert_close(ex["recon_a"], m.decode(na + ka))
    torch.testing.assert_close(ex["exchanged_a"], m.decode(na + kb))
    torch.testing.assert_close(ex["exchanged_b"], m.decode(nb + ka))
    # key and non-key come from encoders with separate weights
    assert m.key_encoder[0].weight.data_ptr() != m.nonkey_encoder[0].weight.data_ptr()
    assert not torch.equal(ka, na)


def test_fisher_ratio_hand_case():
    key = torch.tensor([[1.0, 1.0, 3.0, 3.0]])          # μ 2, σ² 1
    nonkey = torch.tensor([[0.0, 0.0, 0.0, 0.0]])       # μ 0, σ² 0
    assert float(fisher_ratio(key, nonkey, eps=0.0)) == pytest.approx(1.0 / 4.0)
    nonkey2 = torch.tensor([[-1.0, 1.0, -1.0, 1.0]])    # μ 0, σ² 1
    assert float(fisher_ratio(key, nonkey2, eps=0.0)) == pytest.approx(2.0 / 4.0)
    # two images: per-image ratios, or one ratio over the whole batch (the public code)
    k = torch.tensor([[1.0, 1.0, 3.0, 3.0], [2.0, 2.0, 2.0, 2.0]])
    n = torch.tensor([[0.0, 0.0, 0.0, 0.0], [0.0, 0.0, 0.0, 0.0]])
    torch.testing.assert_close(fisher_ratio(k, n, 0.0, scope="image"), torch.tensor([0.25, 0.0]))
    assert float(fisher_ratio(k, n, 0.0, scope="batch")) == pytest.approx(0.5 / 4.0)   # σ_K² 0.5, μ_K 2


def _expected_terms(m, b):
    """The hybrid loss recomputed by hand from the model's parts."""
    xa, xb = b["image"], b["image_pair"]
    ka, na = m.encode_parts(xa)
    kb, nb = m.encode_parts(xb)
    mse = F.mse_loss(m.decode(na + ka), xa) + F.mse_loss(m.decode(nb + kb), xb)
    zeros, ones = torch.zeros(len(xa), dtype=torch.long), torch.ones(len(xb), dtype=torch.long)
    sup = F.cross_entropy(m.discriminator(m.decode(na + kb)), ones) + F.cross_entropy(m.discriminator(m.decode(nb + ka)), zeros)
    fisher = fisher_ratio(ka, na, 1e-8, "batch") + fisher_ratio(kb, nb, 1e-8, "batch")
    disc = F.cross_entropy(m.discriminator(torch.cat([xa, xb])), torch.cat([zeros, ones]))
    return mse, sup, fisher, disc


@pytest.mark.parametrize("mode, step, sup_on, disc_on", [
    ("frozen", 0, False, True),       # paper: the discriminator trains first …
    ("frozen", 10, True, False),      # … then is frozen and judges the exchanged outputs
    ("joint", 0, True, True),         # public code: both, every step
    ("joint", 50, True, True),
])
def test_hybrid_loss_terms_and_discriminator_modes(mode, step, sup_on, disc_on):
    torch.manual_seed(0)
    m = tiny(discriminator=mode)
    m.eval()                           # batch-norm running stats: the hand computation sees the same network
    b = pairs()
    out = m.loss(b, step)
    mse, sup, fisher, disc = _expected_terms(m, b)
    expected = mse + 1e-3 * fisher + (1e-2 * sup if sup_on else 0) + (disc if disc_on else 0)
    torch.testing.assert_close(out.total, expected)
    torch.testing.assert_close(out.terms["sup"], sup.detach())
    assert float(out.terms["disc_training"]) == float(disc_on)
    out.total.backward()
    enc_grads = grads_of(m.key_encoder) + grads_of(m.nonkey_encoder) + grads_of(m.decoder)
    assert all(g is not None and torch.isfinite(g).all() for g in enc_grads)
    disc_grads = grads_of(m.discriminator)
    if disc_on:
        assert all(g is not None for g in disc_grads)
    else:
        assert all(g is None for g in disc_grads)   # frozen: no gradient reaches its weights


def test_exchange_term_never_trains_the_discriminator():
    torch.manual_seed(0)
    m = tiny(discriminator="joint")
    b = pairs()
    out = m.forward_pair(b["image"], b["image_pair"])
    logits = m.discriminator_logits(out["exchanged_a"], train_weights=False)
    F.cross_entropy(logits, torch.ones(4, dtype=torch.long)).backward()
    assert all(g is None for g in grads_of(m.discriminator))
    assert all(g is not None for g in grads_of(m.key_encoder))     # but it does reach the autoencoder


def test_frozen_discriminator_weights_unchanged_by_an_optimiser_step():
    torch.manual_seed(0)
    m = tiny(discriminator="frozen", discriminator_pretrain_steps=0)
    before = {k: v.clone() for k, v in m.discriminator.state_dict().items()}
    enc_before = m.key_encoder[0].weight.clone()
    opt = torch.optim.Adam(m.parameters(), 1e-2)
    m.train()
    out = m.loss(pairs(), step=0)
    opt.zero_grad(set_to_none=True)
    out.total.backward()
    opt.step()
    assert all(torch.equal(before[k], v) for k, v in m.discriminator.state_dict().items())
    assert not torch.equal(enc_before, m.key_encoder[0].weight)


def test_tiny_training_reduces_reconstruction_error():
    torch.manual_seed(0)
    m = tiny(discriminator="joint")
    b = pairs(n=8)
    opt = torch.optim.Adam(m.parameters(), 3e-3)
    m.train()
    first = None
    for step in range(25):
        out = m.loss(b, step)
        first = first if first is not None else float(out.terms["mse"])
        opt.zero_grad()
        out.total.backward()
        opt.step()
    assert torch.isfinite(out.total) and float(out.terms["mse"]) < first


def test_save_load_identity_records_the_discriminator_mode(tmp_path):
    torch.manual_seed(1)
    m = tiny(discriminator="joint")
    m.train()
    m.loss(pairs(), 0).total.backward()
    m.eval()
    save_checkpoint(m, tmp_path / "ck")
    assert read_checkpoint_info(tmp_path / "ck")["config"]["discriminator"] == "joint"
    assert "jointly" in m.card_notes()["discriminator"] and "frozen" in tiny().card_notes()["discriminator"]
    m2 = load_checkpoint(tmp_path / "ck").model
    b = pairs()
    assert torch.equal(m.embed(b["image"]), m2.embed(b["image"]))
    for k, v in m.exchange(b["image"], b["image_pair"]).items():
        assert torch.equal(v, m2.exchange(b["image"], b["image_pair"])[k])
    torch.testing.assert_close(m.discriminator_proba(b["image"]), m2.discriminator_proba(b["image"]))


def test_config_strict_and_validated():
    assert config_to_dict(make_config("kecae", "paper"))["discriminator"] == "frozen"
    assert make_config("kecae", "paper").widths[-1] == 2048 and make_config("kecae", "paper").image_size == 299
    with pytest.raises(ConfigError, match="unknown key"):
        make_config("kecae", "demo", {"lambda3": 1.0})
    with pytest.raises(ConfigError, match="discriminator must be one of .*got 'both'"):
        make_config("kecae", "demo", {"discriminator": "both"})
    with pytest.raises(ConfigError, match="fisher_scope must be 'batch' or 'image', got 'channel'"):
        make_config("kecae", "demo", {"fisher_scope": "channel"})
    with pytest.raises(ConfigError, match="image_size 16 is too small for 4 3×3 stride-2 blocks"):
        make_config("kecae", "demo", {"image_size": 16})          # four 3×3 stride-2 blocks do not fit
    with pytest.raises(ConfigError, match="grade_a and grade_b must differ"):
        make_config("kecae", "demo", {"grade_b": 0})


def test_needs_image_pair():
    with pytest.raises(DataError, match="image_pair"):
        tiny().loss({"image": torch.rand(2, 1, 32, 32)})


def test_pretrained_classifier_as_the_frozen_judge(tmp_path):
    """discriminator_checkpoint: a saved multi-task classifier judges KL a vs KL b; it is never trained,
    never saved inside the KECAE, and its two logits are the classifier's KL a and KL b logits."""
    torch.manual_seed(0)
    clf = build_model("multitask", make_config("multitask", "demo", {"image_size": 32, "widths": [4, 8, 8],
                                                                      "deconv_widths": [8, 8]}))
    clf.eval()
    save_checkpoint(clf, tmp_path / "clf")
    m = tiny(discriminator_checkpoint=str(tmp_path / "clf"))
    assert not any(k.startswith("_judge") or "judge" in k for k in m.state_dict())
    b = pairs()
    x = torch.cat([b["image"], b["image_pair"]])
    torch.testing.assert_close(m.discriminator_logits(x), clf(x)["kl"][:, [0, 2]])
    assert not m.discriminator_trains(0) and m.exchange_term_on(0)     # no pretraining phase with a judge
    judge_before = {k: v.clone() for k, v in m.judge.state_dict().items()}
    opt = torch.optim.Adam(m.parameters(), 1e-2)
    m.train()
    out = m.loss(b, 0)
    assert out.terms["disc_training"] == 0 and torch.isfinite(out.total)
    opt.zero_grad()
    out.total.backward()
    opt.step()
    assert all(torch.equal(judge_before[k], v) for k, v in m.judge.state_dict().items())
    assert all(p.grad is None for p in m.discriminator.parameters())   # the own discriminator sits idle
    assert "pretrained classifier" in m.card_notes()["discriminator"]
    with pytest.raises(ValueError, match="32 px"):
        tiny(image_size=64, discriminator_checkpoint=str(tmp_path / "clf"))
    with pytest.raises(ValueError, match="frozen"):
        tiny(discriminator="joint", discriminator_checkpoint=str(tmp_path / "clf"))


def test_validation_score_leaves_out_the_fisher_ratio():
    m = tiny()
    a = {"loss": 500.0, "mse": 0.02, "sup": 1.0, "fisher": 5e5}
    b = {"loss": 0.9, "mse": 0.05, "sup": 1.2, "fisher": 10.0}
    assert m.validation_score(a) == pytest.approx(0.02 + 0.01 * 1.0)
    assert m.validation_score(a) < m.validation_score(b)      # better images and exchange win, whatever the ratio
