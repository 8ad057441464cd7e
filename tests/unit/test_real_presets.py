"""The ``real`` preset of every model of the zoo: re-acquisitions that never mirror (one mechanism,
oaviz.data.augment.real_acquisition), KL class balance, and a validation split large enough to choose an epoch."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from oaviz.data.augment import REAL_KNEES, random_acquisition, real_acquisition
from oaviz.models.base import build_model, make_config
from oaviz.models.losses import balanced_class_weights
from tests.tiny_checkpoints import TINY_CONFIGS

pytestmark = pytest.mark.usefixtures("one_torch_thread")
ZOO = ("beta_vae", "vaesim", "cnn", "dual_head", "vqvae", "multitask", "kecae", "latent_diffusion")


@pytest.mark.parametrize("name", ZOO)
def test_every_zoo_model_has_a_real_preset_that_validates_on_a_fifth_and_augments_but_the_vae(name):
    cfg = make_config(name, "real")
    # the β-VAE alone trains on the films as they are: its frozen latents probe OA better without
    # (0.771 vs 0.765 at 100 % of the real labels, 0.648 vs 0.613 at 5 %; see its preset)
    assert cfg.augment == (name != "beta_vae") and cfg.val_fraction == pytest.approx(0.2)
    assert make_config(name, "demo").val_fraction == 0.0           # the demo preset is unchanged
    if name == "kecae":
        assert cfg.keep_sides and not make_config(name, "demo").keep_sides
    if name in ("dual_head", "multitask"):
        assert cfg.kl_balance == pytest.approx(0.5) and cfg.select_by == "oa_auc"


@pytest.mark.parametrize("name", ["vaesim", "cnn", "vqvae", "multitask", "kecae"])
def test_a_real_preset_model_sees_a_new_acquisition_each_training_step_and_none_in_eval(name):
    m = build_model(name, make_config(name, "real", {**TINY_CONFIGS[name], "dropout": 0.0}
                                      if name in ("cnn", "multitask") else TINY_CONFIGS[name]))
    g = torch.Generator().manual_seed(0)
    b = {"image": torch.rand(4, 1, 32, 32, generator=g), "image_pair": torch.rand(4, 1, 32, 32, generator=g),
         "kl": torch.tensor([0, 1, 2, 4]), "oa": torch.tensor([0.0, 0.0, 1.0, 1.0]),
         "landmarks": torch.rand(4, 16, 2, generator=g)}
    m.train()
    m.loss(b, 0)                                  # first step: EMA initialisations (codebook, prototypes)
    torch.manual_seed(1)
    a1 = float(m.loss(b, 1).total.detach())
    torch.manual_seed(1)
    assert float(m.loss(b, 1).total.detach()) == pytest.approx(a1)      # same draw, same loss
    torch.manual_seed(2)
    assert float(m.loss(b, 1).total.detach()) != pytest.approx(a1)      # another draw: another view
    if name in ("cnn", "multitask"):             # deterministic in eval: no augmentation (VAEs sample anyway)
        m.eval()
        torch.manual_seed(3)
        e1 = float(m.loss(b, 1).total)
        torch.manual_seed(4)
        assert float(m.loss(b, 1).total) == pytest.approx(e1)


def test_real_acquisition_is_the_dual_head_ranges_and_never_mirrors():
    assert REAL_KNEES == {"shift": 0.04, "rotate_deg": 5.0, "scale": 0.06, "gain": 0.1, "offset": 0.05,
                          "flip": False, "gamma": 0.25, "noise": 0.02}
    x = torch.full((64, 1, 32, 32), 0.2)
    x[..., 16:] = 0.8
    y = real_acquisition(x, torch.Generator().manual_seed(0))
    assert (y[..., 18:].mean((1, 2, 3)) > y[..., :14].mean((1, 2, 3))).all()
    torch.testing.assert_close(y, random_acquisition(x, torch.Generator().manual_seed(0), **REAL_KNEES))


def test_landmarks_move_with_the_image():
    """A bright dot at each landmark: after a re-acquisition the dot sits where the moved landmark says."""
    n, s = 16, 64
    g = torch.Generator().manual_seed(4)
    pts = torch.rand(n, 1, 2, generator=g) * 0.5 + 0.25
    yy, xx = torch.meshgrid((torch.arange(s) + 0.5) / s, (torch.arange(s) + 0.5) / s, indexing="ij")
    img = torch.exp(-((xx - pts[:, 0, 0, None, None]) ** 2 + (yy - pts[:, 0, 1, None, None]) ** 2) / 0.002)[:, None]
    pts_unknown = torch.cat([pts, torch.full((n, 1, 2), float("nan"))], 1)
    out, moved = random_acquisition(img, torch.Generator().manual_seed(5), shift=0.08, rotate_deg=20, scale=0.15,
                                    gain=0, offset=0, flip=True, landmarks=pts_unknown)
    w = out[:, 0] / out[:, 0].sum((1, 2), keepdim=True)
    centre = torch.stack([(w * xx).sum((1, 2)), (w * yy).sum((1, 2))], 1)
    assert (centre - moved[:, 0]).abs().max() < 0.02                   # within about a pixel
    assert (moved[:, 0] - pts[:, 0]).abs().max() > 0.05                 # and they did move
    assert torch.isnan(moved[:, 1]).all()                               # unknown stays unknown


def test_balanced_class_weights_by_hand():
    kl = torch.tensor([0] * 8 + [1] * 4 + [2] * 2 + [4] * 2 + [-1] * 5)   # no KL 3, five unknown
    w = balanced_class_weights(kl, 5, 0.5)
    raw = torch.tensor([8, 4, 2, 1, 2], dtype=torch.float) ** -0.5
    raw[3] = 1.0                                                         # a class without labels: 1
    mean = (8 * raw[0] + 4 * raw[1] + 2 * raw[2] + 2 * raw[4]) / 16
    torch.testing.assert_close(w, raw / mean)
    torch.testing.assert_close(balanced_class_weights(kl, 5, 0.0), torch.ones(5))


def test_dual_head_and_multitask_weight_the_rare_grades(tiny_cohort):
    for name in ("dual_head", "multitask"):
        m = build_model(name, make_config(name, "real", TINY_CONFIGS[name]))
        m.fit_training_labels(torch.tensor([0, 0, 0, 0, 1, 1, 4]))
        assert m.kl_class_weight[4] > m.kl_class_weight[1] > m.kl_class_weight[0]
        assert "kl_class_weight" not in m.state_dict()                  # recomputed from the data, not saved
        demo = build_model(name, make_config(name, "demo", TINY_CONFIGS[name]))
        demo.fit_training_labels(torch.tensor([0, 0, 0, 4]))
        torch.testing.assert_close(demo.kl_class_weight, torch.ones(5))


def test_val_fraction_tops_up_a_small_validation_split_by_subject(tiny_cohort):
    from oaviz.data.cohort import load_cohort
    from oaviz.training.data import train_val_rows

    c = load_cohort(tiny_cohort)
    subj = c.metadata["subject_id"].to_numpy()
    tr0, va0 = train_val_rows(c, None, 0)
    tr, va = train_val_rows(c, None, 0, val_fraction=0.4)
    n_tr, n_va = len(set(subj[tr])), len(set(subj[va]))
    assert set(subj[va0]) <= set(subj[va]) and not set(subj[tr]) & set(subj[va])
    assert n_va == round(0.4 * (n_tr + n_va)) and n_va > len(set(subj[va0]))
    assert set(tr) | set(va) == set(tr0) | set(va0)                     # nothing lost, nothing from test
    np.testing.assert_array_equal(train_val_rows(c, None, 0, 0.4)[1], va)   # seeded
    tr_small, va_small = train_val_rows(c, None, 0, val_fraction=0.01)   # already large enough: unchanged
    np.testing.assert_array_equal(va_small, va0)


def test_the_dual_heads_real_encoder_has_two_convs_per_stage_and_trains_to_the_end():
    import torch
    from torch import nn

    from oaviz.models.base import build_model, make_config
    from oaviz.models.blocks import conv_encoder

    cfg = make_config("dual_head", "real")
    assert (cfg.convs_per_stage, cfg.lr_schedule) == (2, "one_cycle")
    enc = build_model("dual_head", cfg).encoder
    convs = [m for m in enc if isinstance(m, nn.Conv2d)]
    assert len(convs) == 2 * len(cfg.widths) and [c.stride[0] for c in convs[:2]] == [2, 1]
    assert enc(torch.zeros(2, 1, 128, 128)).shape == (2, cfg.widths[-1], 4, 4)
    assert conv_encoder((4, 8)).__len__() == 6                      # the papers' single 4×4 conv per stage
    with pytest.raises(ValueError, match="convs_per_stage"):
        conv_encoder((4, 8), convs_per_stage=3)
