"""The progression diffusion models: latent (the method) and pixel (its speed baseline).

- ``LatentDiffusion`` (registered as ``latent_diffusion``): the pipeline
  (oaviz.models.diffusion_pipeline) in the frozen VQ-VAE's continuous latent,
  standardised per channel (statistics of the first training batch, saved with
  the weights). The VQ-VAE is referenced by checkpoint path in the config (it
  is not part of this model's weights), or passed in memory.
- ``PixelDiffusion`` (``pixel_diffusion``): the same U-Net width and sampler on
  the images themselves (scaled to [−1, 1]); it exists to measure what the
  latent space saves.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch.nn import functional as F

from oaviz.errors import ConfigError
from oaviz.models.base import Cap, OAModel, load_frozen_model, register_model
from oaviz.models.diffusion_pipeline import DiffusionPipeline
from oaviz.models.diffusion_process import SCHEDULES, GaussianDiffusion, make_betas  # noqa: F401  (re-exported)
from oaviz.models.frozen import Frozen
from oaviz.models.standardise import ChannelStandardiser, rename_legacy_keys
from oaviz.models.vqvae import VQVAE

TARGETS = ("follow_up", "change")
_CAPABILITIES = OAModel.capabilities | {Cap.RECONSTRUCT, Cap.FUTURES}


@dataclass(frozen=True)
class _DiffusionConfig:
    image_size: int = 256
    width: int = 128                       # U-Net base width (same for latent and pixel: the speed comparison)
    mults: tuple[int, ...] = (1, 2, 2)
    res_blocks: int = 2
    attention: bool = True                 # self-attention at the lowest resolution
    dropout: float = 0.0
    num_steps: int = 1000
    schedule: str = "cosine"
    sample_steps: int = 50                 # default DDIM steps
    horizon_months: int = 12               # visit gap the pairs were drawn with (recorded for the card)
    target: str = "follow_up"              # what the process generates: "follow_up" or "change" (follow-up − baseline)
    register_visits: bool = False          # train on follow-ups registered onto their baseline (landmarks)
    residual_decode: bool = True           # future image = today + decode(future) − decode(today)
    # Real radiographs: each (baseline, registered follow-up) pair re-acquired with one draw for both (never
    # mirrored, no detector noise: noise would read as change), so the change stays the disease's.
    augment: bool = False
    val_fraction: float = 0.0              # validation share of the subjects (0 = the engine's default split)
    lr: float = 1e-4
    batch_size: int = 32
    epochs: int = 100

    def __post_init__(self):
        if self.schedule not in SCHEDULES:
            raise ValueError(f"schedule must be one of {SCHEDULES}, got {self.schedule!r}")
        if self.target not in TARGETS:
            raise ValueError(f"target must be one of {TARGETS}, got {self.target!r}")
        if not 0 <= self.val_fraction < 1:
            raise ValueError("val_fraction must be in [0, 1)")
        if self.width < 1 or not self.mults or self.res_blocks < 1 or self.num_steps < 1 or self.sample_steps < 1:
            raise ValueError("width, mults, res_blocks, num_steps and sample_steps must be positive")


@dataclass(frozen=True)
class LatentDiffusionConfig(_DiffusionConfig):
    vqvae_checkpoint: str = ""             # frozen VQ-VAE (checkpoint folder); required unless passed in memory
    classifier_checkpoint: str = ""        # multitask KL/landmark classifier paired with this model (for risk)


@dataclass(frozen=True)
class PixelDiffusionConfig(_DiffusionConfig):
    clip_denoised: bool = True             # clamp predicted x₀ to [−1, 1] while sampling


@register_model("latent_diffusion", LatentDiffusionConfig, presets={
    "demo": {"image_size": 128, "width": 64, "mults": [1, 2, 2], "res_blocks": 1, "attention": True,
             "sample_steps": 50, "lr": 2e-4, "batch_size": 32, "epochs": 40, "target": "change",
             "register_visits": True},
    # U-Net 24.5 M parameters; with the paper VQ-VAE (4.9 M) and multitask classifier (5.5 M) about the
    # 35 M the source paper reports for its whole pipeline.
    "paper": {"image_size": 256, "width": 128, "mults": [1, 2, 2], "res_blocks": 2, "attention": True,
              "sample_steps": 50, "lr": 1e-4, "batch_size": 32, "epochs": 200, "target": "change",
              "register_visits": True},
    "real": {"image_size": 128, "width": 64, "mults": [1, 2, 2], "res_blocks": 1, "attention": True,
             "sample_steps": 50, "lr": 2e-4, "batch_size": 32, "epochs": 40, "target": "change",
             "register_visits": True, "augment": True, "val_fraction": 0.2},
}, description="conditional latent diffusion of the follow-up knee (VQ-VAE latent, v-prediction, DDIM)")
class LatentDiffusion(DiffusionPipeline):
    """The pipeline in latent space: frozen VQ-VAE (``vqvae``, not saved here) + U-Net + scheduler."""

    capabilities = _CAPABILITIES

    def __init__(self, config: LatentDiffusionConfig, vqvae: VQVAE | None = None):
        if vqvae is None:
            if not config.vqvae_checkpoint:
                raise ConfigError("latent_diffusion needs a trained VQ-VAE: set vqvae_checkpoint to a vqvae "
                                  "checkpoint folder (e.g. --set vqvae_checkpoint=checkpoints/vqvae-demo)")
            vqvae = load_frozen_model(config.vqvae_checkpoint, "vqvae")
        if int(vqvae.config.image_size) != int(config.image_size):
            raise ConfigError(f"latent_diffusion image_size {config.image_size} differs from its VQ-VAE's "
                              f"{vqvae.config.image_size}")
        c, h, w = vqvae.latent_shape
        if h % (2 ** (len(config.mults) - 1)):
            raise ConfigError(f"latent side {h} is not divisible by 2^{len(config.mults) - 1} (U-Net levels)")
        super().__init__(config, channels=c)
        self.frozen_vqvae = Frozen(vqvae)
        self.latent_stats = ChannelStandardiser(c)
        rename_legacy_keys(self, {"latent_mean": "latent_stats.mean", "latent_std": "latent_stats.std",
                                  "stats_initialised": "latent_stats.initialised"})

    def card_notes(self) -> dict[str, str]:
        """Lines for the checkpoint card: the models this one goes with."""
        c = self.config
        return {"vqvae": c.vqvae_checkpoint or "(in memory)", "classifier": c.classifier_checkpoint or "(none named)",
                "process": f"{c.schedule} schedule, {c.num_steps} steps, v-prediction, DDIM {c.sample_steps} steps",
                "horizon_months": str(c.horizon_months),
                "generates": ("the change from the baseline latent (follow-up = baseline + change)"
                              if c.target == "change" else "the follow-up latent itself"),
                "training_pairs": ("follow-ups registered onto their baselines (landmark similarity + grey-level "
                                   "match) before encoding" if c.register_visits else "follow-ups as acquired")}

    @property
    def vqvae(self) -> VQVAE:
        return self.frozen_vqvae.model

    @property
    def stats_initialised(self) -> torch.Tensor:
        return self.latent_stats.initialised

    @property
    def embed_dim(self) -> int:
        return self.vqvae.embed_dim

    def embed(self, x):
        """The VQ-VAE's continuous latent, flattened [B, C·h·w]."""
        with torch.no_grad():
            return self.vqvae.embed(x)

    def encode_latent(self, x: torch.Tensor) -> torch.Tensor:
        """Images -> VQ-VAE continuous latents [B, C, h, w] (not standardised)."""
        with torch.no_grad():
            return self.vqvae.encode_continuous(x)

    def to_space(self, x):
        """VQ-VAE latents standardised per channel (statistics of the first training batch encoded)."""
        z = self.encode_latent(x)
        self.latent_stats.fit_once(z)
        return self.latent_stats(z)

    def to_latent(self, y: torch.Tensor) -> torch.Tensor:
        """Process space -> the VQ-VAE's continuous latent space."""
        return self.latent_stats.inverse(y)

    def from_space(self, y):
        """Latents -> images. With ``residual_decode`` the latent is decoded as it is (no snapping
        to the codebook): the generated change is small, and quantising would round it back onto
        today's codes; both terms of the residual go through the same continuous decoder."""
        with torch.no_grad():
            z = self.to_latent(y)
            return self.vqvae.decode(z).clamp(0, 1) if self.config.residual_decode else self.vqvae.decode_continuous(z)

    @torch.no_grad()
    def sample_future_latents(self, image, n_samples: int = 1, **kw) -> torch.Tensor:
        """Generated follow-up latents in the VQ-VAE's continuous space: [B, n, C, h, w]."""
        return self.to_latent(self.sample_space(image, n_samples, **kw).flatten(0, 1)).view(
            image.shape[0], n_samples, *self.vqvae.latent_shape)


