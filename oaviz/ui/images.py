"""Array → displayable image helpers (pure numpy; pages hand the results to st.image)."""

from __future__ import annotations

import numpy as np
from PIL import Image

# A perceptually ordered "hot" ramp for error maps: black → red → yellow → white.
_HOT = np.array([[0, 0, 0], [180, 20, 20], [255, 140, 0], [255, 235, 80], [255, 255, 255]], np.float32)


def to_uint8(img: np.ndarray) -> np.ndarray:
    """Float image in [0, 1] (any shape) -> uint8 of the same shape."""
    return (np.clip(np.nan_to_num(np.asarray(img, np.float32)), 0, 1) * 255 + 0.5).astype(np.uint8)


def heat(values: np.ndarray, vmax: float | None = None) -> np.ndarray:
    """[H, W] non-negative values -> RGB uint8 [H, W, 3] on the hot ramp (vmax = 99th percentile by default)."""
    v = np.abs(np.asarray(values, np.float32))
    top = float(vmax if vmax is not None else np.percentile(v, 99)) or 1.0
    t = np.clip(v / top, 0, 1) * (len(_HOT) - 1)
    i = np.minimum(t.astype(int), len(_HOT) - 2)
    f = (t - i)[..., None]
    return (_HOT[i] * (1 - f) + _HOT[i + 1] * f).astype(np.uint8)


def overlay(gray: np.ndarray, values: np.ndarray, alpha: float = 0.55, vmax: float | None = None) -> np.ndarray:
    """Grey image [H, W] in [0, 1] with a heat map of |values| blended on top: RGB uint8 [H, W, 3].

    The blend weight grows with the value so that low error leaves the anatomy readable."""
    g = to_uint8(gray).astype(np.float32)[..., None].repeat(3, axis=2)
    h = heat(values, vmax).astype(np.float32)
    v = np.abs(np.asarray(values, np.float32))
    top = float(vmax if vmax is not None else np.percentile(v, 99)) or 1.0
    w = (alpha * np.clip(v / top, 0, 1))[..., None]
    return (g * (1 - w) + h * w).astype(np.uint8)


def signed(diff: np.ndarray, vmax: float | None = None) -> np.ndarray:
    """Signed difference [H, W] -> RGB uint8: blue where negative, red where positive, white at zero."""
    d = np.asarray(diff, np.float32)
    top = float(vmax if vmax is not None else np.percentile(np.abs(d), 99)) or 1.0
    t = np.clip(d / top, -1, 1)[..., None]
    white = np.array([255, 255, 255], np.float32)
    red, blue = np.array([200, 40, 40], np.float32), np.array([40, 90, 200], np.float32)
    out = np.where(t > 0, white * (1 - t) + red * t, white * (1 + t) - blue * t)
    return out.astype(np.uint8)


def resized(img: np.ndarray, size: int) -> np.ndarray:
    """uint8/uint16/float image [H, W] -> float32 [size, size] in [0, 1] (area-averaged, for overlays)."""
    a = np.asarray(img)
    scale = 65535.0 if a.dtype == np.uint16 else 255.0 if a.dtype == np.uint8 else 1.0
    f = Image.fromarray(a.astype(np.float32) / scale, mode="F").resize((size, size), Image.Resampling.BOX)
    return np.asarray(f, dtype=np.float32)
