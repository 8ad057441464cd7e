"""What the Probe lab, Label audit and hierarchy/clustering views ask for.

Feature sets by name ('raw', 'random', or a checkpoint folder / bundled
checkpoint name), the frozen-feature probe grid cached on disk by all its
inputs, the CNN arm started as an `oaviz probe --cnn` job, and the label-audit and
clustering reports (the dual-head comparison is in ``services.hierarchy``).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Mapping, Sequence

import numpy as np
import pandas as pd

from oaviz import __version__
from oaviz.analysis import probes
from oaviz.analysis.clustering import compare_clustering
from oaviz.analysis.feature_sets import RANDOM, RAW, RandomFeatures, feature_name, raw_pixel_features
from oaviz.analysis.label_audit import LabelAudit, precision_recall_at
from oaviz.data import disk_cache
from oaviz.data.cohort import Cohort, load_cohort
from oaviz.errors import ConfigError, DataError
from oaviz.models.base import Cap
from oaviz.models.checkpoints import checkpoint_hash, load_checkpoint, resolve_checkpoint
from oaviz.services.embeddings import embed_cohort
from oaviz.services.model_io import require_capability

summarise = probes.summarise  # re-exported: pages import services only
DEFAULT_FRACTIONS = (0.05, 0.1, 0.25, 0.5, 1.0)
DEFAULT_NOISE = (0.0, 0.1)
DEFAULT_RANDOM_DIM = 64


def _cohort(cohort: Cohort | str | Path) -> Cohort:
    return cohort if isinstance(cohort, Cohort) else load_cohort(cohort)


# ----------------------------------------------------------------- feature sets
def checkpoint_features(ckpt: str | Path, cohort: Cohort | str | Path) -> tuple[str, np.ndarray]:
    """(name, Z float32 [N, D]): a checkpoint's embedding of every cohort row, via the embedding cache."""
    path = resolve_checkpoint(ckpt)
    df = embed_cohort(path, _cohort(cohort))
    Z = df[[c for c in df.columns if c.startswith("z_")]].to_numpy(np.float32)
    return feature_name(path), Z


def parse_feature_names(text: str | Sequence[str]) -> list[str]:
    """'ckpt1,raw,random' (or a list) -> names, without blanks and duplicates, order kept."""
    items = text.split(",") if isinstance(text, str) else list(text)
    out: list[str] = []
    for it in (str(s).strip() for s in items):
        if it and it not in out:
            out.append(it)
    return out


def build_feature_sets(cohort: Cohort | str | Path, names: Sequence[str], raw_size: int = 32,
                       random_dim: int | None = None, seed: int = 0) -> dict[str, np.ndarray]:
    """{display name: features [N, D]} for 'raw' and checkpoints, and a ``RandomFeatures`` recipe for 'random'.

    Random features get the dimension of the first checkpoint set (else
    ``random_dim`` or 64), matching the thesis's "random N(0, I) of the same size";
    the probe grid draws them anew for each seed.
    """
    c = _cohort(cohort)
    names = parse_feature_names(names)
    if not names:
        raise ConfigError("no feature sets given")
    out: dict[str, np.ndarray] = {}
    ckpt_dims = []
    for n in names:
        if n in (RAW, RANDOM):
            continue
        name, Z = checkpoint_features(n, c)
        if name in out or name in (RAW, RANDOM):
            raise ConfigError(f"two feature sets are named {name!r}")
        out[name] = Z
        ckpt_dims.append(Z.shape[1])
    result: dict[str, np.ndarray] = {}
    ckpt_iter = iter(out.items())
    for n in names:  # keep the order the user gave
        if n == RAW:
            result[RAW] = raw_pixel_features(c, raw_size)
        elif n == RANDOM:
            dim = random_dim or (ckpt_dims[0] if ckpt_dims else DEFAULT_RANDOM_DIM)
            result[RANDOM] = RandomFeatures(dim)   # drawn afresh for every seed of the grid
        else:
            k, v = next(ckpt_iter)
            result[k] = v
    return result


