"""Dual-head hierarchical supervision: compare single-OA, single-KL and dual variants.

Per variant on one split: OA AUC, accuracy and macro-F1 (P(OA) ≥ 0.5), KL
macro-AUC, accuracy and macro-F1 of the most probable grade, quadratic-weighted kappa of the expected
grade rounded (``paired_tests.expected_grade``: the call κ's squared penalty asks for) (KL variants);
paired tests between variants (McNemar on OA decisions, bootstrap CIs for
metric differences); PCA of the penultimate features with the Spearman ρ of
PC1 with KL and the order of the grade centroids along PC1; gradient saliency
of the OA score and its share inside the joint-space mask.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np
import pandas as pd
import torch
from scipy import stats
from sklearn.decomposition import PCA
from sklearn.metrics import accuracy_score, cohen_kappa_score, f1_score, roc_auc_score
from torch.nn import functional as F

from oaviz.analysis.paired_tests import (bootstrap_ci, bootstrap_diff, discordant, expected_grade, fast_auc,
                                         macro_f1, mcnemar_clustered, quadratic_kappa)
from oaviz.analysis.probes import macro_auc
from oaviz.data.cohort import Cohort
from oaviz.data.transforms import resize_images
from oaviz.errors import DataError
from oaviz.models.base import Cap, has_capability
from oaviz.training.checkpoint import load_checkpoint

KNEE_LANDMARKS = {"condyle_lowest": (2, 3), "plateau": tuple(range(5, 13)), "margins": (0, 1, 5, 12)}


@dataclass
class VariantOutput:
    """Predictions of one model on one split (rows index the cohort)."""

    name: str
    rows: np.ndarray          # [n]
    p_oa: np.ndarray          # [n] P(OA)
    p_kl: np.ndarray | None   # [n, 5] P(KL), None for a model without a KL head
    features: np.ndarray      # [n, D] penultimate features (model.embed)
    kl: np.ndarray            # [n] int labels, -1 unknown


def _image_tensor(cohort: Cohort, rows: np.ndarray, size: int) -> torch.Tensor:
    scale = 65535.0 if cohort.images.dtype == np.uint16 else 255.0
    return resize_images(cohort.images[np.asarray(rows)], size, scale)


@torch.no_grad()
def predict_variant(model_or_ckpt, cohort: Cohort, split: str = "test", label_column: str = "kl",
                    batch_size: int = 64, name: str | None = None) -> VariantOutput:
    """Run a dual-head (or CNN) model over one split in eval mode."""
    if isinstance(model_or_ckpt, (str, Path)):
        loaded = load_checkpoint(model_or_ckpt)
        model = loaded.model
        name = name or variant_name(loaded.info, loaded.path)
    else:
        model = model_or_ckpt.eval()
        name = name or getattr(model.config, "variant", model.model_type)
    rows = cohort.split_indices(split)
    if len(rows) == 0:
        raise DataError(f"the {split} split is empty", cohort.path)
    if label_column not in cohort.metadata:
        raise DataError(f"metadata has no {label_column!r} column", cohort.path)
    kl = cohort.metadata[label_column].to_numpy(dtype=float, na_value=np.nan)[rows]
    kl = np.nan_to_num(kl, nan=-1).astype(np.int64)
    x_all = _image_tensor(cohort, rows, int(model.config.image_size))
    dev = next(model.parameters()).device
    p_oa, p_kl, feats = [], [], []
    with_kl = has_capability(model, Cap.PREDICT_KL)
    for i in range(0, len(rows), batch_size):
        x = x_all[i:i + batch_size].to(dev)
        feats.append(model.embed(x).float().cpu())
        p_oa.append(model.predict_oa_proba(x).float().cpu())
        if with_kl:
            p_kl.append(model.predict_kl_proba(x).float().cpu())
    return VariantOutput(name=name, rows=rows, p_oa=torch.cat(p_oa).numpy().astype(np.float64),
                         p_kl=torch.cat(p_kl).numpy().astype(np.float64) if p_kl else None,
                         features=torch.cat(feats).numpy(), kl=kl)


def variant_name(info: dict, path: Path) -> str:
    """The config's head layout ('dual' / 'single_oa' / 'single_kl') when it has one, else the folder name."""
    variant = (info.get("config") or {}).get("variant")
    return str(variant) if variant else Path(path).name


