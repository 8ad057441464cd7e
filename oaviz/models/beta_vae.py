"""β-VAE of the hip OA thesis (CHECK cohort).

Paper preset: 224×224 input, 5 stride-2 conv layers 32→512, FC heads for μ and
log σ², latent 64, mirrored transposed-conv decoder, loss MSE + β·KL with β = 4,
Adam 1e-3, batch 32. Demo preset: 128×128 and 16→256 channels so it trains on
two CPU cores in minutes.

Loss normalisation: the reconstruction term is the squared error *summed* over
pixels and averaged over the batch, and the KL is summed over latent
dimensions — the ELBO's own scaling, so β keeps the meaning it has in the
β-VAE literature whatever the image size. ``terms['mse']`` also reports the
per-pixel mean for readability.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn
from torch.nn import functional as F

from oaviz.data.augment import real_acquisition
from oaviz.models.base import Autoencoder, Cap, Encoded, LossOutput, register_model
from oaviz.models.blocks import check_image_size, conv_decoder, conv_encoder
from oaviz.models.losses import reconstruction_weights, summed_squared_error


@dataclass(frozen=True)
class BetaVAEConfig:
    image_size: int = 224
    widths: tuple[int, ...] = (32, 64, 128, 256, 512)
    latent_dim: int = 64
    beta: float = 4.0
    beta_warmup_steps: int = 0      # linear warm-up of β from 0 (0 = off)
    # Weight of the summed squared error, i.e. 1/(2σ²) of a Gaussian likelihood with a fixed σ.
    # 1.0 is the thesis's plain MSE + β·KL. On [0, 1] radiographs whose pixels vary little, that
    # collapses the posterior to a few nats (blurry reconstructions); the demo preset sets 50
    # (σ ≈ 0.1), which keeps β = 4 and lets the latent carry joint-space detail.
    recon_weight: float = 1.0
    # Extra weight of the joint-line band and of bone edges in the reconstruction error (see
    # oaviz.models.losses.reconstruction_weights; 0 = the thesis's unweighted error).
    joint_weight: float = 0.0
    edge_weight: float = 0.0
    # Encode and reconstruct random re-acquisitions that never mirror (oaviz.data.augment.real_acquisition),
    # so the latent cannot memorise a few hundred films pixel by pixel (VAESim's real preset; the β-VAE's
    # real preset leaves it off, see there).
    augment: bool = False
    val_fraction: float = 0.0       # validation share of the subjects (0 = the engine's default split)
    # training defaults used by the engine
    lr: float = 1e-3
    batch_size: int = 32
    epochs: int = 50

    def __post_init__(self):
        check_image_size(self.image_size, len(self.widths), "beta_vae")
        if self.latent_dim < 1 or self.beta < 0 or self.recon_weight <= 0:
            raise ValueError("latent_dim must be >= 1, beta >= 0 and recon_weight > 0")
        if self.joint_weight < 0 or self.edge_weight < 0:
            raise ValueError("joint_weight and edge_weight must be >= 0")
        if not 0 <= self.val_fraction < 1:
            raise ValueError("val_fraction must be in [0, 1)")


def kl_to_standard_normal(mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """KL(N(μ, σ²) || N(0, I)) summed over dims, [B, D] -> [B]."""
    return -0.5 * torch.sum(1 + logvar - mu.pow(2) - logvar.exp(), dim=1)


def beta_at(beta: float, warmup_steps: int, step: int) -> float:
    """β schedule: linear warm-up over ``warmup_steps`` optimiser steps, then constant."""
    if warmup_steps <= 0:
        return beta
    return beta * min(1.0, step / warmup_steps)


class GaussianEncoder(nn.Module):
    """Conv stack + FC heads: [B,1,S,S] -> (μ, log σ²), each [B, D]."""

    def __init__(self, image_size: int, widths: tuple[int, ...], latent_dim: int):
        super().__init__()
        side = check_image_size(image_size, len(widths), "encoder")
        self.conv = conv_encoder(widths)
        flat = widths[-1] * side * side
        self.mu = nn.Linear(flat, latent_dim)
        self.logvar = nn.Linear(flat, latent_dim)

    def forward(self, x):
        h = self.conv(x).flatten(1)
        return self.mu(h), self.logvar(h).clamp(-20, 10)


class ConvDecoder(nn.Module):
    """FC + mirrored transposed convs: [B, D_in] -> image [B,1,S,S] in [0, 1]."""

    def __init__(self, image_size: int, widths: tuple[int, ...], in_dim: int):
        super().__init__()
        self.side = check_image_size(image_size, len(widths), "decoder")
        self.top = widths[-1]
        self.fc = nn.Linear(in_dim, widths[-1] * self.side * self.side)
        self.deconv = conv_decoder(widths)

    def forward(self, z):
        h = F.leaky_relu(self.fc(z), 0.2).view(-1, self.top, self.side, self.side)
        return torch.sigmoid(self.deconv(h))


def training_view(model, x: torch.Tensor) -> torch.Tensor:
    """What an autoencoder encodes and reconstructs in its loss: x, or in training with ``config.augment``
    a random re-acquisition of x (input and target alike)."""
    return real_acquisition(x) if model.config.augment and model.training else x


def weighted_reconstruction(model, xr: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """The summed squared error of an autoencoder's reconstruction xr of x [B,1,S,S], weighted by the
    config's joint_weight / edge_weight (shared by the β-VAE and VAESim)."""
    cfg = model.config
    return summed_squared_error(xr, x, reconstruction_weights(x, cfg.joint_weight, edge_weight=cfg.edge_weight))