def probe_labels(cohort: Cohort, target: str) -> tuple[np.ndarray, str, np.ndarray, np.ndarray]:
    """(y [N], y_kind, train rows, test rows): KL grades when known, else binary labels.

    Rows without a label are left out of both splits. DataError for a cohort
    that cannot serve the target (no KL for 'kl'; non-binary labels for 'oa').
    """
    m = cohort.metadata
    if cohort.has_kl:
        y = m["kl"].to_numpy(dtype=float, na_value=np.nan)
        y_kind = "kl"
    elif target == "kl":
        raise DataError("target 'kl' needs KL grades; this cohort has none", cohort.path)
    else:
        y = pd.to_numeric(m["label"], errors="coerce").to_numpy(dtype=float)
        vals = set(np.unique(y[np.isfinite(y)]).tolist())
        if not vals <= {0.0, 1.0}:
            raise DataError("target 'oa' needs KL grades or binary labels; this cohort has "
                            f"{len(vals)} label values", cohort.path)
        y_kind = "oa"
    known = np.isfinite(y)
    tr = cohort.split_indices("train")
    te = cohort.split_indices("test")
    tr, te = tr[known[tr]], te[known[te]]
    if len(tr) == 0 or len(te) == 0:
        raise DataError("the train and test splits need labelled images", cohort.path)
    return np.nan_to_num(y, nan=-1).astype(np.int64), y_kind, tr, te


# ----------------------------------------------------------------- frozen grid
def _feature_key(cohort: Cohort, name: str) -> str:
    if name in (RAW, RANDOM):
        return name
    return f"{feature_name(resolve_checkpoint(name))}:{checkpoint_hash(resolve_checkpoint(name))}"


def grid_cache_key(cohort: Cohort, feature_names: Sequence[str], **settings) -> dict:
    """Everything a grid's result depends on (the disk cache key)."""
    # kl_call: κ is scored on the expected grade (results cached before that scored the argmax)
    return {"cohort": cohort.fingerprint, "features": [_feature_key(cohort, n) for n in feature_names],
            "version": __version__, "kl_call": "expected_grade", **settings}


def run_frozen_grid(cohort: Cohort | str | Path, feature_names: Sequence[str], target: str = "oa",
                    fractions: Sequence[float] = DEFAULT_FRACTIONS, noise: Sequence[float] = DEFAULT_NOISE,
                    noise_kind: str = "symmetric", seeds: int = 5, classifier: str = "logreg",
                    raw_size: int = 32, random_dim: int | None = None, n_jobs: int = -1,
                    backend: str | None = None, cache: bool = True,
                    progress: Callable[[int, int], None] | None = None) -> pd.DataFrame:
    """Tidy results (feature, fraction, noise, noise_kind, seed, metric, value) of the frozen-feature grid.

    Cached as parquet under OAVIZ_HOME/cache/probes by the cohort fingerprint,
    checkpoint content hashes and every setting (not n_jobs/backend, which do
    not change results).
    """
    c = _cohort(cohort)
    names = parse_feature_names(feature_names)
    fractions = [float(f) for f in fractions]
    noise = [float(r) for r in noise]
    probes.check_grid(fractions, noise, noise_kind, target, classifier)
    y, y_kind, tr, te = probe_labels(c, target)
    settings = dict(target=target, fractions=fractions, noise=noise, noise_kind=noise_kind, seeds=int(seeds),
                    classifier=classifier, raw_size=int(raw_size), random_dim=random_dim, random_draw="per-seed")

    def compute() -> pd.DataFrame:
        feats = build_feature_sets(c, names, raw_size, random_dim)
        grid = probes.ProbeGrid(feats, y, target=target, fractions=fractions, noise=noise, noise_kind=noise_kind,
                                seeds=int(seeds), classifier=classifier, n_jobs=n_jobs, backend=backend,
                                y_kind=y_kind)
        return grid.run(tr, te, progress=progress)

    return disk_cache.cached(grid_cache_key(c, names, **settings), compute, disk_cache.PARQUET, scope="probes",
                             enabled=cache)


