"""What the radiograph viewer does to pixels and points (pure numpy/pandas, no Streamlit: unit-tested).

- window/level presets and the display mapping: window/level (``services.reconstructions.window_level``),
  then inversion (white bone ↔ black bone, as on a light box);
- zoom: crop 1/factor of the image around a centre and upscale the crop back to the image's size, keeping
  the crop's place in the original pixel grid so that points and lengths stay in original pixels;
- the two-click length measurement (a small state machine) and the length in mm or px;
- the other visits of the same knee (subject and side), for current-vs-prior.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd
from PIL import Image

from oaviz.services.reconstructions import window_level

# (window, level) in display units: images are in [0, 1] after the cohort's percentile normalisation.
# Bone is the bright end of a radiograph, soft tissue the dark end; "full" stretches each image's own
# min..max and so has no fixed pair.
PRESETS: dict[str, tuple[float, float] | None] = {
    "default": (1.0, 0.5),
    "bone": (0.5, 0.7),
    "soft": (0.5, 0.3),     # soft tissue
    "full": None,
}
DEFAULT_PRESET = "default"
ZOOMS = (1.0, 1.5, 2.0, 3.0, 4.0)


@dataclass(frozen=True)
class ViewSettings:
    """How every panel of one viewer is shown: the same window, inversion and zoom for all."""

    preset: str = DEFAULT_PRESET     # a key of PRESETS, or "custom" (window/level as given)
    window: float = 1.0
    level: float = 0.5
    invert: bool = False
    zoom: float = 1.0
    centre: tuple[float, float] = (0.5, 0.5)   # zoom centre (x, y) as fractions of width and height


def window_for(settings: ViewSettings, image: np.ndarray) -> tuple[float, float]:
    """(window, level) to apply to ``image``: the preset's pair, the image's own range for "full"."""
    if settings.preset in PRESETS and PRESETS[settings.preset] is None:
        a = np.asarray(image, np.float32)
        lo, hi = float(np.nanmin(a)), float(np.nanmax(a))
        return max(hi - lo, 1e-6), (hi + lo) / 2.0
    if settings.preset in PRESETS:
        return PRESETS[settings.preset]
    return float(settings.window), float(settings.level)


def display(image: np.ndarray, settings: ViewSettings) -> np.ndarray:
    """Float image [H, W] in [0, 1] → what the viewer shows, float [H, W] in [0, 1] (before zoom)."""
    w, lv = window_for(settings, image)
    out = window_level(image, w, lv)
    return 1.0 - out if settings.invert else out


def zoom_box(shape: tuple[int, int], factor: float,
             centre: tuple[float, float] = (0.5, 0.5)) -> tuple[int, int, int, int]:
    """(x0, y0, w, h) of the 1/factor crop of an image of ``shape`` (H, W) around ``centre`` (fractions of
    width, height), moved inside the image; the whole image for factor <= 1."""
    h, w = int(shape[0]), int(shape[1])
    if factor <= 1:
        return 0, 0, w, h
    ch, cw = max(2, int(round(h / factor))), max(2, int(round(w / factor)))
    y0 = int(np.clip(centre[1] * h - ch / 2, 0, h - ch))
    x0 = int(np.clip(centre[0] * w - cw / 2, 0, w - cw))
    return x0, y0, cw, ch


@dataclass(frozen=True)
class ZoomView:
    """A zoomed view: ``image`` [H', W'(, C)] shows the original pixels ``box`` = (x0, y0, w, h)."""

    image: np.ndarray
    box: tuple[int, int, int, int]

    @property
    def scale(self) -> float:
        """Shown pixels per original pixel (the upscale factor)."""
        return self.image.shape[1] / self.box[2]


def zoom_view(image: np.ndarray, factor: float, centre: tuple[float, float] = (0.5, 0.5)) -> ZoomView:
    """Crop 1/``factor`` of ``image`` ([H, W] float or [H, W, 3] uint8) around ``centre`` and upscale it
    (bicubic for grey, bilinear for colour) back to H×W; factor 1 returns the image as it is."""
    a = np.asarray(image)
    h, w = a.shape[:2]
    x0, y0, cw, ch = zoom_box((h, w), factor, centre)
    crop = a[y0:y0 + ch, x0:x0 + cw]
    if (cw, ch) == (w, h):
        return ZoomView(crop, (x0, y0, cw, ch))
    if crop.ndim == 2:
        up = Image.fromarray(crop.astype(np.float32), mode="F").resize((w, h), Image.Resampling.BICUBIC)
        out = np.clip(np.asarray(up, np.float32), 0.0, 1.0) if a.dtype.kind == "f" else np.asarray(up)
    else:
        out = np.asarray(Image.fromarray(crop.astype(np.uint8)).resize((w, h), Image.Resampling.BILINEAR))
    return ZoomView(out, (x0, y0, cw, ch))


# ----------------------------------------------------------------- the two-click length
Point = tuple[float, float]


@dataclass(frozen=True)
class Measurement:
    """Two-click state: ``pending`` is the first point of a length being drawn, ``segment`` the last length."""

    pending: Point | None = None
    segment: tuple[Point, Point] | None = None


def measure_click(state: Measurement, point: Point | None) -> Measurement:
    """The state after a click at ``point`` (None: a click that selected nothing, which changes nothing).

    First click: starts a new length (the previous one is cleared). Second click: closes it."""
    if point is None:
        return state
    p = (float(point[0]), float(point[1]))
    if state.pending is None:
        return Measurement(pending=p, segment=None)
    return Measurement(pending=None, segment=(state.pending, p))


@dataclass(frozen=True)
class Length:
    """A measured length: ``px`` in original image pixels, ``mm`` when the pixel spacing is known."""

    px: float
    mm: float | None
    pixel_mm: float | None

    @property
    def text(self) -> str:
        if self.mm is None:
            return f"{self.px:.1f} px (pixel spacing unknown, so no mm)"
        return f"{self.mm:.1f} mm ({self.px:.1f} px at {self.pixel_mm:.3g} mm/px)"


def segment_length(p: Point, q: Point, pixel_mm: float | None) -> Length:
    """Euclidean length between two points given in original pixels; mm = px × ``pixel_mm`` when known."""
    px = math.hypot(float(q[0]) - float(p[0]), float(q[1]) - float(p[1]))
    ok = pixel_mm is not None and np.isfinite(pixel_mm) and pixel_mm > 0
    return Length(px, px * float(pixel_mm) if ok else None, float(pixel_mm) if ok else None)


def clicked_point(points: list[dict]) -> Point | None:
    """The (x, y) of a single clicked point of a plotly selection; None for none or a multi-point selection."""
    if len(points) != 1 or "x" not in points[0] or "y" not in points[0]:
        return None
    return float(points[0]["x"]), float(points[0]["y"])


# ----------------------------------------------------------------- current vs prior
def knee_visits(meta: pd.DataFrame, row: int) -> pd.DataFrame:
    """Every visit of ``row``'s knee (same subject and side), by month: columns row, image_id, visit_month, kl.

    ``row`` is a position in ``meta``; a cohort without visit months gives just that row."""
    cols = [c for c in ("subject_id", "side", "visit_month") if c in meta]
    m = meta.reset_index(drop=True)
    if len(cols) < 3:
        same = pd.Series(np.arange(len(m)) == row)
    else:
        side = m["side"].fillna("").astype(str)
        same = (m["subject_id"] == m["subject_id"].iloc[row]) & (side == side.iloc[row])
    out = pd.DataFrame({"row": np.flatnonzero(same.to_numpy(dtype=bool))})
    out["image_id"] = m["image_id"].to_numpy()[out["row"]]
    out["visit_month"] = (m["visit_month"].to_numpy(dtype=float, na_value=np.nan)[out["row"]]
                          if "visit_month" in m else np.nan)
    out["kl"] = m["kl"].to_numpy(dtype=float, na_value=np.nan)[out["row"]] if "kl" in m else np.nan
    return out.sort_values(["visit_month", "row"], kind="stable").reset_index(drop=True)


def prior_visit(meta: pd.DataFrame, row: int) -> int | None:
    """The row of the latest earlier visit of the same knee, or None (a baseline, or no visits known)."""
    v = knee_visits(meta, row)
    month = v.loc[v["row"] == row, "visit_month"].iloc[0]
    earlier = v[v["visit_month"] < month]
    return int(earlier["row"].iloc[-1]) if len(earlier) else None
