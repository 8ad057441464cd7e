"""Image statistics that tell two sets of radiographs apart (e.g. real vs synthetic knees).

All functions take images [N, H, W] as floats in [0, 1] (a set) and return
plain numbers or arrays; ``compare_sets`` gathers them for two sets.

- intensity histogram: pooled over the set; sets compared by the Jensen–Shannon
  distance (base 2: 0 identical, 1 disjoint) and the Wasserstein-1 distance;
- radial power spectrum: per image, the log-log slope of the radially averaged
  power |F(f)|² over mid frequencies (natural images ≈ −2; smooth cartoons
  fall faster, fine texture and noise flatten it);
- gradient magnitude (Sobel): pooled histogram, compared like the intensities;
- mean row and column profiles: where the joint line sits (darkest row of the
  central columns' mean row profile) and how wide the bones are (the column
  profile's extent above half-way between its edges and its centre);
- Fréchet distance of block-averaged pixels: Gaussians fitted to the sets' 8×8
  block means, compared as in FID (‖Δμ‖² + tr(Σa + Σb − 2(ΣaΣb)^½)). It measures
  layout and its variation (where the bones sit, how wide, how their spread
  co-varies) and, unlike a real-vs-synthetic classifier, does not saturate, so it
  shows progress; two halves of one real population set its floor;
- Mahalanobis distance of block means: D² = Δμᵀ Σ⁻¹ Δμ with Σ the pooled within-set
  covariance (Ledoit–Wolf shrunk). It weights a mean difference by how little the sets
  vary along it, as a linear classifier does (for Gaussian sets a linear rule reaches
  AUC Φ(D/√2)), where the Fréchet distance barely counts a small shift along a direction
  of little variance;
- disease signature: by KL grade, how much brighter the mean knee is than the mean
  KL 0 knee in the lateral and medial joint band (the gap greying as it narrows),
  the intercondylar notch (filling) and the femoral subchondral band (sclerosis).
  Knees must have the medial side on the right.
"""

from __future__ import annotations

import numpy as np
from scipy import linalg, ndimage
from scipy.spatial.distance import jensenshannon
from scipy.stats import wasserstein_distance

from oaviz.data.errors import DataError

BINS = 64


def _set(images) -> np.ndarray:
    a = np.asarray(images, dtype=np.float64)
    if a.ndim != 3 or len(a) == 0:
        raise DataError(f"expected a set of images [N,H,W], got shape {np.shape(images)}")
    return a


def histogram(values: np.ndarray, bins: int = BINS, upper: float = 1.0) -> np.ndarray:
    """Normalised histogram [bins] of all values over [0, upper]."""
    h, _ = np.histogram(np.clip(values, 0, upper), bins=bins, range=(0, upper))
    return h / max(h.sum(), 1)


def hist_distances(a: np.ndarray, b: np.ndarray, upper: float = 1.0) -> dict[str, float]:
    """Jensen–Shannon (base 2) and Wasserstein-1 (in value units) between two histograms [bins]."""
    centres = (np.arange(len(a)) + 0.5) * upper / len(a)
    return {"js": float(jensenshannon(a, b, base=2)), "w1": float(wasserstein_distance(centres, centres, a, b))}


def gradient_magnitude(images) -> np.ndarray:
    """Sobel gradient magnitude [N,H,W] (intensity per pixel; borders dropped to 0)."""
    x = _set(images)
    g = np.hypot(ndimage.sobel(x, axis=1), ndimage.sobel(x, axis=2)) / 8.0
    g[:, [0, -1], :] = 0
    g[:, :, [0, -1]] = 0
    return g


def psd_slope(images, f_lo: float = 0.02, f_hi: float = 0.25) -> np.ndarray:
    """Per-image slope [N] of log radial power vs log frequency (cycles/px in [f_lo, f_hi])."""
    x = _set(images)
    n, h, w = x.shape
    win = np.outer(np.hanning(h), np.hanning(w))
    x = (x - x.mean((1, 2), keepdims=True)) * win
    p = np.abs(np.fft.fft2(x)) ** 2                                      # [N,H,W]
    fy, fx = np.meshgrid(np.fft.fftfreq(h), np.fft.fftfreq(w), indexing="ij")
    r = np.hypot(fy, fx)
    edges = np.geomspace(f_lo, f_hi, 13)
    which = np.digitize(r, edges) - 1                                    # bin of each frequency
    ok = (which >= 0) & (which < len(edges) - 1)
    counts = np.bincount(which[ok], minlength=len(edges) - 1)
    power = np.stack([np.bincount(which[ok], weights=pi[ok], minlength=len(edges) - 1) for pi in p]) / counts
    logf = np.log(np.sqrt(edges[:-1] * edges[1:]))
    logp = np.log(np.maximum(power, 1e-20))
    lf = logf - logf.mean()
    return ((logp - logp.mean(1, keepdims=True)) @ lf) / (lf @ lf)


