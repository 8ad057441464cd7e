"""Image similarity metrics and the joint-space width measured on an image.

Images are float arrays in [0, data_range]; batch functions take [N, H, W]
(a single [H, W] image is treated as a batch of one) and return [N].
"""

from __future__ import annotations

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from oaviz.errors import DataError

# Wang et al. (2004): 11-tap Gaussian window, sigma 1.5, K1 = 0.01, K2 = 0.03.
SSIM_SIGMA, SSIM_TAPS, SSIM_K1, SSIM_K2 = 1.5, 11, 0.01, 0.03

# Knee landmark names used for the joint-space width (oaviz.data.synth_knee.LANDMARK_NAMES).
JSW_LANDMARKS = {
    "medial": ("med_condyle_lowest", "med_plateau_mid"),
    "lateral": ("lat_condyle_lowest", "lat_plateau_mid"),
}


def _batch(a: np.ndarray) -> np.ndarray:
    a = np.asarray(a, dtype=np.float64)
    if a.ndim == 2:
        a = a[None]
    if a.ndim != 3:
        raise DataError(f"expected images [N,H,W] or [H,W], got shape {a.shape}")
    return a


def _pair(x, y) -> tuple[np.ndarray, np.ndarray]:
    x, y = _batch(x), _batch(y)
    if x.shape != y.shape:
        raise DataError(f"image shapes differ: {x.shape} vs {y.shape}")
    return x, y


