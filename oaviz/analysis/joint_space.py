"""Landmark-free joint-space width (JSW) of knee AP radiographs, from intensity profiles.

Works on any knee image (real, synthetic, decoded, generated), vectorised over
a batch [N, H, W], bone bright (films with dark bones are found and negated). Per image:

1. negate a film with dark bones (``inverted``), normalise the exposure (its
   central region's 2nd/98th percentiles to 0/1) and smooth lightly (Gaussian,
   ``smooth`` px at 224 px, scaled with H);
2. find the bones' horizontal extent from the column profile of the central
   rows (where it falls below half-way between soft tissue and bone);
3. split the extent into a medial and a lateral compartment: the inner
   ``compartment`` fractions (default 30–90 %) of each half, which leaves out
   the tibial spines / notch in the middle and marginal osteophytes at the edges;
4. find each compartment's joint line as the row of the strongest dark band in
   its mean row profile (a 1-D black top-hat: the darker of the brightest rows
   within ``band`` above and below, minus the row itself);
5. in every column of the compartment, take the darkest row within a few
   pixels of that joint line and measure the gap's half-maximum width: from
   that row, walk up to where the profile first climbs half-way to the femur's
   brightest row and down to where it climbs half-way to the tibia's, with
   linear sub-pixel refinement;
6. summarise the columns: a low percentile (``min_q``, default 10 %) as the
   robust minimum JSW and the median.

Which side of the image is medial depends on the knee and on whether left
knees were mirrored: a right knee seen AP has its lateral side (fibula) at
image left, so medial is at image right. The public KL dataset keeps left knees
as acquired (medial at image left, fibula at right; file stems end in L/R);
the synthetic cohort and the DICOM/CSV importers mirror left knees to the right
orientation (medial always at image right). See ``medial_on_right``.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, fields

import numpy as np
import pandas as pd
from scipy import ndimage

from oaviz.data.errors import DataError

CHUNK = 64       # images measured together
REF_SIZE = 224  # pixel sizes below are given at 224 px and scaled with the image height


def medial_on_right(side, left_mirrored: bool) -> np.ndarray:
    """Bool [N]: is the medial compartment on the image's right?

    side: 'R' / 'L' per image ([N] or one value); left_mirrored: True when left
    knees were stored mirrored to the right orientation (synthetic cohorts,
    DICOM/CSV imports), False for images as acquired (the public KL dataset).
    An unknown side ('') is taken as a right knee.
    """
    s = np.atleast_1d(np.asarray(side, dtype=object)).astype(str)
    s = np.char.upper(np.char.strip(s))
    if left_mirrored:
        return np.ones(len(s), dtype=bool)
    return s != "L"


@dataclass(frozen=True)
class JointSpace:
    """Per-image measurements, each an array [N] (NaN where not measurable).

    ``*_px`` are pixels of the input image; ``*_mm`` are NaN unless a pixel
    spacing was given. ``medial_px`` / ``lateral_px`` are the robust minimum
    (low percentile over the compartment's columns), ``*_median_px`` the median.
    """

    medial_px: np.ndarray
    lateral_px: np.ndarray
    medial_median_px: np.ndarray
    lateral_median_px: np.ndarray
    medial_mm: np.ndarray
    lateral_mm: np.ndarray
    medial_row: np.ndarray       # joint-line row of each compartment (px from the top)
    lateral_row: np.ndarray
    bone_left: np.ndarray        # bones' horizontal extent (columns) at the joint
    bone_right: np.ndarray

    @property
    def bone_width_px(self) -> np.ndarray:
        return self.bone_right - self.bone_left + 1

    def to_frame(self) -> pd.DataFrame:
        d = {f.name: getattr(self, f.name) for f in fields(self)}
        d["bone_width_px"] = self.bone_width_px
        return pd.DataFrame(d)


def _batch(images) -> np.ndarray:
    a = np.asarray(images, dtype=np.float64)
    if a.ndim == 2:
        a = a[None]
    if a.ndim != 3 or min(a.shape[1:]) < 32:
        raise DataError(f"expected knee images [N,H,W] (H, W ≥ 32), got shape {np.shape(images)}")
    return a


def _normalise(x: np.ndarray) -> np.ndarray:
    """Exposure: each image's central-region 2nd/98th percentiles -> 0/1. [N,H,W] -> [N,H,W]."""
    h, w = x.shape[1:]
    c = x[:, h // 8: h - h // 8, w // 8: w - w // 8].reshape(len(x), -1)
    lo, hi = np.percentile(c, [2, 98], axis=1)
    return (x - lo[:, None, None]) / np.maximum(hi - lo, 1e-6)[:, None, None]


def inverted(images) -> np.ndarray:
    """Bool [N]: films whose bones are dark (MONOCHROME1 kept, about 1 % of the public KL set):
    the central region darker than the brighter of the two outer column strips (soft tissue)."""
    x = _batch(images)
    h, w = x.shape[1:]
    centre = x[:, h // 4: 3 * h // 4, w // 4: 3 * w // 4].mean((1, 2))
    strip = max(1, w // 20)
    edge = np.maximum(x[:, :, :strip].mean((1, 2)), x[:, :, -strip:].mean((1, 2)))
    return centre < edge


def _bone_extent(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """First and last bone column [N] each, from the mean column profile of the central rows."""
    n, h, w = x.shape
    prof = x[:, int(0.3 * h): int(0.7 * h)].mean(1)                      # [N,W]
    cols = np.arange(w)
    mid = prof[:, w // 4: 3 * w // 4]
    hi = np.median(mid, 1)
    lo = np.minimum(prof[:, : w // 10].min(1), prof[:, -(w // 10):].min(1))
    dark = prof < (0.5 * (lo + hi))[:, None]
    dark[:, w // 3: 2 * w // 3] = False                                  # the bones cross the centre
    left = np.where(dark & (cols < w // 2), cols, -1).max(1) + 1
    right = np.where(dark & (cols >= w // 2), cols, w).min(1) - 1
    # No soft-tissue edge (bones filling the frame, unusual windowing): take the whole width.
    bad = (right - left) < w // 2
    left, right = np.where(bad, 0, left), np.where(bad, w - 1, right)
    return left.astype(float), right.astype(float)


def _compartment_mask(left, right, w: int, on_right: np.ndarray, lo: float, hi: float) -> np.ndarray:
    """Bool [N,W]: the columns between fractions lo..hi of the half-extent, on one side of the centre."""
    xc, hw = 0.5 * (left + right), 0.5 * (right - left)
    d = (np.arange(w)[None] - xc[:, None]) * np.where(on_right, 1.0, -1.0)[:, None]
    return (d >= lo * hw[:, None]) & (d <= hi * hw[:, None])


def _valley_score(prof: np.ndarray, band: int) -> np.ndarray:
    """1-D black top-hat along axis 1 of [N,H,...]: min(brightest of the ``band`` rows above,
    brightest of the ``band`` rows below) − the row. High on a dark band between two bright ones."""
    h = prof.shape[1]
    c = ndimage.maximum_filter1d(prof, band, axis=1, mode="nearest")     # window [r - band//2, r + (band-1)//2]
    r = np.arange(h)
    above = np.take(c, np.clip(r - 1 - (band - 1) // 2, 0, h - 1), axis=1)
    below = np.take(c, np.clip(r + 1 + band // 2, 0, h - 1), axis=1)
    return np.minimum(above, below) - prof


def _valley_rows(x: np.ndarray, mask: np.ndarray, band: int, lo, hi) -> np.ndarray:
    """Row [N] of the strongest dark band of the masked columns' mean row profile, within rows lo..hi ([N] each)."""
    prof = (x * mask[:, None, :]).sum(2) / np.maximum(mask.sum(1), 1)[:, None]   # [N,H]
    score = _valley_score(prof, band)
    r = np.arange(x.shape[1])[None]
    score = np.where((r >= np.asarray(lo)[..., None]) & (r <= np.asarray(hi)[..., None]), score, -np.inf)
    return score.argmax(1)


def _column_rows(x: np.ndarray, row: np.ndarray, band: int, reach: int, across: int) -> np.ndarray:
    """Joint-line row [N,W] of every column: its strongest dark band within ``reach`` rows of the
    compartment's row [N] (columns averaged over ``across`` px), median-filtered along the row."""
    xs = ndimage.uniform_filter1d(x, across, axis=2, mode="nearest")
    score = _valley_score(xs, band)                                       # [N,H,W]
    r = np.arange(x.shape[1])[None, :, None]
    score = np.where(np.abs(r - row[:, None, None]) <= reach, score, -np.inf)
    return ndimage.median_filter(score.argmax(1), size=(1, across), mode="nearest")


def _column_edges(x: np.ndarray, row: np.ndarray, mask: np.ndarray, half: int, centre: int):
    """Femoral (top) and tibial (bottom) edge rows [N,W] each, sub-pixel, NaN outside ``mask``.

    row [N,W]: each column's joint-line row. The window spans ``half`` rows either side of it; the
    gap's centre is the darkest row within ``centre`` rows of it; each edge is where the profile,
    walking out of the gap, first climbs half-way to the brightest bone on that side (the gap's
    half-maximum width). Walking out from the gap, not taking the steepest edge in the window,
    keeps a narrow gap's edges on its own cortices when trabecular texture above is as contrasty."""
    n, h, w = x.shape
    k = np.arange(-half, half + 1)
    r = np.clip(row[:, None, :] + k[None, :, None], 0, h - 1)          # [N,K,W]
    prof = np.take_along_axis(x, r, axis=1).transpose(0, 2, 1).reshape(n * w, -1)   # [M=N·W, K]
    K = prof.shape[1]
    ks = np.arange(K)[None]
    m = np.where(np.abs(ks - half) <= centre, prof, np.inf).argmin(1)  # [M] darkest row near the joint line
    i = np.arange(len(prof))
    low = prof[i, m]
    up = ks <= m[:, None]
    bone_a = np.where(up, prof, -np.inf).max(1)                          # brightest above (femur)
    bone_b = np.where(ks >= m[:, None], prof, -np.inf).max(1)            # brightest below (tibia)
    t_a, t_b = 0.5 * (low + bone_a), 0.5 * (low + bone_b)
    ja = np.where((ks < m[:, None]) & (prof >= t_a[:, None]), ks, -1).max(1)   # nearest crossing above
    jb = np.where((ks > m[:, None]) & (prof >= t_b[:, None]), ks, K).min(1)    # nearest crossing below
    ok = (ja >= 0) & (jb < K) & (bone_a - low > 0.02) & (bone_b - low > 0.02)   # a gap with two bones
    ja, jb = np.clip(ja, 0, K - 2), np.clip(jb, 1, K - 1)
    a0, a1 = prof[i, ja], prof[i, ja + 1]                                # linear sub-pixel crossing
    top = ja + np.clip((a0 - t_a) / np.maximum(a0 - a1, 1e-6), 0.0, 1.0)
    b0, b1 = prof[i, jb - 1], prof[i, jb]
    bottom = jb - np.clip((b1 - t_b) / np.maximum(b1 - b0, 1e-6), 0.0, 1.0)
    ok = ok.reshape(n, w) & mask
    base = (row - half).astype(float)
    return (np.where(ok, base + top.reshape(n, w), np.nan), np.where(ok, base + bottom.reshape(n, w), np.nan))


DEFAULTS = dict(smooth=1.0, band=24.0, window=16.0, centre=3.0, reach=12.0, compartment=(0.3, 0.9),
                rows=(0.25, 0.8), invert="auto")


def joint_space_edges(images, medial_right, **params) -> dict:
    """Per-column joint-space edges, e.g. to draw them: {'medial': (top, bottom), 'lateral': (top, bottom),
    'rows': {'medial': [N], 'lateral': [N]}, 'bone': (left [N], right [N])}; top/bottom are rows [N,W]
    (sub-pixel, NaN outside the compartment or where no gap was found). Parameters: see measure_joint_space."""
    unknown = set(params) - set(DEFAULTS)
    if unknown:
        raise DataError(f"unknown joint-space parameter(s) {sorted(unknown)}; known: {sorted(DEFAULTS)}")
    p = {**DEFAULTS, **params}
    x = _batch(images)
    flip = inverted(x) if p["invert"] == "auto" else np.broadcast_to(np.asarray(p["invert"], dtype=bool), (len(x),))
    x = _normalise(np.where(flip[:, None, None], -x, x))
    n, h, w = x.shape
    on_right = np.broadcast_to(np.asarray(medial_right, dtype=bool), (n,))
    scale = h / REF_SIZE
    x = ndimage.gaussian_filter(x, sigma=(0, p["smooth"] * scale, p["smooth"] * scale), mode="nearest")
    left, right = _bone_extent(x)
    px = lambda v, least=1: max(least, int(round(v * scale)))  # noqa: E731  (224-px sizes -> this image)
    half, cen, bnd, reach = px(p["window"], 3), px(p["centre"]), px(p["band"], 3), px(p["reach"])
    lo, hi = max(int(p["rows"][0] * h), half), min(int(p["rows"][1] * h), h - 1 - half)
    masks = {"medial": _compartment_mask(left, right, w, on_right, *p["compartment"]),
             "lateral": _compartment_mask(left, right, w, ~on_right, *p["compartment"])}
    # The knee's joint line from both compartments, then each compartment near it (a closed
    # compartment has no dark band of its own: elsewhere the tibial metaphysis would win).
    knee_row = _valley_rows(x, masks["medial"] | masks["lateral"], bnd, lo, hi)
    out: dict = {"rows": {}, "bone": (left, right)}
    for name, mask in masks.items():
        row = _valley_rows(x, mask, bnd, np.maximum(knee_row - reach, lo), np.minimum(knee_row + reach, hi))
        col_rows = _column_rows(x, row, bnd, max(1, reach // 2), px(7.0, 3))
        out[name] = _column_edges(x, col_rows, mask, half, cen)
        out["rows"][name] = row.astype(float)
    return out


def measure_joint_space(images, medial_right, pixel_mm=None, *, min_q: float = 10.0, **params) -> JointSpace:
    """Medial and lateral JSW of knee AP images, without landmarks.

    images: [N,H,W] or [H,W], any intensity range, bone bright (or dark: see ``invert``).
    medial_right: bool [N] or one bool, True where the medial compartment is on
    the image's right (see ``medial_on_right``).
    pixel_mm: pixel spacing of these images (one value or [N]); None -> mm are NaN.
    min_q: percentile over the columns that stands for the minimum JSW.
    params (defaults in ``DEFAULTS``): smooth, band, window, centre, reach — Gaussian σ,
    top-hat length, profile half-height, darkest-row search half-height and how far
    a compartment's joint line may sit from the knee's, in px at 224 px (scaled
    with H); compartment — fractions of the half-extent from the knee's centre
    that make a compartment; rows — fractions of H where the joint line is looked for;
    invert — "auto" (dark-bone films found by ``inverted`` are negated first) or bool / bool [N].
    """
    images = np.asarray(images)
    if images.ndim == 2:
        images = images[None]
    n = len(images)
    right = np.broadcast_to(np.asarray(medial_right, dtype=bool), (n,))
    cols: dict[str, list] = {k: [] for k in ("medial", "lateral", "medial_median", "lateral_median",
                                             "medial_row", "lateral_row", "left", "right")}
    for c0 in range(0, max(n, 1), CHUNK):  # chunks keep the [N,H,W] work arrays small
        e = joint_space_edges(images[c0:c0 + CHUNK], right[c0:c0 + CHUNK], **params)
        for name in ("medial", "lateral"):
            top, bottom = e[name]
            widths = bottom - top
            widths = np.where((np.isfinite(widths).sum(1) >= 3)[:, None], widths, np.nan)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", RuntimeWarning)   # an all-NaN image gives NaN, as documented
                cols[name].append(np.nanpercentile(widths, min_q, axis=1))
                cols[f"{name}_median"].append(np.nanmedian(widths, axis=1))
            cols[f"{name}_row"].append(e["rows"][name])
        cols["left"].append(e["bone"][0])
        cols["right"].append(e["bone"][1])
    r = {k: np.concatenate(v) for k, v in cols.items()}
    mm = np.full(n, np.nan) if pixel_mm is None else np.broadcast_to(np.asarray(pixel_mm, float), (n,))
    return JointSpace(medial_px=r["medial"], lateral_px=r["lateral"],
                      medial_median_px=r["medial_median"], lateral_median_px=r["lateral_median"],
                      medial_mm=r["medial"] * mm, lateral_mm=r["lateral"] * mm,
                      medial_row=r["medial_row"], lateral_row=r["lateral_row"],
                      bone_left=r["left"], bone_right=r["right"])
