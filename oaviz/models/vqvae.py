"""VQ-VAE: the compressor the progression diffusion model works in.

Encoder: a 3×3 stem, then one stride-2 conv per entry of ``widths`` (three
entries = 8× spatial compression, as in the source paper) each followed by
residual blocks, then a 1×1 projection to ``embedding_dim`` channels. That
projection's output is the *continuous* latent ``z_e`` [B, C, H/8, W/8]; the
diffusion model denoises in this space. The decoder mirrors the encoder and
ends in a sigmoid, so images come back in [0, 1].

Quantiser: each latent vector is replaced by its nearest codebook entry
(straight-through gradient). The codebook is not trained by gradient but by
exponential moving averages of the encodings assigned to each code (decay
γ, Laplace-smoothed counts), and codes left unused for ``restart_after``
updates are restarted on random encodings of the current batch. The codebook
is initialised from the first training batch's encodings. Loss:
MSE(x̂, x) (optionally joint-band weighted, ``joint_weight``) + β·‖z_e − sg(e)‖² with β = 0.25 (no
codebook term: EMA does that).

The EMA update runs in ``on_train_step_end`` on the encodings of the step's
loss, like VAESim's prototype update.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn
from torch.nn import functional as F

from oaviz.models.base import Autoencoder, Encoded, LossOutput, register_model
from oaviz.models.beta_vae import training_view
from oaviz.models.losses import reconstruction_weights, summed_squared_error


@dataclass(frozen=True)
class VQVAEConfig:
    image_size: int = 256
    widths: tuple[int, ...] = (64, 128, 256)   # one stride-2 stage each: 3 stages = 8× compression
    res_blocks: int = 2                        # residual blocks per stage
    embedding_dim: int = 4                     # channels of the latent the diffusion works in
    codebook_size: int = 1024
    beta: float = 0.25                         # commitment weight
    decay: float = 0.99                        # EMA decay of the codebook statistics
    eps: float = 1e-5                          # Laplace smoothing of the code counts
    restart_after: int = 100                   # updates without a hit before a code is restarted
    # Extra weight of the joint-line band in the reconstruction error (models.losses.reconstruction_weights;
    # 0 = the paper's plain MSE). The diffusion's futures are decoded by this decoder, so a joint space it
    # blurs is a narrowing no future can show.
    joint_weight: float = 0.0
    augment: bool = False                      # real radiographs: re-acquisitions that never mirror (BetaVAEConfig)
    val_fraction: float = 0.0                  # validation share of the subjects (0 = the engine's default split)
    lr: float = 2e-4
    batch_size: int = 32
    epochs: int = 50

    def __post_init__(self):
        if not self.widths or min(self.widths) < 1:
            raise ValueError("widths must be a non-empty tuple of positive channel counts")
        f = 2 ** len(self.widths)
        if self.image_size % f:
            raise ValueError(f"vqvae: image_size {self.image_size} must be a multiple of {f}")
        if self.codebook_size < 2 or self.embedding_dim < 1:
            raise ValueError("codebook_size must be >= 2 and embedding_dim >= 1")
        if not 0 <= self.val_fraction < 1:
            raise ValueError("val_fraction must be in [0, 1)")
        if not 0 < self.decay < 1 or self.beta < 0 or self.restart_after < 1:
            raise ValueError("decay must be in (0, 1), beta >= 0 and restart_after >= 1")
        if self.joint_weight < 0:
            raise ValueError("joint_weight must be >= 0")

    @property
    def downsample(self) -> int:
        return 2 ** len(self.widths)

    @property
    def latent_size(self) -> int:
        return self.image_size // self.downsample


class ResBlock(nn.Module):
    """x + conv1×1(ReLU(conv3×3(ReLU(x)))) — the residual block of the original VQ-VAE."""

    def __init__(self, ch: int):
        super().__init__()
        self.body = nn.Sequential(nn.ReLU(), nn.Conv2d(ch, ch, 3, padding=1), nn.ReLU(), nn.Conv2d(ch, ch, 1))

    def forward(self, x):
        return x + self.body(x)


def _encoder(widths: tuple[int, ...], res_blocks: int, emb: int) -> nn.Sequential:
    layers: list[nn.Module] = [nn.Conv2d(1, widths[0], 3, padding=1)]
    prev = widths[0]
    for w in widths:
        layers.append(nn.Conv2d(prev, w, 4, stride=2, padding=1))
        layers += [ResBlock(w) for _ in range(res_blocks)]
        prev = w
    layers += [nn.ReLU(), nn.Conv2d(prev, emb, 1)]
    return nn.Sequential(*layers)


def _decoder(widths: tuple[int, ...], res_blocks: int, emb: int) -> nn.Sequential:
    rev = tuple(reversed(widths))
    layers: list[nn.Module] = [nn.Conv2d(emb, rev[0], 3, padding=1)]
    for i, w in enumerate(rev):
        layers += [ResBlock(w) for _ in range(res_blocks)]
        nxt = rev[i + 1] if i + 1 < len(rev) else rev[-1]
        layers += [nn.ReLU(), nn.ConvTranspose2d(w, nxt, 4, stride=2, padding=1)]
    layers += [nn.ReLU(), nn.Conv2d(rev[-1], 1, 3, padding=1)]
    return nn.Sequential(*layers)


def ema_codebook_update(count: torch.Tensor, embed_sum: torch.Tensor, z: torch.Tensor, idx: torch.Tensor,
                        decay: float, eps: float) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """One EMA step of the codebook statistics.

    count [K], embed_sum [K, C]: running (decayed) number and sum of the
    encodings assigned to each code; z [N, C] encodings, idx [N] their codes.
    Returns (count, embed_sum, codebook [K, C]) with the codebook
    embed_sum / Laplace-smoothed count, so a used code moves to the weighted
    mean of its old value and its batch mean.
    """
    K = count.shape[0]
    onehot = F.one_hot(idx, K).to(z.dtype)          # [N, K]
    n = onehot.sum(0)                                # [K]
    s = onehot.T @ z                                 # [K, C]
    count = decay * count + (1 - decay) * n
    embed_sum = decay * embed_sum + (1 - decay) * s
    total = count.sum()
    smoothed = (count + eps) / (total + K * eps) * total
    return count, embed_sum, embed_sum / smoothed.unsqueeze(1)


class VectorQuantizerEMA(nn.Module):
    """Nearest-code quantiser with an EMA-trained codebook and dead-code restarts.

    forward(z_e [B, C, h, w]) -> (z_q straight-through [B, C, h, w], indices [B, h, w]).
    """

    def __init__(self, codebook_size: int, dim: int, decay: float = 0.99, eps: float = 1e-5,
                 restart_after: int = 100):
        super().__init__()
        self.decay, self.eps, self.restart_after = decay, eps, restart_after
        self.register_buffer("codebook", torch.randn(codebook_size, dim))
        self.register_buffer("ema_count", torch.ones(codebook_size))
        self.register_buffer("ema_sum", self.codebook.clone())
        self.register_buffer("unused_steps", torch.zeros(codebook_size, dtype=torch.long))
        self.register_buffer("initialised", torch.zeros((), dtype=torch.bool))

    @property
    def codebook_size(self) -> int:
        return self.codebook.shape[0]

    def nearest(self, flat: torch.Tensor) -> torch.Tensor:
        """Code index [N] of each vector in flat [N, C] (squared Euclidean distance)."""
        cb = self.codebook.to(flat.dtype)
        d = flat.pow(2).sum(1, keepdim=True) - 2 * flat @ cb.T + cb.pow(2).sum(1).unsqueeze(0)
        return d.argmin(1)

    def lookup(self, idx: torch.Tensor) -> torch.Tensor:
        """Codes [B, h, w] -> vectors [B, C, h, w]."""
        return self.codebook[idx].permute(0, 3, 1, 2).contiguous()

    @staticmethod
    def flatten(z: torch.Tensor) -> torch.Tensor:
        """[B, C, h, w] -> [B·h·w, C]."""
        return z.permute(0, 2, 3, 1).reshape(-1, z.shape[1])

    def forward(self, z_e: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        flat = self.flatten(z_e)
        if self.training and not bool(self.initialised):
            self._init_from(flat.detach())
        idx = self.nearest(flat).view(z_e.shape[0], *z_e.shape[2:])
        z_q = self.lookup(idx).to(z_e.dtype)
        return z_e + (z_q - z_e).detach(), idx

    @torch.no_grad()
    def _init_from(self, flat: torch.Tensor) -> None:
        """Codebook := random encodings of the first batch (with jitter when the batch is smaller)."""
        K = self.codebook_size
        pick = torch.randint(0, flat.shape[0], (K,), device=flat.device)
        init = flat[pick].float() + 1e-3 * torch.randn(K, flat.shape[1], device=flat.device)
        self.codebook.copy_(init)
        self.ema_sum.copy_(init)
        self.ema_count.fill_(1.0)
        self.unused_steps.zero_()
        self.initialised.fill_(True)

    @torch.no_grad()
    def update(self, flat: torch.Tensor, idx: torch.Tensor, generator: torch.Generator | None = None) -> int:
        """EMA step on encodings flat [N, C] with codes idx [N], then restart dead codes.

        Returns the number of codes restarted.
        """
        flat, idx = flat.float(), idx.reshape(-1)
        count, esum, cb = ema_codebook_update(self.ema_count, self.ema_sum, flat, idx, self.decay, self.eps)
        hit = torch.bincount(idx, minlength=self.codebook_size) > 0
        self.unused_steps.copy_(torch.where(hit, torch.zeros_like(self.unused_steps), self.unused_steps + 1))
        self.ema_count.copy_(count)
        self.ema_sum.copy_(esum)
        self.codebook.copy_(cb)
        dead = torch.nonzero(self.unused_steps >= self.restart_after).squeeze(1)
        if len(dead):
            # A restarted code sits on a real encoding with a count of one, so the
            # next EMA steps treat it like a freshly used code.
            pick = torch.randint(0, flat.shape[0], (len(dead),), generator=generator).to(flat.device)
            self.codebook[dead] = flat[pick]
            self.ema_sum[dead] = flat[pick]
            self.ema_count[dead] = 1.0
            self.unused_steps[dead] = 0
        return int(len(dead))


@register_model("vqvae", VQVAEConfig, presets={
    # demo: joint_weight 20 (as the β-VAE's demo). Unweighted, the reconstructions' medial JSW followed the
    # originals' with r 0.02 and the real 12-month narrowing of rising knees, registered and put through the
    # space as a future, kept 11 % of its median (-0.016 of -0.150 mm); weighted: r 0.62 and 65 % (-0.098 mm),
    # stable knees -0.001 mm (default cohort, test split, 12 epochs).
    "demo": {"image_size": 128, "widths": [32, 64, 128], "res_blocks": 1, "embedding_dim": 4,
             "codebook_size": 256, "restart_after": 20, "lr": 5e-4, "batch_size": 32, "epochs": 30,
             "joint_weight": 20.0},
    "paper": {"image_size": 256, "widths": [64, 128, 256], "res_blocks": 2, "embedding_dim": 4,
              "codebook_size": 1024, "restart_after": 100, "epochs": 100},
    "real": {"image_size": 128, "widths": [32, 64, 128], "res_blocks": 1, "embedding_dim": 4,
             "codebook_size": 256, "restart_after": 20, "lr": 5e-4, "batch_size": 32, "epochs": 30,
             "augment": True, "val_fraction": 0.2},
}, description="VQ-VAE (8× compression, EMA codebook): the latent space of the progression diffusion")
class VQVAE(Autoencoder):
    capabilities = Autoencoder.capabilities                   # a spatial latent: no VECTOR_LATENT

    def __init__(self, config: VQVAEConfig):
        super().__init__(config)
        c = config
        self.encoder = _encoder(c.widths, c.res_blocks, c.embedding_dim)
        self.decoder = _decoder(c.widths, c.res_blocks, c.embedding_dim)
        self.quantizer = VectorQuantizerEMA(c.codebook_size, c.embedding_dim, c.decay, c.eps, c.restart_after)
        self._last: tuple[torch.Tensor, torch.Tensor] | None = None
        self.last_restarts = 0

    @property
    def latent_shape(self) -> tuple[int, int, int]:
        """(C, h, w) of the continuous latent."""
        s = self.config.latent_size
        return (self.config.embedding_dim, s, s)

    @property
    def embed_dim(self) -> int:
        c, h, w = self.latent_shape
        return c * h * w

    def encode_continuous(self, x: torch.Tensor) -> torch.Tensor:
        """Images [B,1,H,W] -> pre-quantisation latent z_e [B, C, H/8, W/8]."""
        return self.encoder(x)

    def quantise(self, z_e: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """z_e [B,C,h,w] -> (z_q [B,C,h,w] with straight-through gradient, code indices [B,h,w])."""
        return self.quantizer(z_e)

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """Quantised latent [B,C,h,w] -> images [B,1,H,W] in [0, 1]."""
        return torch.sigmoid(self.decoder(z))

    def decode_continuous(self, z_e: torch.Tensor) -> torch.Tensor:
        """Continuous latent (e.g. a diffusion sample) -> quantise -> decode: images [B,1,H,W]."""
        return self.decode(self.quantise(z_e)[0])

    def decode_indices(self, idx: torch.Tensor) -> torch.Tensor:
        """Code indices [B,h,w] -> images [B,1,H,W]."""
        return self.decode(self.quantizer.lookup(idx))

    def encode(self, x: torch.Tensor) -> Encoded:
        z_e = self.encode_continuous(x)
        z_q, idx = self.quantise(z_e)
        return Encoded(z=z_q, extras={"z_e": z_e, "indices": idx})

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        """Flattened continuous latent [B, C·h·w] (deterministic)."""
        return self.encode_continuous(x).flatten(1)

    def loss(self, batch, step: int = 0) -> LossOutput:
        x = training_view(self, batch["image"])
        z_e = self.encode_continuous(x)
        z_q, idx = self.quantise(z_e)
        xr = self.decode(z_q)
        # Per-pixel mean (the paper's MSE scale): the summed error over the pixel count.
        rec = summed_squared_error(xr, x, reconstruction_weights(x, self.config.joint_weight)) / x[0].numel()
        commit = F.mse_loss(z_e, z_q.detach())
        if self.training:
            self._last = (VectorQuantizerEMA.flatten(z_e.detach()), idx.detach().reshape(-1))
        usage = torch.bincount(idx.reshape(-1), minlength=self.config.codebook_size).float()
        p = usage / usage.sum()
        perplexity = torch.exp(-(p * torch.log(p.clamp_min(1e-12))).sum())
        return LossOutput(rec + self.config.beta * commit, {
            "mse": F.mse_loss(xr, x).detach(), "weighted_mse": rec.detach(), "commit": commit.detach(),
            "perplexity": perplexity.detach(),
            "restarts": torch.tensor(float(self.last_restarts)),
        })

    @torch.no_grad()
    def on_train_step_end(self, batch, step: int) -> None:
        if self._last is None:
            return
        self.last_restarts = self.quantizer.update(*self._last)
        self._last = None
