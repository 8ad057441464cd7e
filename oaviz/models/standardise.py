"""Per-channel standardisation fitted once, on the first training batch, and saved with the weights."""

from __future__ import annotations

import torch
from torch import nn


class ChannelStandardiser(nn.Module):
    """y = (x − μ_c) / σ_c over x [B, C, …], and its inverse x = y·σ_c + μ_c.

    μ and σ (buffers ``mean``, ``std`` [C]; ``initialised`` bool) are the
    per-channel statistics of the first batch ``fit_once`` sees in training
    (σ clamped at 1e-6), so the data the diffusion process sees is zero-mean
    and unit-variance whatever the scale of the space it comes from.
    """

    def __init__(self, channels: int):
        super().__init__()
        self.register_buffer("mean", torch.zeros(channels))
        self.register_buffer("std", torch.ones(channels))
        self.register_buffer("initialised", torch.zeros((), dtype=torch.bool))

    @torch.no_grad()
    def fit_once(self, x: torch.Tensor) -> None:
        """Take μ, σ from ``x`` when training and not yet fitted; otherwise do nothing."""
        if self.training and not bool(self.initialised):
            dims = [0] + list(range(2, x.ndim))
            self.mean.copy_(x.float().mean(dims))
            self.std.copy_(x.float().std(dims).clamp_min(1e-6))
            self.initialised.fill_(True)

    def stats(self, like: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(μ, σ) shaped [1, C, 1, …] in the dtype of ``like``."""
        shape = (1, -1) + (1,) * (like.ndim - 2)
        return self.mean.view(shape).to(like.dtype), self.std.view(shape).to(like.dtype)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        mean, std = self.stats(x)
        return (x - mean) / std

    def inverse(self, y: torch.Tensor) -> torch.Tensor:
        mean, std = self.stats(y)
        return y * std + mean


def rename_legacy_keys(module: nn.Module, renames: dict[str, str]) -> None:
    """Let ``module`` load state dicts written before a buffer moved: ``{old key: new key}`` relative to it."""

    def hook(state_dict, prefix, *_):
        for old, new in renames.items():
            if prefix + old in state_dict and prefix + new not in state_dict:
                state_dict[prefix + new] = state_dict.pop(prefix + old)

    module._register_load_state_dict_pre_hook(hook)