def variant_metrics(out: VariantOutput) -> dict[str, float]:
    """OA and KL metrics of one variant against the labels (rows with unknown KL skipped)."""
    ok = out.kl >= 0
    kl, p_oa = out.kl[ok], out.p_oa[ok]
    oa = (kl >= 2).astype(int)
    m = {
        "oa_auc": float(roc_auc_score(oa, p_oa)) if len(np.unique(oa)) == 2 else math.nan,
        "oa_accuracy": float(accuracy_score(oa, p_oa >= 0.5)),
        "oa_f1": float(f1_score(oa, (p_oa >= 0.5).astype(int), average="macro", labels=[0, 1], zero_division=0)),
        "kl_macro_auc": math.nan, "kl_accuracy": math.nan, "kl_f1": math.nan, "kl_qwk": math.nan,
    }
    if out.p_kl is not None:
        pk = out.p_kl[ok]
        pred = pk.argmax(1)
        m.update(kl_macro_auc=macro_auc(kl, pk), kl_accuracy=float(accuracy_score(kl, pred)),
                 kl_f1=float(f1_score(kl, pred, labels=list(range(5)), average="macro", zero_division=0)),
                 kl_qwk=float(cohen_kappa_score(kl, expected_grade(pk), labels=list(range(5)), weights="quadratic")))
    return m


def evaluate_variant(ckpt, cohort: Cohort, split: str = "test", label_column: str = "kl") -> dict[str, float]:
    """Metrics of one checkpoint on one split, plus PC1 ρ and the KL centroid order along PC1."""
    out = predict_variant(ckpt, cohort, split, label_column)
    m = variant_metrics(out)
    ok = out.kl >= 0
    rho, order = pc1_ordering(out.features[ok], out.kl[ok])
    return {**m, "pc1_rho": rho, "centroid_order": "<".join(str(int(g)) for g in order)}


# ----------------------------------------------------------------- PCA ordering
def pca_scores(F_: np.ndarray, kl: np.ndarray | None = None, n_components: int = 2) -> np.ndarray:
    """PCA scores [N, n_components] of features F [N, D]; with ``kl``, PC1 is signed so KL rises along it."""
    F_ = np.asarray(F_, dtype=np.float64)
    n_components = min(n_components, F_.shape[1], len(F_))
    S = PCA(n_components=n_components, svd_solver="full").fit_transform(F_)
    if kl is not None and np.std(S[:, 0]) > 0 and len(np.unique(kl)) > 1:
        if stats.spearmanr(S[:, 0], kl).statistic < 0:
            S[:, 0] = -S[:, 0]
    return S


def pc1_ordering(F_: np.ndarray, kl: np.ndarray) -> tuple[float, np.ndarray]:
    """(Spearman ρ of PC1 with KL, KL grades sorted by their centroid's PC1 position).

    PC1's sign is fixed so that ρ ≥ 0 (KL increases along PC1); a perfectly
    ordered space gives the order 0, 1, 2, 3, 4.
    """
    kl = np.asarray(kl)
    if len(F_) != len(kl) or len(kl) < 3:
        raise ValueError("need at least 3 rows with one KL grade each")
    pc1 = pca_scores(F_, kl, 1)[:, 0]
    rho = float(stats.spearmanr(pc1, kl).statistic) if np.std(pc1) > 0 and len(np.unique(kl)) > 1 else math.nan
    grades = np.unique(kl)
    centroids = np.array([pc1[kl == g].mean() for g in grades])
    return rho, grades[np.argsort(centroids, kind="stable")]


# ----------------------------------------------------------------- saliency
@dataclass
class SaliencyResult:
    saliency: np.ndarray   # [n, S, S] |d OA-logit / d x|, at the model's input size
    masks: np.ndarray      # [n, S, S] bool joint-space masks at the same size
    share: np.ndarray      # [n] share of the saliency inside the mask
    mask_area: np.ndarray  # [n] the mask's share of the image: the share a uniform map would get


def oa_logit(model, x: torch.Tensor) -> torch.Tensor:
    """OA logit [B]: the OA head, or log-odds of P(KL ≥ 2) for a KL-only head (Cap.HEADS); else the
    module's own output (a plain OA-logit network)."""
    if not has_capability(model, Cap.HEADS):
        return model(x)
    out = model.heads(x)
    if "oa" in out:
        return out["oa"]
    k = out["kl"]
    return torch.logsumexp(k[:, 2:], 1) - torch.logsumexp(k[:, :2], 1)


