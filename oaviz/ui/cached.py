"""Streamlit caches around the latent services: one cached function per resource, keyed by typed refs.

The services keep their own disk caches; these add an in-memory layer shared
by every session, so a rerun that changes only a display control (zoom,
window, colour) never recomputes. Small results are st.cache_data (each call
gets its own copy); what holds an embedding table or a fitted projector is
st.cache_resource (one object for all sessions, never modified). Checkpoints and cohorts are passed as
``ModelRef``/``CohortRef`` (``oaviz.ui.refs``): the cache hashes their path and
content hash / fingerprint, and each function loads the shared eval-mode model
and memory-mapped cohort from them. Nothing here trains or mutates a model.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import streamlit as st

from oaviz.services import interpolation, prototypes, reconstructions, sampling
from oaviz.ui.refs import CohortRef, ModelRef

# The map the Future knee page places today and the futures on: PCA of at most 5000 knees, seed 0.
PCA_MAP = {"method": "pca", "params": {}, "max_points": 5000, "seed": 0}


@st.cache_data(show_spinner="Measuring every reconstruction…", max_entries=8)
def reconstruction_report(model: ModelRef, cohort: CohortRef) -> pd.DataFrame:
    """Per-image MSE/PSNR/SSIM and joint-space widths, worst first (see services.reconstructions)."""
    return reconstructions.reconstruction_report(model.load(), cohort.load())


@st.cache_data(show_spinner=False, max_entries=64)
def reconstruct(model: ModelRef, cohort: CohortRef, rows: list[int]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(orig, recon, signed error) [n, S, S] for cohort rows."""
    return reconstructions.reconstruct(model.load(), cohort.load(), [int(r) for r in rows])


@st.cache_data(show_spinner="Decoding the path…", max_entries=64)
def interpolate(model: ModelRef, cohort: CohortRef, a, b, steps: int, path: str):
    """InterpolationResult between two cohort rows (ints) or preprocessed images ([H, W] float arrays)."""
    return interpolation.interpolate(model.load(), cohort.load(), a, b, steps=int(steps), path=path)


@st.cache_data(show_spinner="Sampling the prior…", max_entries=64)
def sample_prior(model: ModelRef, cohort: CohortRef | None, n: int, temperature: float, seed: int):
    """SampleResult: ``n`` decoded draws from N(0, T²·I), graded by a probe on the cohort when there is one."""
    return sampling.sample_prior(model.load(), n=int(n), temperature=float(temperature), seed=int(seed),
                                 cohort=cohort.load() if cohort else None)


@st.cache_data(show_spinner="Sampling near the prototype…", max_entries=64)
def sample_near_prototype(model: ModelRef, cohort: CohortRef | None, k: int, n: int, threshold: float, seed: int):
    """Samples at least ``threshold`` cosine-similar to VAESim prototype ``k``."""
    return sampling.sample_near_prototype(model.load(), int(k), n=int(n), threshold=float(threshold), seed=int(seed),
                                          cohort=cohort.load() if cohort else None)


@st.cache_data(show_spinner="Placing every knee on the severity axis…", max_entries=16)
def severity_map(model: ModelRef, cohort: CohortRef, method: str = sampling.MAP_METHOD):
    """SeverityMap (services.sampling): x = held-out severity axis, y = PC1 of the rest."""
    return sampling.severity_map(model.load(), cohort.load(), method)


@st.cache_data(show_spinner="Walking along the severity axis…", max_entries=64)
def severity_walk(model: ModelRef, cohort: CohortRef, row, grades: tuple[float, ...], method: str):
    """SeverityWalk of one knee (cohort row or preprocessed image) moved by ``grades`` along the disease axis."""
    return sampling.severity_walk(model.load(), cohort.load(), row, grades=tuple(float(g) for g in grades),
                                  method=method)


@st.cache_data(show_spinner="Summarising the prototypes…", max_entries=8)
def prototype_report(model: ModelRef, cohort: CohortRef, k: int = 5):
    return prototypes.prototype_report(model.load(), cohort.load(), k=int(k))


@st.cache_resource(show_spinner="Embedding and projecting the cohort…", max_entries=16)
def latent_map(model: ModelRef, cohort: CohortRef, method: str, params: dict, max_points: int | None, seed: int):
    """LatentMapResult (services.latent_map), cached on disk by the service and held here once for every
    session: a resource, not data, because st.cache_data would unpickle a copy of the embedding table
    ``Z`` [N, D] and the fitted projector for every call of every session. Shared, so read-only: ``Z``
    is made unwriteable and the projector's lazily built search structures are built here, once."""
    from oaviz.services.latent_map import build_latent_map

    lm = build_latent_map(model.load(), cohort.load(), method=method, params=dict(params), max_points=max_points,
                          seed=seed)
    lm.Z.setflags(write=False)
    if len(lm.Z):
        lm.projector.transform(lm.Z[:1])   # concurrent transforms (uploads, prototypes) then only read it
    return lm


