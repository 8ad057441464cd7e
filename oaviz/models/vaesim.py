"""VAESim: a VAE whose decoder is conditioned on soft similarity to K prototypes.

Paper version (default): c = softmax(cos(z, Q) / τ); τ falls linearly from 1 to
0.01 over the first half of training, then stays; the decoder reconstructs
from concat(z, c); the prototype matrix Q (K×D) lives outside autograd and is
updated after each optimiser step (Algorithm 2 of the paper; its public code
agrees) by
    Q_k ← η·mean(z_i : k_i = k) + (1 − η)·Q_k,   η = 0.95, k_i ~ Multinomial(c_i):
the *batch mean* gets the weight η, so a prototype follows the latents assigned
to it almost at once; clusters that receive no sample keep their value. Q is
initialised from K random latents of the first training batch.

Selectable departures:
``similarity="dot"`` uses the raw dot product instead of the cosine (the public
code's similarity); ``ema_mode="slow"`` is a conventional momentum average
(Q_k ← η·Q_k + (1 − η)·mean), for prototypes that drift slowly when batches are
small or noisy. It is not the paper's update: with η = 0.95 each step moves a
prototype only 5 % of the way to its batch mean.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch.nn import functional as F

from oaviz.models.base import Autoencoder, Cap, Encoded, LossOutput, register_model
from oaviz.models.beta_vae import (ConvDecoder, GaussianEncoder, kl_to_standard_normal, reparameterise, training_view,
                                   weighted_reconstruction)


@dataclass(frozen=True)
class VAESimConfig:
    image_size: int = 224
    widths: tuple[int, ...] = (32, 64, 128, 256, 512)
    latent_dim: int = 64
    n_prototypes: int = 16
    beta: float = 1.0
    recon_weight: float = 1.0       # 1/(2σ²) on the summed squared error; see BetaVAEConfig
    joint_weight: float = 0.0       # joint-line band and bone-edge weights of that error; see BetaVAEConfig
    edge_weight: float = 0.0
    eta: float = 0.95
    tau_start: float = 1.0
    tau_end: float = 0.01
    similarity: str = "cosine"      # "cosine" (paper) | "dot" (reference code)
    ema_mode: str = "paper"         # "paper": η on the batch mean | "slow": η on the old prototype
    total_steps: int = 0            # set by the engine (set_total_steps); τ schedule spans half of it
    augment: bool = False           # real radiographs: train on re-acquisitions that never mirror (see BetaVAEConfig)
    val_fraction: float = 0.0       # validation share of the subjects (0 = the engine's default split)
    lr: float = 1e-3
    batch_size: int = 32
    epochs: int = 50

    def __post_init__(self):
        if self.similarity not in ("cosine", "dot"):
            raise ValueError(f"similarity must be 'cosine' or 'dot', got {self.similarity!r}")
        if self.ema_mode == "reference":  # older checkpoints' name for the paper's (= the public code's) update
            object.__setattr__(self, "ema_mode", "paper")
        if self.ema_mode not in ("paper", "slow"):
            raise ValueError(f"ema_mode must be 'paper' (batch mean weighted by eta) or 'slow' "
                             f"(old prototype weighted by eta), got {self.ema_mode!r}")
        if self.n_prototypes < 2 or not 0 <= self.eta <= 1:
            raise ValueError("n_prototypes must be >= 2 and eta in [0, 1]")
        if self.recon_weight <= 0 or not 0 <= self.val_fraction < 1:
            raise ValueError("recon_weight must be > 0 and val_fraction in [0, 1)")


def temperature_at(step: int, total_steps: int, start: float = 1.0, end: float = 0.01) -> float:
    """τ: linear from ``start`` to ``end`` over the first half of ``total_steps``, then ``end``."""
    half = max(1, total_steps // 2)
    if total_steps <= 0:
        return start
    t = min(1.0, step / half)
    return start + (end - start) * t


def ema_update(Q: torch.Tensor, z: torch.Tensor, labels: torch.Tensor, eta: float, mode: str) -> torch.Tensor:
    """New prototypes [K, D] from latents z [B, D] assigned to clusters ``labels`` [B].

    mode "paper": Q_k ← η·mean_k + (1 − η)·Q_k (VAESim Algorithm 2);
    mode "slow":  Q_k ← η·Q_k + (1 − η)·mean_k. Clusters with no member keep Q_k.
    """
    K = Q.shape[0]
    onehot = F.one_hot(labels, K).to(z.dtype)             # [B, K]
    counts = onehot.sum(0)                                 # [K]
    means = (onehot.T @ z) / counts.clamp_min(1).unsqueeze(1)
    if mode == "paper":
        new = eta * means + (1 - eta) * Q
    elif mode == "slow":
        new = eta * Q + (1 - eta) * means
    else:
        raise ValueError(f"unknown ema mode {mode!r}")
    return torch.where((counts > 0).unsqueeze(1), new, Q)


@register_model("vaesim", VAESimConfig, presets={
    "demo": {"image_size": 128, "widths": [16, 32, 64, 128, 256], "latent_dim": 64, "n_prototypes": 16, "recon_weight": 50.0,
             "joint_weight": 9.0, "epochs": 25},   # the β-VAE demo preset of 2026-12-02; its 200 / 20 not yet tried here
    "paper": {"image_size": 224, "widths": [32, 64, 128, 256, 512], "latent_dim": 64, "n_prototypes": 16,
              "epochs": 50},
    "real": {"image_size": 128, "widths": [16, 32, 64, 128, 256], "latent_dim": 64, "n_prototypes": 16,
             "recon_weight": 50.0, "epochs": 40, "augment": True, "val_fraction": 0.2},
}, description="VAESim: prototype-conditioned VAE")
class VAESim(Autoencoder):
    capabilities = Autoencoder.capabilities | {Cap.VECTOR_LATENT, Cap.PROTOTYPES, Cap.PROBE_FEATURES}

    def __init__(self, config: VAESimConfig):
        super().__init__(config)
        self.encoder = GaussianEncoder(config.image_size, config.widths, config.latent_dim)
        self.decoder = ConvDecoder(config.image_size, config.widths, config.latent_dim + config.n_prototypes)
        self.register_buffer("prototypes", torch.zeros(config.n_prototypes, config.latent_dim))
        self.register_buffer("initialised", torch.zeros((), dtype=torch.bool))
        self.register_buffer("tau", torch.tensor(float(config.tau_start)))
        self._total_steps = config.total_steps
        self._last = None  # (z, c) of the last training batch, for the EMA update

    @property
    def embed_dim(self) -> int:
        return self.config.latent_dim

    def set_total_steps(self, n: int) -> None:
        self._total_steps = int(n)

    def similarity(self, z: torch.Tensor) -> torch.Tensor:
        """[B, D] -> [B, K] cosine (or dot) similarity to the prototypes."""
        if self.config.similarity == "cosine":
            return F.normalize(z, dim=1) @ F.normalize(self.prototypes, dim=1).T
        return z @ self.prototypes.T

    def soft_assign(self, z: torch.Tensor, tau: float | None = None) -> torch.Tensor:
        t = float(self.tau) if tau is None else tau
        return F.softmax(self.similarity(z) / t, dim=1)

    def assign(self, z: torch.Tensor) -> torch.Tensor:
        """Hard cluster ids [B] (most similar prototype)."""
        return self.similarity(z).argmax(1)

    def encode(self, x):
        mu, logvar = self.encoder(x)
        z = reparameterise(mu, logvar) if self.training else mu
        if self.training and not bool(self.initialised):
            self._init_prototypes(z.detach())
        return Encoded(z=z, mu=mu, logvar=logvar, extras={"c": self.soft_assign(z)})

    @torch.no_grad()
    def _init_prototypes(self, z):
        idx = torch.randperm(z.shape[0], device=z.device)[: self.config.n_prototypes]
        if len(idx) < self.config.n_prototypes:  # a tiny first batch: repeat with jitter
            idx = idx.repeat(self.config.n_prototypes // len(idx) + 1)[: self.config.n_prototypes]
        self.prototypes.copy_(z[idx] + 1e-3 * torch.randn_like(z[idx]))
        self.initialised.fill_(True)

    def decode(self, z, c: torch.Tensor | None = None):
        """Decode latents; c defaults to the soft assignment at the current τ."""
        if c is None:
            c = self.soft_assign(z)
        return self.decoder(torch.cat([z, c], dim=1))

    def embed(self, x):
        return self.encoder(x)[0]

    def loss(self, batch, step: int = 0) -> LossOutput:
        self.tau.fill_(temperature_at(step, self._total_steps, self.config.tau_start, self.config.tau_end))
        x = training_view(self, batch["image"])
        enc = self.encode(x)
        c = enc.extras["c"]
        xr = self.decode(enc.z, c)
        rec = weighted_reconstruction(self, xr, x)
        kl = kl_to_standard_normal(enc.mu, enc.logvar).mean()
        self._last = (enc.z.detach(), c.detach())
        return LossOutput(self.config.recon_weight * rec + self.config.beta * kl, {
            "recon": rec.detach(), "kl": kl.detach(), "mse": F.mse_loss(xr, x).detach(),
            "tau": self.tau.detach().clone(),
        })

    @torch.no_grad()
    def on_train_step_end(self, batch, step: int) -> None:
        if self._last is None:
            return
        z, c = self._last
        labels = torch.multinomial(c.float().clamp_min(1e-12), 1).squeeze(1)
        self.prototypes.copy_(ema_update(self.prototypes, z, labels, self.config.eta, self.config.ema_mode))
        self._last = None

    @torch.no_grad()
    def prototype_images(self) -> torch.Tensor:
        """Decoded prototypes [K,1,S,S] (each with its own one-hot-like assignment)."""
        return self.decode(self.prototypes, self.soft_assign(self.prototypes))

    @torch.no_grad()
    def sample_near_prototype(self, k: int, n: int, threshold: float = 0.8, temperature: float = 1.0,
                              generator: torch.Generator | None = None, max_tries: int = 50):
        """n images decoded from latents around prototype k whose cosine similarity to it is ≥ threshold.

        Draws q_k + temperature·ε and keeps those above the threshold (rejection sampling);
        returns (images [m,1,S,S], similarities [m]) with m ≤ n if the threshold is too strict.
        """
        dev = self.prototypes.device
        q = self.prototypes[k]
        # Noise whose norm puts the typical draw right at the threshold angle, so about
        # half are kept; temperature widens or narrows the spread.
        angle = math.acos(max(min(threshold, 0.999), -0.999))
        scale = temperature * q.norm() * math.tan(min(angle, 1.4)) / (q.numel() ** 0.5)
        kept, sims = [], []
        for _ in range(max_tries):
            z = q + scale * torch.randn(4 * n, q.numel(), generator=generator).to(dev)
            s = F.cosine_similarity(z, q.unsqueeze(0), dim=1)
            kept.append(z[s >= threshold])
            sims.append(s[s >= threshold])
            if sum(len(a) for a in kept) >= n:
                break
        z = torch.cat(kept)[:n]
        return self.decode(z), torch.cat(sims)[:n]