def profile_summary(images) -> dict:
    """Mean row profile [H] (over the central half of the columns), mean column profile [W],
    the joint-line row (darkest row of the row profile within 25–80 % of H) and the bones' width
    (px where the column profile is above half-way between its edge and centre levels)."""
    x = _set(images)
    n, h, w = x.shape
    row = x[:, :, w // 4: 3 * w // 4].mean((0, 2))
    colp = x.mean((0, 1))
    lo_r, hi_r = int(0.25 * h), int(0.8 * h)
    joint = lo_r + int(np.argmin(row[lo_r:hi_r]))
    edge = 0.5 * (colp[: w // 10].mean() + colp[-(w // 10):].mean())
    centre = colp[w // 4: 3 * w // 4].mean()
    width = int((colp > 0.5 * (edge + centre)).sum())
    return {"row_profile": row, "col_profile": colp, "joint_row": joint, "joint_row_frac": joint / h,
            "bone_width_px": width, "bone_width_frac": width / w}


def block_means(images, size: int = 8) -> np.ndarray:
    """Each image [N,H,W] averaged over a size×size grid of (near-)equal blocks -> [N, size*size]."""
    x = _set(images)
    n, h, w = x.shape
    if h < size or w < size:
        raise DataError(f"images {h}×{w} are smaller than the {size}×{size} block grid")
    ry, rx = np.linspace(0, h, size + 1).astype(int), np.linspace(0, w, size + 1).astype(int)
    rows = np.add.reduceat(x, ry[:-1], axis=1) / np.diff(ry)[None, :, None]
    cells = np.add.reduceat(rows, rx[:-1], axis=2) / np.diff(rx)[None, None, :]
    return cells.reshape(n, -1)


def frechet_pixels(a, b, size: int = 8) -> dict[str, float]:
    """Fréchet distance between Gaussians fitted to the size×size block means of two sets [N,H,W]
    (each needs more images than size² for a full-rank covariance), with its mean and covariance terms."""
    fa, fb = block_means(a, size), block_means(b, size)
    for name, f in (("first", fa), ("second", fb)):
        if len(f) <= f.shape[1]:
            raise DataError(f"the {name} set has {len(f)} images; a {size}×{size} Fréchet distance needs "
                            f"more than {f.shape[1]}")
    ca, cb = np.cov(fa.T), np.cov(fb.T)
    root = linalg.sqrtm(ca @ cb).real  # the product of two covariances has real, non-negative eigenvalues
    mean_term = float(((fa.mean(0) - fb.mean(0)) ** 2).sum())
    cov_term = float(max(np.trace(ca + cb - 2 * root), 0.0))
    return {"fd": mean_term + cov_term, "mean_term": mean_term, "cov_term": cov_term}


def block_mahalanobis(a, b, size: int = 4) -> float:
    """D² between the size×size block means of two sets [N,H,W] (pooled, shrunk covariance)."""
    from sklearn.covariance import LedoitWolf

    fa, fb = block_means(a, size), block_means(b, size)
    if min(len(fa), len(fb)) < 3:
        raise DataError(f"a Mahalanobis distance needs at least 3 images per set, got {len(fa)} and {len(fb)}")
    cov = LedoitWolf().fit(np.r_[fa - fa.mean(0), fb - fb.mean(0)]).covariance_
    d = fa.mean(0) - fb.mean(0)
    return float(d @ np.linalg.solve(cov, d))


def compare_sets(a, b) -> dict:
    """Statistics of two image sets [N,H,W] in [0, 1] and their distances (a = reference, e.g. real)."""
    a, b = _set(a), _set(b)
    if a.shape[1:] != b.shape[1:]:
        raise DataError(f"image sizes differ: {a.shape[1:]} vs {b.shape[1:]}")
    ha, hb = histogram(a), histogram(b)
    ga, gb = gradient_magnitude(a), gradient_magnitude(b)
    g_top = float(np.percentile(np.concatenate([ga[:, 1:-1, 1:-1].ravel(), gb[:, 1:-1, 1:-1].ravel()]), 99.5))
    gha, ghb = histogram(ga[:, 1:-1, 1:-1], upper=g_top), histogram(gb[:, 1:-1, 1:-1], upper=g_top)
    sa, sb = psd_slope(a), psd_slope(b)
    pa, pb = profile_summary(a), profile_summary(b)
    per_set = lambda x, g, s, p: {  # noqa: E731
        "intensity_mean": float(x.mean()), "intensity_std": float(x.std()),
        "image_std_median": float(np.median(x.std((1, 2)))),
        "gradient_mean": float(g[:, 1:-1, 1:-1].mean()), "psd_slope_median": float(np.median(s)),
        "psd_slope_iqr": float(np.subtract(*np.percentile(s, [75, 25]))),
        "joint_row_frac": p["joint_row_frac"], "bone_width_frac": p["bone_width_frac"]}
    return {
        "a": per_set(a, ga, sa, pa), "b": per_set(b, gb, sb, pb),
        "intensity_hist": hist_distances(ha, hb),
        "gradient_hist": hist_distances(gha, ghb, upper=g_top),
        "row_profile_r": float(np.corrcoef(pa["row_profile"], pb["row_profile"])[0, 1]),
        "col_profile_r": float(np.corrcoef(pa["col_profile"], pb["col_profile"])[0, 1]),
        "profiles": {"a": pa, "b": pb},
    }


# Regions of the disease signature: rows as fractions of the height relative to the joint row,
# columns as fractions of the width (medial on the right).
SIGNATURE_REGIONS = {
    "lateral_joint": ((-0.036, 0.054), (0.22, 0.40)),
    "medial_joint": ((-0.036, 0.054), (0.60, 0.80)),
    "notch": ((-0.143, -0.054), (0.43, 0.57)),
    "femoral_subchondral": ((-0.125, -0.054), (0.22, 0.80)),
}


def disease_signature(images, kl, min_knees: int = 5) -> dict:
    """Mean image of each KL grade minus the mean KL 0 image, read in SIGNATURE_REGIONS.

    images [N,H,W] in [0, 1], medial side on the right; kl [N] (NaN: ungraded). Returns the joint row
    (darkest row of the KL 0 mean across both compartments, as a fraction of H) and, for grades 1–4 with
    at least ``min_knees`` knees, {region: brightening}; joint bands read their brightest row
    (the gap greys where it is), the other regions their mean."""
    x = _set(images)
    kl = np.asarray(kl, float)
    if len(kl) != len(x):
        raise DataError(f"{len(kl)} grades for {len(x)} images")
    if (kl == 0).sum() < min_knees:
        raise DataError(f"a disease signature needs at least {min_knees} KL 0 knees, got {(kl == 0).sum()}")
    n, h, w = x.shape
    base = x[kl == 0].mean(0)
    # The joint row from the compartments' columns only: profile_summary's central columns include the
    # dark notch above the joint and read the joint line too high.
    cols = np.r_[tuple(slice(int(c0 * w), int(c1 * w))
                       for name, (_, (c0, c1)) in SIGNATURE_REGIONS.items() if name.endswith("_joint"))]
    lo, hi = int(0.35 * h), int(0.80 * h)
    joint = lo + int(np.argmin(base[lo:hi][:, cols].mean(1)))
    out: dict = {"joint_row_frac": joint / h, "grades": {}}
    for g in (1, 2, 3, 4):
        if (kl == g).sum() < min_knees:
            continue
        d = x[kl == g].mean(0) - base
        row = {"n": int((kl == g).sum())}
        for name, ((r0, r1), (c0, c1)) in SIGNATURE_REGIONS.items():
            band = d[joint + int(round(r0 * h)):joint + int(round(r1 * h)), int(c0 * w):int(c1 * w)].mean(1)
            row[name] = float(band.max() if name.endswith("_joint") else band.mean())
        out["grades"][g] = row
    return out