def reparameterise(mu, logvar):
    return mu + torch.randn_like(mu) * torch.exp(0.5 * logvar)


@register_model("beta_vae", BetaVAEConfig, presets={
    # demo: recon_weight 200 (σ ≈ 0.05) and joint_weight 20 (the joint-line band ×~12 against the shafts). On the
    # default cohort's test split the medial JSW of reconstructions then follows the original's with r 0.81 after
    # up to 50 epochs (early stop at 39 with make checkpoints' --patience 6; 25 epochs gave 0.75; bench/bench_disease.py; 50 / 9 gave
    # 0.64, unweighted 0.30); a severity walk of +4 grades narrows the decoded gap by 0.85 mm. Tried, 20–25 epochs: 200 / 9 -> 0.69, 400 / 9 -> 0.67, 200 / 9 + latent_dim 128 -> 0.70,
    # 50 / 9 + edge_weight 2 -> 0.66. A σ = 1.5 px blur of the originals keeps r 0.88 at the reconstructions'
    # sharpness, so what is lost is the gap's geometry, not its edges.
    "demo": {"image_size": 128, "widths": [16, 32, 64, 128, 256], "latent_dim": 64, "epochs": 50,
             "recon_weight": 200.0, "joint_weight": 20.0},
    "paper": {"image_size": 224, "widths": [32, 64, 128, 256, 512], "latent_dim": 64, "epochs": 50},
    # real: without re-acquisition augmentation, its latents probe OA better on the real development knees
    # (frozen-latent OA AUC 0.771 / 0.722 / 0.648 at 100 / 25 / 5 % of the labels against 0.765 / 0.712 / 0.613
    # with it; raw pixels 0.731 / 0.690 / 0.639): augmented films make μ also encode the shift, rotation and
    # exposure drawn, which a linear probe must see past. latent_dim 128 gave 0.771 / 0.697 / 0.633; the films'
    # own 224 px (same widths, 3× the compute) 0.768 / 0.719 / 0.636: resolution is not what limits the probe.
    "real": {"image_size": 128, "widths": [16, 32, 64, 128, 256], "latent_dim": 64, "epochs": 40,
             "recon_weight": 50.0, "val_fraction": 0.2},
}, description="β-VAE (hip OA thesis): μ is the embedding")
class BetaVAE(Autoencoder):
    capabilities = Autoencoder.capabilities | {Cap.VECTOR_LATENT, Cap.SAMPLE_PRIOR, Cap.PROBE_FEATURES}

    def __init__(self, config: BetaVAEConfig):
        super().__init__(config)
        self.encoder = GaussianEncoder(config.image_size, config.widths, config.latent_dim)
        self.decoder = ConvDecoder(config.image_size, config.widths, config.latent_dim)

    @property
    def embed_dim(self) -> int:
        return self.config.latent_dim

    def encode(self, x):
        mu, logvar = self.encoder(x)
        z = reparameterise(mu, logvar) if self.training else mu
        return Encoded(z=z, mu=mu, logvar=logvar)

    def decode(self, z):
        return self.decoder(z)

    def embed(self, x):
        return self.encoder(x)[0]

    def loss(self, batch, step: int = 0) -> LossOutput:
        x = training_view(self, batch["image"])
        enc = self.encode(x)
        xr = self.decode(enc.z)
        rec = weighted_reconstruction(self, xr, x)
        kl = kl_to_standard_normal(enc.mu, enc.logvar).mean()
        beta = beta_at(self.config.beta, self.config.beta_warmup_steps, step)
        total = self.config.recon_weight * rec + beta * kl
        return LossOutput(total, {"recon": rec.detach(), "kl": kl.detach(),
                                  "mse": F.mse_loss(xr, x).detach(), "beta": torch.tensor(beta)})

    @torch.no_grad()
    def sample_prior(self, n: int, temperature: float = 1.0, generator: torch.Generator | None = None):
        """Decode n draws from N(0, temperature² I): images [n,1,S,S]."""
        dev = next(self.parameters()).device
        z = torch.randn(n, self.config.latent_dim, generator=generator).to(dev) * temperature
        return self.decode(z)