def mse(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Mean squared error per image: [N,H,W] × [N,H,W] -> [N]."""
    x, y = _pair(x, y)
    return ((x - y) ** 2).mean(axis=(1, 2))


def psnr(x: np.ndarray, y: np.ndarray, data_range: float = 1.0) -> np.ndarray:
    """Peak signal-to-noise ratio in dB per image, [N]; +inf for identical images."""
    m = mse(x, y)
    with np.errstate(divide="ignore"):
        return 10.0 * np.log10(data_range ** 2 / m)


def gaussian_window(taps: int = SSIM_TAPS, sigma: float = SSIM_SIGMA) -> np.ndarray:
    """Normalised 1-D Gaussian of ``taps`` samples centred on the middle one."""
    r = np.arange(taps) - (taps - 1) / 2
    w = np.exp(-0.5 * (r / sigma) ** 2)
    return w / w.sum()


def _filter_valid(a: np.ndarray, w: np.ndarray) -> np.ndarray:
    """Separable 'valid' filtering of [N,H,W] with the 1-D window w along H and W.

    Only positions whose whole window lies inside the image are kept, which is
    what scikit-image's SSIM averages over (it filters, then crops the border).
    """
    a = sliding_window_view(a, len(w), axis=1) @ w       # [N, H-t+1, W]
    return sliding_window_view(a, len(w), axis=2) @ w    # [N, H-t+1, W-t+1]


def ssim(x: np.ndarray, y: np.ndarray, data_range: float = 1.0) -> np.ndarray:
    """Mean structural similarity per image, [N,H,W] × [N,H,W] -> [N].

    Gaussian-weighted local statistics (σ = 1.5, 11 taps), population
    covariances, constants C1 = (0.01·L)², C2 = (0.03·L)² (Wang et al. 2004).
    """
    x, y = _pair(x, y)
    if min(x.shape[1:]) < SSIM_TAPS:
        raise DataError(f"images must be at least {SSIM_TAPS}×{SSIM_TAPS} for SSIM, got {x.shape[1:]}")
    w = gaussian_window()
    mx, my = _filter_valid(x, w), _filter_valid(y, w)
    sxx = _filter_valid(x * x, w) - mx * mx
    syy = _filter_valid(y * y, w) - my * my
    sxy = _filter_valid(x * y, w) - mx * my
    c1, c2 = (SSIM_K1 * data_range) ** 2, (SSIM_K2 * data_range) ** 2
    s = ((2 * mx * my + c1) * (2 * sxy + c2)) / ((mx ** 2 + my ** 2 + c1) * (sxx + syy + c2))
    return s.mean(axis=(1, 2))


# ----------------------------------------------------------------- joint-space width
def _edge_pair(profile: np.ndarray) -> tuple[float, float] | None:
    """Rows (sub-pixel) of the strongest bright→dark edge and the strongest
    dark→bright edge below it in a top-to-bottom intensity profile."""
    g = np.gradient(profile)
    if len(g) < 3:
        return None
    # Best pair i < j maximising (-g[i]) + g[j]: a running best "falling edge" from above.
    best_fall = np.maximum.accumulate(-g)
    # Index at which each running maximum was (last) reached.
    arg_fall = np.maximum.accumulate(np.where(-g >= best_fall, np.arange(len(g)), 0))
    score = best_fall[:-1] + g[1:]
    j = int(np.argmax(score)) + 1
    i = int(arg_fall[j - 1])
    if score[j - 1] <= 0 or -g[i] <= 0 or g[j] <= 0:
        return None
    return _subpixel(-g, i), _subpixel(g, j)


def _subpixel(v: np.ndarray, k: int) -> float:
    """Peak position refined by a parabola through v[k-1], v[k], v[k+1]."""
    if 0 < k < len(v) - 1:
        a, b, c = v[k - 1], v[k], v[k + 1]
        den = a - 2 * b + c
        if den < 0:
            return k + 0.5 * (a - c) / den
    return float(k)


def gap_width_px(image: np.ndarray, top: np.ndarray, bottom: np.ndarray, half_height: float,
                 half_width: float) -> float:
    """Width in pixels of the dark gap between two bright structures, measured on the image.

    image [H,W]; top/bottom: (x, y) pixel positions of the upper and lower
    bone edges' landmarks. The profile is the mean of the columns within
    ``half_width`` px of the landmarks' mean x, over rows within ``half_height``
    px of their midpoint; the width is the distance between the strongest
    falling (femur → gap) and the strongest rising (gap → tibia) gradient.
    NaN when the window leaves the image or no such edge pair exists (a gap
    narrower than about a pixel after blur is not resolved).
    """
    h, w = image.shape
    xc = 0.5 * (top[0] + bottom[0])
    yc = 0.5 * (top[1] + bottom[1])
    if not np.all(np.isfinite([xc, yc])):
        return float("nan")
    x0, x1 = int(round(xc - half_width)), int(round(xc + half_width)) + 1
    y0, y1 = int(np.floor(yc - half_height)), int(np.ceil(yc + half_height)) + 1
    if x0 < 0 or y0 < 0 or x1 > w or y1 > h or y1 - y0 < 4:
        return float("nan")
    profile = np.asarray(image[y0:y1, x0:x1], dtype=np.float64).mean(axis=1)
    pair = _edge_pair(profile)
    if pair is None:
        return float("nan")
    return float(pair[1] - pair[0])


def joint_space_width(image: np.ndarray, landmarks: np.ndarray, pixel_mm: float,
                      landmark_names: tuple[str, ...] | list[str] | None = None,
                      window_mm: float = 3.0, band_mm: float = 1.5) -> dict[str, float]:
    """Medial and lateral knee joint-space width in mm, measured on the image.

    image [H,W] float (bone bright); landmarks [16,2] (x, y) in [0, 1] image
    coordinates (pixel = u·W, v·H, the convention of the training batches);
    pixel_mm: size of one pixel of *this* image in mm. The landmarks only
    place the window: the search spans half the landmark gap plus
    ``window_mm`` either side of the gap's centre, over columns within
    ``band_mm`` of the landmarks; the width is read from the intensity edges
    (see gap_width_px). NaN for a compartment without finite landmarks.
    """
    from oaviz.data.synth_knee import LANDMARK_NAMES  # lazy: synth_knee pulls in torch

    names = list(landmark_names or LANDMARK_NAMES)
    image = np.asarray(image)
    if image.ndim != 2:
        raise DataError(f"joint_space_width expects one image [H,W], got shape {image.shape}")
    lm = np.asarray(landmarks, dtype=np.float64)
    if lm.ndim != 2 or lm.shape[1] != 2 or lm.shape[0] != len(names):
        raise DataError(f"landmarks must be [{len(names)},2], got shape {lm.shape}")
    if pixel_mm <= 0:
        raise DataError(f"pixel_mm must be positive, got {pixel_mm}")
    h, w = image.shape
    px = lm * np.array([w, h])
    out = {}
    for side, (upper, lower) in JSW_LANDMARKS.items():
        if upper not in names or lower not in names:
            out[f"{side}_mm"] = float("nan")
            continue
        a, b = px[names.index(upper)], px[names.index(lower)]
        half_h = 0.5 * abs(b[1] - a[1]) + window_mm / pixel_mm if np.all(np.isfinite([a, b])) else 0.0
        half_w = max(band_mm / pixel_mm, 0.5)
        out[f"{side}_mm"] = gap_width_px(image, a, b, half_h, half_w) * pixel_mm
    return out
