"""The thesis's end-to-end CNN baseline: 4 conv layers with ReLU, FC, sigmoid, BCE.

Each conv layer is 3×3 conv → ReLU → 2×2 max-pool. After the fourth, the
feature map is flattened (not globally pooled: where along the joint a feature
sits is what joint-space narrowing is about; a global average pool left the
demo model at chance, BCE stuck at ln 2) and a hidden FC layer gives the
penultimate features (``embed``); a last FC + sigmoid gives P(OA). Rows without an OA label (NaN) are
ignored by the loss.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn
from torch.nn import functional as F

from oaviz.data.augment import real_acquisition
from oaviz.models.base import Cap, LossOutput, OAModel, register_model


@dataclass(frozen=True)
class CNNConfig:
    image_size: int = 224
    widths: tuple[int, ...] = (32, 64, 128, 256)
    hidden: int = 128
    dropout: float = 0.2
    # Standardise the input with the training pixels' running mean/std (a BatchNorm2d without
    # affine on the one channel). The thesis does not say how inputs were scaled; on [0, 1]
    # radiographs without it the plain conv stack sat at the base rate (BCE ≈ ln 2, val AUC 0.61).
    # False (the default for configs written before it existed) keeps the raw input.
    standardise_input: bool = False
    # Real radiographs (the ``real`` preset): random re-acquisitions that never mirror (oaviz.data.augment.
    # real_acquisition), the epoch with the best validation OA AUC, at least a fifth of the subjects validating.
    augment: bool = False
    select_by: str = "loss"                  # "loss" | "oa_auc"
    val_fraction: float = 0.0                # validation share of the subjects (0 = the engine's default split)
    lr: float = 1e-3
    batch_size: int = 32
    epochs: int = 30

    def __post_init__(self):
        if len(self.widths) != 4:
            raise ValueError("the thesis CNN has exactly 4 conv layers (widths needs 4 entries)")
        if self.select_by not in ("loss", "oa_auc") or not 0 <= self.val_fraction < 1:
            raise ValueError("select_by must be 'loss' or 'oa_auc' and val_fraction in [0, 1)")


def conv_relu_pool(widths: tuple[int, ...], in_ch: int = 1) -> nn.Sequential:
    layers: list[nn.Module] = []
    for w in widths:
        layers += [nn.Conv2d(in_ch, w, 3, padding=1), nn.ReLU(inplace=True), nn.MaxPool2d(2)]
        in_ch = w
    return nn.Sequential(*layers)


def masked_bce(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """BCE over rows whose target is not NaN (0 when none)."""
    ok = ~torch.isnan(target)
    if not ok.any():
        return logits.sum() * 0.0
    return F.binary_cross_entropy_with_logits(logits[ok], target[ok])


@register_model("cnn", CNNConfig, presets={
    "demo": {"image_size": 128, "widths": [16, 32, 64, 128], "hidden": 64, "epochs": 15, "standardise_input": True},
    "paper": {"image_size": 224, "widths": [32, 64, 128, 256], "hidden": 128, "epochs": 30,
              "standardise_input": True},
    "real": {"image_size": 128, "widths": [16, 32, 64, 128], "hidden": 64, "epochs": 30, "standardise_input": True,
             "augment": True, "dropout": 0.4, "select_by": "oa_auc", "val_fraction": 0.2},
}, description="end-to-end CNN baseline for OA (thesis)")
class CNNBaseline(OAModel):
    capabilities = OAModel.capabilities | {Cap.HEADS, Cap.PREDICT_OA}

    def __init__(self, config: CNNConfig):
        super().__init__(config)
        self.input_norm = nn.BatchNorm2d(1, affine=False) if config.standardise_input else nn.Identity()
        self.features = conv_relu_pool(config.widths)
        side = config.image_size // 16  # four 2×2 max-pools
        if side < 1 or side * 16 != config.image_size:
            raise ValueError(f"cnn: image_size {config.image_size} must be a multiple of 16")
        self.hidden = nn.Sequential(nn.Flatten(), nn.Linear(config.widths[-1] * side * side, config.hidden),
                                    nn.ReLU(inplace=True))
        self.drop = nn.Dropout(config.dropout)
        self.out = nn.Linear(config.hidden, 1)

    @property
    def embed_dim(self) -> int:
        return self.config.hidden

    def embed(self, x):
        """[B, 1, S, S] -> penultimate features [B, hidden]."""
        return self.hidden(self.features(self.input_norm(x)))

    def forward(self, x):
        """OA logits [B]."""
        return self.out(self.drop(self.embed(x))).squeeze(1)

    def heads(self, x) -> dict[str, torch.Tensor]:
        """{'oa': logits [B]} (the one head)."""
        return {"oa": self.forward(x)}

    def card_notes(self) -> dict[str, str]:
        """Lines for the checkpoint card: what the demo/paper presets add to the thesis CNN."""
        return {"input": "standardised by the training pixels' running mean and std (BatchNorm without affine)"
                if self.config.standardise_input else "raw [0, 1] pixels (the thesis CNN as written)",
                "probe-lab budget": "as the probe lab's baseline, every label fraction gets the same optimiser "
                                    "steps: the preset's epochs over the full training split"}

    def predict_proba(self, x):
        """P(OA) [B]."""
        return torch.sigmoid(self.forward(x))

    def predict_oa_proba(self, x):
        """P(OA) [B] (the capability's name for ``predict_proba``)."""
        return self.predict_proba(x)

    def loss(self, batch, step: int = 0) -> LossOutput:
        x = batch["image"]
        logits = self.forward(real_acquisition(x) if self.config.augment and self.training else x)
        bce = masked_bce(logits, batch["oa"])
        return LossOutput(bce, {"bce": bce.detach()})
