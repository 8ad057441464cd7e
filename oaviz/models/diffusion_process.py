"""The Gaussian diffusion process (the scheduler), apart from any denoiser network.

Noise schedule (Nichol & Dhariwal's cosine ᾱ with β clipped at 0.999, or the
DDPM linear one), forward noising ``q_sample``, the v-prediction target
v = √ᾱ·ε − √(1−ᾱ)·x₀ and its inverse, the DDPM training loss, and
deterministic (η = 0) or stochastic DDIM sampling. Timesteps are indices
0…T−1; index i holds ᾱ at t = i + 1, and "t = −1" is the clean sample (ᾱ = 1).
"""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn import functional as F

SCHEDULES = ("cosine", "linear")

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
