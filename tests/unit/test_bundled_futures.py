"""The bundled latent-diffusion checkpoint gives the futures it gave when it was trained.

The reference numbers pin the bundled model's futures on the fixed input below. They were first computed
with the code before the model file was split (commit e003acd, ``oaviz/models/latent_diffusion.py`` as one
file with the VQ-VAE in ``__dict__``); the split code reproduced them on that checkpoint (within 1e-9). When
the checkpoints were retrained on the film default cohort they were recomputed with that same loader on the
new checkpoint, again when it was retrained on the default cohort whose visits share their films
(2026-12-03), and again when it was retrained on the joint-weighted VQ-VAE (2026-12-03, 35 epochs).
Loading also checks that its flat buffer names (``latent_mean``, ``change_mean``, …) still load.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torch.nn import functional as F

from oaviz.training.checkpoint import load_checkpoint

CKPT = Path(__file__).resolve().parents[2] / "checkpoints" / "latent_diffusion-demo"
REF_MEAN, REF_STD, REF_CHANGE = 0.5264075346286745, 0.1330401027343923, 0.025074088195736977
REF_PIXELS = [0.27730709314346313, 0.6383851170539856, 0.4395274519920349, 0.4750101864337921,
              0.4327487647533417, 0.8004024624824524, 0.6041528582572937, 0.664889931678772]

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
