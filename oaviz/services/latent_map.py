"""The Latent map page's compute: embed, project, probe, explain, decode anywhere.

Plain Python in, DataFrames / arrays / dataclasses out; no Streamlit.

``build_latent_map`` embeds a cohort (disk cache of ``embed_cohort``), projects
it with PCA / UMAP / t-SNE and caches the map under
``home()/cache/projections/`` keyed by checkpoint hash, cohort fingerprint,
method, method parameters, max_points and seed. The cache stores the 2-D
points, the probe's predicted KL, the VAESim cluster and the structure table;
a cache hit refits nothing. The projector is rebuilt from the cached points
(``Projector.from_embedding``): decode-anywhere for UMAP/t-SNE and placing an
upload on a t-SNE map need only latents + points; PCA (ms) and UMAP (s) refit
their estimator lazily, once, only when a transform or inverse is asked for.
We do not store UMAP's fitted state because that would mean pickling, which
oaviz never does with files a user could swap.

Rows: ``table.row`` is the global row id in the cohort (what a page puts in a
plot's ``custom_data``); every other function takes these ids.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from threadpoolctl import threadpool_limits

from oaviz.analysis.latent_structure import structure_table
from oaviz.analysis.projections import METHODS, Projector
from oaviz.data import disk_cache
from oaviz.data.cohort import KL_GRADES, Cohort
from oaviz.data.readers import preprocess_any
from oaviz.data.transforms import resize_images
from oaviz.errors import ConfigError, DataError
from oaviz.models.base import Autoencoder, Cap, capabilities_of, has_capability
from oaviz.models.checkpoints import checkpoint_hash
from oaviz.services.embeddings import embed_arrays, embed_cohort
from oaviz.services.kl_probe import kl_probe
from oaviz.services.model_io import (NotAnAutoencoder, as_checkpoint, as_cohort, decode,  # noqa: F401
                                    require_autoencoder)
from oaviz.training.checkpoint import LoadedCheckpoint, read_checkpoint_info

CACHE_VERSION = 2  # 2: kNN folds grouped by subject; pred_kl from the one KL probe
CACHE_SCOPE = "projections"
# Parameters each method's map depends on (the cache key); n_jobs changes speed only.
METHOD_PARAMS = {"pca": (), "umap": ("n_neighbors", "min_dist"), "tsne": ("perplexity",)}
ALLOWED_PARAMS = ("n_neighbors", "min_dist", "perplexity", "n_jobs", "k")


@dataclass
class LatentMapResult:
    """A ready latent map. ``table`` and ``Z`` share row order; ``table.row`` = cohort row id."""

    table: pd.DataFrame
    Z: np.ndarray                    # float32 [N, D]
    projector: Projector
    method: str
    params: dict
    seed: int | None
    subsampled: str | None
    structure: pd.DataFrame
    timings: dict
    cached: bool = False
    checkpoint_hash: str = ""
    cohort_fingerprint: str = ""
    model_type: str = ""


@dataclass
class DecodedPoint:
    image: np.ndarray                # float32 [S, S] in [0, 1] (model input size)
    z: np.ndarray                    # float32 [D]
    nearest_row: int                 # cohort row id of the nearest real point on the map
    nearest_distance_2d: float


@dataclass
class SelectionStats:
    n: int
    grade_mix: pd.DataFrame          # kl (0-4, "unknown" when some are missing), count, percent
    mean_image: np.ndarray           # float32 [H, W] in [0, 1] (cohort size)
    table: pd.DataFrame              # the selected rows of the map's table
    mean_of: int = 0                 # knees averaged into mean_image: n, or MEAN_IMAGE_MAX (seeded) above


@dataclass
class UploadedPoint:
    image: np.ndarray                # float32 [H, W] in [0, 1], preprocessed like the cohort
    z: np.ndarray                    # float32 [D]
    x: float
    y: float
    recon: np.ndarray | None         # float32 [S, S] or None when the model has no decoder
    neighbours: pd.DataFrame
    recon_error: float | None = None
    extras: dict = field(default_factory=dict)


# ----------------------------------------------------------------- helpers
def _checkpoint_path(checkpoint: LoadedCheckpoint | str | Path) -> Path:
    return Path(checkpoint.path if isinstance(checkpoint, LoadedCheckpoint) else checkpoint)


def _autoencoder(loaded: LoadedCheckpoint) -> Autoencoder:
    return require_autoencoder(loaded)


def _check_same_space(result: LatentMapResult, loaded: LoadedCheckpoint) -> None:
    d = int(loaded.model.embed_dim)
    if d != result.Z.shape[1]:
        raise ConfigError(f"{loaded.path.name} has {d} latent dimensions but this map was built from "
                          f"{result.Z.shape[1]}: rebuild the map with this checkpoint")


def _check_cohort(result: LatentMapResult, c: Cohort) -> None:
    if result.cohort_fingerprint and result.cohort_fingerprint != c.fingerprint:
        raise DataError("this map was built on another cohort (fingerprints differ)", c.path)


def _check_rows(c: Cohort, rows) -> np.ndarray:
    try:
        r = np.asarray(rows, dtype=np.int64).ravel()
    except (TypeError, ValueError):
        raise DataError(f"row ids must be integers, got {rows!r}") from None
    bad = r[(r < 0) | (r >= len(c))]
    if len(bad):
        raise DataError(f"row {int(bad[0])} is outside the cohort (0…{len(c) - 1})", c.path)
    return r


def projector_params(method: str, params: dict | None, seed: int | None) -> dict:
    """Full Projector keyword arguments for a method; unknown keys or bad values -> ConfigError."""
    if method not in METHODS:
        raise ConfigError(f"unknown projection {method!r}; choose one of {METHODS}")
    params = dict(params or {})
    unknown = sorted(set(params) - set(ALLOWED_PARAMS))
    if unknown:
        raise ConfigError(f"unknown projection parameter(s) {unknown}; known: {list(ALLOWED_PARAMS)}")
    kw = {**params, "method": method, "random_state": seed}
    try:
        Projector(**kw).check_params()
    except ValueError as e:
        raise ConfigError(str(e)) from None
    return kw


def _cache_key(ck_hash: str, fingerprint: str, method: str, kw: dict, max_points, seed) -> dict:
    return {"v": CACHE_VERSION, "checkpoint": ck_hash, "cohort": fingerprint, "method": method,
           "params": {p: kw[p] for p in METHOD_PARAMS[method] if p in kw}, "k": kw.get("k", 10),
           "max_points": max_points, "seed": seed}


def _probe_kl(loaded: LoadedCheckpoint, c: Cohort, Z_all: np.ndarray, rows: np.ndarray) -> pd.Series:
    """KL read from each latent by the cohort's one KL probe (``kl_probe``: fitted on the train split),
    so the map and every other page name the same grade for the same knee; NA without KL grades."""
    out = pd.Series(pd.array([pd.NA] * len(rows), dtype="Int64"))
    if not c.has_kl:
        return out
    try:
        probe = kl_probe(loaded, c)
    except DataError:  # fewer than two grades, or no labelled training image
        return out
    return pd.Series(pd.array(probe.predict(Z_all[rows]), dtype="Int64"))


@torch.no_grad()
def _clusters(model, Z: np.ndarray) -> np.ndarray | None:
    """VAESim: index of the most similar prototype per latent; None for other models."""
    if not has_capability(model, Cap.PROTOTYPES):
        return None
    dev = model.prototypes.device
    return np.concatenate([model.assign(torch.from_numpy(Z[i:i + 4096]).to(dev)).cpu().numpy()
                           for i in range(0, len(Z), 4096)]) if len(Z) else np.zeros(0, np.int64)


# ----------------------------------------------------------------- the map
def _read_cached(key: dict, rows: np.ndarray):
    """(points table, structure table) from the cache, or None when absent, unreadable or for other rows."""
    pts = disk_cache.lookup(CACHE_SCOPE, {**key, "part": "points"}, disk_cache.PARQUET)
    structure = disk_cache.lookup(CACHE_SCOPE, {**key, "part": "structure"}, disk_cache.PARQUET)
    if pts is None or structure is None:  # absent, or truncated / foreign: recompute and overwrite
        return None
    if len(pts) != len(rows) or not (pts["row"].to_numpy() == rows).all():
        return None
    return pts, structure


def _compute(checkpoint, c: Cohort, model_type: str, kw: dict, Z_all: np.ndarray, rows: np.ndarray,
             meta: pd.DataFrame, seed: int | None, timings: dict):
    """Fit the projection, the KL probe, VAESim clusters and the structure table: (projector, points, structure)."""
    Z = np.ascontiguousarray(Z_all[rows])
    t = time.perf_counter()
    projector = Projector(**kw).fit(Z)
    timings["project_s"] = time.perf_counter() - t
    # Small dense problems: one BLAS thread is fastest and immune to busy shared cores.
    with threadpool_limits(1, user_api="blas"):
        t = time.perf_counter()
        pts = pd.DataFrame({"row": rows, "x": projector.embedding_[:, 0], "y": projector.embedding_[:, 1]})
        loaded = as_checkpoint(checkpoint)
        pts["pred_kl"] = _probe_kl(loaded, c, Z_all, rows)
        clusters = _clusters(loaded.model, Z) if Cap.PROTOTYPES in capabilities_of(model_type) else None
        if clusters is not None:
            pts["cluster"] = clusters.astype(np.int64)
        timings["probe_s"] = time.perf_counter() - t
        t = time.perf_counter()
        structure = structure_table(Z, projector.embedding_, meta["oa"], meta["kl"], meta["subject_id"],
                                    random_state=0 if seed is None else seed)
        timings["structure_s"] = time.perf_counter() - t
    return projector, pts, structure


def _assemble(rows: np.ndarray, meta: pd.DataFrame, pts: pd.DataFrame, emb: pd.DataFrame) -> pd.DataFrame:
    """row, image_id, x, y, metadata (no landmarks), recon_error, cluster, pred_kl — where available."""
    table = pd.DataFrame({"row": rows.astype(np.int64), "image_id": meta["image_id"].to_numpy(),
                          "x": pts["x"].to_numpy(np.float32), "y": pts["y"].to_numpy(np.float32)})
    for col in meta.columns:
        if col not in ("image_id", "landmarks"):
            table[col] = meta[col].array  # keeps nullable dtypes (Int64 kl/oa)
    if "recon_error" in emb.columns:
        table["recon_error"] = emb["recon_error"].to_numpy(np.float32)[rows]
    if "cluster" in pts.columns:
        table["cluster"] = pts["cluster"].to_numpy()
    if pts["pred_kl"].notna().any():
        table["pred_kl"] = pts["pred_kl"].astype("Int64").array
    return table


def build_latent_map(checkpoint: LoadedCheckpoint | str | Path, cohort: Cohort | str | Path,
                     method: str = "pca", params: dict | None = None, max_points: int | None = 5000,
                     seed: int | None = 0, use_cache: bool = True) -> LatentMapResult:
    """Embed (cached), subsample above max_points (seeded, with a notice), project, probe, measure.

    params: n_neighbors, min_dist (UMAP), perplexity (t-SNE), n_jobs, k (neighbours for
    decode-anywhere). seed None: UMAP may use n_jobs threads but the map is not reproducible.
    """
    t_start = time.perf_counter()
    timings: dict[str, float] = {}
    c = as_cohort(cohort)
    ck_path = _checkpoint_path(checkpoint)
    kw = projector_params(method, params, seed)
    if max_points is not None and (isinstance(max_points, bool) or not isinstance(max_points, (int, np.integer))
                                   or max_points < 3):
        raise ConfigError(f"max_points must be an integer >= 3 or None, got {max_points!r}")
    info = checkpoint.info if isinstance(checkpoint, LoadedCheckpoint) else read_checkpoint_info(ck_path)
    model_type = str(info.get("model_type", ""))

    t = time.perf_counter()
    ck_hash = checkpoint_hash(ck_path)
    emb = embed_cohort(ck_path, c, use_cache=use_cache)
    timings["embed_s"] = time.perf_counter() - t
    if len(emb) != len(c) or not (emb["image_id"].astype(str).to_numpy() == c.metadata["image_id"].to_numpy()).all():
        raise DataError("the embedding table does not match the cohort's rows (stale cache?)", c.path)
    Z_all = emb[[col for col in emb.columns if col.startswith("z_")]].to_numpy(dtype=np.float32)

    n = len(c)
    subsampled = None
    if max_points is not None and n > max_points:
        rows = np.sort(np.random.default_rng(seed).choice(n, int(max_points), replace=False))
        subsampled = f"showing {int(max_points):,} of {n:,} images (random, seed {seed})"
    else:
        rows = np.arange(n)
    meta = c.metadata.iloc[rows].reset_index(drop=True)

    # every max_points >= n gives the same map: one cache entry for all of them
    key = _cache_key(ck_hash, c.fingerprint, method, kw, max_points if subsampled else None, seed)
    t = time.perf_counter()
    hit = _read_cached(key, rows) if use_cache else None
    if hit is not None:
        pts, structure = hit
        projector = Projector.from_embedding(Z_all[rows], pts[["x", "y"]].to_numpy(np.float32), **kw)
        timings["cache_read_s"] = time.perf_counter() - t
    else:
        projector, pts, structure = _compute(checkpoint, c, model_type, kw, Z_all, rows, meta, seed, timings)
        if use_cache:
            # the points file, written last, marks a complete entry
            disk_cache.store(CACHE_SCOPE, {**key, "part": "structure"}, structure, disk_cache.PARQUET)
            disk_cache.store(CACHE_SCOPE, {**key, "part": "points"}, pts, disk_cache.PARQUET)

    table = _assemble(rows, meta, pts, emb)
    timings["total_s"] = time.perf_counter() - t_start
    defaults = Projector().get_params()
    shown = {p: kw.get(p, defaults[p]) for p in (*METHOD_PARAMS[method], "k", "n_jobs")}
    return LatentMapResult(table=table, Z=projector.Z_, projector=projector, method=method, params=shown,
                           seed=seed, subsampled=subsampled, structure=structure, timings=timings,
                           cached=hit is not None, checkpoint_hash=ck_hash, cohort_fingerprint=c.fingerprint,
                           model_type=model_type)


# ----------------------------------------------------------------- neighbours
def neighbours_of(result: LatentMapResult, z, k: int = 8, exclude_row: int | None = None) -> pd.DataFrame:
    """The k map rows nearest to latent z [D] (Euclidean), nearest first, with a ``distance`` column."""
    z = np.asarray(z, dtype=np.float32).ravel()
    if z.shape[0] != result.Z.shape[1]:
        raise DataError(f"latent has {z.shape[0]} dimensions, the map {result.Z.shape[1]}")
    d = np.sqrt(((result.Z.astype(np.float64) - z) ** 2).sum(1))
    if exclude_row is not None:
        d[result.table["row"].to_numpy() == exclude_row] = np.inf
    order = np.argsort(d, kind="stable")[:max(0, int(k))]
    order = order[np.isfinite(d[order])]
    out = result.table.iloc[order].reset_index(drop=True)
    out.insert(2, "distance", d[order].astype(np.float32))
    return out


def _position(result: LatentMapResult, row: int) -> int:
    hits = np.flatnonzero(result.table["row"].to_numpy() == int(row))
    if not len(hits):
        raise DataError(f"row {row} is not on this map (subsampled out, or another cohort)")
    return int(hits[0])


def neighbours(result: LatentMapResult, row: int, k: int = 8) -> pd.DataFrame:
    """The k rows nearest to map row ``row`` (a cohort row id) in latent space, itself excluded."""
    return neighbours_of(result, result.Z[_position(result, row)], k, exclude_row=int(row))


# ----------------------------------------------------------------- decode anywhere
def decode_at(checkpoint: LoadedCheckpoint | str | Path, result: LatentMapResult, x: float, y: float) -> DecodedPoint:
    """Decode the latent behind map point (x, y) and name the nearest real point."""
    loaded = as_checkpoint(checkpoint)
    model = _autoencoder(loaded)
    _check_same_space(result, loaded)
    P = np.array([[x, y]], dtype=np.float32)
    z, dist = result.projector.inverse_transform(P, return_distance=True)
    _, idx = result.projector.nearest_embedded(P)
    img = decode(model, z)[0]
    return DecodedPoint(image=img, z=z[0], nearest_row=int(result.table["row"].iloc[int(idx[0])]),
                        nearest_distance_2d=float(dist[0]))


# ----------------------------------------------------------------- selections
MEAN_IMAGE_MAX = 4096  # knees averaged into a selection's mean image (a seeded sample above: the page says so)


def selection_stats(cohort: Cohort | str | Path, result: LatentMapResult, rows) -> SelectionStats:
    """Grade mix and table of the selected cohort rows (duplicates counted once) and their mean image:
    of all of them up to MEAN_IMAGE_MAX, else of a seeded MEAN_IMAGE_MAX of them (reading 50,000
    radiographs would take seconds; the mean of 4,096 is within a grey level of it)."""
    c = as_cohort(cohort)
    _check_cohort(result, c)
    r = np.unique(_check_rows(c, rows))
    on_map = result.table["row"].isin(r).to_numpy()
    if on_map.sum() != len(r):
        missing = sorted(set(r.tolist()) - set(result.table["row"][on_map].tolist()))
        raise DataError(f"row {missing[0]} is not on this map")
    kl = c.metadata["kl"].iloc[r]
    counts = [int((kl == g).sum()) for g in KL_GRADES]
    labels: list[object] = list(KL_GRADES)
    n_unknown = int(kl.isna().sum())
    if n_unknown:
        labels.append("unknown")
        counts.append(n_unknown)
    pct = [100.0 * k / len(r) if len(r) else 0.0 for k in counts]
    grade_mix = pd.DataFrame({"kl": labels, "count": counts, "percent": pct})
    h, w = c.image_size
    m = r if len(r) <= MEAN_IMAGE_MAX else np.sort(np.random.default_rng(0).choice(r, MEAN_IMAGE_MAX, replace=False))
    acc = np.zeros((h, w), np.uint64)
    for i in range(0, len(m), 256):  # chunks: never a whole copy of a big selection
        acc += c.images[m[i:i + 256]].sum(0, dtype=np.uint64)  # exact integer sums: 3× faster than floats
    scale = 65535.0 if c.images.dtype == np.uint16 else 255.0
    mean = (acc / (scale * max(1, len(m)))).astype(np.float32)
    return SelectionStats(n=len(r), grade_mix=grade_mix, mean_image=mean,
                          table=result.table[on_map].reset_index(drop=True), mean_of=len(m))


# ----------------------------------------------------------------- uploads
@torch.no_grad()
def embed_upload(checkpoint: LoadedCheckpoint | str | Path, cohort: Cohort | str | Path, result: LatentMapResult,
                 image_bytes: bytes, filename: str, k: int = 8) -> UploadedPoint:
    """PNG/JPEG/DICOM bytes -> preprocessed like the cohort, embedded, placed on the map, with neighbours."""
    c = as_cohort(cohort)
    loaded = as_checkpoint(checkpoint)
    _check_same_space(result, loaded)
    if isinstance(image_bytes, (bytearray, memoryview)):
        image_bytes = bytes(image_bytes)
    if not isinstance(image_bytes, bytes):
        raise DataError(f"upload must be bytes, got {type(image_bytes).__name__}", filename)
    h, _ = c.image_size
    img = preprocess_any(image_bytes, size=h, name=filename)          # uint8 [H, H]; DataError when unreadable
    model = loaded.model
    Z, err = embed_arrays(model, img[None])
    xy = result.projector.transform(Z)
    recon = None
    if has_capability(model, Cap.AUTOENCODE):
        dev = next(model.parameters()).device
        x = resize_images(img[None], model.input_size, 255.0).to(dev)
        recon = model.reconstruct(x)[0, 0].float().cpu().numpy()
    return UploadedPoint(image=img.astype(np.float32) / 255.0, z=Z[0], x=float(xy[0, 0]), y=float(xy[0, 1]),
                         recon=recon, neighbours=neighbours_of(result, Z[0], k),
                         recon_error=None if err is None else float(err[0]))


def place_images(checkpoint: LoadedCheckpoint | str | Path, result: LatentMapResult, images: np.ndarray) -> np.ndarray:
    """Map positions [n, 2] of images [n, H, W] (float in [0, 1], any size): embedded by ``checkpoint``
    (the map's model) and placed with the map's projector, e.g. generated future knees."""
    loaded = as_checkpoint(checkpoint)
    _check_same_space(result, loaded)
    imgs = (np.clip(np.asarray(images, np.float32), 0, 1) * 255 + 0.5).astype(np.uint8)
    if imgs.ndim != 3:
        raise DataError(f"images must be [n, H, W], got shape {imgs.shape}")
    Z, _ = embed_arrays(loaded.model, imgs, with_recon=False)
    return result.projector.transform(Z)
