"""Tiny (32 px, a few channels) configs of every registered model, and tiny checkpoints for tests of their plumbing."""

from __future__ import annotations

from pathlib import Path

import torch

from oaviz.models.base import build_model, make_config
from oaviz.models.latent_diffusion import LatentDiffusion
from oaviz.services.model_io import model_inputs
from oaviz.training.checkpoint import save_checkpoint

# One tiny config per registered model; tests/unit/test_model_contract.py fails when a registered model is missing.
TINY_CONFIGS: dict[str, dict] = {
    "beta_vae": {"image_size": 32, "widths": [4, 8, 8]},
    "vaesim": {"image_size": 32, "widths": [4, 8, 8]},
    "dual_head": {"image_size": 32, "widths": [4, 8, 8]},
    "cnn": {"image_size": 32, "widths": [4, 4, 8, 8], "hidden": 8},
    "vqvae": {"image_size": 32, "widths": [4, 8, 8], "res_blocks": 1, "embedding_dim": 2, "codebook_size": 16},
    "multitask": {"image_size": 32, "widths": [4, 8, 8], "deconv_widths": [8, 8]},
    "latent_diffusion": {"image_size": 32, "width": 8, "mults": [1, 2], "res_blocks": 1, "num_steps": 100,
                         "sample_steps": 4},
    "pixel_diffusion": {"image_size": 32, "width": 8, "mults": [1, 2], "res_blocks": 1, "num_steps": 100,
                        "sample_steps": 4},
    "kecae": {"image_size": 32, "widths": [4, 8, 8], "disc_widths": [4, 8], "discriminator_pretrain_steps": 10},
}


def future_and_exchange_checkpoints(root: Path, cohort) -> Path:
    """root/{vq, clf, ld, ke}: a VQ-VAE, a KL classifier, a latent diffusion model naming both, a KECAE.

    VQ codebook and latent statistics come from one batch; the denoiser's output layer is non-zero so
    samples depend on the noise.
    """
    torch.manual_seed(0)
    clf = build_model("multitask", make_config("multitask", "demo", {"image_size": 32, "widths": [4, 8, 8],
                                                                     "deconv_widths": [8, 8]}))
    x = model_inputs(clf, cohort, range(16))
    vq = build_model("vqvae", make_config("vqvae", "demo", {"image_size": 32, "widths": [4, 8, 8], "res_blocks": 1,
                                                             "embedding_dim": 2, "codebook_size": 16}))
    vq.train()
    vq.loss({"image": x}, 0)
    vq.on_train_step_end({"image": x}, 0)
    save_checkpoint(vq.eval(), root / "vq")
    save_checkpoint(clf.eval(), root / "clf")
    ld = LatentDiffusion(make_config("latent_diffusion", "demo", {
        "image_size": 32, "width": 8, "mults": [1, 2], "res_blocks": 1, "num_steps": 100, "sample_steps": 3,
        "vqvae_checkpoint": str(root / "vq"), "classifier_checkpoint": str(root / "clf")}))
    ld.train()
    ld.loss({"image": x[:8], "image_next": x[8:]}, 0)
    torch.nn.init.normal_(ld.net.out[-1].weight, std=0.1)
    save_checkpoint(ld.eval(), root / "ld")
    ke = build_model("kecae", make_config("kecae", "demo", {"image_size": 32, "widths": [4, 8, 8],
                                                             "disc_widths": [4, 8]}))
    save_checkpoint(ke.eval(), root / "ke")
    return root
