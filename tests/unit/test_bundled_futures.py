"""The bundled latent-diffusion checkpoint gives the futures it gave when it was trained.

The reference numbers pin the bundled model's futures on the fixed input below. They were first computed
with the code before the model file was split (commit e003acd, ``oaviz/models/latent_diffusion.py`` as one
file with the VQ-VAE in ``__dict__``); the split code reproduced them on that checkpoint (within 1e-9). When
the checkpoints were retrained on the film default cohort they were recomputed with that same loader on the
new checkpoint, and again when it was retrained on the default cohort whose visits share their films
(2026-12-03). Loading also checks that its flat buffer names (``latent_mean``, ``change_mean``, …) still load.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torch.nn import functional as F

from oaviz.training.checkpoint import load_checkpoint

CKPT = Path(__file__).resolve().parents[2] / "checkpoints" / "latent_diffusion-demo"
REF_MEAN, REF_STD, REF_CHANGE = 0.5239376690099107, 0.12840393199915992, 0.030509711831484765
REF_PIXELS = [0.32054150104522705, 0.6446757316589355, 0.42869439721107483, 0.44599902629852295,
              0.39840224385261536, 0.7724353075027466, 0.5644811391830444, 0.6536447405815125]

pytestmark = [pytest.mark.usefixtures("one_torch_thread"),
              pytest.mark.skipif(not (CKPT / "model.safetensors").is_file(), reason="bundled checkpoint absent")]


def fixed_knee() -> torch.Tensor:
    """A smooth [1, 1, 128, 128] image in [0, 1] from a seeded generator (no cohort needed)."""
    g = torch.Generator().manual_seed(0)
    x = F.avg_pool2d(torch.rand(1, 1, 144, 144, generator=g), 17, stride=1)
    return (x - x.min()) / (x.max() - x.min())


def test_bundled_latent_diffusion_gives_the_reference_futures():
    m = load_checkpoint(CKPT).model
    x = fixed_knee()
    f = m.sample_future(x, 2, steps=3, generator=torch.Generator().manual_seed(7)).double()
    assert f.shape == (1, 2, 1, 128, 128)
    assert float(f.mean()) == pytest.approx(REF_MEAN, abs=1e-6)
    assert float(f.std()) == pytest.approx(REF_STD, abs=1e-6)
    assert float((f - x.double()[:, None]).abs().mean()) == pytest.approx(REF_CHANGE, abs=1e-7)
    assert [float(v) for v in f.reshape(-1)[::4099][:8]] == pytest.approx(REF_PIXELS, abs=1e-5)
