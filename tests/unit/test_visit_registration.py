"""Registration of a follow-up onto its baseline, and the diffusion model's change target."""

from __future__ import annotations

import math

import pytest
import torch
from torch.nn import functional as F

from oaviz.data.registration import match_intensity, register_follow_up, similarity_from_landmarks
from oaviz.models.base import make_config
from oaviz.models.latent_diffusion import LatentDiffusion, PixelDiffusion

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def blob_image(size=64, cx=0.5, cy=0.45):
    """A bright ellipse and a bar [1,1,S,S]: enough structure to see a misregistration."""
    v, u = torch.meshgrid(torch.linspace(0, 1, size), torch.linspace(0, 1, size), indexing="ij")
    img = ((u - cx) ** 2 / 0.04 + (v - cy) ** 2 / 0.02 < 1).float() * 0.8
    img += ((v > cy + 0.2) & (v < cy + 0.28) & (u > 0.2) & (u < 0.8)).float() * 0.5
    return img.clamp(0, 1)[None, None]


def transform(points, angle, scale, shift):
    """Similarity applied in [-1, 1] coordinates to points [B,K,2] in [0, 1]."""
    c, s = math.cos(angle), math.sin(angle)
    R = torch.tensor([[c, -s], [s, c]]) * scale
    return ((points * 2 - 1) @ R.T + torch.tensor(shift) + 1) / 2


def test_similarity_recovers_a_known_transform_and_unknown_landmarks_give_identity():
    g = torch.Generator().manual_seed(0)
    fixed = torch.rand(3, 16, 2, generator=g)
    moving = transform(fixed, 0.12, 1.07, [0.1, -0.05])
    moving[2, 5, 1] = float("nan")
    theta = similarity_from_landmarks(fixed, moving)
    c, s = math.cos(0.12) * 1.07, math.sin(0.12) * 1.07
    expected = torch.tensor([[c, -s, 0.1], [s, c, -0.05]])
    torch.testing.assert_close(theta[0], expected, atol=1e-5, rtol=0)
    torch.testing.assert_close(theta[2], torch.tensor([[1.0, 0, 0], [0, 1.0, 0]]), atol=1e-6, rtol=0)


def test_register_follow_up_undoes_pose_and_exposure():
    base = blob_image()
    lm = torch.rand(1, 16, 2, generator=torch.Generator().manual_seed(1)) * 0.6 + 0.2
    theta = torch.tensor([[[1.04, -0.06, 0.06], [0.06, 1.04, -0.04]]])
    # the follow-up: the baseline seen through the inverse pose, darker and lower in contrast
    inv = torch.linalg.inv(torch.cat([theta[0], torch.tensor([[0, 0, 1.0]])]))[:2][None]
    grid = F.affine_grid(inv, [1, 1, 64, 64], align_corners=False)
    follow = F.grid_sample(base, grid, align_corners=False, padding_mode="border") * 0.8 + 0.05
    lm_follow = ((torch.cat([lm * 2 - 1, torch.ones(1, 16, 1)], -1) @ theta[0].T) + 1) / 2   # where each point went
    before = (follow - base).abs().mean()
    after = (register_follow_up(follow, base, lm_follow, lm) - base).abs().mean()
    assert after < 0.25 * before
    unregistered = register_follow_up(follow, base, torch.full_like(lm, float("nan")), lm)
    assert (unregistered - base).abs().mean() > 2 * after       # no landmarks: grey levels only


def test_match_intensity_recovers_gain_and_offset():
    x = torch.rand(2, 1, 16, 16, generator=torch.Generator().manual_seed(2)) * 0.5 + 0.2
    torch.testing.assert_close(match_intensity(x * 1.3 - 0.1, x), x, atol=1e-5, rtol=0)


@pytest.mark.parametrize("cls", ["latent", "pixel"])
def test_change_target_round_trips_and_registered_copies_have_no_change(cls):
    torch.manual_seed(0)
    common = {"image_size": 32, "width": 8, "mults": [1, 2], "res_blocks": 1, "num_steps": 50, "sample_steps": 2}
    if cls == "latent":
        from tests.unit.test_diffusion_models import tiny_vqvae
        m = LatentDiffusion(make_config("latent_diffusion", "demo", common), vqvae=tiny_vqvae())
    else:
        m = PixelDiffusion(make_config("pixel_diffusion", "demo", common))
    assert m.config.target == "change" and m.config.register_visits
    assert m.clip is None                      # a standardised change is not bounded like an image
    g = torch.Generator().manual_seed(3)
    now, nxt = torch.rand(4, 1, 32, 32, generator=g), torch.rand(4, 1, 32, 32, generator=g)
    m.train()
    x0, cond = m.training_pair({"image": now, "image_next": nxt})
    assert bool(m.change_stats_initialised)
    torch.testing.assert_close(m.follow_up_from(cond, x0), m.to_space(nxt), atol=1e-4, rtol=1e-4)
    # a follow-up that is the baseline shifted (with its landmarks) is registered back: almost no change
    base = blob_image(32).repeat(2, 1, 1, 1)
    lm = torch.rand(2, 16, 2, generator=g) * 0.6 + 0.2
    shifted = torch.roll(base, shifts=(2, -3), dims=(2, 3))
    lm_shift = lm + torch.tensor([-3 / 32, 2 / 32])
    b = {"image": base, "image_next": shifted, "landmarks": lm, "landmarks_next": lm_shift}
    x_reg, c_reg = m.training_pair(b)
    x_raw, _ = m.training_pair({"image": base, "image_next": shifted})
    assert (m.follow_up_from(c_reg, x_reg) - c_reg).abs().mean() < 0.5 * (m.follow_up_from(c_reg, x_raw) - c_reg).abs().mean()


