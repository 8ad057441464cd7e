"""The bundled latent-diffusion checkpoint gives the futures it gave before the model file was split.

The reference numbers were computed with the code before the split (commit e003acd,
``oaviz/models/latent_diffusion.py`` as one file with the VQ-VAE in ``__dict__``) on the
fixed input below; the checkpoint was saved by that code, so loading it also checks
that its flat buffer names (``latent_mean``, ``change_mean``, …) still load.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torch.nn import functional as F

from oaviz.training.checkpoint import load_checkpoint

CKPT = Path(__file__).resolve().parents[2] / "checkpoints" / "latent_diffusion-demo"
REF_MEAN, REF_STD, REF_CHANGE = 0.5291646157015748, 0.13584078042278702, 0.006371342726140483
REF_PIXELS = [0.27167657017707825, 0.5642727613449097, 0.3668767511844635, 0.39205652475357056,
              0.4333781599998474, 0.8228907585144043, 0.5486255884170532, 0.6381251811981201]

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
