"""models.losses.edge_weights and the β-VAE's edge-weighted reconstruction (``edge_weight``)."""

from __future__ import annotations

import pytest
import torch

from oaviz.models.losses import edge_weights


def _step_image() -> torch.Tensor:
    """[2, 1, 32, 32]: a bright band with sharp top and bottom edges (a joint space's margins), two contrasts."""
    x = torch.zeros(2, 1, 32, 32)
    x[0, :, 12:20] = 1.0
    x[1, :, 12:20] = 0.3
    return x


def test_edges_weigh_more_the_mean_stays_one_and_contrast_does_not_matter():
    x = _step_image()
    w = edge_weights(x, 4.0)
    assert w.shape == x.shape and not w.requires_grad
    torch.testing.assert_close(w.mean(dim=(1, 2, 3)), torch.ones(2))
    edge, flat = w[:, :, 11:13].mean(), w[:, :, 0:5].mean()
    assert edge > 3 * flat                           # the margins count, flat regions less than 1
    torch.testing.assert_close(w[0], w[1])           # per image: a fainter film is weighted the same
    assert torch.equal(edge_weights(x, 0.0), torch.ones_like(x))


def test_beta_vae_edge_weight_changes_only_the_reconstruction_term():
    from oaviz.models.base import build_model, make_config

    tiny = {"image_size": 32, "widths": [4, 8, 8], "latent_dim": 4}
    torch.manual_seed(0)
    plain = build_model("beta_vae", make_config("beta_vae", "demo", tiny))
    edged = build_model("beta_vae", make_config("beta_vae", "demo", {**tiny, "edge_weight": 4.0}))
    edged.load_state_dict(plain.state_dict())
    batch = {"image": _step_image()}
    plain.eval(), edged.eval()
    with torch.no_grad():
        a, b = plain.loss(batch), edged.loss(batch)
    assert not torch.isclose(a.terms["recon"], b.terms["recon"])
    torch.testing.assert_close(a.terms["mse"], b.terms["mse"])   # the readable per-pixel MSE is the plain one
    with pytest.raises(ValueError, match="edge_weight"):
        make_config("beta_vae", "demo", {**tiny, "edge_weight": -1.0})
