"""Streamlit caches around the latent services, keyed by checkpoint content hash and cohort fingerprint.

The services keep their own disk caches; these add an in-memory layer shared
by every session, so a rerun that changes only a display control (zoom,
window, colour) never recomputes. Arguments starting with ``_`` are not
hashed: the content hash and the fingerprint stand for them.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import streamlit as st

from oaviz.services import interpolation, prototypes, reconstructions, sampling
from oaviz.ui import loaders
from oaviz.ui.model_pick import PickedModel


def _cohort(path: str):
    return loaders.cohort(path)


@st.cache_data(show_spinner="Measuring every reconstruction…", max_entries=8)
def _report(ckpt_path: str, ckpt_hash: str, cohort_path: str, fingerprint: str) -> pd.DataFrame:
    return reconstructions.reconstruction_report(loaders.checkpoint(ckpt_path), _cohort(cohort_path))


def reconstruction_report(model: PickedModel, cohort_path: str) -> pd.DataFrame:
    """Per-image MSE/PSNR/SSIM and joint-space widths, worst first (see services.reconstructions)."""
    return _report(model.path, model.content_hash, cohort_path, loaders.fingerprint(cohort_path))


@st.cache_data(show_spinner=False, max_entries=64)
def _reconstruct(ckpt_path: str, ckpt_hash: str, cohort_path: str, fingerprint: str, rows: tuple[int, ...]):
    return reconstructions.reconstruct(loaders.checkpoint(ckpt_path), _cohort(cohort_path), list(rows))


def reconstruct(model: PickedModel, cohort_path: str, rows) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(orig, recon, signed error) [n, S, S] for cohort rows."""
    return _reconstruct(model.path, model.content_hash, cohort_path, loaders.fingerprint(cohort_path),
                        tuple(int(r) for r in rows))


@st.cache_data(show_spinner="Decoding the path…", max_entries=64)
def _interpolate(ckpt_path, ckpt_hash, cohort_path, fingerprint, a, b, steps, path):
    return interpolation.interpolate(loaders.checkpoint(ckpt_path), _cohort(cohort_path), a, b, steps=steps, path=path)


def interpolate(model: PickedModel, cohort_path: str, a, b, steps: int, path: str):
    """InterpolationResult between two cohort rows (ints) or preprocessed images ([H, W] float arrays)."""
    return _interpolate(model.path, model.content_hash, cohort_path, loaders.fingerprint(cohort_path),
                        a, b, int(steps), path)


@st.cache_data(show_spinner="Sampling the prior…", max_entries=64)
def _sample_prior(ckpt_path, ckpt_hash, cohort_path, fingerprint, n, temperature, seed):
    return sampling.sample_prior(loaders.checkpoint(ckpt_path), n=n, temperature=temperature, seed=seed,
                                 cohort=_cohort(cohort_path) if cohort_path else None)


def sample_prior(model: PickedModel, cohort_path: str | None, n: int, temperature: float, seed: int):
    fp = loaders.fingerprint(cohort_path) if cohort_path else ""
    return _sample_prior(model.path, model.content_hash, cohort_path or "", fp, int(n), float(temperature), int(seed))


@st.cache_data(show_spinner="Sampling near the prototype…", max_entries=64)
def _near_prototype(ckpt_path, ckpt_hash, cohort_path, fingerprint, k, n, threshold, seed):
    return sampling.sample_near_prototype(loaders.checkpoint(ckpt_path), k, n=n, threshold=threshold, seed=seed,
                                          cohort=_cohort(cohort_path) if cohort_path else None)


def sample_near_prototype(model: PickedModel, cohort_path: str | None, k: int, n: int, threshold: float, seed: int):
    fp = loaders.fingerprint(cohort_path) if cohort_path else ""
    return _near_prototype(model.path, model.content_hash, cohort_path or "", fp, int(k), int(n), float(threshold),
                           int(seed))


@st.cache_data(show_spinner="Walking along the severity axis…", max_entries=64)
def _severity_walk(ckpt_path, ckpt_hash, cohort_path, fingerprint, row, grades, method):
    return sampling.severity_walk(loaders.checkpoint(ckpt_path), _cohort(cohort_path), row, grades=grades, method=method)


def severity_walk(model: PickedModel, cohort_path: str, row, grades: tuple[float, ...], method: str):
    return _severity_walk(model.path, model.content_hash, cohort_path, loaders.fingerprint(cohort_path),
                          row, tuple(float(g) for g in grades), method)


