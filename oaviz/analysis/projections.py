"""2-D projections of latent codes (PCA, UMAP, t-SNE) that also run backwards.

``Projector`` follows scikit-learn: ``__init__`` stores, ``fit`` validates and
sets ``embedding_`` [N, 2]. Beyond a plain embedding it can

- ``transform(Znew [M, D]) -> [M, 2]``: place new latents on the map. PCA and
  UMAP use their own transform; t-SNE has none, so a new point goes to the
  inverse-distance-weighted mean of the 2-D positions of its k nearest
  training latents (k = 10);
- ``inverse_transform(P [M, 2]) -> [M, D]``: "decode anywhere". PCA inverts
  exactly (mean + P·components); UMAP and t-SNE take the mean of the latents
  of the k nearest embedded points weighted by 1/(d + eps), d the 2-D distance.
  With ``return_distance=True`` it also gives the 2-D distance to the nearest
  real point, so a caller can say how far off the data a decoded spot is.

UMAP default (measured in bench/bench_latent.py): ``random_state`` given means
umap-learn runs its layout single-threaded but reproducibly; ``n_jobs != 1``
with ``random_state=None`` lets it use several threads at the price of a
different map on every run. oaviz shows the seed on the map, so reproducible
(seeded, one thread) is the default.

A projector can be rebuilt from a cached embedding without refitting
(``from_embedding``): inverse_transform for UMAP/t-SNE and transform for t-SNE
need only the latents and their 2-D points; PCA (milliseconds) and UMAP
(seconds) refit their estimator lazily, once, when transform/inverse first
asks for it. UMAP's transform then places new points against the cached
layout (``embedding_`` is set on the refitted estimator), so an uploaded knee
lands on the map the user is looking at even when a parallel refit would not
reproduce it exactly.
"""

from __future__ import annotations

import threading
import warnings

import numpy as np
from sklearn.decomposition import PCA
from sklearn.manifold import TSNE
from sklearn.neighbors import NearestNeighbors
from threadpoolctl import threadpool_limits

METHODS = ("pca", "umap", "tsne")


def _as_2d_finite(a, name: str, n_cols: int | None = None) -> np.ndarray:
    """Validated float32 copy of a 2-D array; clear ValueError otherwise."""
    try:
        arr = np.asarray(a, dtype=np.float32)
    except (TypeError, ValueError) as e:
        raise ValueError(f"{name} must be a numeric array ({e})") from None
    if arr.ndim != 2:
        raise ValueError(f"{name} must be 2-D [n, d], got shape {arr.shape}")
    if n_cols is not None and arr.shape[1] != n_cols:
        raise ValueError(f"{name} must have {n_cols} columns, got {arr.shape[1]}")
    if not np.isfinite(arr).all():
        bad = int(np.flatnonzero(~np.isfinite(arr).all(1))[0])
        raise ValueError(f"{name} has non-finite values (first in row {bad})")
    return arr


def _idw_average(values: np.ndarray, dist: np.ndarray, idx: np.ndarray, eps: float) -> np.ndarray:
    """Σ w·values[idx] / Σ w with w = 1/(dist + eps). dist/idx [M, k], values [N, C] -> [M, C]."""
    w = 1.0 / (dist.astype(np.float64) + eps)
    w /= w.sum(1, keepdims=True)
    return np.einsum("mk,mkc->mc", w, values[idx].astype(np.float64)).astype(np.float32)


