"""KECAE: key-exchange convolutional autoencoder (early knee OA augmentation).

Two encoders with separate weights read every image: one gives its *key*
vector h^K (meant to carry the KL-defining signs: joint-space narrowing,
osteophytes), the other its *non-key* vector h^N (the rest of the knee). The
decoder works on their element-wise sum, so for a pair (X₁ KL 0, X₂ KL 2):

    X̂₁ = D(h₁^N + h₁^K), X̂₂ = D(h₂^N + h₂^K)        reconstructions
    X₁' = D(h₁^N + h₂^K), X₂' = D(h₂^N + h₁^K)       key-exchanged outputs

Loss (the paper's hybrid loss):
J = MSE(X̂₁, X₁) + MSE(X̂₂, X₂) + λ1·[CE(disc(X₁'), Y₂) + CE(disc(X₂'), Y₁)]
  + λ2·[F(h₁^K, h₁^N) + F(h₂^K, h₂^N)],  λ1 = 1e-2, λ2 = 1e-3,
with the Fisher ratio F(K, N) = (σ_N² + σ_K²)/(μ_N − μ_K)², mean and variance
taken over the elements of the batch's key and non-key tensors as the public
code does (``fisher_scope="image"``: per image, then averaged).

The discriminator (KL a vs KL b) is part of this model. ``discriminator``:
- ``"frozen"`` (the paper, default): it is first trained on the real images of
  the pairs for ``discriminator_pretrain_steps`` steps (the exchange term is off
  meanwhile), then frozen: no gradient reaches its weights, it only judges.
- ``"joint"`` (the public code): it keeps training on the real images at every
  step while the autoencoder learns against it.
Either way the exchange term backpropagates *through* the discriminator into
the autoencoder without touching the discriminator's weights (its parameters
are detached for that call). It uses GroupNorm, not batch norm, so judging
images changes no running statistics either.

Architecture (as the paper and its code): each encoder block is a 3×3
stride-2 unpadded conv, batch norm (not on the first block) and LeakyReLU
0.2; paper preset 299 px, 32→2048 channels over seven blocks (down to 1×1).
The decoder mirrors it with 3×3 stride-2 transposed convs whose output
padding restores each encoder size exactly, and ends in a sigmoid ([0, 1]
images, where the paper uses tanh on [−1, 1]). The paper's discriminator is a
Siamese VGG-style network on medial/lateral joint patches; here it is a small
VGG-style CNN on the whole image, since patch positions are cohort-specific.

Batches: ``image`` = KL ``grade_a`` (0) images, ``image_pair`` = KL
``grade_b`` (2) images, same count, paired row by row.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn
from torch.func import functional_call
from torch.nn import functional as F

from oaviz.data.augment import random_acquisition, real_acquisition
from oaviz.errors import DataError
from oaviz.models.base import Autoencoder, Cap, Encoded, LossOutput, load_frozen_model, register_model
from oaviz.models.frozen import Frozen

DISC_MODES = ("frozen", "joint")


def encoder_sizes(image_size: int, n: int) -> list[int]:
    """Sides after each 3×3 stride-2 unpadded conv: [S, ⌊(S−3)/2⌋+1, …] (n + 1 entries)."""
    sizes = [image_size]
    for _ in range(n):
        if sizes[-1] < 3:
            break
        sizes.append((sizes[-1] - 3) // 2 + 1)
    return sizes


@dataclass(frozen=True)
class KECAEConfig:
    image_size: int = 299
    widths: tuple[int, ...] = (32, 64, 128, 256, 512, 1024, 2048)
    disc_widths: tuple[int, ...] = (32, 64, 128, 256)
    lambda_sup: float = 1e-2                 # λ1: discriminator CE on exchanged outputs (labels swapped)
    lambda_fisher: float = 1e-3              # λ2: Fisher ratio between key and non-key vectors
    discriminator: str = "frozen"            # "frozen" (paper) | "joint" (public code)
    discriminator_pretrain_steps: int = 1000  # frozen mode: steps the discriminator trains before it is frozen
    discriminator_checkpoint: str = ""       # frozen mode: judge with this pretrained KL classifier (e.g. multitask)
    augment: bool = False                    # train on random re-acquisitions (pose, exposure, mirror) of each pair
    keep_sides: bool = False                 # augment with real_acquisition: never a mirror (real, oriented knees)
    val_fraction: float = 0.0                # validation share of the subjects (0 = the engine's default split)
    fisher_eps: float = 1e-8
    fisher_scope: str = "batch"              # "batch" (public code, stable) | "image" (eq. 7 per image)
    grade_a: int = 0                         # KL grade of `image` (label 0 of the discriminator)
    grade_b: int = 2                         # KL grade of `image_pair` (label 1)
    lr: float = 1e-4
    batch_size: int = 32
    epochs: int = 100

    def __post_init__(self):
        if self.fisher_scope not in ("batch", "image"):
            raise ValueError(f"fisher_scope must be 'batch' or 'image', got {self.fisher_scope!r}")
        if self.discriminator not in DISC_MODES:
            raise ValueError(f"discriminator must be one of {DISC_MODES}, got {self.discriminator!r}")
        if len(encoder_sizes(self.image_size, len(self.widths))) != len(self.widths) + 1:
            raise ValueError(f"kecae: image_size {self.image_size} is too small for {len(self.widths)} "
                             "3×3 stride-2 blocks")
        if self.lambda_sup < 0 or self.lambda_fisher < 0 or self.discriminator_pretrain_steps < 0:
            raise ValueError("lambda_sup, lambda_fisher and discriminator_pretrain_steps must be >= 0")
        if not 0 <= self.val_fraction < 1:
            raise ValueError("val_fraction must be in [0, 1)")
        if self.grade_a == self.grade_b:
            raise ValueError("grade_a and grade_b must differ")
        if self.discriminator_checkpoint and self.discriminator != "frozen":
            raise ValueError("discriminator_checkpoint is a frozen pretrained judge; it needs discriminator='frozen'")


def fisher_ratio(key: torch.Tensor, nonkey: torch.Tensor, eps: float = 1e-8, scope: str = "batch") -> torch.Tensor:
    """(σ_N² + σ_K²) / ((μ_N − μ_K)² + eps), population mean and variance over elements.

    key, nonkey [B, …]. ``scope="batch"``: one ratio over all the batch's
    elements (the public code; a scalar). ``scope="image"``: one ratio per
    image [B], as eq. 7 reads literally — it explodes for any image whose two
    means happen to coincide, which is why the batch scope is the default.
    """
    k, n = (key.flatten(1), nonkey.flatten(1)) if scope == "image" else (key.reshape(1, -1), nonkey.reshape(1, -1))
    num = n.var(1, unbiased=False) + k.var(1, unbiased=False)
    r = num / ((n.mean(1) - k.mean(1)) ** 2 + eps)
    return r if scope == "image" else r[0]


def _encoder(widths: tuple[int, ...]) -> nn.Sequential:
    layers: list[nn.Module] = []
    prev = 1
    for i, w in enumerate(widths):
        layers.append(nn.Conv2d(prev, w, 3, stride=2, padding=0, bias=i == 0))
        if i > 0:
            layers.append(nn.BatchNorm2d(w))
        layers.append(nn.LeakyReLU(0.2, inplace=True))
        prev = w
    return nn.Sequential(*layers)


def _decoder(widths: tuple[int, ...], sizes: list[int]) -> nn.Sequential:
    layers: list[nn.Module] = []
    n = len(widths)
    for i in range(n, 0, -1):             # from side sizes[i] back to sizes[i-1]
        cin = widths[i - 1]
        cout = widths[i - 2] if i >= 2 else 1
        pad = sizes[i - 1] - ((sizes[i] - 1) * 2 + 3)
        layers.append(nn.ConvTranspose2d(cin, cout, 3, stride=2, padding=0, output_padding=pad, bias=i == 1))
        if i > 1:
            layers += [nn.BatchNorm2d(cout), nn.LeakyReLU(0.2, inplace=True)]
    return nn.Sequential(*layers)


class Discriminator(nn.Module):
    """KL a vs KL b classifier on whole images -> logits [B, 2].

    Per width: 3×3 stride-2 conv and 3×3 conv, each with GroupNorm and
    LeakyReLU (GroupNorm, not batch norm: no running statistics, so judging
    exchanged outputs never changes it); then average- and max-pooled features
    (osteophytes and narrowing are local) into a linear layer.
    """

    def __init__(self, widths: tuple[int, ...]):
        super().__init__()
        layers: list[nn.Module] = []
        prev = 1
        for w in widths:
            g = math.gcd(8, w)
            layers += [nn.Conv2d(prev, w, 3, stride=2, padding=1), nn.GroupNorm(g, w), nn.LeakyReLU(0.2, inplace=True),
                       nn.Conv2d(w, w, 3, padding=1), nn.GroupNorm(g, w), nn.LeakyReLU(0.2, inplace=True)]
            prev = w
        self.features = nn.Sequential(*layers)
        self.head = nn.Linear(2 * prev, 2)

    def forward(self, x):
        f = self.features(x)
        return self.head(torch.cat([F.adaptive_avg_pool2d(f, 1), F.adaptive_max_pool2d(f, 1)], 1).flatten(1))


class PretrainedJudge(nn.Module):
    """A pretrained KL classifier (multi-task or any model with ``forward(x)["kl"]``) as a frozen
    KL a vs KL b judge: logits [B, 2] = its KL a and KL b logits (softmax over the two is
    P(KL b | KL a or b)). Loaded from safetensors; KECAE holds it as a ``Frozen`` part (eval mode,
    no gradients to its weights, not saved with KECAE); gradients still reach the images it judges."""

    def __init__(self, checkpoint: str, grade_a: int, grade_b: int, image_size: int):
        super().__init__()
        self.model = load_frozen_model(checkpoint, "multitask")
        if int(self.model.config.image_size) != int(image_size):
            raise ValueError(f"discriminator_checkpoint {checkpoint} works at {self.model.config.image_size} px, "
                             f"this KECAE at {image_size} px")
        self.grades = [int(grade_a), int(grade_b)]

    def forward(self, x):
        return self.model(x)["kl"][:, self.grades]


@register_model("kecae", KECAEConfig, presets={
    # Demo: four blocks, a 7×7 spatial code. Six blocks down to 1×1 as the paper does reconstructed the
    # 810 training knees too blurrily (MSE 0.02–0.05) for any judge to see joint-space narrowing, and the
    # exchange flipped unseen pairs at chance.
    "demo": {"image_size": 128, "widths": [32, 64, 128, 128], "disc_widths": [16, 32, 64, 64],
             "discriminator_pretrain_steps": 300, "lr": 2e-4, "batch_size": 32, "epochs": 40, "augment": True},
    "paper": {"image_size": 299, "widths": [32, 64, 128, 256, 512, 1024, 2048], "disc_widths": [32, 64, 128, 256],
              "discriminator_pretrain_steps": 2000, "lr": 1e-4, "batch_size": 32, "epochs": 1000, "augment": True},
    # Demo sizes for real radiographs: re-acquisitions that never mirror (medial stays medial); train-zoo
    # judges the exchange with the cohort's multitask classifier (discriminator_checkpoint) when it has one.
    "real": {"image_size": 128, "widths": [32, 64, 128, 128], "disc_widths": [16, 32, 64, 64],
             "discriminator_pretrain_steps": 300, "lr": 2e-4, "batch_size": 32, "epochs": 40, "augment": True,
             "keep_sides": True, "val_fraction": 0.2},
}, description="KECAE: key/non-key exchange between KL 0 and KL 2 knees (augmentation)")
class KECAE(Autoencoder):
    batch_kind = "grade_pairs"
    capabilities = Autoencoder.capabilities | {Cap.EXCHANGE}
    ddp_find_unused_parameters = True            # the discriminator leaves the objective by step

    def __init__(self, config: KECAEConfig):
        super().__init__(config)
        self.sizes = encoder_sizes(config.image_size, len(config.widths))
        self.key_encoder = _encoder(config.widths)
        self.nonkey_encoder = _encoder(config.widths)
        self.decoder = _decoder(config.widths, self.sizes)
        self.discriminator = Discriminator(config.disc_widths)
        self.pretrained_judge = Frozen(PretrainedJudge(config.discriminator_checkpoint, config.grade_a,
                                                       config.grade_b, config.image_size)) \
            if config.discriminator_checkpoint else None

    @property
    def judge(self) -> nn.Module:
        """What decides KL a vs KL b: the pretrained classifier when one is named, else the own discriminator."""
        return self.pretrained_judge.model if self.pretrained_judge is not None else self.discriminator

    @property
    def latent_shape(self) -> tuple[int, int, int]:
        s = self.sizes[-1]
        return (self.config.widths[-1], s, s)

    @property
    def embed_dim(self) -> int:
        c, h, w = self.latent_shape
        return c * h * w

    # -- autoencoder contract
    def encode_parts(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Images [B,1,S,S] -> (key, non-key), each [B, C, s, s]."""
        return self.key_encoder(x), self.nonkey_encoder(x)

    def encode(self, x):
        k, n = self.encode_parts(x)
        return Encoded(z=k + n, extras={"key": k, "nonkey": n})

    def decode(self, z):
        """Summed vectors [B, C, s, s] (or flattened [B, C·s·s]) -> images [B,1,S,S] in [0, 1]."""
        if z.ndim == 2:
            z = z.view(z.shape[0], *self.latent_shape)
        return torch.sigmoid(self.decoder(z))

    def embed(self, x):
        """The key vector, flattened [B, C·s·s] (what the paper probes with an SVM)."""
        return self.key_encoder(x).flatten(1)

    # -- the exchange
    def forward_pair(self, xa: torch.Tensor, xb: torch.Tensor) -> dict[str, torch.Tensor]:
        """Vectors and the four outputs for pairs (xa KL a, xb KL b), each [B,1,S,S].

        recon_a = D(N_a + K_a), recon_b = D(N_b + K_b), exchanged_a = D(N_a + K_b)
        (xa given xb's key: should read as KL b), exchanged_b = D(N_b + K_a).
        """
        ka, na = self.encode_parts(xa)
        kb, nb = self.encode_parts(xb)
        outs = self.decode(torch.cat([na + ka, nb + kb, na + kb, nb + ka]))
        ra, rb, ea, eb = outs.chunk(4)
        return {"key_a": ka, "nonkey_a": na, "key_b": kb, "nonkey_b": nb,
                "recon_a": ra, "recon_b": rb, "exchanged_a": ea, "exchanged_b": eb}

    @torch.no_grad()
    def exchange(self, xa: torch.Tensor, xb: torch.Tensor) -> dict[str, torch.Tensor]:
        """The four images [B,1,S,S] (recon_a, recon_b, exchanged_a, exchanged_b)."""
        out = self.forward_pair(xa, xb)
        return {k: out[k] for k in ("recon_a", "recon_b", "exchanged_a", "exchanged_b")}

    def discriminator_logits(self, x: torch.Tensor, train_weights: bool = True) -> torch.Tensor:
        """Logits [B, 2]; with ``train_weights=False`` gradients reach x but not the discriminator's weights."""
        if self.pretrained_judge is not None:
            return self.judge(x)                   # frozen: its parameters never require grad
        if train_weights:
            return self.discriminator(x)
        params = {k: v.detach() for k, v in self.discriminator.named_parameters()}
        return functional_call(self.discriminator, params, (x,))

    def card_notes(self) -> dict[str, str]:
        """Lines for the checkpoint card: which discriminator regime trained this model."""
        c = self.config
        how = (f"pretrained on the real pairs for {c.discriminator_pretrain_steps} steps, then frozen (paper)"
               if c.discriminator == "frozen" else "trained jointly with the autoencoder on the real pairs (public code)")
        if c.discriminator_checkpoint:
            how = (f"is the frozen pretrained classifier {c.discriminator_checkpoint} (its KL {c.grade_a} and "
                   f"KL {c.grade_b} logits; paper regime)")
        return {"discriminator": f"KL {c.grade_a} vs KL {c.grade_b} discriminator {how}",
                "loss": f"MSE + {c.lambda_sup:g}·CE(exchanged, swapped labels) + {c.lambda_fisher:g}·Fisher ratio "
                        f"({c.fisher_scope} scope)"}

    @torch.no_grad()
    def discriminator_proba(self, x: torch.Tensor) -> torch.Tensor:
        """P(image shows KL grade_b) [B] (between the two grades), from the judge."""
        return F.softmax(self.judge(x), dim=1)[:, 1]

    def validation_score(self, val: dict[str, float]) -> float:
        """Reconstruction + λ1·exchange CE. The Fisher ratio is left out: a batch-level ratio of
        variances to a squared mean gap swings by orders of magnitude between batches (10⁴–10⁶
        here), so a total that includes it would pick whichever epoch had a lucky validation batch."""
        return float(val["mse"]) + self.config.lambda_sup * float(val["sup"])

    def discriminator_trains(self, step: int) -> bool:
        """Whether the own discriminator's loss is in the objective at ``step`` (never with a pretrained judge)."""
        if self.pretrained_judge is not None:
            return False
        return self.config.discriminator == "joint" or step < self.config.discriminator_pretrain_steps

    def exchange_term_on(self, step: int) -> bool:
        """Whether λ1·CE(exchanged) is in the objective (frozen mode: only once the discriminator is trained)."""
        if self.pretrained_judge is not None:
            return True
        return self.config.discriminator == "joint" or step >= self.config.discriminator_pretrain_steps

    def loss(self, batch, step: int = 0) -> LossOutput:
        if "image_pair" not in batch:
            raise DataError("kecae needs batches of grade pairs: 'image' (KL a) and 'image_pair' (KL b); "
                            "this batch has no 'image_pair'")
        xa, xb = batch["image"], batch["image_pair"]
        c = self.config
        if c.augment and self.training:
            # A few hundred images per grade: without new acquisitions the exchange memorises the
            # training knees (flips 95 % of training pairs and 45 % of unseen ones).
            move = real_acquisition if c.keep_sides else random_acquisition
            xa, xb = move(xa), move(xb)
        out = self.forward_pair(xa, xb)
        ya = torch.zeros(len(xa), dtype=torch.long, device=xa.device)
        yb = torch.ones(len(xb), dtype=torch.long, device=xb.device)
        mse = F.mse_loss(out["recon_a"], xa) + F.mse_loss(out["recon_b"], xb)
        logit_ea = self.discriminator_logits(out["exchanged_a"], train_weights=False)
        logit_eb = self.discriminator_logits(out["exchanged_b"], train_weights=False)
        sup = F.cross_entropy(logit_ea, yb) + F.cross_entropy(logit_eb, ya)
        fisher = (fisher_ratio(out["key_a"], out["nonkey_a"], c.fisher_eps, c.fisher_scope).mean()
                  + fisher_ratio(out["key_b"], out["nonkey_b"], c.fisher_eps, c.fisher_scope).mean())
        trains = self.discriminator_trains(step)
        with torch.set_grad_enabled(trains and torch.is_grad_enabled()):
            real = (self.discriminator if trains else self.judge)(torch.cat([xa, xb]))
            disc = F.cross_entropy(real, torch.cat([ya, yb]))
        total = mse + c.lambda_fisher * fisher
        if self.exchange_term_on(step):
            total = total + c.lambda_sup * sup
        if trains:
            total = total + disc
        flipped = torch.cat([logit_ea.argmax(1) == 1, logit_eb.argmax(1) == 0]).float().mean()
        return LossOutput(total, {
            "mse": mse.detach(), "sup": sup.detach(), "fisher": fisher.detach(), "disc": disc.detach(),
            "disc_acc": (real.argmax(1) == torch.cat([ya, yb])).float().mean().detach(),
            "flip_rate": flipped.detach(), "disc_training": torch.tensor(float(trains)),
        })