def saliency_in_mask(model, images: np.ndarray, masks: np.ndarray) -> SaliencyResult:
    """Gradient saliency of the OA score and its share inside the joint-space masks.

    images: uint8/uint16 [n, H, W]; masks: [n, H, W] (non-zero inside the joint
    space), resized to the model input by area averaging and thresholded at 0.5.
    """
    images, masks = np.asarray(images), np.asarray(masks)
    if images.shape != masks.shape or images.ndim != 3:
        raise ValueError(f"images {images.shape} and masks {masks.shape} must both be [n, H, W]")
    size = int(model.config.image_size)
    scale = 65535.0 if images.dtype == np.uint16 else 255.0
    x = resize_images(images, size, scale)
    m = (masks > 0).astype(np.float32)[:, None]
    m = F.interpolate(torch.from_numpy(m), size=(size, size), mode="area") if m.shape[-1] != size else \
        torch.from_numpy(m)
    m = (m[:, 0] >= 0.5).numpy()
    was_training = model.training
    model.eval()
    dev = next(model.parameters()).device
    x = x.to(dev).requires_grad_(True)
    with torch.enable_grad():
        oa_logit(model, x).sum().backward()  # each image's score depends on its own pixels only (eval mode)
    model.train(was_training)
    sal = x.grad.detach().abs()[:, 0].cpu().numpy()
    total = sal.reshape(len(sal), -1).sum(1)
    inside = (sal * m).reshape(len(sal), -1).sum(1)
    share = np.where(total > 0, inside / np.where(total > 0, total, 1), np.nan)
    return SaliencyResult(saliency=sal, masks=m, share=share, mask_area=m.reshape(len(m), -1).mean(1))


def joint_space_masks(cohort: Cohort, rows: np.ndarray) -> tuple[np.ndarray, str]:
    """(masks uint8 [n, H, W], source): the cohort's masks.npy, else a band built from knee landmarks.

    The fallback band spans the condyle/plateau margins horizontally and runs
    from the lowest condyle point to the lowest plateau point, padded by 2 % of
    the height. Raises DataError when the cohort has neither masks nor landmarks.
    """
    rows = np.asarray(rows)
    if cohort.masks is not None:
        return np.asarray(cohort.masks[rows]), "masks.npy"
    lm = cohort.landmarks()
    if lm is None:
        raise DataError("the cohort has no joint-space masks and no landmarks", cohort.path)
    return landmark_band(lm[rows], cohort.image_size), "landmark band"