def test_random_acquisition_ranges_seed_and_identity():
    from oaviz.data.augment import random_acquisition

    x = torch.cat([blob_image(32, cx=0.4), blob_image(32, cx=0.6)])
    same = random_acquisition(x, shift=0, rotate_deg=0, scale=0, gain=0, offset=0, flip=False)
    torch.testing.assert_close(same, x, atol=1e-5, rtol=0)
    a = random_acquisition(x, torch.Generator().manual_seed(1))
    b = random_acquisition(x, torch.Generator().manual_seed(1))
    torch.testing.assert_close(a, b)
    assert a.shape == x.shape and (a >= 0).all() and (a <= 1).all() and not torch.allclose(a, x)
    # a pure mirror puts the blob on the other side
    flips = [random_acquisition(x[:1], torch.Generator().manual_seed(s), shift=0, rotate_deg=0, scale=0, gain=0,
                                offset=0) for s in range(8)]
    mirrored = [f for f in flips if not torch.allclose(f, x[:1], atol=1e-5)]
    assert mirrored and all(torch.allclose(f, torch.flip(x[:1], dims=[3]), atol=1e-5) for f in mirrored)


def test_acquisition_for_oriented_knees_never_mirrors_and_varies_contrast():
    """Real knees keep medial on one side: flip=False must never swap the halves; gamma and noise change
    the grey levels but stay in [0, 1]."""
    from oaviz.data.augment import random_acquisition

    x = torch.full((64, 1, 32, 32), 0.2)
    x[..., 16:] = 0.8                                     # the "medial" half is bright
    g = torch.Generator().manual_seed(0)
    y = random_acquisition(x, g, rotate_deg=5.0, scale=0.06, gain=0.1, offset=0.05, flip=False, gamma=0.25,
                           noise=0.02)
    assert (y[..., 18:].mean((1, 2, 3)) > y[..., :14].mean((1, 2, 3))).all()
    assert y.min() >= 0 and y.max() <= 1
    contrast = (y[..., 18:].mean((1, 2, 3)) - y[..., :14].mean((1, 2, 3)))
    assert contrast.std() > 0.01                          # gamma/gain give each film its own contrast
    flipped = random_acquisition(x, torch.Generator().manual_seed(0), flip=True)
    assert (flipped[..., 18:].mean((1, 2, 3)) < flipped[..., :14].mean((1, 2, 3))).any()


def test_dual_head_real_preset_augments_and_picks_the_epoch_by_oa_auc(tiny_cohort):
    import numpy as np

    from oaviz.data.cohort import load_cohort
    from oaviz.models.base import build_model, make_config
    from oaviz.training.data import training_data
    from oaviz.training.loop import evaluate

    cfg = make_config("dual_head", "real", {"image_size": 32, "widths": [4, 8, 8], "feature_dim": 8})
    assert cfg.augment and cfg.select_by == "oa_auc" and make_config("dual_head", "demo").select_by == "loss"
    m = build_model("dual_head", cfg)
    assert m.validation_score({"loss": 0.3, "oa_auc": 0.8}) == pytest.approx(0.2)
    assert build_model("dual_head", make_config("dual_head", "demo")).validation_score(
        {"loss": 0.3, "oa_auc": 0.8}) == pytest.approx(0.3)
    c = load_cohort(tiny_cohort)
    _, val = training_data(c, type(m).batch_kind, cfg, None, 0)
    out = evaluate(m, val, torch.device("cpu"), 0, 16)
    assert "loss" in out and 0 <= out["oa_auc"] <= 1
    # training-mode loss sees augmented images: two calls on the same batch differ (no dropout here),
    # eval calls do not
    m = build_model("dual_head", make_config("dual_head", "real", {"image_size": 32, "widths": [4, 8, 8],
                                                                   "feature_dim": 8, "dropout": 0.0}))
    b = val.batch(np.arange(min(6, len(val))), torch.device("cpu"))
    m.train()
    torch.manual_seed(0)
    a1 = float(m.loss(b).total)
    m.eval()
    assert float(m.loss(b).total) == pytest.approx(float(m.loss(b).total))
    m.train()
    a2 = float(m.loss(b).total)
    assert a1 != a2