@st.cache_data(show_spinner="Summarising the prototypes…", max_entries=8)
def _prototype_report(ckpt_path, ckpt_hash, cohort_path, fingerprint, k):
    return prototypes.prototype_report(loaders.checkpoint(ckpt_path), _cohort(cohort_path), k=k)


def prototype_report(model: PickedModel, cohort_path: str, k: int = 5):
    return _prototype_report(model.path, model.content_hash, cohort_path, loaders.fingerprint(cohort_path), int(k))


@st.cache_data(show_spinner="Embedding and projecting the cohort…", max_entries=16)
def _latent_map(ckpt_path, ckpt_hash, cohort_path, fingerprint, method, params: tuple, max_points, seed):
    from oaviz.services.latent_map import build_latent_map

    return build_latent_map(loaders.checkpoint(ckpt_path), _cohort(cohort_path), method=method,
                            params=dict(params), max_points=max_points, seed=seed)


def latent_map(model: PickedModel, cohort_path: str, method: str, params: dict, max_points: int | None, seed: int):
    """LatentMapResult (services.latent_map), cached in memory here and on disk by the service."""
    return _latent_map(model.path, model.content_hash, cohort_path, loaders.fingerprint(cohort_path), method,
                       tuple(sorted(params.items())), max_points, seed)


@st.cache_data(show_spinner="Comparing VAESim with VAE + KMeans…", max_entries=8)
def _clustering(vs_path, vs_hash, vae_path, vae_hash, cohort_path, fingerprint):
    from oaviz.services.probe_lab import clustering_report

    return clustering_report(vs_path, vae_path, _cohort(cohort_path))


def clustering_comparison(vaesim: PickedModel, vae_path: str, cohort_path: str) -> pd.DataFrame:
    """One row per method: statistical-mapping, kNN and linear accuracy, NMI (services.probe_lab)."""
    return _clustering(vaesim.path, vaesim.content_hash, vae_path, loaders.checkpoint_hash(vae_path), cohort_path,
                       loaders.fingerprint(cohort_path))


@st.cache_data(show_spinner="Placing the upload on the map…", max_entries=32)
def _embed_upload(ckpt_path, ckpt_hash, cohort_path, fingerprint, method, params: tuple, max_points, seed,
                  data: bytes, name: str):
    from oaviz.services.latent_map import embed_upload

    lm = _latent_map(ckpt_path, ckpt_hash, cohort_path, fingerprint, method, params, max_points, seed)
    return embed_upload(loaders.checkpoint(ckpt_path), _cohort(cohort_path), lm, data, name)


def embed_upload(model: PickedModel, cohort_path: str, method: str, params: dict, max_points, seed,
                 data: bytes, name: str):
    """UploadedPoint: the file preprocessed like the cohort, embedded and placed on the current map."""
    return _embed_upload(model.path, model.content_hash, cohort_path, loaders.fingerprint(cohort_path), method,
                         tuple(sorted(params.items())), max_points, seed, data, name)


@st.cache_data(show_spinner="Running the frozen-feature probes…", max_entries=32)
def _frozen_grid(cohort_path, fingerprint, features: tuple, target, fractions: tuple, noise: tuple, noise_kind,
                 seeds, classifier, feature_hashes: tuple):
    from oaviz.services.probe_lab import run_frozen_grid

    return run_frozen_grid(_cohort(cohort_path), list(features), target=target, fractions=list(fractions),
                           noise=list(noise), noise_kind=noise_kind, seeds=seeds, classifier=classifier)


def frozen_grid(cohort_path: str, features: list[str], target: str, fractions, noise, noise_kind: str, seeds: int,
                classifier: str) -> pd.DataFrame:
    """Tidy probe results (services.probe_lab.run_frozen_grid), cached by every input and the checkpoints' hashes."""
    hashes = tuple(loaders.checkpoint_hash(f) if f not in ("raw", "random") else f for f in features)
    return _frozen_grid(cohort_path, loaders.fingerprint(cohort_path), tuple(features), target,
                        tuple(float(f) for f in fractions), tuple(float(n) for n in noise), noise_kind, int(seeds),
                        classifier, hashes)


@st.cache_data(show_spinner="Comparing the dual-head variants (metrics, paired tests, PCA, saliency)…",
               max_entries=8)
def _hierarchy(ckpts: tuple, hashes: tuple, cohort_path, fingerprint):
    from oaviz.services.probe_lab import hierarchy_report

    return hierarchy_report(dict(ckpts), _cohort(cohort_path))