def landmark_band(landmarks: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """uint8 [n, H, W] joint-space bands from knee landmarks [n, 16, 2] (x, y in pixels)."""
    h, w = shape
    yy, xx = np.mgrid[0:h, 0:w]
    out = np.zeros((len(landmarks), h, w), np.uint8)
    pad = 0.02 * h
    for i, p in enumerate(np.asarray(landmarks, np.float64)):
        if not np.isfinite(p).all():
            continue
        x0, x1 = p[list(KNEE_LANDMARKS["margins"]), 0].min(), p[list(KNEE_LANDMARKS["margins"]), 0].max()
        y0 = p[list(KNEE_LANDMARKS["condyle_lowest"]), 1].min() - pad
        y1 = p[list(KNEE_LANDMARKS["plateau"]), 1].max() + pad
        out[i] = (xx >= x0) & (xx <= x1) & (yy >= y0) & (yy <= y1)
    return out


# ----------------------------------------------------------------- comparison
def _bootstrap_metrics(with_kl: bool) -> dict:
    """{metric: (fn(y_kl, score), which score)} in fast numpy form (equal to sklearn's, see tests)."""
    fns = {"oa_auc": (lambda y, p: fast_auc(y >= 2, p), "p_oa"),
           "oa_accuracy": (lambda y, p: float(((y >= 2) == (p >= 0.5)).mean()), "p_oa")}
    if with_kl:
        fns.update({
            "kl_macro_auc": (lambda y, P: _fast_macro_auc(y, P), "p_kl"),
            "kl_accuracy": (lambda y, P: float((y == P.argmax(1)).mean()), "p_kl"),
            "kl_f1": (lambda y, P: macro_f1(y, P.argmax(1), 5), "p_kl"),
            "kl_qwk": (lambda y, P: quadratic_kappa(y, expected_grade(P), 5), "p_kl"),
        })
    return fns


def _fast_macro_auc(y: np.ndarray, P: np.ndarray) -> float:
    """As probes.macro_auc: one-vs-rest AUC averaged over the classes present (NaN below two)."""
    aucs = [fast_auc(y == c, P[:, c]) for c in range(P.shape[1]) if 0 < (y == c).sum() < len(y)]
    return float(np.mean(aucs)) if len(aucs) >= 2 else math.nan


def compare_variants(ckpts: Mapping[str, object] | Sequence[object], cohort: Cohort, split: str = "test",
                     n_boot: int = 2000, seed: int = 0, label_column: str = "kl") -> dict[str, pd.DataFrame]:
    """Metrics per variant and paired tests between every pair, on the same split.

    ckpts: {name: checkpoint path or model} or a list of them (names from the
    checkpoints' variants). Returns {'metrics', 'mcnemar', 'bootstrap'} DataFrames:
    metrics has one row per variant (+ <metric>_lo/_hi 95 % CIs, pc1_rho and
    centroid_order); mcnemar one row per pair (a, b, only_a_correct,
    only_b_correct, statistic, p: McNemar clustered by subject); bootstrap one
    row per pair and metric (diff = a − b, lo, hi: 95 % percentile CI, p); every
    resample draws subjects, not images; and
    'pca': PC1/PC2 of each variant's penultimate features (variant, row, kl, pc1, pc2).
    """
    items = list(ckpts.items()) if isinstance(ckpts, Mapping) else [(None, c) for c in ckpts]
    if len(items) < 1:
        raise ValueError("no checkpoints to compare")
    outs = [predict_variant(c, cohort, split, label_column, name=n) for n, c in items]
    names = [o.name for o in outs]
    if len(set(names)) != len(names):
        raise ValueError(f"variant names must be unique, got {names}")
    metric_rows, pca_parts = [], []
    for o in outs:
        ok = o.kl >= 0
        rho, order = pc1_ordering(o.features[ok], o.kl[ok])
        metric_rows.append({"variant": o.name, **variant_metrics(o), "pc1_rho": rho,
                            "centroid_order": "<".join(str(int(g)) for g in order), "n": int(ok.sum())})
        S = pca_scores(o.features[ok], o.kl[ok], 2)
        S = np.pad(S, ((0, 0), (0, 2 - S.shape[1])))
        pca_parts.append(pd.DataFrame({"variant": o.name, "row": o.rows[ok], "kl": o.kl[ok],
                                       "pc1": S[:, 0], "pc2": S[:, 1]}))
    # Images of one subject (visits, knees) are not independent: every test and CI resamples subjects.
    subjects = cohort.metadata["subject_id"].astype(str).to_numpy()
    for row, o in zip(metric_rows, outs):
        ok = o.kl >= 0
        for metric, (fn, attr) in _bootstrap_metrics(o.p_kl is not None).items():
            _, lo, hi = bootstrap_ci(fn, o.kl[ok], getattr(o, attr)[ok], groups=subjects[o.rows[ok]],
                                     n_boot=n_boot, seed=seed)
            row[f"{metric}_lo"], row[f"{metric}_hi"] = lo, hi
    mc_rows, boot_rows = [], []
    for a, b in itertools.combinations(outs, 2):
        ok = (a.kl >= 0) & (b.kl >= 0)
        y = a.kl[ok]
        groups = subjects[a.rows[ok]]
        oa = (y >= 2).astype(int)
        pa, pb = (a.p_oa[ok] >= 0.5).astype(int), (b.p_oa[ok] >= 0.5).astype(int)
        n_a, n_b = discordant(oa, pa, pb)
        stat, p = mcnemar_clustered(oa, pa, pb, groups)
        mc_rows.append({"a": a.name, "b": b.name, "only_a_correct": n_a, "only_b_correct": n_b,
                        "statistic": stat, "p": p})
        for metric, (fn, attr) in _bootstrap_metrics(a.p_kl is not None and b.p_kl is not None).items():
            sa, sb = getattr(a, attr)[ok], getattr(b, attr)[ok]
            diff, lo, hi, p_boot = bootstrap_diff(fn, y, sa, sb, n_boot=n_boot, seed=seed, groups=groups)
            boot_rows.append({"a": a.name, "b": b.name, "metric": metric, "diff": diff, "lo": lo, "hi": hi,
                              "p": p_boot})
    return {"metrics": pd.DataFrame(metric_rows),
            "mcnemar": pd.DataFrame(mc_rows, columns=["a", "b", "only_a_correct", "only_b_correct", "statistic", "p"]),
            "bootstrap": pd.DataFrame(boot_rows, columns=["a", "b", "metric", "diff", "lo", "hi", "p"]),
            "pca": pd.concat(pca_parts, ignore_index=True)}
