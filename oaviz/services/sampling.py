"""Generate knees: samples from the prior, samples near a VAESim prototype, and a walk along the severity axis.

Every result carries the cohort KL probe's reading of each generated latent
when a cohort with KL grades is given (None otherwise).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import torch
from sklearn.decomposition import PCA

from oaviz.analysis.latent_paths import prior_log_density
from oaviz.analysis.severity_axis import METHODS as AXIS_METHODS, SeverityAxis  # noqa: F401  (AXIS_METHODS: the pages' choices)
from oaviz.errors import DataError
from oaviz.services.interpolation import cohort_reference, probe_or_none
from oaviz.services.kl_probe import cohort_latents, labelled_rows
from oaviz.services.prototypes import require_vaesim
from oaviz.services.model_io import (
    as_checkpoint, as_cohort, decode, encode, eval_mode, require_autoencoder, row_or_array_latent,
)

MAX_SAMPLES = 256  # a grid for a page, not a data set


@dataclass
class SampleResult:
    """n prior samples. images [n, S, S]; Z [n, D]; pred_kl [n] / kl_probs [n, 5] (None without a cohort
    with KL grades); log_density [n]; nearest_distance / nearest_row [n] to the cohort's training
    latents and the held-out median ``reference`` (None without a cohort)."""

    images: np.ndarray
    Z: np.ndarray
    pred_kl: np.ndarray | None
    kl_probs: np.ndarray | None
    log_density: np.ndarray
    temperature: float
    seed: int
    nearest_distance: np.ndarray | None = None
    nearest_row: np.ndarray | None = None
    reference: float | None = None


def _check_n(n: int) -> int:
    if not 1 <= int(n) <= MAX_SAMPLES:
        raise DataError(f"number of samples must be between 1 and {MAX_SAMPLES}, got {n}")
    return int(n)


def _readings(loaded, cohort, Z: np.ndarray) -> dict:
    """Probe and on-manifold fields for latents Z [n, D] (empty dict without a cohort)."""
    if cohort is None:
        return {"pred_kl": None, "kl_probs": None}
    c = as_cohort(cohort)
    probe = probe_or_none(loaded, c)
    probs = probe.predict_proba(Z) if probe is not None else None
    ref = cohort_reference(loaded, c)
    dist, near = ref.nearest(Z)
    return {"pred_kl": probs.argmax(1) if probs is not None else None, "kl_probs": probs,
            "nearest_distance": dist, "nearest_row": near, "reference": ref.distance}


def sample_prior(checkpoint, n: int = 16, temperature: float = 1.0, seed: int = 0, cohort=None) -> SampleResult:
    """Decode n draws z ~ N(0, temperature² I); the same seed gives the same latents on every machine."""
    n = _check_n(n)
    if not temperature > 0:
        raise DataError(f"temperature must be positive, got {temperature}")
    loaded = as_checkpoint(checkpoint)
    model = require_autoencoder(loaded)
    Z = (np.random.default_rng(seed).standard_normal((n, int(model.config.latent_dim))) * temperature)
    Z = Z.astype(np.float32)
    return SampleResult(images=decode(model, Z), Z=Z, log_density=prior_log_density(Z),
                        temperature=float(temperature), seed=int(seed), **_readings(loaded, cohort, Z))


@dataclass
class PrototypeSamples:
    """Samples near prototype k with cosine similarity >= threshold (m <= n when the threshold is strict).

    images [m, S, S]; similarity [m] to the prototype; Z [m, D] the latents of
    the decoded samples re-encoded (μ), which is what the probe reads;
    pred_kl [m] / kl_probs [m, 5] or None."""

    k: int
    threshold: float
    n_requested: int
    images: np.ndarray
    similarity: np.ndarray
    Z: np.ndarray
    pred_kl: np.ndarray | None
    kl_probs: np.ndarray | None


def sample_near_prototype(checkpoint, k: int, n: int = 16, threshold: float = 0.8, seed: int = 0,
                          temperature: float = 1.0, cohort=None) -> PrototypeSamples:
    """VAESim only: n decoded latents around prototype k (VAESim.sample_near_prototype, seeded)."""
    n = _check_n(n)
    loaded = as_checkpoint(checkpoint)
    model = require_vaesim(loaded)
    K = int(model.config.n_prototypes)
    if not 0 <= int(k) < K:
        raise DataError(f"prototype index must be in 0–{K - 1}, got {k}")
    if not -1 < threshold < 1:
        raise DataError(f"similarity threshold must be in (−1, 1), got {threshold}")
    gen = torch.Generator().manual_seed(int(seed))
    with eval_mode(model):
        imgs, sims = model.sample_near_prototype(int(k), n, threshold=float(threshold),
                                                 temperature=float(temperature), generator=gen)
    imgs = imgs.float().cpu()
    # VAESim does not hand back its latents; the probe reads the samples' own encodings.
    Z = encode(model, imgs) if len(imgs) else np.zeros((0, int(model.config.latent_dim)), np.float32)
    r = _readings(loaded, cohort, Z) if len(Z) else {"pred_kl": None, "kl_probs": None}
    return PrototypeSamples(k=int(k), threshold=float(threshold), n_requested=n, images=imgs[:, 0].numpy(),
                            similarity=sims.float().cpu().numpy(), Z=Z, pred_kl=r["pred_kl"], kl_probs=r["kl_probs"])


# ----------------------------------------------------------------- severity axis
@dataclass
class SeverityAxisStats:
    """How good the axis is. Spearman ρ of the held-out projection with the rater's KL,
    the true KL and the continuous severity (NaN where the cohort lacks that column)."""

    method: str
    grade_step: float
    cos_raw: float                     # cosine of the direction before/after removing nuisances
    nuisance_names: list[str]
    n_fit: int
    eval_split: str
    n_eval: int
    spearman_kl: float
    spearman_kl_true: float = float("nan")
    spearman_severity: float = float("nan")


def _nuisance_labels(c, rows: np.ndarray, nuisance, acquisition_columns) -> dict[str, np.ndarray]:
    meta = c.metadata
    labels: dict[str, np.ndarray] = {}
    for name in list(nuisance or ()) + list(acquisition_columns or ()):
        if name not in meta.columns:
            raise DataError(f"metadata has no column {name!r} to use as a nuisance", c.path)
    for name in nuisance or ():
        labels[name] = meta[name].to_numpy()[rows]
    if acquisition_columns:
        cols = list(acquisition_columns)
        labels["acquisition"] = meta[cols].apply(lambda s: s.astype(float)).to_numpy()[rows]
    return labels


def fit_severity_axis(checkpoint, cohort, method: str = "centroid", nuisance=("side",),
                      acquisition_columns=()) -> tuple[SeverityAxis, SeverityAxisStats]:
    """Fit the axis on the train split's labelled latents; score it on the test split (train if none).

    nuisance: metadata columns treated as factors (side by default);
    acquisition_columns: numeric metadata columns whose top PCs are removed too.
    """
    loaded, c = as_checkpoint(checkpoint), as_cohort(cohort)
    if not c.has_kl:
        raise DataError("the cohort has no KL grades, so there is no severity axis", c.path)
    Z = cohort_latents(loaded, c)
    tr, kl_tr = labelled_rows(c, "train")
    if len(tr) == 0:
        raise DataError("no training image has a KL grade", c.path)
    axis = SeverityAxis(method=method).fit(Z[tr], kl_tr, _nuisance_labels(c, tr, nuisance, acquisition_columns))
    ev, _ = labelled_rows(c, "test")
    split = "test"
    if len(ev) < 3:
        ev, split = tr, "train"
    meta = c.metadata.iloc[ev]
    stats = SeverityAxisStats(
        method=method, grade_step=axis.grade_step_, cos_raw=axis.cos_raw_, nuisance_names=list(axis.nuisance_names_),
        n_fit=len(tr), eval_split=split, n_eval=len(ev), spearman_kl=axis.spearman(Z[ev], meta["kl"]))
    for col in ("kl_true", "severity"):
        if col in meta.columns:
            setattr(stats, f"spearman_{col}", axis.spearman(Z[ev], meta[col]))
    return axis, stats


@dataclass
class SeverityMap:
    """The Latent Space Cartography layout: x = each knee's position on the severity axis (grade units,
    axis fitted on the train split), y = the first principal direction of what remains once the axis
    is removed (fitted on the train split too). table: row, image_id, x, y, kl, split; stats: the axis
    and its held-out Spearman ρ (test split)."""

    table: pd.DataFrame
    stats: SeverityAxisStats
    y_variance_share: float


# The map ranks knees, so it takes the direction that ranks them best held out: on the bundled β-VAE (default
# cohort, test split) Spearman ρ with KL 0.44 for the ridge regression of the grade, 0.43 probe, 0.38 Fisher,
# 0.26 centroid (bench/bench_disease.py prints them all).
MAP_METHOD = "regression"


def severity_map(checkpoint, cohort, method: str = MAP_METHOD) -> SeverityMap:
    """x = severity-axis coordinate, y = PC1 of the latents with the axis projected out."""
    loaded, c = as_checkpoint(checkpoint), as_cohort(cohort)
    axis, stats = fit_severity_axis(loaded, c, method)
    Z = cohort_latents(loaded, c)
    d = axis.direction_
    resid = Z - np.outer(Z @ d, d)
    tr, _ = labelled_rows(c, "train")
    pca = PCA(n_components=1, random_state=0).fit(resid[tr])
    meta = c.metadata
    table = pd.DataFrame({"row": np.arange(len(c)), "image_id": meta["image_id"].to_numpy(),
                          "x": axis.to_grades(Z), "y": pca.transform(resid)[:, 0],
                          "kl": meta["kl"].array if "kl" in meta else pd.NA, "split": meta["split"].to_numpy()})
    return SeverityMap(table=table, stats=stats, y_variance_share=float(pca.explained_variance_ratio_[0]))


@dataclass
class SeverityWalk:
    """One knee moved along the severity axis. grades [g] (steps in grade units, 0 = the knee itself);
    images [g, S, S]; Z [g, D]; pred_kl [g] / kl_probs [g, 5]; position: the knee's axis coordinate
    in grade units; original [S, S]."""

    row: int | None
    grades: np.ndarray
    images: np.ndarray
    Z: np.ndarray
    pred_kl: np.ndarray | None
    kl_probs: np.ndarray | None
    position: float
    original: np.ndarray
    stats: SeverityAxisStats
    axis: SeverityAxis = field(repr=False)


def severity_walk(checkpoint, cohort, row, grades=(-2, -1, 0, 1, 2), method: str = "centroid",
                  nuisance=("side",), acquisition_columns=()) -> SeverityWalk:
    """Move knee ``row`` (or an uploaded [H, W] array) by each of ``grades`` along the axis and decode."""
    loaded, c = as_checkpoint(checkpoint), as_cohort(cohort)
    model = require_autoencoder(loaded)
    axis, stats = fit_severity_axis(loaded, c, method, nuisance, acquisition_columns)
    z, x, r = row_or_array_latent(model, c, row)
    g = np.atleast_1d(np.asarray(grades, dtype=np.float64))
    Z = axis.move(z, g).astype(np.float32)
    probe = probe_or_none(loaded, c)
    probs = probe.predict_proba(Z) if probe is not None else None
    return SeverityWalk(row=r, grades=g, images=decode(model, Z), Z=Z,
                        pred_kl=probs.argmax(1) if probs is not None else None, kl_probs=probs,
                        position=float(axis.to_grades(z[None])[0]), original=x, stats=stats, axis=axis)