def hierarchy(ckpts: dict[str, str], cohort_path: str):
    """HierarchyReport of the dual-head variants {variant: checkpoint path}."""
    items = tuple(sorted(ckpts.items()))
    return _hierarchy(items, tuple(loaders.checkpoint_hash(p) for _, p in items), cohort_path,
                      loaders.fingerprint(cohort_path))


@st.cache_data(show_spinner="Auditing every label against its latent neighbourhood…", max_entries=16)
def _audit(ckpt_path, ckpt_hash, cohort_path, fingerprint, method, k):
    from oaviz.services.probe_lab import label_audit_report

    return label_audit_report(ckpt_path, _cohort(cohort_path), method=method, k=k)


def label_audit(model: PickedModel, cohort_path: str, method: str, k: int):
    return _audit(model.path, model.content_hash, cohort_path, loaders.fingerprint(cohort_path), method, int(k))


@st.cache_data(show_spinner=False, max_entries=64)
def _audit_neighbours(ckpt_path, ckpt_hash, cohort_path, fingerprint, row, k):
    from oaviz.services.probe_lab import audit_neighbours

    return audit_neighbours(ckpt_path, _cohort(cohort_path), row, k=k)


def audit_neighbours(model: PickedModel, cohort_path: str, row: int, k: int = 8) -> pd.DataFrame:
    return _audit_neighbours(model.path, model.content_hash, cohort_path, loaders.fingerprint(cohort_path),
                             int(row), int(k))


@st.cache_resource(show_spinner="Loading the diffusion model, its VQ-VAE and the classifier…", max_entries=2)
def _future_models(ckpt_path: str, ckpt_hash: str):
    from oaviz.services.future import load_future_models

    return load_future_models(ckpt_path)


@st.cache_data(show_spinner="Generating future knees…", max_entries=32)
def _futures(ckpt_path, ckpt_hash, cohort_path, fingerprint, knee, n, steps, seed, horizon):
    from oaviz.services.future import generate_futures

    models = _future_models(ckpt_path, ckpt_hash)
    if isinstance(knee, int):
        return generate_futures(models, cohort=_cohort(cohort_path), row=knee, n_samples=n, steps=steps, seed=seed,
                                horizon=horizon)
    return generate_futures(models, image=knee, n_samples=n, steps=steps, seed=seed, horizon=horizon)


def futures(ckpt_path: str, cohort_path: str, knee, n: int, steps: int, seed: int, horizon: int | None):
    """FutureResult (services.future) for a cohort row or a preprocessed image array."""
    return _futures(ckpt_path, loaders.checkpoint_hash(ckpt_path), cohort_path, loaders.fingerprint(cohort_path),
                    knee, int(n), int(steps), int(seed), horizon)


@st.cache_data(show_spinner="Exchanging the key features…", max_entries=32)
def _exchange(ckpt_path, ckpt_hash, cohort_path, fingerprint, row_a, row_b):
    from oaviz.services.exchange import exchange_pair

    return exchange_pair(loaders.checkpoint(ckpt_path), _cohort(cohort_path), row_a, row_b)


def exchange(ckpt_path: str, cohort_path: str, row_a: int, row_b: int):
    """ExchangeResult (services.exchange) of a KL 0 and a KL 2 knee."""
    return _exchange(ckpt_path, loaders.checkpoint_hash(ckpt_path), cohort_path, loaders.fingerprint(cohort_path),
                     int(row_a), int(row_b))


@st.cache_data(show_spinner="Placing the knees on the latent map…", max_entries=32)
def _place(ckpt_path, ckpt_hash, cohort_path, fingerprint, images: np.ndarray):
    from oaviz.services.latent_map import place_images

    lm = _latent_map(ckpt_path, ckpt_hash, cohort_path, fingerprint, "pca", (), 5000, 0)
    return place_images(loaders.checkpoint(ckpt_path), lm, images)


def place_on_pca_map(model: PickedModel, cohort_path: str, images: np.ndarray):
    """(LatentMapResult of the cohort's PCA map, positions [n, 2] of ``images`` on it)."""
    fp = loaders.fingerprint(cohort_path)
    lm = _latent_map(model.path, model.content_hash, cohort_path, fp, "pca", (), 5000, 0)
    return lm, _place(model.path, model.content_hash, cohort_path, fp, np.asarray(images, np.float32))
