"""Reconstructions for radiologists: originals, reconstructions, error maps, per-image quality.

Everything runs the model through oaviz.services.model_io (eval mode, no
autograd, mode restored), so a cached model is never changed. Images are compared at the model's input
size (the reconstruction cannot hold more detail than that).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from oaviz.analysis.image_metrics import joint_space_width, mse, psnr, ssim
from oaviz.data import disk_cache
from oaviz.data.cohort import Cohort
from oaviz.errors import DataError
from oaviz.models.checkpoints import checkpoint_hash
from oaviz.services.model_io import as_checkpoint, as_cohort, decode, encode, model_inputs, require_autoencoder
from oaviz.training.checkpoint import LoadedCheckpoint

REPORT_VERSION = 1  # bump when the report's columns or their meaning change (invalidates caches)
REPORT_COLUMNS = ("row", "image_id", "kl", "mse", "psnr", "ssim", "jsw_medial_orig_mm", "jsw_medial_recon_mm",
                  "jsw_lateral_orig_mm", "jsw_lateral_recon_mm")


# ----------------------------------------------------------------- pure image helpers
def window_level(img: np.ndarray, window: float, level: float) -> np.ndarray:
    """Display mapping: intensities in [level − window/2, level + window/2] stretched to [0, 1], clipped."""
    if window <= 0:
        raise DataError(f"window must be positive, got {window}")
    lo = level - window / 2.0
    return np.clip((np.asarray(img, dtype=np.float32) - lo) / window, 0.0, 1.0)


# ----------------------------------------------------------------- reconstructions
def reconstruct(checkpoint, cohort, rows) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(orig, recon, err), each float32 [n, S, S] at the model's input size.

    orig in [0, 1]; recon = decode(μ(orig)); err = recon − orig (signed: the
    page shows |err| or a diverging map).
    """
    loaded, c = as_checkpoint(checkpoint), as_cohort(cohort)
    model = require_autoencoder(loaded)
    x = model_inputs(model, c, rows)
    orig = x[:, 0].numpy()
    recon = decode(model, encode(model, x))
    return orig, recon, recon - orig


def landmark_setup(c: Cohort, size: int):
    """(landmarks [N,16,2] in [0,1] or None, names, pixel mm at the model's size or None)."""
    lm = c.landmarks()
    spacing = c.info.get("pixel_spacing_mm")
    names = c.info.get("landmark_names")
    if names is None and c.info.get("joint") == "knee":
        from oaviz.data.synth_knee import LANDMARK_NAMES
        names = list(LANDMARK_NAMES)
    if lm is None or not spacing or names is None or len(names) != lm.shape[1]:
        return None, None, None
    h, w = c.image_size
    return lm / np.array([w, h], np.float32), list(names), float(spacing) * h / size


def _report_rows(model, c: Cohort, rows: np.ndarray, batch_size: int = 64) -> pd.DataFrame:
    lm, names, pixel_mm = landmark_setup(c, int(model.config.image_size))
    parts = []
    for i in range(0, len(rows), batch_size):
        r = rows[i:i + batch_size]
        x = model_inputs(model, c, r)
        orig = x[:, 0].numpy().astype(np.float64)
        recon = decode(model, encode(model, x)).astype(np.float64)
        part = pd.DataFrame({"row": r, "mse": mse(orig, recon), "psnr": psnr(orig, recon), "ssim": ssim(orig, recon)})
        for side in ("medial", "lateral"):
            part[f"jsw_{side}_orig_mm"] = np.nan
            part[f"jsw_{side}_recon_mm"] = np.nan
        if lm is not None:
            for j, row in enumerate(r):
                if not np.isfinite(lm[row]).all():
                    continue
                a = joint_space_width(orig[j], lm[row], pixel_mm, names)
                b = joint_space_width(recon[j], lm[row], pixel_mm, names)
                for side in ("medial", "lateral"):
                    part.loc[j, f"jsw_{side}_orig_mm"] = a[f"{side}_mm"]
                    part.loc[j, f"jsw_{side}_recon_mm"] = b[f"{side}_mm"]
        parts.append(part)
    df = pd.concat(parts, ignore_index=True) if parts else pd.DataFrame({k: [] for k in REPORT_COLUMNS})
    meta = c.metadata
    df.insert(1, "image_id", meta["image_id"].to_numpy()[df["row"].to_numpy(dtype=np.int64)])
    df.insert(2, "kl", meta["kl"].to_numpy()[df["row"].to_numpy(dtype=np.int64)])
    df["row"] = df["row"].astype(np.int64)
    df["kl"] = df["kl"].astype("Int64")
    return df[list(REPORT_COLUMNS)]


def _report_key(loaded: LoadedCheckpoint, c: Cohort) -> dict:
    return {"v": REPORT_VERSION, "checkpoint": checkpoint_hash(loaded.path), "cohort": c.fingerprint}


def reconstruction_report(checkpoint, cohort, rows=None, grades=None, limit: int | None = None,
                          use_cache: bool = True) -> pd.DataFrame:
    """Per-image reconstruction quality, worst (highest MSE) first.

    Columns: row, image_id, kl, mse, psnr (dB), ssim, jsw_{medial,lateral}_{orig,recon}_mm
    (joint-space width measured on the model-size original and reconstruction;
    NaN without landmarks or pixel spacing). ``rows`` restricts to cohort rows,
    ``grades`` to rater KL grades, ``limit`` keeps the worst n. The report of
    the whole cohort is cached on disk by (checkpoint hash, cohort
    fingerprint); a call with ``rows`` and no cache computes only those rows.
    """
    loaded, c = as_checkpoint(checkpoint), as_cohort(cohort)
    model = require_autoencoder(loaded)
    key = _report_key(loaded, c)
    if rows is None:  # the whole cohort: from the cache, or computed and cached
        df = disk_cache.cached(key, lambda: _report_rows(model, c, np.arange(len(c), dtype=np.int64)),
                               disk_cache.PARQUET, scope="reconstructions", enabled=use_cache)
    else:  # some rows: from a cached whole-cohort report when there is one, else just those rows
        df = disk_cache.lookup("reconstructions", key, disk_cache.PARQUET) if use_cache else None
    if df is not None:
        df["kl"] = df["kl"].astype("Int64")
    if rows is not None:
        want = np.unique(np.asarray(rows, dtype=np.int64).reshape(-1))
        if len(want) and (want.min() < 0 or want.max() >= len(c)):
            raise DataError(f"row out of range 0–{len(c) - 1}", c.path)
        df = df[df["row"].isin(want)] if df is not None else _report_rows(model, c, want)
    if grades is not None:
        g = [int(v) for v in np.atleast_1d(grades)]
        df = df[df["kl"].isin(g).fillna(False).astype(bool)]
    df = df.sort_values(["mse", "row"], ascending=[False, True], kind="stable").reset_index(drop=True)
    return df.head(int(limit)).reset_index(drop=True) if limit is not None else df


def report_summary(report: pd.DataFrame) -> dict:
    """Means of the quality columns and the JSW agreement (mean |orig − recon| in mm) of a report."""
    out = {k: float(report[k].replace([np.inf, -np.inf], np.nan).mean()) for k in ("mse", "psnr", "ssim")}
    for side in ("medial", "lateral"):
        d = (report[f"jsw_{side}_recon_mm"] - report[f"jsw_{side}_orig_mm"]).abs()
        out[f"jsw_{side}_abs_diff_mm"] = float(d.mean()) if d.notna().any() else float("nan")
    out["n_images"] = int(len(report))
    return out
