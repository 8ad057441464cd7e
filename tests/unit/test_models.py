"""The classic models' own behaviour (the contract every model keeps is in test_model_contract.py)."""

from __future__ import annotations

import pytest
import torch

from oaviz.models.base import ConfigError, build_model, make_config
from oaviz.models.vaesim import VAESimConfig, ema_update, temperature_at
from tests.tiny_checkpoints import TINY_CONFIGS


def tiny(name, **extra):
    return build_model(name, make_config(name, "demo", {**TINY_CONFIGS[name], **extra}))


def batch(n=6, size=32):
    g = torch.Generator().manual_seed(0)
    return {"image": torch.rand(n, 1, size, size, generator=g), "kl": torch.tensor([0, 1, 2, 3, 4, -1])[:n],
            "oa": torch.tensor([0., 0., 1., 1., 1., float("nan")])[:n], "label": torch.zeros(n, dtype=torch.long),
            "landmarks": torch.rand(n, 16, 2, generator=g)}


def test_bad_values_rejected():
    with pytest.raises(ConfigError, match="similarity must be 'cosine' or 'dot', got 'euclid'"):
        make_config("vaesim", "demo", {"similarity": "euclid"})
    with pytest.raises(ConfigError, match="variant must be one of .*got 'triple'"):
        make_config("dual_head", "demo", {"variant": "triple"})
    with pytest.raises(ConfigError, match="image_size 100 must be a multiple of 32"):
        make_config("beta_vae", "demo", {"image_size": 100})


def test_vaesim_temperature_schedule():
    assert temperature_at(0, 100) == 1.0
    assert temperature_at(25, 100) == pytest.approx(0.505)
    assert temperature_at(50, 100) == pytest.approx(0.01)
    assert temperature_at(99, 100) == pytest.approx(0.01)


def test_vaesim_ema_update_moves_a_prototype_95_percent_to_its_batch_mean():
    """VAESim Algorithm 2: Q_i <- eta * mean(z assigned to i) + (1 - eta) * Q_i, eta = 0.95 (the default)."""
    Q = torch.tensor([[1.0, 0.0], [0.0, 1.0], [5.0, 5.0]])
    z = torch.tensor([[3.0, 0.0], [1.0, 0.0], [0.0, 3.0]])
    labels = torch.tensor([0, 0, 1])  # cluster 2 empty: keeps its value
    assert VAESimConfig().ema_mode == "paper"
    new = ema_update(Q, z, labels, eta=0.95, mode="paper")
    torch.testing.assert_close(new[0], torch.tensor([0.95 * 2.0 + 0.05 * 1.0, 0.0]))   # [1.95, 0]
    torch.testing.assert_close(new[1], torch.tensor([0.0, 0.95 * 3.0 + 0.05 * 1.0]))   # [0, 2.9]
    torch.testing.assert_close(new[2], Q[2])
    slow = ema_update(Q, z, labels, eta=0.95, mode="slow")
    torch.testing.assert_close(slow[0], torch.tensor([0.95 * 1.0 + 0.05 * 2.0, 0.0]))  # [1.05, 0]
    with pytest.raises(ValueError, match="unknown ema mode"):
        ema_update(Q, z, labels, eta=0.95, mode="reverse")


def test_vaesim_config_reads_the_old_reference_name_as_the_paper_update():
    assert VAESimConfig(ema_mode="reference").ema_mode == "paper"
    with pytest.raises(ValueError, match="batch mean weighted by eta"):
        VAESimConfig(ema_mode="momentum")


def test_vaesim_training_step_pulls_prototypes_to_their_batch_means():
    """After one step each used prototype sits within 5 % of the batch mean of its members."""
    torch.manual_seed(0)
    m = tiny("vaesim", n_prototypes=4)
    m.train()
    m.loss(batch(), 0)
    before = m.prototypes.clone()
    z, c = m._last
    torch.manual_seed(1)
    labels = torch.multinomial(c.float().clamp_min(1e-12), 1).squeeze(1)
    torch.manual_seed(1)
    m.on_train_step_end(None, 0)
    for k in labels.unique():
        mean = z[labels == k].mean(0)
        torch.testing.assert_close(m.prototypes[k], 0.95 * mean + 0.05 * before[k])


def test_vaesim_prototypes_initialised_from_first_batch():
    torch.manual_seed(0)
    m = tiny("vaesim", n_prototypes=4)
    assert not bool(m.initialised)
    m.train()
    b = batch()
    m.loss(b, 0)
    assert bool(m.initialised)
    # every prototype is (up to a tiny jitter) one of the batch's latents
    z = m._last[0]
    d = torch.cdist(m.prototypes, z).min(1).values
    assert (d < 0.05).all()


def test_dual_head_variants_use_only_their_heads():
    b = batch()
    for variant, keys in (("single_oa", {"bce_oa"}), ("single_kl", {"ce_kl"}), ("dual", {"bce_oa", "ce_kl"})):
        m = tiny("dual_head", variant=variant)
        assert set(m.loss(b).terms) == keys
        p = m.predict_oa_proba(b["image"])
        assert p.shape == (6,) and ((p >= 0) & (p <= 1)).all()
    assert tiny("dual_head", variant="single_oa").predict_kl_proba(b["image"]) is None


def test_beta_vae_prior_samples_and_warmup():
    m = tiny("beta_vae", beta_warmup_steps=10)
    m.eval()
    s = m.sample_prior(5, temperature=0.5, generator=torch.Generator().manual_seed(0))
    assert s.shape == (5, 1, 32, 32) and (s >= 0).all() and (s <= 1).all()
    m.train()
    assert float(m.loss(batch(), step=5).terms["beta"]) == pytest.approx(2.0)


def test_vaesim_sample_near_prototype_respects_threshold():
    torch.manual_seed(0)
    m = tiny("vaesim", n_prototypes=4)
    m.train()
    m.loss(batch(), 0)
    m.eval()
    decoded, decode = [], m.decode
    m.decode = lambda z, c=None: decoded.append(z) or decode(z, c)          # record the latents it decodes
    imgs, sims = m.sample_near_prototype(1, 8, threshold=0.9, generator=torch.Generator().manual_seed(0))
    assert imgs.shape == (8, 1, 32, 32) and sims.shape == (8,)
    (z,) = decoded
    # the images are decoded from latents around prototype 1, and the similarities are theirs
    cos = torch.nn.functional.cosine_similarity(z, m.prototypes[1].unsqueeze(0), dim=1)
    torch.testing.assert_close(sims, cos)
    assert (cos >= 0.9).all() and (cos < 1).all()
    assert torch.equal(imgs, decode(z))
