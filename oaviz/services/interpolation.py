"""Interpolate between two knees in latent space and check each step against the data and the prior.

Each endpoint is a cohort row or an uploaded image (a preprocessed float
array [H, W] in [0, 1]); both are encoded to μ, joined by a linear or a
spherical path, decoded, and every step gets its predicted KL grade (the
cohort's KL probe), its distance to the nearest real training latent and its
prior log-density. ``reference`` is the median of that nearest distance for
the cohort's held-out latents, so a step far beyond it is off the data manifold.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from sklearn.neighbors import NearestNeighbors

from oaviz.analysis.latent_paths import lerp, nearest_distance, prior_log_density, slerp
from oaviz.data.cohort import Cohort
from oaviz.errors import DataError
from oaviz.models.checkpoints import checkpoint_hash
from oaviz.services.kl_probe import cohort_latents, kl_probe
from oaviz.services.memo import memoised
from oaviz.services.model_io import as_checkpoint, as_cohort, decode, require_autoencoder, row_or_array_latent

PATHS = {"linear": lerp, "slerp": slerp}


@dataclass
class ManifoldReference:
    """Real latents used as 'the data': rows [M] of the cohort and their latents [M, D];
    distance: median nearest distance of held-out latents to them; log_density: their median prior log-density."""

    rows: np.ndarray
    Z: np.ndarray
    distance: float
    log_density: float

    def nearest(self, Z: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(distance [n], cohort row [n]) of the nearest reference latent."""
        d, i = nearest_distance(Z, self.Z)
        return d, self.rows[i]


def manifold_reference(Z_all: np.ndarray, cohort: Cohort) -> ManifoldReference:
    """Training latents as the reference; held-out (val + test) latents give the typical distance.

    Without both a training and a held-out split, every latent is the
    reference and the typical distance is each one's distance to its nearest
    other latent.
    """
    tr = cohort.split_indices("train")
    held = np.concatenate([cohort.split_indices("val"), cohort.split_indices("test")])
    if len(tr) and len(held):
        ref_rows = tr
        d, _ = nearest_distance(Z_all[held], Z_all[tr])
        typical = Z_all[held]
    else:
        if len(Z_all) < 2:
            raise DataError("at least two images are needed for an on-manifold reference", cohort.path)
        ref_rows = np.arange(len(Z_all))
        dist, _ = NearestNeighbors(n_neighbors=2).fit(Z_all).kneighbors(Z_all)
        d = dist[:, 1]
        typical = Z_all
    return ManifoldReference(rows=np.asarray(ref_rows, dtype=np.int64), Z=Z_all[ref_rows], distance=float(np.median(d)),
                             log_density=float(np.median(prior_log_density(typical))))


def cohort_reference(loaded, cohort: Cohort) -> ManifoldReference:
    """``manifold_reference`` of the checkpoint's cohort latents, measured once per (checkpoint, cohort)
    and held in memory (``services.memo``): it costs O(held-out × train) distances, every call needs it."""
    return memoised(("manifold_reference", checkpoint_hash(loaded.path), cohort.fingerprint),
                    lambda: manifold_reference(cohort_latents(loaded, cohort), cohort))


@dataclass
class InterpolationResult:
    """A decoded path of ``steps`` latents (S = the model's input size)."""

    path: str
    t: np.ndarray                      # [steps] position along the path, 0 … 1
    images: np.ndarray                 # [steps, S, S] float32 in [0, 1]
    Z: np.ndarray                      # [steps, D]
    pred_kl: np.ndarray | None         # [steps] int, None when the cohort has no KL grades
    kl_probs: np.ndarray | None        # [steps, 5]
    nearest_distance: np.ndarray       # [steps] to the nearest real training latent
    nearest_row: np.ndarray            # [steps] cohort row of that latent
    log_density: np.ndarray            # [steps] log N(z; 0, I)
    reference: float                   # median nearest distance of held-out real latents
    reference_log_density: float       # median prior log-density of held-out real latents
    endpoints: np.ndarray              # [2, S, S] the two inputs at model size
    rows: tuple[int | None, int | None]  # cohort rows of the endpoints (None for an upload)

    @property
    def manifold_ratio(self) -> np.ndarray:
        """nearest_distance / reference: about 1 or less looks like real data, well above 1 does not."""
        return self.nearest_distance / max(self.reference, 1e-12)


def probe_or_none(checkpoint, cohort: Cohort):
    """The cohort's KL probe, or None when the cohort has no KL grades."""
    return kl_probe(checkpoint, cohort) if cohort.has_kl else None


def interpolate(checkpoint, cohort, a, b, steps: int = 10, path: str = "linear") -> InterpolationResult:
    """Decode ``steps`` latents on the path from knee ``a`` to knee ``b`` (cohort rows or [H, W] arrays)."""
    if path not in PATHS:
        raise DataError(f"path must be one of {sorted(PATHS)}, got {path!r}")
    loaded, c = as_checkpoint(checkpoint), as_cohort(cohort)
    model = require_autoencoder(loaded)
    latents = cohort_latents(loaded, c)   # the shared, in-memory ones; the probe and reference need them too
    za, xa, ra = row_or_array_latent(model, c, a, latents)
    zb, xb, rb = row_or_array_latent(model, c, b, latents)
    Z = PATHS[path](za, zb, steps).astype(np.float32)
    images = decode(model, Z)
    ref = cohort_reference(loaded, c)
    dist, near = ref.nearest(Z)
    probe = probe_or_none(loaded, c)
    probs = probe.predict_proba(Z) if probe is not None else None
    return InterpolationResult(
        path=path, t=np.linspace(0.0, 1.0, int(steps)), images=images, Z=Z,
        pred_kl=probs.argmax(1) if probs is not None else None, kl_probs=probs,
        nearest_distance=dist, nearest_row=near, log_density=prior_log_density(Z),
        reference=ref.distance, reference_log_density=ref.log_density,
        endpoints=np.stack([xa, xb]), rows=(ra, rb),
    )