# ----------------------------------------------------------------- CNN arm as a job
def cnn_job_args(cohort: str | Path, out: str | Path, run_dir: str | Path, target: str = "oa",
                 fractions: Sequence[float] = DEFAULT_FRACTIONS, noise: Sequence[float] = DEFAULT_NOISE,
                 noise_kind: str = "symmetric", seeds: int = 5, epochs: int | None = None,
                 preset: str = "demo", image_size: int | None = None) -> list[str]:
    """Arguments of `oaviz probe … --cnn` (without the leading `oaviz`): the CNN arm alone."""
    probes.check_grid(list(fractions), list(noise), noise_kind, target, "logreg")
    args = ["probe", "--data", str(cohort), "--cnn", "--target", target,
            "--fractions", ",".join(f"{float(f):g}" for f in fractions),
            "--noise", ",".join(f"{float(r):g}" for r in noise), "--noise-kind", noise_kind,
            "--seeds", str(int(seeds)), "--out", str(out), "--run-dir", str(run_dir), "--cnn-preset", preset]
    if epochs is not None:
        args += ["--cnn-epochs", str(int(epochs))]
    if image_size is not None:
        args += ["--cnn-image-size", str(int(image_size))]
    return args


def start_cnn_job(cohort: str | Path, *, root: str | Path | None = None, **kwargs):
    """Start the CNN arm as a job (oaviz.services.jobs); results land in ``<run folder>/results``.

    kwargs are those of ``cnn_job_args``. Returns the jobs service's Job.
    """
    from oaviz.services import jobs

    run_dir = jobs.new_run_dir(f"probe-cnn-{Path(cohort).name}", root)
    out = run_dir / "results"
    args = cnn_job_args(cohort, out, run_dir, **kwargs)
    title = f"probe CNN arm ({kwargs.get('target', 'oa')}) on {Path(cohort).name}"
    return jobs.start_oaviz(args, run_dir, kind="probe", title=title, output=out, expects_events=True)


def read_probe_results(out: str | Path) -> pd.DataFrame | None:
    """results.csv of a finished `oaviz probe` output folder, or None while it does not exist."""
    p = Path(out) / "results.csv"
    return pd.read_csv(p) if p.is_file() else None


# ----------------------------------------------------------------- label audit
@dataclass
class AuditReport:
    """Ranked label audit. ``table`` rows are most suspicious first."""

    table: pd.DataFrame          # row, image_id, given, suggested, score, issue, rank (+ kl_true, flipped)
    method: str
    k: int
    at: int
    precision_at: float | None   # share of the top ``at`` whose rater label differs from the truth
    recall_at: float | None
    n_flipped: int | None


def label_audit_report(ckpt: str | Path, cohort: Cohort | str | Path, method: str = "knn", k: int = 10,
                       at: int = 50, random_state: int = 0) -> AuditReport:
    """Audit every labelled image's rater label against its neighbourhood in ``ckpt``'s latent space.

    With ``kl_true`` in the metadata (synthetic cohorts), flipped = kl != kl_true
    and the report carries precision and recall at ``at``.
    """
    c = _cohort(cohort)
    _, Z = checkpoint_features(ckpt, c)
    m = c.metadata
    col = "kl" if c.has_kl else "label"
    labels = pd.to_numeric(m[col], errors="coerce").to_numpy(dtype=float)
    rows = np.flatnonzero(np.isfinite(labels))
    if len(rows) < 3:
        raise DataError("need at least 3 labelled images to audit", c.path)
    try:
        audit = LabelAudit(method=method, k=k, random_state=random_state).fit(Z[rows], labels[rows].astype(int))
    except ValueError as e:
        raise ConfigError(f"label audit: {e}") from None
    order = audit.suspect_order_
    table = pd.DataFrame({
        "row": rows[order], "image_id": m["image_id"].to_numpy()[rows[order]],
        "given": labels[rows[order]].astype(int), "suggested": audit.suggested_[order].astype(int),
        "score": audit.scores_[order], "issue": audit.issues_[order], "rank": np.arange(1, len(rows) + 1),
    })
    precision = recall = n_flipped = None
    if col == "kl" and "kl_true" in m:
        truth = pd.to_numeric(m["kl_true"], errors="coerce").to_numpy(dtype=float)[rows]
        flipped = np.isfinite(truth) & (truth != labels[rows])
        table["kl_true"] = truth[order]
        table["flipped"] = flipped[order]
        precision, recall = precision_recall_at(order, flipped, at)
        n_flipped = int(flipped.sum())
    return AuditReport(table=table, method=method, k=k, at=at, precision_at=precision, recall_at=recall,
                       n_flipped=n_flipped)


