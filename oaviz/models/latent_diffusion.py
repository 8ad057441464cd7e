"""Conditional diffusion of the follow-up knee given the baseline knee.

Two parts, kept apart as the design asks:

- ``GaussianDiffusion``: the process. Noise schedule (Nichol & Dhariwal's
  cosine ᾱ with β clipped at 0.999, or the DDPM linear one), forward noising
  ``q_sample``, the v-prediction target v = √ᾱ·ε − √(1−ᾱ)·x₀ and its inverse,
  the DDPM training loss, and deterministic (η = 0) or stochastic DDIM sampling.
  Timesteps are indices 0…T−1; index i holds ᾱ at t = i + 1, and "t = −1" is
  the clean sample (ᾱ = 1).
- ``LatentDiffusion`` (registered as ``latent_diffusion``): a trainable model
  whose U-Net (oaviz.models.diffusion_unet) denoises the follow-up's VQ-VAE
  continuous latent, conditioned on the baseline's latent by channel
  concatenation. The VQ-VAE is frozen and referenced by checkpoint path in the
  config (it is not part of this model's weights), or passed in memory.
  Latents are standardised per channel with the mean and std of the first
  training batch (saved with the weights), so the process sees zero-mean,
  unit-variance data whatever the VQ-VAE's scale.
- ``PixelDiffusion`` (``pixel_diffusion``): the same U-Net width and sampler on
  the images themselves (scaled to [−1, 1]); it exists to measure what the
  latent space saves.

Batches for both: ``image`` = baseline, ``image_next`` = follow-up, each
[B, 1, H, W] in [0, 1] (a pair of visits of one subject and side).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn
from torch.nn import functional as F

from oaviz.data.errors import DataError
from oaviz.data.registration import register_follow_up
from oaviz.models.base import ConfigError, LossOutput, OAModel, load_frozen_model, register_model
from oaviz.models.diffusion_unet import DiffusionUNet
from oaviz.models.vqvae import VQVAE

SCHEDULES = ("cosine", "linear")
TARGETS = ("follow_up", "change")


# ----------------------------------------------------------------- the process
def cosine_alpha_bar(t: torch.Tensor, s: float = 0.008) -> torch.Tensor:
    """Nichol & Dhariwal's f(t)/f(0) with f(t) = cos²(((t + s)/(1 + s))·π/2), t ∈ [0, 1]."""
    f = lambda u: torch.cos((u + s) / (1 + s) * math.pi / 2) ** 2  # noqa: E731
    return f(t) / f(torch.zeros_like(t))


def make_betas(num_steps: int, schedule: str = "cosine", max_beta: float = 0.999) -> torch.Tensor:
    """β_1…β_T as float64 [T]. Cosine: β_i = min(1 − ᾱ(i/T)/ᾱ((i−1)/T), max_beta)."""
    if schedule == "cosine":
        grid = torch.arange(num_steps + 1, dtype=torch.float64) / num_steps
        ab = cosine_alpha_bar(grid)
        return (1 - ab[1:] / ab[:-1]).clamp(max=max_beta)
    if schedule == "linear":
        scale = 1000.0 / num_steps
        return torch.linspace(scale * 1e-4, scale * 0.02, num_steps, dtype=torch.float64)
    raise ValueError(f"schedule must be one of {SCHEDULES}, got {schedule!r}")


