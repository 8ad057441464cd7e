"""VQ-VAE, diffusion process and U-Net, latent/pixel diffusion models, multi-task classifier.

Tiny configs only (32 px, a few channels): the maths checked by hand and each model's own
behaviour (the contract every model keeps is in test_model_contract.py).
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from oaviz.analysis.progression_risk import progression_risk
from oaviz.data.errors import DataError
from oaviz.models.base import ConfigError, build_model, make_config
from oaviz.models.diffusion_unet import DiffusionUNet, timestep_embedding
from oaviz.models.latent_diffusion import GaussianDiffusion, LatentDiffusion, make_betas
from oaviz.models.multitask import landmark_error, soft_argmax
from oaviz.models.vqvae import VectorQuantizerEMA, ema_codebook_update
from tests.tiny_checkpoints import TINY_CONFIGS as TINY


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def tiny_vqvae(**extra):
    return build_model("vqvae", make_config("vqvae", "demo", {**TINY["vqvae"], **extra}))


def tiny(name, vqvae=None, **extra):
    cfg = make_config(name, "demo", {**TINY[name], **extra})
    if name == "latent_diffusion" and not cfg.vqvae_checkpoint:
        return LatentDiffusion(cfg, vqvae=vqvae or tiny_vqvae())
    return build_model(name, cfg)


def batch(n=4, size=32, seed=0):
    g = torch.Generator().manual_seed(seed)
    lm = torch.rand(n, 16, 2, generator=g)
    lm[-1] = float("nan")                       # one image without landmarks
    return {"image": torch.rand(n, 1, size, size, generator=g), "image_next": torch.rand(n, 1, size, size, generator=g),
            "kl": torch.tensor([0, 1, 2, -1, 4, 3])[:n], "oa": torch.tensor([0., 0., 1., float("nan"), 1., 1.])[:n],
            "label": torch.zeros(n, dtype=torch.long), "landmarks": lm}


def warm(m, b):
    """One training forward + hook (initialises the VQ codebook / latent statistics)."""
    m.train()
    m.loss(b, 0)
    m.on_train_step_end(b, 0)
    m.eval()


# ----------------------------------------------------------------- configs
def test_bad_values_rejected():
    with pytest.raises(ConfigError, match="image_size 100 must be a multiple of 8"):
        make_config("vqvae", "demo", {"image_size": 100})            # not a multiple of 8
    with pytest.raises(ConfigError, match="schedule must be one of .*got 'quadratic'"):
        make_config("latent_diffusion", "demo", {"schedule": "quadratic"})
    with pytest.raises(ConfigError, match="landmark_loss must be 'l1' or 'mse', got 'huber'"):
        make_config("multitask", "demo", {"landmark_loss": "huber"})
    with pytest.raises(ConfigError, match="vqvae_checkpoint"):
        build_model("latent_diffusion", make_config("latent_diffusion", "demo"))
    with pytest.raises(ConfigError, match="image_size"):
        LatentDiffusion(make_config("latent_diffusion", "demo", {**TINY["latent_diffusion"], "image_size": 64}),
                        vqvae=tiny_vqvae())


# ----------------------------------------------------------------- VQ-VAE
def test_vqvae_paper_preset_downsamples_8x():
    assert make_config("vqvae", "paper").downsample == 8


def test_vqvae_compresses_8x_and_decodes_continuous_latents():
    m = tiny_vqvae()
    warm(m, batch())
    x = batch()["image"]
    z = m.encode_continuous(x)
    assert z.shape == (4, 2, 4, 4)
    assert m.decode_continuous(z).shape == x.shape
    zq, idx = m.quantise(z)
    # each vector is a code, up to the rounding of the straight-through z + (z_q − z).detach()
    torch.testing.assert_close(zq, m.quantizer.codebook[idx].permute(0, 3, 1, 2), rtol=0, atol=1e-6)
    assert torch.equal(m.decode_continuous(z), m.decode(zq))


def test_ema_update_moves_used_codes_toward_their_mean():
    count = torch.tensor([2.0, 2.0])
    esum = torch.tensor([[2.0, 0.0], [0.0, 2.0]])            # codes (1, 0) and (0, 1)
    z = torch.tensor([[3.0, 0.0], [5.0, 0.0]])               # both assigned to code 0, mean (4, 0)
    c, s, cb = ema_codebook_update(count, esum, z, torch.tensor([0, 0]), decay=0.9, eps=0.0)
    torch.testing.assert_close(c, torch.tensor([2.0, 1.8]))
    torch.testing.assert_close(s[0], torch.tensor([2.6, 0.0]))
    # (0.9·2·(1,0) + 0.1·2·(4,0)) / 2 = (1.3, 0): a step from the old code toward the batch mean
    torch.testing.assert_close(cb, torch.tensor([[1.3, 0.0], [0.0, 1.0]]))


def test_quantizer_initialises_from_batch_and_restarts_dead_codes():
    torch.manual_seed(0)
    q = VectorQuantizerEMA(4, 2, decay=0.9, eps=1e-5, restart_after=2)
    q.train()
    z = torch.tensor([[10.0, 10.0], [10.5, 9.5], [11.0, 10.0], [9.0, 10.0]]).view(1, 2, 2, 2).permute(0, 1, 2, 3)
    flat = VectorQuantizerEMA.flatten(z)
    q(z)
    assert bool(q.initialised)
    assert torch.cdist(q.codebook, flat).min(1).values.max() < 0.01   # every code is (about) a batch encoding
    # force a state where only code 0 is ever hit: the other three are dead after two updates
    q.codebook.copy_(torch.tensor([[10.0, 10.0], [-50.0, -50.0], [60.0, 0.0], [0.0, 60.0]]))
    q.ema_sum.copy_(q.codebook * q.ema_count[:, None])
    idx = q.nearest(flat)
    assert (idx == 0).all()
    assert q.update(flat, idx) == 0
    assert q.unused_steps.tolist() == [0, 1, 1, 1]
    n = q.update(flat, idx, generator=torch.Generator().manual_seed(0))
    assert n == 3 and q.unused_steps.tolist() == [0, 0, 0, 0]
    for k in (1, 2, 3):
        assert (q.codebook[k] == flat).all(1).any()                   # restarted on a real encoding
        assert float(q.ema_count[k]) == 1.0


def test_vqvae_training_step_applies_the_ema_update():
    torch.manual_seed(0)
    m = tiny_vqvae()
    b = batch()
    m.train()
    m.loss(b, 0)
    before = m.quantizer.codebook.clone()
    m.on_train_step_end(b, 0)
    assert not torch.equal(before, m.quantizer.codebook)
    assert m._last is None


# ----------------------------------------------------------------- diffusion process
def test_alpha_bars_monotone_in_unit_interval_and_cosine_values():
    T = 1000
    d = GaussianDiffusion(T, "cosine")
    ab = d.alpha_bars
    assert ab.shape == (T,) and ab.dtype == torch.float64
    assert (ab > 0).all() and (ab < 1).all() and (ab[1:] < ab[:-1]).all()
    assert float(d.betas.max()) <= 0.999 + 1e-12

    def f(t):
        return math.cos((t / T + 0.008) / 1.008 * math.pi / 2) ** 2

    for t in (1, 10, 250, 500, 900):                        # index t−1 holds ᾱ at t (no clipping this early)
        assert float(ab[t - 1]) == pytest.approx(f(t) / f(0), rel=1e-10)
    assert float(ab[499]) == pytest.approx(0.5, abs=0.02)   # the cosine schedule's midpoint
    lin = GaussianDiffusion(T, "linear")
    torch.testing.assert_close(lin.betas[[0, -1]], torch.tensor([1e-4, 0.02], dtype=torch.float64))
    assert (lin.alpha_bars[1:] < lin.alpha_bars[:-1]).all()
    with pytest.raises(ValueError, match="schedule must be one of .*got 'sigmoid'"):
        make_betas(10, "sigmoid")


def test_v_target_identity_recovers_x0_and_eps():
    d = GaussianDiffusion(1000)
    g = torch.Generator().manual_seed(0)
    x0 = torch.randn(6, 2, 4, 4, generator=g, dtype=torch.float64)
    eps = torch.randn(6, 2, 4, 4, generator=g, dtype=torch.float64)
    t = torch.tensor([0, 1, 100, 500, 998, 999])
    x_t = d.q_sample(x0, t, eps)
    v = d.v_target(x0, eps, t)
    ab = d.alpha_bars[t].view(-1, 1, 1, 1)
    torch.testing.assert_close(v, ab.sqrt() * eps - (1 - ab).sqrt() * x0)
    x0_hat, eps_hat = d.predict_x0_eps(x_t, v, t)
    torch.testing.assert_close(x0_hat, x0, rtol=0, atol=1e-12)
    torch.testing.assert_close(eps_hat, eps, rtol=0, atol=1e-12)


def _oracle(d, x0):
    """A 'network' that predicts the true v for a known x0 (ε read off x_t)."""
    def net(x_t, t, cond):
        ab = d.alpha_bars[t].view(-1, 1, 1, 1).to(x_t.dtype)
        eps = (x_t - ab.sqrt() * x0) / (1 - ab).sqrt()
        return d.v_target(x0, eps, t)
    return net


def test_ddim_step_is_exact_at_zero_noise():
    d = GaussianDiffusion(1000)
    g = torch.Generator().manual_seed(1)
    x0 = torch.randn(3, 2, 4, 4, generator=g, dtype=torch.float64)
    eps = torch.randn(3, 2, 4, 4, generator=g, dtype=torch.float64)
    t = torch.tensor([10, 500, 999])
    x_t = d.q_sample(x0, t, eps)
    x_prev, x0_hat = d.ddim_step(x_t, d.v_target(x0, eps, t), t, torch.full((3,), -1), eta=0.0)
    torch.testing.assert_close(x_prev, x0, rtol=0, atol=1e-10)
    # a step to an intermediate t' lands exactly on q_sample(x0, t', ε) (deterministic DDIM keeps ε)
    tp = torch.tensor([5, 200, 400])
    x_mid, _ = d.ddim_step(x_t, d.v_target(x0, eps, t), t, tp, eta=0.0)
    torch.testing.assert_close(x_mid, d.q_sample(x0, tp, eps), rtol=0, atol=1e-10)
    # the full sampler with a perfect denoiser returns x0, for one step or many
    cond = torch.zeros_like(x0)
    for steps in (1, 7):
        out = d.ddim_sample(_oracle(d, x0), cond, steps=steps, seed=0)
        torch.testing.assert_close(out, x0, rtol=0, atol=1e-8)


def test_ddim_timesteps_descend_to_zero():
    d = GaussianDiffusion(1000)
    ts = d.ddim_timesteps(5)
    assert ts.tolist() == [999, 749, 500, 250, 0]
    assert d.ddim_timesteps(1).tolist() == [999]
    assert len(GaussianDiffusion(3).ddim_timesteps(50)) == 3


def test_sampling_reproducible_with_seed():
    torch.manual_seed(0)
    net = DiffusionUNet(2, 2, 2, width=8, mults=(1, 2))
    torch.nn.init.normal_(net.out[-1].weight, std=0.1)    # a non-trivial denoiser
    net.eval()
    d = GaussianDiffusion(50)
    cond = torch.randn(2, 2, 8, 8, generator=torch.Generator().manual_seed(0))
    for eta in (0.0, 1.0):
        a = d.ddim_sample(net, cond, steps=5, eta=eta, seed=7)
        b = d.ddim_sample(net, cond, steps=5, eta=eta, generator=torch.Generator().manual_seed(7))
        c = d.ddim_sample(net, cond, steps=5, eta=eta, seed=8)
        assert torch.equal(a, b) and not torch.allclose(a, c)


def test_training_loss_matches_hand_computation():
    d = GaussianDiffusion(100)
    net = DiffusionUNet(2, 2, 2, width=8, mults=(1, 2))
    x0, cond = torch.randn(3, 2, 8, 8), torch.randn(3, 2, 8, 8)
    t, noise = torch.tensor([0, 50, 99]), torch.randn(3, 2, 8, 8)
    loss = d.training_loss(net, x0, cond, t=t, noise=noise)
    # untrained net outputs exactly 0 (zero-initialised output conv): loss = mean v²
    torch.testing.assert_close(loss, d.v_target(x0, noise, t).pow(2).mean())


# ----------------------------------------------------------------- U-Net
def test_unet_shapes_and_time_embedding():
    e = timestep_embedding(torch.tensor([0, 3]), 8)
    torch.testing.assert_close(e[0], torch.tensor([1.0] * 4 + [0.0] * 4))
    freqs = torch.exp(-math.log(10000.0) * torch.arange(4) / 4)
    torch.testing.assert_close(e[1, :4], torch.cos(3 * freqs))
    net = DiffusionUNet(4, 4, 4, width=8, mults=(1, 2, 2), res_blocks=2)
    y = net(torch.randn(2, 4, 16, 16), torch.tensor([1, 999]), torch.randn(2, 4, 16, 16))
    assert y.shape == (2, 4, 16, 16)
    with pytest.raises(ValueError, match="multiple of 4"):
        net(torch.randn(1, 4, 10, 10), torch.tensor([1]), torch.randn(1, 4, 10, 10))


# ----------------------------------------------------------------- latent / pixel diffusion models
def test_latent_diffusion_keeps_the_vqvae_frozen_and_out_of_its_weights():
    torch.manual_seed(0)
    vq = tiny_vqvae()
    warm(vq, batch())
    m = tiny("latent_diffusion", vqvae=vq)
    assert not any(k.startswith("_vqvae") or k.startswith("vqvae") for k in m.state_dict())
    vq_before = {k: v.clone() for k, v in vq.state_dict().items()}
    opt = torch.optim.Adam(m.parameters(), 1e-2)
    m.train()
    out = m.loss(batch(), 0)
    opt.zero_grad()
    out.total.backward()
    opt.step()
    assert all(torch.equal(vq_before[k], v) for k, v in vq.state_dict().items())
    assert not vq.training
    assert m.card_notes()["vqvae"] == "(in memory)"
    # the process space is the standardised latent: zero mean, unit std per channel on the first batch
    # (statistics taken from the first images encoded, the baselines)
    z = m.to_space(batch()["image"])
    assert bool(m.stats_initialised)
    assert z.mean(dim=(0, 2, 3)).abs().max() < 1e-5 and (z.std(dim=(0, 2, 3)) - 1).abs().max() < 1e-4
    torch.testing.assert_close(m.to_latent(z), m.encode_latent(batch()["image"]), rtol=1e-5, atol=1e-5)


def test_sample_future_shapes_range_and_seed():
    torch.manual_seed(0)
    for name in ("latent_diffusion", "pixel_diffusion"):
        m = tiny(name)
        warm(m, batch())
        torch.nn.init.normal_(m.net.out[-1].weight, std=0.1)
        x = batch()["image"][:2]
        s = m.sample_future(x, n_samples=3, seed=5)
        assert s.shape == (2, 3, 1, 32, 32) and (s >= 0).all() and (s <= 1).all()
        # chunking changes η = 0 samples only by float rounding (batch-size dependent kernels)
        torch.testing.assert_close(s, m.sample_future(x, n_samples=3, seed=5, chunk=2), rtol=0, atol=1e-4)
        y = m.sample_space(x, n_samples=3, seed=5)
        assert not torch.equal(y[:, 0], y[:, 1])                                   # the futures differ
        if name == "latent_diffusion":
            z = m.sample_future_latents(x, 3, seed=5)
            assert z.shape == (2, 3, 2, 4, 4)
            # residual decoding: today + decode(future latent) − decode(today's latent), no codebook snapping
            recon = m.vqvae.decode(m.encode_latent(x)).clamp(0, 1)
            expected = (x[:, None] + m.vqvae.decode(z.flatten(0, 1)).clamp(0, 1).view_as(s) - recon[:, None]).clamp(0, 1)
            torch.testing.assert_close(s, expected, rtol=0, atol=1e-5)
            direct = tiny(name, vqvae=m.vqvae, residual_decode=False)
            direct.load_state_dict(m.state_dict())
            torch.testing.assert_close(direct.sample_future(x, n_samples=3, seed=5).flatten(0, 1),
                                       m.vqvae.decode_continuous(z.flatten(0, 1)))


def test_a_given_follow_up_is_decoded_as_a_generated_future_is():
    torch.manual_seed(0)
    m = tiny("latent_diffusion")
    b = batch()
    warm(m, b)
    x, nxt = b["image"][:2], b["image_next"][:2]
    # residual decoding: today + decode(follow-up) − decode(today); today as its own follow-up is today
    torch.testing.assert_close(m.decode_as_future(x, x), x, rtol=0, atol=1e-6)
    expected = (x + m.reconstruct(nxt) - m.reconstruct(x)).clamp(0, 1)
    torch.testing.assert_close(m.decode_as_future(x, nxt), expected, rtol=0, atol=1e-6)
    direct = tiny("latent_diffusion", vqvae=m.vqvae, residual_decode=False)
    direct.load_state_dict(m.state_dict())
    torch.testing.assert_close(direct.decode_as_future(x, nxt), direct.reconstruct(nxt), rtol=0, atol=1e-6)


def test_pair_models_need_image_next():
    b = batch()
    del b["image_next"]
    with pytest.raises(DataError, match="image_next"):
        tiny("pixel_diffusion").loss(b)


# ----------------------------------------------------------------- multi-task classifier
def test_soft_argmax_returns_cell_centres():
    h = torch.full((1, 2, 4, 8), -1e4)
    h[0, 0, 1, 6] = 1e4                     # row 1, column 6
    h[0, 1, 3, 0] = 1e4
    xy = soft_argmax(h)
    torch.testing.assert_close(xy[0], torch.tensor([[6.5 / 8, 1.5 / 4], [0.5 / 8, 3.5 / 4]]))
    flat = soft_argmax(torch.zeros(1, 1, 4, 4))                  # uniform heatmap -> the centre
    torch.testing.assert_close(flat[0, 0], torch.tensor([0.5, 0.5]))


def test_landmark_error_ignores_unknown_points():
    pred = torch.tensor([[[0.5, 0.5], [0.0, 0.0]]])
    true = torch.tensor([[[0.5, 0.75], [float("nan"), float("nan")]]])
    loss, px = landmark_error(pred, true, size=100, kind="l1")
    assert float(loss) == pytest.approx(12.5)                      # |0| and |25| px, mean 12.5
    assert float(px) == pytest.approx(25.0)
    assert float(landmark_error(pred, true, size=100, kind="mse")[0]) == pytest.approx(312.5)


def test_multitask_loss_is_ce_plus_delta_landmark_and_delta_zero_ablation():
    torch.manual_seed(0)
    b = batch()
    for delta in (0.5, 0.0):
        m = tiny("multitask", landmark_weight=delta)
        m.eval()                                                   # no dropout: terms are reproducible
        out = m.loss(b)
        torch.testing.assert_close(out.total, out.terms["ce_kl"] + delta * out.terms["landmark"])
        assert float(out.terms["landmark"]) > 0
        p = m.predict_kl_proba(b["image"])
        torch.testing.assert_close(p.sum(1), torch.ones(4))
        torch.testing.assert_close(m.predict_oa_proba(b["image"]), p[:, 2:].sum(1))
        lm = m.predict_landmarks(b["image"])
        assert lm.shape == (4, 16, 2) and (lm >= 0).all() and (lm <= 1).all()
    m = tiny("multitask", landmark_weight=0.0)
    m.train()
    m.loss(b).total.backward()
    assert all(p.grad is None or not p.grad.any() for p in m.heatmap_head.parameters())


# ----------------------------------------------------------------- the pipeline on the tiny cohort
def test_pipeline_on_visit_pairs_of_the_tiny_cohort(tiny_cohort):
    """Visit pairs -> a few latent-diffusion steps -> sampled futures -> KL probabilities -> risk."""
    from oaviz.data.cohort import load_cohort
    from oaviz.data.pairs import visit_pairs
    from oaviz.training.data import resize_images

    torch.manual_seed(0)
    c = load_cohort(tiny_cohort)
    pairs = visit_pairs(c.metadata)
    imgs = resize_images(c.images, 32, 255.0)
    now_idx, next_idx = (torch.as_tensor(np.array(pairs[k])) for k in ("idx_now", "idx_next"))
    vq = tiny_vqvae()
    warm(vq, {"image": imgs[:16]})
    m = tiny("latent_diffusion", vqvae=vq)
    opt = torch.optim.Adam(m.parameters(), 1e-3)
    m.train()
    for step in range(3):
        sl = slice(step * 8, (step + 1) * 8)
        b = {"image": imgs[now_idx[sl]], "image_next": imgs[next_idx[sl]]}
        out = m.loss(b, step)
        opt.zero_grad()
        out.total.backward()
        opt.step()
        assert torch.isfinite(out.total)
    m.eval()
    now = imgs[now_idx[:3]]
    futures = m.sample_future(now, n_samples=2, steps=3, seed=0)                  # [3, 2, 1, 32, 32]
    clf = tiny("multitask")
    clf.eval()
    with torch.no_grad():
        p_now = clf.predict_kl_proba(now).numpy()
        p_fut = clf.predict_kl_proba(futures.flatten(0, 1)).view(3, 2, 5).numpy()
    risk = progression_risk(p_now, p_fut)
    assert risk.shape == (3,) and ((risk >= 0) & (risk <= 1)).all()
