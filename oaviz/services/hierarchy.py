"""The dual-head (OA/KL) comparison of the Probe lab: metrics with subject-level CIs, paired tests, PCA of the
penultimate features and saliency inside the joint space, for the single-OA, single-KL and dual variants."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np
import pandas as pd

from oaviz.analysis.hierarchy import SaliencyResult, compare_variants, joint_space_masks, saliency_in_mask
from oaviz.analysis.paired_tests import bootstrap_ci
from oaviz.data.cohort import Cohort
from oaviz.errors import ConfigError, DataError
from oaviz.models.base import Cap, capabilities_of, model_types_with
from oaviz.models.checkpoints import (list_checkpoints, load_checkpoint, read_checkpoint_info, resolve_checkpoint,
                                      scan_checkpoints)
from oaviz.services.model_io import as_cohort


@dataclass
class HierarchyReport:
    metrics: pd.DataFrame                 # one row per variant
    mcnemar: pd.DataFrame                 # one row per pair
    bootstrap: pd.DataFrame               # one row per pair × metric
    pca: pd.DataFrame                     # variant, row, image_id, kl, pc1, pc2
    saliency: dict[str, SaliencyResult] = field(default_factory=dict)   # maps of the example rows
    saliency_rows: np.ndarray | None = None
    mask_source: str = ""
    # variant, share (mean share of |saliency| inside the joint space over the whole split), lo, hi
    # (95 % CI, subjects resampled), uniform (the share a uniform map would give), n
    saliency_summary: pd.DataFrame | None = None


def dual_head_checkpoints(roots: Sequence[str | Path] | None = None) -> dict[str, Path]:
    """{variant: newest checkpoint} of dual-head checkpoints under the bundled folder and runs."""
    entries = list_checkpoints() if roots is None else [e for r in roots for e in scan_checkpoints(r)]
    found: dict[str, tuple[float, Path]] = {}
    for e in entries:
        if Cap.HEADS not in capabilities_of(e.model_type):
            continue
        try:
            variant = (read_checkpoint_info(e.path).get("config") or {}).get("variant")  # dual / single_oa / single_kl
        except ConfigError:
            continue
        if not variant:
            continue
        if variant not in found or e.mtime > found[variant][0]:
            found[variant] = (e.mtime, e.path)
    return {v: p for v, (_, p) in sorted(found.items())}


def hierarchy_report(ckpts: Mapping[str, str | Path] | Sequence[str | Path], cohort: Cohort | str | Path,
                     split: str = "test", n_boot: int = 2000, n_saliency: int = 8, seed: int = 0) -> HierarchyReport:
    """Metrics (with subject-level CIs), paired tests, PCA of the penultimate features and saliency for
    dual-head variants. The saliency share is measured on every image of the split; ``n_saliency``
    random ones keep their maps for display."""
    c = as_cohort(cohort)
    items = list(ckpts.items()) if isinstance(ckpts, Mapping) else [(None, p) for p in ckpts]
    if not items:
        raise ConfigError("no dual-head checkpoints given")
    models = {}
    for name, p in items:
        path = resolve_checkpoint(p)
        info = read_checkpoint_info(path)
        if Cap.HEADS not in capabilities_of(info.get("model_type", "")):
            raise ConfigError(f"{path}: a {info.get('model_type')} checkpoint has no OA/KL heads; pick a "
                              f"{' or '.join(model_types_with(Cap.HEADS))} checkpoint")
        loaded = load_checkpoint(path)
        key = name or ((info.get("config") or {}).get("variant") or path.name)
        if key in models:
            raise ConfigError(f"two checkpoints are named {key!r}; pass a mapping {{name: checkpoint}}")
        models[key] = loaded.model
    cmp = compare_variants(models, c, split=split, n_boot=n_boot, seed=seed)
    pca = cmp["pca"]
    pca.insert(2, "image_id", c.metadata["image_id"].to_numpy()[pca["row"].to_numpy()])
    rows = c.split_indices(split)
    rng = np.random.default_rng(seed)
    pick = np.sort(rng.choice(rows, min(n_saliency, len(rows)), replace=False)) if n_saliency > 0 else rows[:0]
    sal: dict[str, SaliencyResult] = {}
    summary, source = None, ""
    try:
        masks, source = joint_space_masks(c, rows)
    except DataError:
        masks = None
    if masks is not None and len(rows):
        subjects = c.metadata["subject_id"].astype(str).to_numpy()[rows]
        ok = np.asarray(masks).reshape(len(rows), -1).any(1)
        summary_rows = []
        for name, model in models.items():
            share, area = _saliency_shares(model, c, rows, masks)
            good = ok & np.isfinite(share)
            mean, lo, hi = bootstrap_ci(lambda _, v: float(np.mean(v)), share[good], share[good],
                                        groups=subjects[good], n_boot=n_boot, seed=seed)
            summary_rows.append({"variant": name, "share": mean, "lo": lo, "hi": hi,
                                 "uniform": float(np.mean(area[good])), "n": int(good.sum())})
            if len(pick):
                at = np.searchsorted(rows, pick)
                sal[name] = saliency_in_mask(model, np.asarray(c.images[pick]), np.asarray(masks)[at])
        summary = pd.DataFrame(summary_rows)
    return HierarchyReport(metrics=cmp["metrics"], mcnemar=cmp["mcnemar"], bootstrap=cmp["bootstrap"],
                           pca=pca, saliency=sal,
                           saliency_rows=pick if sal else None, mask_source=source, saliency_summary=summary)


def _saliency_shares(model, cohort: Cohort, rows: np.ndarray, masks: np.ndarray, chunk: int = 64):
    """(share [n], mask area [n]) of the OA score's gradient saliency inside the joint space, for every
    row, computed in chunks so that memory stays at one chunk of maps."""
    share, area = [], []
    for i in range(0, len(rows), chunk):
        r = saliency_in_mask(model, np.asarray(cohort.images[rows[i:i + chunk]]), np.asarray(masks[i:i + chunk]))
        share.append(r.share)
        area.append(r.mask_area)
    return np.concatenate(share), np.concatenate(area)