@st.cache_data(show_spinner="Comparing VAESim with VAE + KMeans…", max_entries=8)
def clustering_comparison(vaesim: ModelRef, vae: ModelRef, cohort: CohortRef) -> pd.DataFrame:
    """One row per method: statistical-mapping, kNN and linear accuracy, NMI (services.probe_lab)."""
    from oaviz.services.probe_lab import clustering_report

    return clustering_report(vaesim.path, vae.path, cohort.load())


@st.cache_data(show_spinner="Placing the upload on the map…", max_entries=32)
def embed_upload(model: ModelRef, cohort: CohortRef, method: str, params: dict, max_points, seed, data: bytes,
                 name: str):
    """UploadedPoint: the file preprocessed like the cohort, embedded and placed on the current map."""
    from oaviz.services.latent_map import embed_upload as place_upload

    lm = latent_map(model, cohort, method, params, max_points, seed)
    return place_upload(model.load(), cohort.load(), lm, data, name)


@st.cache_data(show_spinner="Running the frozen-feature probes…", max_entries=32)
def frozen_grid(cohort: CohortRef, features: tuple[ModelRef | str, ...], target: str, fractions, noise,
                noise_kind: str, seeds: int, classifier: str) -> pd.DataFrame:
    """Tidy probe results (services.probe_lab.run_frozen_grid); a feature is a checkpoint or 'raw'/'random'."""
    from oaviz.services.probe_lab import run_frozen_grid

    return run_frozen_grid(cohort.load(), [f.path if isinstance(f, ModelRef) else f for f in features],
                           target=target, fractions=[float(f) for f in fractions], noise=[float(n) for n in noise],
                           noise_kind=noise_kind, seeds=int(seeds), classifier=classifier)


@st.cache_data(show_spinner="Comparing the dual-head variants (metrics, paired tests, PCA, saliency)…",
               max_entries=8)
def hierarchy(variants: dict[str, ModelRef], cohort: CohortRef):
    """HierarchyReport of the dual-head variants {variant: checkpoint}."""
    from oaviz.services.hierarchy import hierarchy_report

    return hierarchy_report({v: m.path for v, m in sorted(variants.items())}, cohort.load())


@st.cache_data(show_spinner="Auditing every label against its latent neighbourhood…", max_entries=16)
def label_audit(model: ModelRef, cohort: CohortRef, method: str, k: int):
    from oaviz.services.probe_lab import label_audit_report

    return label_audit_report(model.path, cohort.load(), method=method, k=int(k))


@st.cache_data(show_spinner=False, max_entries=64)
def audit_neighbours(model: ModelRef, cohort: CohortRef, row: int, k: int = 8) -> pd.DataFrame:
    from oaviz.services.probe_lab import audit_neighbours as neighbours

    return neighbours(model.path, cohort.load(), int(row), k=int(k))


@st.cache_resource(show_spinner="Loading the diffusion model, its VQ-VAE and the classifier…", max_entries=2)
def future_models(model: ModelRef):
    """The frozen diffusion pipeline parts of a latent-diffusion checkpoint (services.future)."""
    from oaviz.services.future import load_future_models

    return load_future_models(model.path)


@st.cache_data(show_spinner="Generating future knees…", max_entries=32)
def futures(model: ModelRef, cohort: CohortRef, knee, n: int, steps: int, seed: int, horizon: int | None):
    """FutureResult (services.future) for a cohort row or a preprocessed image array."""
    from oaviz.services.future import generate_futures

    parts = future_models(model)
    if isinstance(knee, int):
        return generate_futures(parts, cohort=cohort.load(), row=knee, n_samples=int(n), steps=int(steps),
                                seed=int(seed), horizon=horizon)
    return generate_futures(parts, image=knee, n_samples=int(n), steps=int(steps), seed=int(seed), horizon=horizon)


@st.cache_data(show_spinner="Exchanging the key features…", max_entries=32)
def exchange(model: ModelRef, cohort: CohortRef, row_a: int, row_b: int):
    """ExchangeResult (services.exchange) of a KL 0 and a KL 2 knee."""
    from oaviz.services.exchange import exchange_pair

    return exchange_pair(model.load(), cohort.load(), int(row_a), int(row_b))


@st.cache_data(show_spinner="Placing the knees on the latent map…", max_entries=32)
def place_on_pca_map(model: ModelRef, cohort: CohortRef, images: np.ndarray) -> np.ndarray:
    """Positions [n, 2] of ``images`` [n, H, W] on the cohort's ``PCA_MAP`` (``latent_map(…, **PCA_MAP)``)."""
    from oaviz.services.latent_map import place_images

    return place_images(model.load(), latent_map(model, cohort, **PCA_MAP), np.asarray(images, np.float32))


@st.cache_data(show_spinner=False, max_entries=128)
def image_readings(reader: ModelRef | None, cohort: CohortRef | None, images: np.ndarray):
    """``measure.read_images``: JSW and the independent reader's KL for images [n, S, S] (a few ms per image)."""
    from oaviz.services.measure import read_images

    return read_images(images, cohort.load() if cohort is not None else None,
                       reader.load() if reader is not None else None)
