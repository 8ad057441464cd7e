"""Final validation metrics recorded in a checkpoint's config.json."""

from __future__ import annotations

import numpy as np
import torch
from sklearn.metrics import accuracy_score, roc_auc_score

from oaviz.models.base import Cap, has_capability


@torch.no_grad()
def validation_metrics(model, data, device, batch_size: int = 64) -> dict:
    """Reconstruction MSE for autoencoders, OA AUC / KL accuracy for classifiers."""
    model.eval()
    out: dict = {}
    recon, p_oa, p_kl = [], [], []
    can = {c: has_capability(model, c) for c in (Cap.RECONSTRUCT, Cap.PREDICT_OA, Cap.PREDICT_KL)}
    for i in range(0, len(data), batch_size):
        x = data.image[i:i + batch_size].to(device)
        if can[Cap.RECONSTRUCT]:
            recon.append(((model.reconstruct(x) - x) ** 2).flatten(1).mean(1).cpu())
        if can[Cap.PREDICT_OA]:
            p_oa.append(model.predict_oa_proba(x).cpu())
        if can[Cap.PREDICT_KL]:
            p_kl.append(model.predict_kl_proba(x).cpu())
    if recon:
        out["val_mse"] = float(torch.cat(recon).mean())
    oa = data.oa.numpy()
    if p_oa:
        p = torch.cat(p_oa).numpy()
        ok = ~np.isnan(oa)
        if ok.any() and len(np.unique(oa[ok])) == 2:
            out["val_oa_auc"] = float(roc_auc_score(oa[ok], p[ok]))
            out["val_oa_acc"] = float(accuracy_score(oa[ok], p[ok] >= 0.5))
    if p_kl:
        pk = torch.cat(p_kl).numpy()
        kl = data.kl.numpy()
        ok = kl >= 0
        if ok.any():
            out["val_kl_acc"] = float(accuracy_score(kl[ok], pk[ok].argmax(1)))
    return out
