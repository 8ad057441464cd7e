"""Multi-task knee classifier: KL grade (5-way) and 16 landmarks by soft-argmax.

As in the progression-risk paper, deconvolution layers appended to the
classifier's backbone produce one heatmap per landmark and a 2-D soft-argmax
turns each into coordinates, so the landmark loss forces the shared features
to encode the joint's geometry. Loss: CE(KL) + δ·landmark, δ = 0.5 by default
and δ = 0 for the ablation (the head is still there and its error is still
reported, it just does not train the backbone).

The landmark term is the mean absolute coordinate error in *pixels of the
model input* over the landmarks that are known (NaN = unknown), so δ keeps the
same meaning at 128 and 224 px; ``landmark_loss="mse"`` uses squared pixels.
Rows with KL −1 are left out of the CE.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn
from torch.nn import functional as F

from oaviz.data.augment import real_acquisition
from oaviz.models.base import Cap, LossOutput, OAModel, register_model
from oaviz.models.blocks import check_image_size, conv_encoder
from oaviz.models.losses import balanced_class_weights, masked_cross_entropy

N_GRADES = 5


@dataclass(frozen=True)
class MultiTaskConfig:
    image_size: int = 224
    widths: tuple[int, ...] = (32, 64, 128, 256, 512)     # stride-2 backbone
    deconv_widths: tuple[int, ...] = (256, 128, 64)       # heatmap head: each ×2 (three: 1/32 -> 1/4)
    n_landmarks: int = 16
    landmark_weight: float = 0.5                          # δ (0 = ablation)
    landmark_loss: str = "l1"                             # "l1" | "mse", in input pixels
    dropout: float = 0.2
    # Real radiographs (the ``real`` preset): re-acquisitions that never mirror, the landmarks moved with the
    # image (oaviz.data.augment.real_acquisition); KL weighted against the rarity of KL 4; the epoch with the
    # best validation OA AUC (P(KL ≥ 2)); at least a fifth of the subjects validating.
    augment: bool = False
    kl_balance: float = 0.0                               # CE class weights ∝ count^−kl_balance (0 = off)
    select_by: str = "loss"                               # "loss" | "oa_auc"
    val_fraction: float = 0.0                             # validation share of the subjects (0 = engine default)
    lr: float = 1e-3
    batch_size: int = 32
    epochs: int = 30

    def __post_init__(self):
        check_image_size(self.image_size, len(self.widths), "multitask")
        if self.select_by not in ("loss", "oa_auc") or self.kl_balance < 0 or not 0 <= self.val_fraction < 1:
            raise ValueError("select_by must be 'loss' or 'oa_auc', kl_balance >= 0 and val_fraction in [0, 1)")
        if self.landmark_loss not in ("l1", "mse"):
            raise ValueError(f"landmark_loss must be 'l1' or 'mse', got {self.landmark_loss!r}")
        if self.landmark_weight < 0 or self.n_landmarks < 1 or len(self.deconv_widths) > len(self.widths):
            raise ValueError("landmark_weight must be >= 0, n_landmarks >= 1, and deconv_widths no longer than widths")


def soft_argmax(heatmaps: torch.Tensor) -> torch.Tensor:
    """Expected position under softmax(heatmap): [B, K, h, w] -> [B, K, 2] as (x, y) in [0, 1].

    Cell (i, j) sits at ((j + 0.5)/w, (i + 0.5)/h), so a one-hot heatmap returns its cell centre.
    """
    b, k, h, w = heatmaps.shape
    p = F.softmax(heatmaps.flatten(2).float(), dim=2).view(b, k, h, w)
    xs = (torch.arange(w, device=heatmaps.device, dtype=p.dtype) + 0.5) / w
    ys = (torch.arange(h, device=heatmaps.device, dtype=p.dtype) + 0.5) / h
    x = (p.sum(2) * xs).sum(-1)
    y = (p.sum(3) * ys).sum(-1)
    return torch.stack([x, y], dim=-1)


def landmark_error(pred: torch.Tensor, true: torch.Tensor, size: int, kind: str = "l1") -> tuple[torch.Tensor, torch.Tensor]:
    """(loss, mean Euclidean error in px) over known landmarks; pred/true [B, K, 2] in [0, 1], NaN = unknown."""
    ok = ~torch.isnan(true).any(-1)                       # [B, K]
    if not ok.any():
        zero = pred.sum() * 0.0
        return zero, zero.detach()
    d = (pred[ok] - true[ok]) * size                      # [n, 2] in pixels
    loss = d.abs().mean() if kind == "l1" else d.pow(2).mean()
    return loss, d.norm(dim=1).mean().detach()


@register_model("multitask", MultiTaskConfig, presets={
    # demo: trained on random re-acquisitions (landmarks moved with the image) for 20 epochs. On the default
    # cohort's test split OA AUC 0.777 -> 0.866, KL accuracy 0.467 -> 0.553, κ (expected grade) 0.50 -> 0.63
    # against 8 epochs without them; with the real registered follow-ups as the "future" the risk's AUC
    # 0.750 -> 0.834 (the classifier reads a year's change). select_by oa_auc over 30 epochs (cohort before
    # visits shared their films): OA AUC 0.909 but a lower risk AUC than the loss-selected epoch's (less
    # calibrated grades).
    "demo": {"image_size": 128, "widths": [16, 32, 64, 128, 128], "deconv_widths": [64, 32, 32], "epochs": 20,
             "augment": True},
    "paper": {"image_size": 224, "widths": [32, 64, 128, 256, 512], "deconv_widths": [256, 128, 64], "epochs": 50},
    "real": {"image_size": 128, "widths": [16, 32, 64, 128, 128], "deconv_widths": [64, 32, 32], "epochs": 30,
             "augment": True, "dropout": 0.4, "kl_balance": 0.5, "select_by": "oa_auc", "val_fraction": 0.2},
}, description="KL grade + 16 landmarks (soft-argmax) multi-task classifier for progression risk")
class MultiTaskClassifier(OAModel):
    capabilities = OAModel.capabilities | {Cap.PREDICT_OA, Cap.PREDICT_KL, Cap.LANDMARKS}

    def __init__(self, config: MultiTaskConfig):
        super().__init__(config)
        c = config
        self.backbone = conv_encoder(c.widths)
        self.drop = nn.Dropout(c.dropout)
        self.kl_head = nn.Linear(c.widths[-1], N_GRADES)
        layers: list[nn.Module] = []
        prev = c.widths[-1]
        for w in c.deconv_widths:
            layers += [nn.ConvTranspose2d(prev, w, 4, stride=2, padding=1), nn.BatchNorm2d(w), nn.ReLU(inplace=True)]
            prev = w
        layers.append(nn.Conv2d(prev, c.n_landmarks, 1))
        self.heatmap_head = nn.Sequential(*layers)
        self.register_buffer("kl_class_weight", torch.ones(N_GRADES), persistent=False)   # fit_training_labels

    @property
    def embed_dim(self) -> int:
        return self.config.widths[-1]

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """{'kl': logits [B,5], 'heatmaps': [B,K,h,w], 'landmarks': [B,K,2] (x, y) in [0,1], 'features': [B,D]}."""
        fmap = self.backbone(x)
        feats = F.adaptive_avg_pool2d(fmap, 1).flatten(1)
        heat = self.heatmap_head(fmap)
        return {"kl": self.kl_head(self.drop(feats)), "heatmaps": heat, "landmarks": soft_argmax(heat),
                "features": feats}

    def embed(self, x):
        """Pooled backbone features [B, widths[-1]]."""
        return F.adaptive_avg_pool2d(self.backbone(x), 1).flatten(1)

    def predict_kl_proba(self, x) -> torch.Tensor:
        """P(KL = 0…4) [B, 5]."""
        return F.softmax(self.forward(x)["kl"], dim=1)

    def predict_oa_proba(self, x) -> torch.Tensor:
        """P(OA) = P(KL >= 2) [B]."""
        return self.predict_kl_proba(x)[:, 2:].sum(1)

    def predict_landmarks(self, x) -> torch.Tensor:
        """[B, K, 2] (x, y) in [0, 1] image coordinates."""
        return self.forward(x)["landmarks"]

    def fit_training_labels(self, kl: torch.Tensor) -> None:
        """KL class weights from the training grades [n] (``kl_balance`` > 0)."""
        if self.config.kl_balance > 0:
            self.kl_class_weight.copy_(balanced_class_weights(kl, N_GRADES, self.config.kl_balance))

    def loss(self, batch, step: int = 0) -> LossOutput:
        x, true_lm = batch["image"], batch["landmarks"]
        if self.config.augment and self.training:
            x, true_lm = real_acquisition(x, landmarks=true_lm)
        out = self.forward(x)
        ce = masked_cross_entropy(out["kl"], batch["kl"], self.kl_class_weight if self.config.kl_balance > 0 else None)
        lm, px = landmark_error(out["landmarks"], true_lm, self.config.image_size, self.config.landmark_loss)
        total = ce + self.config.landmark_weight * lm
        return LossOutput(total, {"ce_kl": ce.detach(), "landmark": lm.detach(), "landmark_px": px})
