"""The denoiser network of the progression diffusion: a small conditional U-Net.

Input: the noisy follow-up x_t [B, C, H, W] concatenated on channels with the
baseline (the condition) [B, C_cond, H, W]; output: the v-prediction
[B, C_out, H, W]. The timestep enters every residual block through a
sinusoidal embedding and an MLP (scale-free: any t in [0, num_steps)).
Levels: ``width·mults[i]`` channels, ``res_blocks`` residual blocks each, a
stride-2 downsample between levels; a residual–attention–residual middle at
the lowest resolution; the decoder mirrors it with skip connections. The
output convolution starts at zero so an untrained net predicts v = 0.

The same class serves the latent model (C = VQ-VAE channels at H/8) and the
pixel-space baseline (C = 1 at full size): that is what makes their speed
comparable.
"""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn import functional as F


def timestep_embedding(t: torch.Tensor, dim: int, max_period: float = 10000.0) -> torch.Tensor:
    """Sinusoidal embedding of timesteps t [B] -> [B, dim]: cos(t·f_k), sin(t·f_k), f_k = max_period^(-k/half)."""
    half = dim // 2
    freqs = torch.exp(-math.log(max_period) * torch.arange(half, dtype=torch.float32, device=t.device) / half)
    args = t.float()[:, None] * freqs[None]
    emb = torch.cat([torch.cos(args), torch.sin(args)], dim=1)
    if dim % 2:
        emb = F.pad(emb, (0, 1))
    return emb


def group_norm(ch: int) -> nn.GroupNorm:
    """GroupNorm with up to 32 groups that divide ``ch`` (tiny test widths included)."""
    return nn.GroupNorm(math.gcd(32, ch), ch)


class TimeResBlock(nn.Module):
    """GN-SiLU-conv, + projected time embedding, GN-SiLU-dropout-conv, residual (1×1 when widths differ)."""

    def __init__(self, cin: int, cout: int, tdim: int, dropout: float = 0.0):
        super().__init__()
        self.in_layers = nn.Sequential(group_norm(cin), nn.SiLU(), nn.Conv2d(cin, cout, 3, padding=1))
        self.t_proj = nn.Sequential(nn.SiLU(), nn.Linear(tdim, cout))
        self.out_layers = nn.Sequential(group_norm(cout), nn.SiLU(), nn.Dropout(dropout),
                                        nn.Conv2d(cout, cout, 3, padding=1))
        self.skip = nn.Conv2d(cin, cout, 1) if cin != cout else nn.Identity()

    def forward(self, x, temb):
        h = self.in_layers(x) + self.t_proj(temb)[:, :, None, None]
        return self.skip(x) + self.out_layers(h)


class SelfAttention(nn.Module):
    """Multi-head self-attention over the spatial positions, residual."""

    def __init__(self, ch: int, heads: int = 4):
        super().__init__()
        self.heads = heads if ch % heads == 0 else 1
        self.norm = group_norm(ch)
        self.qkv = nn.Conv2d(ch, 3 * ch, 1)
        self.proj = nn.Conv2d(ch, ch, 1)

    def forward(self, x):
        b, c, h, w = x.shape
        q, k, v = self.qkv(self.norm(x)).reshape(b, 3, self.heads, c // self.heads, h * w).unbind(1)
        out = F.scaled_dot_product_attention(q.transpose(-1, -2), k.transpose(-1, -2), v.transpose(-1, -2))
        return x + self.proj(out.transpose(-1, -2).reshape(b, c, h, w))


class DiffusionUNet(nn.Module):
    """Conditional U-Net: forward(x_t [B,C,H,W], t [B] int, cond [B,C_cond,H,W]) -> [B,C_out,H,W].

    H and W must be multiples of 2^(len(mults) − 1).
    """

    def __init__(self, in_channels: int, cond_channels: int, out_channels: int | None = None, width: int = 64,
                 mults: tuple[int, ...] = (1, 2, 2), res_blocks: int = 1, attention: bool = True,
                 dropout: float = 0.0):
        super().__init__()
        out_channels = out_channels or in_channels
        self.in_channels, self.cond_channels = in_channels, cond_channels
        self.levels = len(mults)
        tdim = 4 * width
        self.width = width
        self.time_mlp = nn.Sequential(nn.Linear(width, tdim), nn.SiLU(), nn.Linear(tdim, tdim))
        self.stem = nn.Conv2d(in_channels + cond_channels, width, 3, padding=1)

        self.down = nn.ModuleList()
        skips = [width]
        ch = width
        for i, m in enumerate(mults):
            for _ in range(res_blocks):
                self.down.append(TimeResBlock(ch, width * m, tdim, dropout))
                ch = width * m
                skips.append(ch)
            if i < len(mults) - 1:
                self.down.append(nn.Conv2d(ch, ch, 3, stride=2, padding=1))
                skips.append(ch)
        self.mid1 = TimeResBlock(ch, ch, tdim, dropout)
        self.mid_attn = SelfAttention(ch) if attention else nn.Identity()
        self.mid2 = TimeResBlock(ch, ch, tdim, dropout)

        self.up = nn.ModuleList()
        for i, m in reversed(list(enumerate(mults))):
            for _ in range(res_blocks + 1):
                self.up.append(TimeResBlock(ch + skips.pop(), width * m, tdim, dropout))
                ch = width * m
            if i > 0:
                self.up.append(nn.Sequential(nn.Upsample(scale_factor=2, mode="nearest"),
                                             nn.Conv2d(ch, ch, 3, padding=1)))
        self.out = nn.Sequential(group_norm(ch), nn.SiLU(), nn.Conv2d(ch, out_channels, 3, padding=1))
        nn.init.zeros_(self.out[-1].weight)
        nn.init.zeros_(self.out[-1].bias)

    def forward(self, x_t: torch.Tensor, t: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        f = 2 ** (self.levels - 1)
        if x_t.shape[-1] % f or x_t.shape[-2] % f:
            raise ValueError(f"DiffusionUNet: spatial size {tuple(x_t.shape[-2:])} must be a multiple of {f}")
        if t.ndim == 0:
            t = t.expand(x_t.shape[0])
        temb = self.time_mlp(timestep_embedding(t, self.width))
        h = self.stem(torch.cat([x_t, cond.to(x_t.dtype)], dim=1))
        hs = [h]
        for layer in self.down:
            h = layer(h, temb) if isinstance(layer, TimeResBlock) else layer(h)
            hs.append(h)
        h = self.mid2(self.mid_attn(self.mid1(h, temb)), temb)
        for layer in self.up:
            if isinstance(layer, TimeResBlock):
                h = layer(torch.cat([h, hs.pop()], dim=1), temb)
            else:
                h = layer(h)
        return self.out(h)
