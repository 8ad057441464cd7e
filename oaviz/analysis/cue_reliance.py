"""Which pathology sign does a classifier read? OA AUC on counterfactual synthetic knees.

The synthetic generator can draw any sign at the subject's healthy value while
keeping everything else — the knee, its film, its grades — the same
(``SynthConfig.healthy``). A classifier's OA AUC on such a cohort, against the
same knees with every sign drawn, says how much it relies on that sign:
a drop means it reads it. Applied to a classifier trained on synthetic knees
and to one trained on real knees, it shows whether the two read the same signs
(if the real-trained one ignores the synthetic osteophytes, those osteophytes
do not look like real ones to it).
"""

from __future__ import annotations

import dataclasses

import numpy as np
import torch
from sklearn.metrics import roc_auc_score

from oaviz.data.synthetic import HEALTHY_TERMS, SynthConfig, generate_arrays
from oaviz.data.transforms import resize_images
from oaviz.models.checkpoints import load_checkpoint

KNEE_SIGNS = ("osteophytes", "jsw", "sclerosis", "spines", "varus", "cysts", "flattening")


@torch.no_grad()
def _oa_scores(model, images: np.ndarray, batch: int = 128) -> np.ndarray:
    """P(OA) [N] of uint8 images [N,S,S] at the model's input size."""
    x = resize_images(images, int(model.config.image_size), 255.0)
    return torch.cat([model.predict_oa_proba(x[i:i + batch]).float() for i in range(0, len(x), batch)]).numpy()


def cue_reliance(checkpoints: dict[str, str], cfg: SynthConfig, signs=KNEE_SIGNS) -> dict:
    """{'all': {name: AUC}, sign: {name: AUC with that sign healthy}, 'n': N, 'n_oa': ...} for each
    classifier checkpoint (name -> path) with an OA head, on the cohort ``cfg`` (rendered in memory)."""
    unknown = sorted(set(signs) - set(HEALTHY_TERMS))
    if unknown:
        raise ValueError(f"unknown pathology sign(s) {unknown}; known: {sorted(HEALTHY_TERMS)}")
    models = {name: load_checkpoint(path).model.eval() for name, path in checkpoints.items()}
    out: dict = {}
    for sign in ("all", *signs):
        imgs, _, meta, _ = generate_arrays(dataclasses.replace(cfg, healthy=() if sign == "all" else (sign,)))
        oa = (meta["kl"].to_numpy() >= 2).astype(int)
        out[sign] = {name: float(roc_auc_score(oa, _oa_scores(m, imgs))) for name, m in models.items()}
        out["n"], out["n_oa"] = int(len(oa)), int(oa.sum())
    return out
