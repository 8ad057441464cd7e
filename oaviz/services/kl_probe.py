"""A KL-grade probe on a checkpoint's latents: what grade would this latent be read as?

Multinomial logistic regression (StandardScaler + LogisticRegression) fitted
on the train-split latents with a known KL grade, scored on the test split.
The fitted numbers (scaler mean/scale, coefficients, intercepts) are cached
as a plain .npz (no pickle) by (checkpoint hash, cohort fingerprint), and
prediction is done here in NumPy from those numbers.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from oaviz.analysis.probes import logistic_probe
from oaviz.data import disk_cache
from oaviz.errors import DataError
from oaviz.models.checkpoints import checkpoint_hash
from oaviz.paths import home
from oaviz.services.embeddings import EMBED_VERSION, embed_cohort
from oaviz.services.memo import frozen, memoised
from oaviz.services.model_io import as_checkpoint, as_cohort

N_GRADES = 5
PROBE_VERSION = 2  # 2: the shared logistic_probe (max_iter 5000); bump when the fit changes (invalidates caches)


@dataclass(frozen=True)
class KLProbe:
    """Fitted probe. classes: grades seen in training [C]; mean/scale [D];
    coef [C, D] ([1, D] for two classes); intercept [C] ([1])."""

    classes: np.ndarray
    mean: np.ndarray
    scale: np.ndarray
    coef: np.ndarray
    intercept: np.ndarray
    train_accuracy: float
    test_accuracy: float          # NaN when the test split has no labelled rows
    n_train: int
    n_test: int

    def decision(self, Z: np.ndarray) -> np.ndarray:
        Z = np.atleast_2d(np.asarray(Z, dtype=np.float64))
        if Z.shape[1] != len(self.mean):
            raise DataError(f"latents have {Z.shape[1]} dimensions; the probe was fitted on {len(self.mean)}")
        return ((Z - self.mean) / self.scale) @ self.coef.T + self.intercept

    def predict_proba(self, Z: np.ndarray) -> np.ndarray:
        """[N, D] -> [N, 5]: probability of KL 0–4 (0 for grades absent from training)."""
        s = self.decision(Z)
        if self.coef.shape[0] == 1:  # binary logistic regression: sigmoid of one score
            p1 = 1.0 / (1.0 + np.exp(-s[:, 0]))
            p = np.stack([1 - p1, p1], axis=1)
        else:
            s = s - s.max(axis=1, keepdims=True)
            p = np.exp(s)
            p /= p.sum(axis=1, keepdims=True)
        out = np.zeros((len(p), N_GRADES))
        out[:, self.classes] = p
        return out

    def predict(self, Z: np.ndarray) -> np.ndarray:
        """Most probable KL grade per latent: [N] int64."""
        return self.predict_proba(Z).argmax(axis=1).astype(np.int64)

    def to_arrays(self) -> dict[str, np.ndarray]:
        return {"classes": self.classes, "mean": self.mean, "scale": self.scale, "coef": self.coef,
                "intercept": self.intercept,
                "scores": np.array([self.train_accuracy, self.test_accuracy, self.n_train, self.n_test], float),
                "version": np.array(PROBE_VERSION)}

    @classmethod
    def from_arrays(cls, a) -> "KLProbe":
        s = a["scores"]
        return cls(classes=a["classes"].astype(np.int64), mean=a["mean"], scale=a["scale"], coef=a["coef"],
                   intercept=a["intercept"], train_accuracy=float(s[0]), test_accuracy=float(s[1]),
                   n_train=int(s[2]), n_test=int(s[3]))


def fit_kl_probe(Z_train: np.ndarray, kl_train: np.ndarray, Z_test: np.ndarray | None = None,
                 kl_test: np.ndarray | None = None, C: float = 1.0, random_state: int = 0) -> KLProbe:
    """Fit the probe on latents [n, D] with grades [n] (0–4); test accuracy when a test set is given."""
    kl_train = np.asarray(kl_train, dtype=np.int64)
    if len(np.unique(kl_train)) < 2:
        raise DataError(f"a KL probe needs at least two grades among the training latents, "
                        f"found {np.unique(kl_train).tolist()}")
    pipe = logistic_probe(C, random_state)
    pipe.fit(Z_train, kl_train)
    sc, lr = pipe[0], pipe[1]
    probe = KLProbe(classes=lr.classes_.astype(np.int64), mean=sc.mean_.astype(np.float64),
                    scale=sc.scale_.astype(np.float64), coef=lr.coef_.astype(np.float64),
                    intercept=lr.intercept_.astype(np.float64), train_accuracy=float("nan"),
                    test_accuracy=float("nan"), n_train=len(kl_train), n_test=0)
    train_acc = float((probe.predict(Z_train) == kl_train).mean())
    test_acc, n_test = float("nan"), 0
    if Z_test is not None and kl_test is not None and len(kl_test):
        test_acc = float((probe.predict(Z_test) == np.asarray(kl_test)).mean())
        n_test = len(kl_test)
    return replace(probe, train_accuracy=train_acc, test_accuracy=test_acc, n_test=n_test)


def cohort_latents(checkpoint, cohort) -> np.ndarray:
    """The cohort's latents [N, D] float64 in row order (shared embedding cache), read-only: one
    array per (checkpoint, cohort) held in memory for every caller (``services.memo``)."""
    loaded, c = as_checkpoint(checkpoint), as_cohort(cohort)

    def read() -> np.ndarray:
        df = embed_cohort(loaded.path, c)
        cols = [k for k in df.columns if k.startswith("z_")]
        return frozen(df[sorted(cols, key=lambda k: int(k[2:]))].to_numpy(dtype=np.float64, copy=True))

    # home(): another OAVIZ_HOME has its own disk cache to fill
    return memoised(("cohort_latents", EMBED_VERSION, checkpoint_hash(loaded.path), c.fingerprint, str(home())), read)


def labelled_rows(cohort, split: str) -> tuple[np.ndarray, np.ndarray]:
    """(rows, kl) of one split with a known KL grade."""
    c = as_cohort(cohort)
    rows = c.split_indices(split)
    kl = c.metadata["kl"].to_numpy(dtype=float, na_value=np.nan)[rows]
    ok = np.isfinite(kl)
    return rows[ok], kl[ok].astype(np.int64)


def kl_probe(checkpoint, cohort, use_cache: bool = True) -> KLProbe:
    """The cohort's KL probe for this checkpoint (fitted once, then read from the cache)."""
    loaded, c = as_checkpoint(checkpoint), as_cohort(cohort)
    if not c.has_kl:
        raise DataError("the cohort has no KL grades, so there is no KL probe", c.path)
    key = {"v": PROBE_VERSION, "checkpoint": checkpoint_hash(loaded.path), "cohort": c.fingerprint}
    if use_cache:  # every interaction reads the probe: keep it in memory too, not only on disk
        return memoised(("kl_probe", PROBE_VERSION, key["checkpoint"], key["cohort"], str(home())),
                        lambda: _probe(loaded, c, key, use_cache))
    return _probe(loaded, c, key, use_cache)


def _probe(loaded, c, key: dict, use_cache: bool) -> KLProbe:
    hit = disk_cache.lookup("kl_probe", key, disk_cache.NPZ) if use_cache else None
    if hit is not None:
        return KLProbe.from_arrays(hit)
    Z = cohort_latents(loaded, c)
    tr, kl_tr = labelled_rows(c, "train")
    te, kl_te = labelled_rows(c, "test")
    if len(tr) == 0:
        raise DataError("no training image has a KL grade", c.path)
    probe = fit_kl_probe(Z[tr], kl_tr, Z[te], kl_te)
    if use_cache:
        disk_cache.store("kl_probe", key, probe.to_arrays(), disk_cache.NPZ)
    return probe