class Projector:
    """Latents [N, D] -> map [N, 2], and back.

    method: "pca" | "umap" | "tsne". n_neighbors, min_dist: UMAP; perplexity: t-SNE.
    k: neighbours for t-SNE's transform and for UMAP/t-SNE inverse_transform.
    n_jobs: threads for UMAP/t-SNE (UMAP ignores it when random_state is set).
    """

    def __init__(self, method: str = "pca", n_neighbors: int = 15, min_dist: float = 0.1,
                 perplexity: float = 30.0, random_state: int | None = 0, n_jobs: int | None = 1,
                 k: int = 10):
        self.method = method
        self.n_neighbors = n_neighbors
        self.min_dist = min_dist
        self.perplexity = perplexity
        self.random_state = random_state
        self.n_jobs = n_jobs
        self.k = k

    # ------------------------------------------------------------ validation
    def check_params(self) -> None:
        """Raise ValueError for a parameter no fit could use (before seeing any data)."""
        if self.method not in METHODS:
            raise ValueError(f"method must be one of {METHODS}, got {self.method!r}")
        if isinstance(self.n_neighbors, bool) or not isinstance(self.n_neighbors, (int, np.integer)) \
                or self.n_neighbors < 2:
            raise ValueError(f"n_neighbors must be an integer >= 2, got {self.n_neighbors!r}")
        if not (isinstance(self.min_dist, (int, float)) and 0.0 <= self.min_dist <= 1.0):
            raise ValueError(f"min_dist must be in [0, 1], got {self.min_dist!r}")
        if not (isinstance(self.perplexity, (int, float)) and self.perplexity > 0):
            raise ValueError(f"perplexity must be > 0, got {self.perplexity!r}")
        if not isinstance(self.k, (int, np.integer)) or self.k < 1:
            raise ValueError(f"k must be an integer >= 1, got {self.k!r}")
        if self.n_jobs is not None and (isinstance(self.n_jobs, bool) or not isinstance(self.n_jobs, (int, np.integer))
                                        or self.n_jobs == 0 or self.n_jobs < -1):
            raise ValueError(f"n_jobs must be None, -1 or a positive integer, got {self.n_jobs!r}")
        if self.random_state is not None and not isinstance(self.random_state, (int, np.integer)):
            raise ValueError(f"random_state must be an integer or None, got {self.random_state!r}")

    def _check_data(self, Z) -> np.ndarray:
        Z = _as_2d_finite(Z, "Z")
        n, d = Z.shape
        if n < 3:
            raise ValueError(f"need at least 3 latents to project, got {n}")
        if d < 2:
            raise ValueError(f"latents must have at least 2 dimensions, got {d}")
        if self.method == "umap" and self.n_neighbors >= n:
            raise ValueError(f"UMAP n_neighbors ({self.n_neighbors}) must be smaller than the number of points ({n})")
        if self.method == "tsne" and self.perplexity >= n:
            raise ValueError(f"t-SNE perplexity ({self.perplexity}) must be smaller than the number of points ({n})")
        return Z

    # ------------------------------------------------------------ fitting
    def fit(self, Z) -> "Projector":
        """Fit on latents Z [N, D]; sets embedding_ [N, 2] (float32)."""
        self.check_params()
        Z = self._check_data(Z)
        model, emb = self._fit_estimator(Z)
        self._set_state(Z, emb, model)
        return self

    def fit_transform(self, Z) -> np.ndarray:
        return self.fit(Z).embedding_

    @classmethod
    def from_embedding(cls, Z, embedding, **params) -> "Projector":
        """A fitted projector from cached latents [N, D] and their map [N, 2], without refitting.

        The underlying PCA/UMAP estimator is refitted lazily on first transform/inverse.
        """
        p = cls(**params)
        p.check_params()
        Z = p._check_data(Z)
        emb = _as_2d_finite(embedding, "embedding", n_cols=2)
        if len(emb) != len(Z):
            raise ValueError(f"embedding has {len(emb)} rows but Z has {len(Z)}")
        p._set_state(Z, emb, None)
        return p

    def _threads(self) -> int | None:
        """Thread limit for the native code under a fit: n_jobs, with None/1 = one thread, -1 = all."""
        if self.n_jobs is None or self.n_jobs == 1:
            return 1
        return None if self.n_jobs < 0 else int(self.n_jobs)

    def _fit_estimator(self, Z: np.ndarray):
        """(estimator or None, embedding float32 [N, 2])."""
        # Thread limits on BLAS/OpenMP: spinning worker threads on shared busy cores made a
        # [1800, 64] SVD 100x and t-SNE 6x slower than one thread (bench/bench_latent.py).
        with threadpool_limits(1 if self.method == "pca" else self._threads()):
            if self.method == "pca":
                model = PCA(n_components=2, svd_solver="full").fit(Z)
                return model, model.transform(Z).astype(np.float32)
            if self.method == "tsne":
                model = TSNE(n_components=2, perplexity=float(self.perplexity), init="pca", learning_rate="auto",
                             random_state=self.random_state, n_jobs=self.n_jobs)
                return None, model.fit_transform(Z).astype(np.float32)
            import umap  # heavy import (numba): only when asked for

            model = umap.UMAP(n_components=2, n_neighbors=int(self.n_neighbors), min_dist=float(self.min_dist),
                              random_state=self.random_state, n_jobs=1 if self.n_jobs is None else self.n_jobs)
            with warnings.catch_warnings():
                # "n_jobs value overridden to 1 by setting random_state": documented above, on purpose.
                warnings.filterwarnings("ignore", message=".*n_jobs value.*overridden.*")
                emb = model.fit_transform(Z)
            return model, np.asarray(emb, dtype=np.float32)

    def _set_state(self, Z: np.ndarray, emb: np.ndarray, model) -> None:
        self.Z_ = Z
        self.embedding_ = emb
        self.n_features_in_ = Z.shape[1]
        self.model_ = model
        self._lock = threading.Lock()
        self.nn_2d_ = NearestNeighbors(n_neighbors=min(self.k, len(Z))).fit(emb)
        self.nn_latent_ = None  # built on first t-SNE transform
        # eps relative to each space's spread: an exact hit gets (almost) all the weight.
        self.eps_2d_ = 1e-6 * float(np.ptp(emb, axis=0).max() or 1.0)
        self.eps_latent_ = 1e-6 * float(np.ptp(Z, axis=0).max() or 1.0)

    def _check_fitted(self) -> None:
        if not hasattr(self, "embedding_"):
            raise ValueError("this Projector is not fitted yet: call fit(Z) first")

    def _estimator(self):
        """The PCA/UMAP estimator, refitted once (thread-safe) when built from a cached embedding."""
        with self._lock:
            if self.model_ is None and self.method in ("pca", "umap"):
                model, emb = self._fit_estimator(self.Z_)
                if self.method == "umap":
                    # Place new points against the map the user sees, not a re-run layout.
                    model.embedding_ = self.embedding_.copy()
                elif not np.allclose(emb, self.embedding_, atol=1e-3 * max(1.0, float(np.abs(emb).max()))):
                    raise ValueError("cached PCA map does not match these latents (stale cache?)")
                self.model_ = model
            return self.model_

    # ------------------------------------------------------------ forward / backward
    def transform(self, Znew) -> np.ndarray:
        """New latents [M, D] -> map positions [M, 2] (float32)."""
        self._check_fitted()
        Znew = _as_2d_finite(Znew, "Znew", n_cols=self.n_features_in_)
        if len(Znew) == 0:
            return np.zeros((0, 2), np.float32)
        if self.method in ("pca", "umap"):
            model = self._estimator()
            with warnings.catch_warnings():
                warnings.filterwarnings("ignore", category=UserWarning)
                return np.asarray(model.transform(Znew), dtype=np.float32)
        with self._lock:
            if self.nn_latent_ is None:
                self.nn_latent_ = NearestNeighbors(n_neighbors=min(self.k, len(self.Z_))).fit(self.Z_)
        dist, idx = self.nn_latent_.kneighbors(Znew)
        return _idw_average(self.embedding_, dist, idx, self.eps_latent_)

    def nearest_embedded(self, P) -> tuple[np.ndarray, np.ndarray]:
        """Map points [M, 2] -> (2-D distance to the nearest embedded point [M], its index [M])."""
        self._check_fitted()
        P = _as_2d_finite(P, "P", n_cols=2)
        if len(P) == 0:
            return np.zeros(0, np.float32), np.zeros(0, np.int64)
        dist, idx = self.nn_2d_.kneighbors(P, n_neighbors=1)
        return dist[:, 0].astype(np.float32), idx[:, 0]

    def inverse_transform(self, P, return_distance: bool = False):
        """Map points [M, 2] -> latents [M, D] (float32); with return_distance also [M] 2-D
        distances to the nearest embedded point."""
        self._check_fitted()
        P = _as_2d_finite(P, "P", n_cols=2)
        if len(P) == 0:
            out = np.zeros((0, self.n_features_in_), np.float32)
            return (out, np.zeros(0, np.float32)) if return_distance else out
        dist, idx = self.nn_2d_.kneighbors(P)
        if self.method == "pca":
            Zhat = self._estimator().inverse_transform(P).astype(np.float32)
        else:
            Zhat = _idw_average(self.Z_, dist, idx, self.eps_2d_)
        if return_distance:
            return Zhat, dist[:, 0].astype(np.float32)
        return Zhat

    def __getstate__(self) -> dict:
        # A lock cannot be copied (st.cache_data pickles what it returns); a fresh one is made on load.
        return {k: v for k, v in self.__dict__.items() if k != "_lock"}

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        self._lock = threading.Lock()

    def get_params(self) -> dict:
        """Constructor parameters (as scikit-learn's get_params)."""
        return {"method": self.method, "n_neighbors": self.n_neighbors, "min_dist": self.min_dist,
                "perplexity": self.perplexity, "random_state": self.random_state, "n_jobs": self.n_jobs,
                "k": self.k}


def warm_up_jit(seed: int = 0) -> float:
    """Compile UMAP's numba code on tiny data, so that a visitor's first map costs what a warm one does.

    umap-learn compiles its functions (and pynndescent's, for the approximate neighbours used above
    4,096 points) on first use, about 8 s on this machine, and keeps no cache between processes. The
    app calls this in a background thread at start-up. Covers the seeded fit with exact and with
    approximate neighbours and a transform. Returns the seconds it took.
    """
    import time

    import umap

    t = time.perf_counter()
    rng = np.random.default_rng(seed)
    small = rng.normal(size=(300, 8)).astype(np.float32)
    with warnings.catch_warnings(), threadpool_limits(1):
        warnings.filterwarnings("ignore")
        Projector(method="umap", random_state=seed).fit(small)
        approx = umap.UMAP(n_neighbors=15, random_state=seed, force_approximation_algorithm=True).fit(small)
        approx.transform(small[:20])
    return time.perf_counter() - t