@register_model("pixel_diffusion", PixelDiffusionConfig, presets={
    "demo": {"image_size": 128, "width": 64, "mults": [1, 2, 2], "res_blocks": 1, "attention": True,
             "sample_steps": 50, "lr": 2e-4, "batch_size": 16, "epochs": 40, "target": "change",
             "register_visits": True},
    "paper": {"image_size": 256, "width": 128, "mults": [1, 2, 2], "res_blocks": 2, "attention": True,
              "sample_steps": 50, "lr": 1e-4, "batch_size": 16, "epochs": 200, "target": "change",
              "register_visits": True},
}, description="pixel-space diffusion baseline (same U-Net and sampler), for the latent speed-up")
class PixelDiffusion(DiffusionPipeline):
    """The same process and U-Net on the images themselves, scaled to [−1, 1]."""

    capabilities = _CAPABILITIES

    def __init__(self, config: PixelDiffusionConfig):
        if config.image_size % (2 ** (len(config.mults) - 1)):
            raise ConfigError(f"image_size {config.image_size} is not divisible by 2^{len(config.mults) - 1}")
        super().__init__(config, channels=1)
        self.clip = (-1.0, 1.0) if config.clip_denoised and config.target == "follow_up" else None

    @property
    def embed_dim(self) -> int:
        return (self.config.image_size // 8) ** 2

    def embed(self, x):
        """No encoder here: the image averaged on an 8× coarser grid, flattened [B, (H/8)·(W/8)]."""
        return F.avg_pool2d(x, 8).flatten(1)

    def to_space(self, x):
        return x * 2 - 1

    def from_space(self, y):
        return ((y + 1) / 2).clamp(0, 1)