def audit_neighbours(ckpt: str | Path, cohort: Cohort | str | Path, row: int, k: int = 8) -> pd.DataFrame:
    """The ``k`` nearest images to cohort row ``row`` in ``ckpt``'s latent space (itself excluded):
    row, image_id, label, distance (+ kl_true when known), nearest first."""
    c = _cohort(cohort)
    _, Z = checkpoint_features(ckpt, c)
    if not 0 <= int(row) < len(Z):
        raise DataError(f"row {row} is outside 0..{len(Z) - 1}", c.path)
    d = np.linalg.norm(Z - Z[int(row)], axis=1)
    d[int(row)] = np.inf
    near = np.argsort(d, kind="stable")[:max(0, min(int(k), len(Z) - 1))]
    m = c.metadata
    out = pd.DataFrame({"row": near, "image_id": m["image_id"].to_numpy()[near],
                        "label": m["kl" if c.has_kl else "label"].to_numpy()[near], "distance": d[near]})
    if "kl_true" in m:
        out["kl_true"] = m["kl_true"].to_numpy()[near]
    return out


def corrected_labels(cohort: Cohort, changes: Mapping[str, int]) -> pd.DataFrame:
    """image_id, original, corrected (one row per image) after the user's accepted changes {image_id: label}."""
    m = cohort.metadata
    col = "kl" if cohort.has_kl else "label"
    orig = pd.to_numeric(m[col], errors="coerce").astype("Int64")
    unknown = set(changes) - set(m["image_id"])
    if unknown:
        raise DataError(f"unknown image_id(s) {sorted(unknown)[:3]}", cohort.path)
    corrected = orig.copy()
    idx = pd.Index(m["image_id"])
    for image_id, lab in changes.items():
        corrected.iloc[idx.get_loc(image_id)] = int(lab)
    return pd.DataFrame({"image_id": m["image_id"], "original": orig, "corrected": corrected,
                         "changed": (orig != corrected).fillna(False).to_numpy(bool)})


# ----------------------------------------------------------------- clustering
def clustering_report(vaesim_ckpt: str | Path, vae_ckpt: str | Path, cohort: Cohort | str | Path,
                      seed: int = 0, elbow: bool = True) -> pd.DataFrame:
    """VAESim (prototype assignments) against VAE + KMeans, on KL (or the cohort's labels), held out.

    The cluster -> label map, KMeans, kNN and the linear probe are fitted on the train split's
    latents and every figure is scored on the test split (subjects never straddle the two).
    KMeans uses VAESim's K ("matched") and, with ``elbow``, the K at the inertia curve's elbow.
    """
    import torch

    c = _cohort(cohort)
    vs_path = resolve_checkpoint(vaesim_ckpt)
    loaded = load_checkpoint(vs_path)
    require_capability(loaded, Cap.PROTOTYPES, "has no prototypes to cluster with")
    if not bool(loaded.model.initialised):
        raise ConfigError(f"{vs_path}: the VAESim prototypes were never initialised (an untrained checkpoint)")
    _, Z_vs = checkpoint_features(vs_path, c)
    _, Z_vae = checkpoint_features(vae_ckpt, c)
    col = "kl" if c.has_kl else "label"
    y = pd.to_numeric(c.metadata[col], errors="coerce").to_numpy(dtype=float)
    labelled = np.isfinite(y)
    train_rows = np.intersect1d(np.flatnonzero(labelled), c.split_indices("train"))
    test_rows = np.intersect1d(np.flatnonzero(labelled), c.split_indices("test"))
    if len(train_rows) < 10 or len(test_rows) < 5:
        raise DataError(f"the clustering comparison needs at least 10 labelled train and 5 labelled test images, "
                        f"found {len(train_rows)} and {len(test_rows)}", c.path)
    rows = np.concatenate([train_rows, test_rows])
    train = np.arange(len(rows)) < len(train_rows)
    with torch.no_grad():
        clusters = loaded.model.assign(torch.from_numpy(Z_vs[rows])).numpy()
    K = int(loaded.model.config.n_prototypes)
    df = compare_clustering(Z_vs[rows], clusters, Z_vae[rows], y[rows].astype(int), train, K, seed, elbow=elbow)
    df.insert(1, "labels", col)
    df.insert(2, "n_train", len(train_rows))
    df.insert(3, "n_test", len(test_rows))
    return df
