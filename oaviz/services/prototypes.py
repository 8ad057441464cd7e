"""VAESim prototypes: what each one looks like decoded, who belongs to it, how alike they are."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from oaviz.analysis.prototype_stats import assign, nearest_real, prototype_table, similarity_matrix
from oaviz.errors import MissingCapability
from oaviz.models.base import Cap
from oaviz.services.kl_probe import cohort_latents
from oaviz.services.model_io import as_checkpoint, as_cohort, eval_mode, require_capability


class NotAPrototypeModel(MissingCapability):
    """The checkpoint's model has no prototypes."""


def require_vaesim(loaded):
    """The prototype model of a loaded checkpoint; NotAPrototypeModel for any other model."""
    return require_capability(loaded, Cap.PROTOTYPES, "has no prototypes", NotAPrototypeModel)


# What "as similar as possible" means for the VAE + KMeans baseline (VAESim paper): the same
# encoder/decoder sizes, input size, β and reconstruction weight, without the prototypes.
MATCHED_KEYS = ("image_size", "widths", "latent_dim", "beta", "recon_weight")


def baseline_mismatches(vaesim_config: dict, vae_config: dict) -> list[str]:
    """How a β-VAE config differs from a VAESim config on MATCHED_KEYS ("beta 4.0 vs 1.0"); [] = matched."""
    out = []
    for k in MATCHED_KEYS:
        a, b = vaesim_config.get(k), vae_config.get(k)
        if (list(a) if isinstance(a, (list, tuple)) else a) != (list(b) if isinstance(b, (list, tuple)) else b):
            out.append(f"{k} {b} vs {a}")
    return out


def pick_matched_baseline(vaesim_info: dict, candidates: list[tuple[str, dict]]) -> tuple[str | None, list[str]]:
    """(path, mismatches) of the candidate β-VAE (path, checkpoint info) closest to the VAESim checkpoint
    (fewest mismatched keys; the first listed wins ties); (None, []) when there is no candidate."""
    best, best_diff = None, []
    for path, info in candidates:
        diff = baseline_mismatches(vaesim_info.get("config") or {}, info.get("config") or {})
        if best is None or len(diff) < len(best_diff):
            best, best_diff = path, diff
    return best, best_diff


def matched_baseline_for(vaesim_path: str, vae_paths: list[str]) -> tuple[str | None, list[str]]:
    """``pick_matched_baseline`` over checkpoint folders (reads each config.json, loads no weights)."""
    from oaviz.training.checkpoint import read_checkpoint_info

    return pick_matched_baseline(read_checkpoint_info(vaesim_path), [(p, read_checkpoint_info(p)) for p in vae_paths])


@dataclass
class PrototypeReport:
    """decoded [K, S, S]; prototypes Q [K, D]; table (prototype_stats.prototype_table, one row per
    prototype); similarity [K, K] cosine; nearest_rows [K, k] cohort rows most similar to each
    prototype; assignments [N] prototype of every cohort row."""

    decoded: np.ndarray
    prototypes: np.ndarray
    table: pd.DataFrame
    similarity: np.ndarray
    nearest_rows: np.ndarray
    assignments: np.ndarray


def prototype_report(checkpoint, cohort, k: int = 5) -> PrototypeReport:
    """Decoded prototypes and their statistics over the whole cohort (rater KL for the mix)."""
    loaded, c = as_checkpoint(checkpoint), as_cohort(cohort)
    model = require_vaesim(loaded)
    with eval_mode(model):
        decoded = model.prototype_images().float().cpu()[:, 0].numpy()
        Q = model.prototypes.detach().float().cpu().numpy().astype(np.float64)
    Z = cohort_latents(loaded, c)
    metric = getattr(model.config, "similarity", "cosine")  # assign as the model itself does
    table = prototype_table(Z, Q, c.metadata["kl"], metric=metric)
    return PrototypeReport(decoded=decoded, prototypes=Q, table=table, similarity=similarity_matrix(Q),
                           nearest_rows=nearest_real(Z, Q, k, metric=metric), assignments=assign(Z, Q, metric=metric))