def _gather(arr: torch.Tensor, t: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """arr[t] shaped [B, 1, 1, …] to broadcast over ``like`` (cast to its dtype/device)."""
    out = arr.to(like.device)[t.to(like.device)].to(like.dtype)
    return out.view(-1, *([1] * (like.ndim - 1)))


def _noise(shape, generator: torch.Generator | None, device) -> torch.Tensor:
    """Standard normal noise drawn on the CPU (so a seed gives the same draw on any device)."""
    return torch.randn(shape, generator=generator).to(device)


class GaussianDiffusion:
    """Forward process, v-prediction algebra, DDPM loss and DDIM sampling.

    ``alpha_bars`` [T] float64: ᾱ at t = 1…T (index i ↔ t = i + 1), strictly
    decreasing in (0, 1). A denoiser is called as ``net(x_t, t, cond)`` with t
    an int64 [B] of indices and returns v [B, C, …].
    """

    def __init__(self, num_steps: int = 1000, schedule: str = "cosine"):
        if num_steps < 1:
            raise ValueError("num_steps must be >= 1")
        self.num_steps, self.schedule = int(num_steps), schedule
        self.betas = make_betas(self.num_steps, schedule)
        self.alpha_bars = torch.cumprod(1 - self.betas, 0)

    def __repr__(self) -> str:
        return f"GaussianDiffusion(num_steps={self.num_steps}, schedule={self.schedule!r})"

    # -- forward process and v algebra
    def q_sample(self, x0: torch.Tensor, t: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
        """x_t = √ᾱ_t·x₀ + √(1−ᾱ_t)·ε."""
        ab = _gather(self.alpha_bars, t, x0)
        return ab.sqrt() * x0 + (1 - ab).sqrt() * noise

    def v_target(self, x0: torch.Tensor, noise: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """v = √ᾱ_t·ε − √(1−ᾱ_t)·x₀."""
        ab = _gather(self.alpha_bars, t, x0)
        return ab.sqrt() * noise - (1 - ab).sqrt() * x0

    def predict_x0_eps(self, x_t: torch.Tensor, v: torch.Tensor, t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Invert (x_t, v) -> (x₀, ε): x₀ = √ᾱ·x_t − √(1−ᾱ)·v, ε = √(1−ᾱ)·x_t + √ᾱ·v."""
        ab = _gather(self.alpha_bars, t, x_t)
        a, s = ab.sqrt(), (1 - ab).sqrt()
        return a * x_t - s * v, s * x_t + a * v

    # -- training
    def sample_t(self, n: int, generator: torch.Generator | None = None, device=None) -> torch.Tensor:
        return torch.randint(0, self.num_steps, (n,), generator=generator).to(device)

    def training_loss(self, net: nn.Module, x0: torch.Tensor, cond: torch.Tensor, t: torch.Tensor | None = None,
                      generator: torch.Generator | None = None, noise: torch.Tensor | None = None) -> torch.Tensor:
        """DDPM objective with v-prediction: mean ‖net(x_t, t, cond) − v‖² over a uniform t and ε ~ N(0, I).

        The process itself runs in float32 even under autocast (bf16 would round √ᾱ and the target).
        """
        x0 = x0.float()
        if t is None:
            t = self.sample_t(x0.shape[0], generator, x0.device)
        if noise is None:
            noise = _noise(x0.shape, generator, x0.device)
        noise = noise.float()
        x_t = self.q_sample(x0, t, noise)
        return F.mse_loss(net(x_t, t, cond).float(), self.v_target(x0, noise, t).float())

    # -- sampling
    def ddim_timesteps(self, steps: int) -> torch.Tensor:
        """Descending indices from T−1 to 0, ``steps`` of them evenly spaced (fewer if T < steps)."""
        if steps < 1:
            raise ValueError("steps must be >= 1")
        steps = min(steps, self.num_steps)
        ts = torch.linspace(self.num_steps - 1, 0, steps, dtype=torch.float64).round().long()
        return torch.unique_consecutive(ts)

    def ddim_step(self, x_t: torch.Tensor, v: torch.Tensor, t: torch.Tensor, t_prev: torch.Tensor,
                  eta: float = 0.0, noise: torch.Tensor | None = None,
                  clip: tuple[float, float] | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """One DDIM update from index t to t_prev (−1 = clean); returns (x_{t_prev}, predicted x₀).

        σ = η·√((1−ᾱ_prev)/(1−ᾱ_t))·√(1 − ᾱ_t/ᾱ_prev);
        x_prev = √ᾱ_prev·x̂₀ + √(1−ᾱ_prev−σ²)·ε̂ + σ·z. With η = 0 it is deterministic,
        and a step to −1 returns x̂₀ itself.
        """
        t_prev = t_prev.cpu()
        ab_t = _gather(self.alpha_bars, t, x_t)
        x0, eps = self.predict_x0_eps(x_t, v, t)
        if clip is not None:
            x0 = x0.clamp(*clip)
            eps = (x_t - ab_t.sqrt() * x0) / (1 - ab_t).sqrt()   # keep ε consistent with the clipped x₀
        prev = torch.where(t_prev >= 0, self.alpha_bars[t_prev.clamp_min(0)], torch.ones((), dtype=torch.float64))
        ab_prev = prev.to(x_t.device, x_t.dtype).view(-1, *([1] * (x_t.ndim - 1)))
        sigma = eta * ((1 - ab_prev) / (1 - ab_t)).sqrt() * (1 - ab_t / ab_prev).clamp_min(0).sqrt()
        x_prev = ab_prev.sqrt() * x0 + (1 - ab_prev - sigma ** 2).clamp_min(0).sqrt() * eps
        if eta > 0:
            x_prev = x_prev + sigma * (noise if noise is not None else torch.randn_like(x_t))
        return x_prev, x0

    @torch.no_grad()
    def ddim_sample(self, net: nn.Module, cond: torch.Tensor, steps: int = 50, eta: float = 0.0,
                    generator: torch.Generator | None = None, seed: int | None = None,
                    x_T: torch.Tensor | None = None, channels: int | None = None,
                    clip: tuple[float, float] | None = None) -> torch.Tensor:
        """Sample x₀ [B, C, …] given cond [B, C_cond, …] with ``steps`` DDIM steps.

        Noise comes from ``generator`` (or a fresh one seeded with ``seed``) on
        the CPU, so the same seed gives the same samples. C defaults to C_cond.
        """
        if generator is None and seed is not None:
            generator = torch.Generator().manual_seed(int(seed))
        shape = (cond.shape[0], channels or cond.shape[1], *cond.shape[2:])
        x = x_T.to(cond.device, cond.dtype) if x_T is not None else _noise(shape, generator, cond.device).to(cond.dtype)
        ts = self.ddim_timesteps(steps)
        for i, t in enumerate(ts.tolist()):
            t_prev = ts[i + 1].item() if i + 1 < len(ts) else -1
            tb = torch.full((x.shape[0],), t, dtype=torch.long, device=x.device)
            tp = torch.full((x.shape[0],), t_prev, dtype=torch.long)
            v = net(x, tb, cond).to(x.dtype)
            z = _noise(x.shape, generator, x.device).to(x.dtype) if eta > 0 and t_prev >= 0 else None
            x, _ = self.ddim_step(x, v, tb, tp, eta=eta, noise=z, clip=clip)
        return x


# ----------------------------------------------------------------- trainable models
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
    lr: float = 1e-4
    batch_size: int = 32
    epochs: int = 100

    def __post_init__(self):
        if self.schedule not in SCHEDULES:
            raise ValueError(f"schedule must be one of {SCHEDULES}, got {self.schedule!r}")
        if self.target not in TARGETS:
            raise ValueError(f"target must be one of {TARGETS}, got {self.target!r}")
        if self.width < 1 or not self.mults or self.res_blocks < 1 or self.num_steps < 1 or self.sample_steps < 1:
            raise ValueError("width, mults, res_blocks, num_steps and sample_steps must be positive")


@dataclass(frozen=True)
class LatentDiffusionConfig(_DiffusionConfig):
    vqvae_checkpoint: str = ""             # frozen VQ-VAE (checkpoint folder); required unless passed in memory
    classifier_checkpoint: str = ""        # multitask KL/landmark classifier paired with this model (for risk)


@dataclass(frozen=True)
class PixelDiffusionConfig(_DiffusionConfig):
    clip_denoised: bool = True             # clamp predicted x₀ to [−1, 1] while sampling


class _ConditionalDiffusion(OAModel):
    """Shared by the latent and pixel models: data space, loss, sampling of futures.

    ``target="follow_up"`` diffuses the follow-up itself. ``target="change"``
    diffuses the follow-up minus the baseline (in the process space,
    standardised per channel with the first training batch's statistics): a
    follow-up mostly *is* its baseline, so generating the change keeps the
    knee's own anatomy and spends the model on what progresses. With
    ``register_visits`` the training follow-ups are first registered onto
    their baselines (oaviz.data.registration), so the change is disease, not
    repositioning, and generated futures share today's pose.
    """

    batch_kind = "visit_pairs"
    clip: tuple[float, float] | None = None

    def __init__(self, config, channels: int):
        super().__init__(config)
        self.channels = channels
        self.net = DiffusionUNet(channels, channels, channels, width=config.width, mults=config.mults,
                                 res_blocks=config.res_blocks, attention=config.attention, dropout=config.dropout)
        self.diffusion = GaussianDiffusion(config.num_steps, config.schedule)
        if config.target == "change":
            self.register_buffer("change_mean", torch.zeros(channels))
            self.register_buffer("change_std", torch.ones(channels))
            self.register_buffer("change_stats_initialised", torch.zeros((), dtype=torch.bool))

    def to_space(self, x: torch.Tensor) -> torch.Tensor:
        """Images [B,1,H,W] in [0,1] -> the space the process runs in."""
        raise NotImplementedError

    def from_space(self, y: torch.Tensor) -> torch.Tensor:
        """Process space -> images [B,1,H,W] in [0,1]."""
        raise NotImplementedError

    def _change_stats(self, like: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        shape = (1, -1) + (1,) * (like.ndim - 2)
        return self.change_mean.view(shape).to(like.dtype), self.change_std.view(shape).to(like.dtype)

    def target_from(self, now: torch.Tensor, nxt: torch.Tensor) -> torch.Tensor:
        """What the process generates, from baseline and follow-up in process space [B, C, h, w]."""
        if self.config.target == "follow_up":
            return nxt
        d = nxt - now
        if self.training and not bool(self.change_stats_initialised):
            with torch.no_grad():
                dims = [0] + list(range(2, d.ndim))
                self.change_mean.copy_(d.float().mean(dims))
                self.change_std.copy_(d.float().std(dims).clamp_min(1e-6))
                self.change_stats_initialised.fill_(True)
        mean, std = self._change_stats(d)
        return (d - mean) / std

    def follow_up_from(self, now: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """Inverse of ``target_from``: a generated target -> the follow-up in process space."""
        if self.config.target == "follow_up":
            return y
        mean, std = self._change_stats(y)
        return now + y * std + mean

    def training_pair(self, batch) -> tuple[torch.Tensor, torch.Tensor]:
        """(x₀ the process learns to generate, the condition), both [B, C, h, w]."""
        if "image_next" not in batch:
            raise DataError(f"{self.model_type} needs batches of visit pairs: 'image' (baseline) and "
                            "'image_next' (follow-up); this batch has no 'image_next'")
        nxt_img = batch["image_next"]
        if self.config.register_visits and "landmarks" in batch and "landmarks_next" in batch:
            nxt_img = register_follow_up(nxt_img, batch["image"], batch["landmarks_next"], batch["landmarks"])
        cond = self.to_space(batch["image"])
        return self.target_from(cond, self.to_space(nxt_img)), cond

    def loss(self, batch, step: int = 0) -> LossOutput:
        x0, cond = self.training_pair(batch)
        mse = self.diffusion.training_loss(self.net, x0, cond)
        return LossOutput(mse, {"mse_v": mse.detach()})

    @torch.no_grad()
    def sample_space(self, image: torch.Tensor, n_samples: int = 1, steps: int | None = None, eta: float = 0.0,
                     seed: int | None = None, generator: torch.Generator | None = None,
                     chunk: int = 64) -> torch.Tensor:
        """n follow-ups per baseline in process space: [B, n, C, h, w]."""
        if generator is None:
            # Without a seed, draw one from the global RNG (so torch.manual_seed still makes runs repeatable).
            seed = int(torch.randint(0, 2 ** 62, (1,)).item()) if seed is None else int(seed)
            generator = torch.Generator().manual_seed(seed)
        cond = self.to_space(image).repeat_interleave(n_samples, dim=0)
        x_T = torch.randn(cond.shape, generator=generator)
        out = []
        for i in range(0, len(cond), chunk):
            out.append(self.diffusion.ddim_sample(self.net, cond[i:i + chunk], steps or self.config.sample_steps,
                                                  eta=eta, generator=generator, x_T=x_T[i:i + chunk], clip=self.clip))
        y = self.follow_up_from(cond, torch.cat(out))
        return y.view(image.shape[0], n_samples, *y.shape[1:])

    @torch.no_grad()
    def sample_future(self, image: torch.Tensor, n_samples: int = 1, steps: int | None = None, eta: float = 0.0,
                      seed: int | None = None, generator: torch.Generator | None = None,
                      chunk: int = 64) -> torch.Tensor:
        """Generated follow-ups of baselines image [B,1,H,W]: [B, n, 1, H, W] in [0, 1].

        With ``residual_decode`` a future is today's image plus the decoded change,
        image + decode(generated) − decode(today's own latent): what the autoencoder
        blurs or shifts in every image (the joint line, fine texture) cancels, so the
        futures keep today's detail and differ from it only where the model changed it.
        """
        y = self.sample_space(image, n_samples, steps, eta, seed, generator, chunk)
        b, n = y.shape[:2]
        imgs = self.from_space(y.flatten(0, 1)).view(b, n, *image.shape[1:])
        if self.config.residual_decode:
            imgs = (image[:, None] + imgs - self.reconstruct(image)[:, None]).clamp(0, 1)
        return imgs

    def describe_futures(self) -> str:
        """One sentence for users: how a generated future image is built from today's."""
        c = self.config
        if not c.residual_decode:
            return "Each future is decoded from the generated latent alone."
        learned = (" The model learned that change from follow-ups registered onto their baselines."
                   if c.register_visits else "")
        return ("Each future is today's image plus the change the model generated, decode(future) − decode(today), "
                "so it keeps today's detail and pose." + learned +
                " The real follow-up is shown as acquired: its pose and exposure differ.")

    @torch.no_grad()
    def reconstruct(self, image: torch.Tensor) -> torch.Tensor:
        """Today through the process space and back [B,1,H,W] (the autoencoder's reconstruction)."""
        return self.from_space(self.to_space(image))


@register_model("latent_diffusion", LatentDiffusionConfig, presets={
    "demo": {"image_size": 128, "width": 64, "mults": [1, 2, 2], "res_blocks": 1, "attention": True,
             "sample_steps": 50, "lr": 2e-4, "batch_size": 32, "epochs": 40, "target": "change",
             "register_visits": True},
    # U-Net 24.5 M parameters; with the paper VQ-VAE (4.9 M) and multitask classifier (5.5 M) about the
    # 35 M the source paper reports for its whole pipeline.
    "paper": {"image_size": 256, "width": 128, "mults": [1, 2, 2], "res_blocks": 2, "attention": True,
              "sample_steps": 50, "lr": 1e-4, "batch_size": 32, "epochs": 200, "target": "change",
              "register_visits": True},
}, description="conditional latent diffusion of the follow-up knee (VQ-VAE latent, v-prediction, DDIM)")
class LatentDiffusion(_ConditionalDiffusion):
    """Denoises the follow-up's VQ-VAE latent given the baseline's; the VQ-VAE is frozen and not saved here."""

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
        vqvae.eval()
        # Held outside the module tree: frozen, not in this model's state_dict, not trained.
        self.__dict__["_vqvae"] = vqvae
        self.register_buffer("latent_mean", torch.zeros(c))
        self.register_buffer("latent_std", torch.ones(c))
        self.register_buffer("stats_initialised", torch.zeros((), dtype=torch.bool))

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
        return self.__dict__["_vqvae"]

    def _apply(self, fn, *args, **kwargs):
        # .to()/.cuda()/.float() also move the frozen VQ-VAE.
        super()._apply(fn, *args, **kwargs)
        self.__dict__["_vqvae"]._apply(fn, *args, **kwargs)
        return self

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

    def _stats(self, like: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        shape = (1, -1) + (1,) * (like.ndim - 2)
        return self.latent_mean.view(shape).to(like.dtype), self.latent_std.view(shape).to(like.dtype)

    @torch.no_grad()
    def _init_stats(self, z: torch.Tensor) -> None:
        dims = [0] + list(range(2, z.ndim))
        self.latent_mean.copy_(z.float().mean(dims))
        self.latent_std.copy_(z.float().std(dims).clamp_min(1e-6))
        self.stats_initialised.fill_(True)

    def to_space(self, x):
        """Latents standardised per channel (statistics of the first training batch), so the
        process sees zero-mean, unit-variance data whatever the VQ-VAE's scale."""
        z = self.encode_latent(x)
        if self.training and not bool(self.stats_initialised):
            self._init_stats(z)
        mean, std = self._stats(z)
        return (z - mean) / std

    def to_latent(self, y: torch.Tensor) -> torch.Tensor:
        """Process space -> the VQ-VAE's continuous latent space."""
        mean, std = self._stats(y)
        return y * std + mean

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
class PixelDiffusion(_ConditionalDiffusion):
    """The same process and U-Net on the images themselves, scaled to [−1, 1]."""

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
