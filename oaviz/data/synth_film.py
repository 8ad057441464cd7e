"""The "film" style of the synthetic knee: calibrated against real knee AP radiographs.

Same subjects, severities, grades, progression and landmark contract as the
schematic style (``synth_knee``): the anatomy is derived from the schematic
draws (so both styles share every random draw of the cohort), then reshaped to
the public KL dataset's look: a 90 mm crop centred on the joint and sized to
the knee (as the dataset's crops are: joint row and bone width spread little),
wide flat condyles under a broad, shallow, bone-poor (not empty) intercondylar
arch, low tibial spines on a broad eminence, a thick subchondral plate, a faint
patella, oriented trabeculae, and a film processing chain with per-film blur,
unsharp masking, detector noise and windowing. Joint-space widths follow the
real by-grade medial/lateral widths; osteophytes are shallow lips on both margins.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from oaviz.data import synth_math as sm
from oaviz.data import synth_knee as K
from oaviz.data.synth_render import col, gaussian_blur

FOV_MM = 90.0
CENTRE_DY = 8.4         # mm the frame's centre sits above the joint line (real crops: joint at ~58 % of H)
# The public crops are centred on the knee and sized to it: position and magnification spread
# less than the schematic's acquisitions (real joint row sd ~7 px, bone width sd ~2.3 %).
SHIFT_SD = 0.4          # shift spread as a share of the schematic's
MAG_SHARE = 0.5         # magnification spread as a share of the schematic's
LANDMARK_NAMES = K.LANDMARK_NAMES
SHAPE = K.KneeShape(fem_flare=(22.0, 55.0), tib_flare=(2.0, 26.0), condyle_blend=9.0, notch_depth=0.5,
                    notch_dy=9.0, shaft_mm=25.0, mu_cortex=0.075, mu_trab=0.030, patella=0.3, tibia=1.15,
                    radius_max=(24.0, 24.0), soft=9.0, soft_taper=0.04, fib_out=2.0,
                    cup=(0.004, -0.008), droop=0.03, droop_from=0.45,
                    spine_w=2.0, eminence=0.9, ost_round=2.4, ost_blend=3.0, ost_depth=5.0,
                    subchondral_mm=2.5)
# (tib_flare: the proximal tibia stays nearly metaphysis-wide through the crop; with the fibular head beside
# it the bone spans 196 px at 15-34 mm below the joint, real crops 197 px, the schematic's taper 177 px;
# soft/soft_taper: mid-grey soft tissue, about as thick at the thigh as at the calf.)
# Medial/lateral JSW as fractions of the healthy width at s = 0..4 (real knees: the medial
# width holds to KL 2 and falls at KL 3; the lateral compartment narrows late).
_JSW_MED = [1.0, 0.99, 0.90, 0.38, 0.32]
_JSW_LAT = [1.0, 1.0, 0.99, 0.96, 0.90]
_OST_MM = [0.0, 0.0, 1.0, 2.2, 3.2, 4.5]
_OST_LATERAL = 0.8                  # lateral osteophytes relative to medial ones
_SPINE_PEAK = [1.0, 1.05, 1.15]    # tibial spine height at s = 0, 2, 4 (relative)
_SCLEROSIS = 0.6                    # subchondral sclerosis relative to the schematic's
_STRUT_STRETCH, _STRUT_WIDTH, _STRUT_AMP, _MOTTLE_AMP = 4.0, 0.25, 0.22, 0.08   # texture bank
# Display window: quantiles of a film and their displayed offsets from its median, calibrated to the
# typical film of the public KL set (its 1st..99th percentiles sit about this far from its median).
_WINDOW_Q = (0.01, 0.05, 0.25, 0.5, 0.75, 0.95, 0.99)
_WINDOW_FAR_MM = 18.0   # the window is set on pixels this far above/below the joint line
_WINDOW_OFF = (-0.48, -0.35, -0.125, 0.0, 0.115, 0.26, 0.325)
# Scales from the schematic anatomy to the film one (same draws, other proportions).
_SCALE = {"Wc": 1.05, "Wt": 1.07, "rxm": 1.15, "rxl": 1.15, "rym": 1.85, "ryl": 1.85, "fs": 2.7, "ts": 1.95,
          "fib_rx": 1.3, "fib_dy": 1.25, "notch_w": 2.1, "notch_h": 1.0, "spine_h": 0.7, "spine_dx": 0.95,
          "jsw0_m": 0.57, "jsw0_l": 0.76, "pat_rx": 1.1, "pat_ry": 1.05}


def sample_anatomy(rng: np.random.Generator, n: int) -> dict[str, np.ndarray]:
    """Per-subject anatomy: the schematic draws (same rng use), in film proportions."""
    A = K.sample_anatomy(rng, n)
    A = {k: v * _SCALE[k] if k in _SCALE else v for k, v in A.items()}
    # The public crops are sized to the knee: its width in the frame varies less than knees do.
    for k in ("Wc", "Wt", "rxm", "rxl", "fs", "ts", "fib_rx"):
        A[k] = A[k] * sm.np_pow(A["a"], -0.9)
    A["soft"] = 60.0 + 0.4 * (A["soft"] - 64.0)   # the crop holds little soft tissue: less habitus spread
    return A


def progression_cues(anat: dict[str, np.ndarray]) -> np.ndarray:
    """The schematic's cue logit (``synth_knee.progression_cues``) on the film's healthy-JSW scale."""
    return K.progression_cues(anat, jsw_scale=_SCALE["jsw0_m"])


def pathology(s: np.ndarray, anat: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """The schematic's pathology at the real films' strength: osteophytes on both margins (lateral
    ones nearly as large as medial ones: on the KL films both margins brighten with OA), spines that
    sharpen only a little, mild sclerosis, and cysts only at the top grade (rare at this pixel scale)."""
    P = K.pathology(s, anat, jsw_med=_JSW_MED, jsw_lat=_JSW_LAT, ost_mm=_OST_MM)
    s = np.clip(s, 0.0, 4.0)
    P["ost_l"] = _OST_LATERAL * P["ost_m"]
    P["spine_peak"] = np.interp(s, [0, 2.0, 4.0], _SPINE_PEAK)
    P["scl"] = _SCLEROSIS * P["scl"]
    P["n_cyst"] = np.floor(np.clip((s - 3.6) * 3.0, 0, 2)).astype(int)
    return P


def fields(x: torch.Tensor, y: torch.Tensor, A: dict, P: dict, tex: torch.Tensor):
    return K.fields(x, y, A, P, tex, SHAPE)


def landmarks(A: dict, P: dict) -> np.ndarray:
    return K.landmarks(A, P, SHAPE)


def _noise_field(spec: np.ndarray, fx: np.ndarray, fy: np.ndarray, beta: float, stretch: float,
                 lo: float, hi: float, angle: float = 0.0) -> np.ndarray:
    """Power-law noise [n,S,S] (unit std) in the band lo..hi cycles/mm, ``stretch``× longer along
    the direction ``angle`` radians from the vertical."""
    from scipy import fft

    c, s = np.cos(angle), np.sin(angle)
    r = np.sqrt((c * fx - s * fy) ** 2 + ((s * fx + c * fy) * stretch) ** 2)
    g = np.where((r > lo) & (r < hi), sm.np_pow(np.maximum(r, lo), -beta / 2), 0.0).astype(np.float32)
    out = fft.irfft2(spec * g, s=(spec.shape[1], spec.shape[1]), workers=1)
    return out / (out.std(axis=(1, 2), keepdims=True) + 1e-6)


def texture_bank(rng: np.random.Generator, n: int, size: int = 384, mm_per_px: float = 1 / 3) -> torch.Tensor:
    """Trabecular texture fields [n, 1, size, size] around 1.0 (128 mm across).

    Trabeculae are thin bright struts: the zero-crossings of vertically elongated
    band-limited noise (a ridge network running along the load axis), on a
    coarse mottle of marrow density.
    """
    from scipy import fft

    spec = fft.rfft2(rng.standard_normal((n, size, size)).astype(np.float32), workers=1)
    fy = np.fft.fftfreq(size, d=mm_per_px)[:, None]
    fx = np.fft.rfftfreq(size, d=mm_per_px)[None, :]
    # Struts along the load axis, and a weaker family crossing them obliquely (the stress-line lattice).
    struts = sm.np_exp(-(_noise_field(spec, fx, fy, 2.0, _STRUT_STRETCH, 0.2, 0.8) / _STRUT_WIDTH) ** 2)
    struts = struts + 0.6 * sm.np_exp(-(_noise_field(spec[:, ::-1], fx, fy, 2.0, _STRUT_STRETCH / 2, 0.2, 0.8,
                                                  0.6) / _STRUT_WIDTH) ** 2)
    mottle = sm.np_tanh(_noise_field(spec[::-1], fx, fy, 2.0, 1.5, 0.03, 0.4))
    tex = 1.0 + _STRUT_AMP * (struts - struts.mean()) + _MOTTLE_AMP * mottle
    return torch.from_numpy(tex.astype(np.float32)[:, None])


def sample_film(rng: np.random.Generator, n: int) -> dict[str, np.ndarray]:
    """Per-film processing [n] each, from the style's own stream (the cohort's draws stay the schematic's)."""
    return {
        "f_blur": rng.uniform(0.35, 0.95, n),
        "f_usm": rng.uniform(0.3, 0.9, n),           # unsharp-mask gain of the film's processing
        "f_usm_sigma": rng.uniform(4.0, 10.0, n),     # px at 224
        "f_noise": rng.uniform(0.002, 0.01, n),
        "f_level": rng.normal(0.60, 0.065, n).clip(0.4, 0.8),   # displayed median (the film's window)
        "f_width": rng.lognormal(0.0, 0.15, n),                 # ... and its contrast around it
        "f_sat": rng.uniform(0.1, 0.5, n),           # film saturation: how much the bone is compressed
        "f_dy": rng.normal(0.0, 1.5, n),             # crop centring (mm): added to the acquisition's
        "f_flat": rng.uniform(0.3, 0.9, n),          # large-scale flattening (dynamic range compression)
        "f_tilt": rng.normal(0.0, 0.08, n),          # exposure falling off across the film (x)
    }


def _window(v: torch.Tensor, level: np.ndarray, width: np.ndarray, far: torch.Tensor) -> torch.Tensor:
    """Display window [B,H,W] -> [0, 1]: each film's quantiles _WINDOW_Q mapped piecewise-linearly
    to its displayed values (median ``level``, spread about it scaled by ``width``).

    far [B,H,W] bool: the pixels the quantiles are taken over — away from the joint, so that
    osteophytes and sclerosis brighten the film as on a real one instead of shifting its window."""
    b = len(v)
    keep = far[:, ::3, ::3].flatten(1)                              # every 9th pixel is plenty
    q = torch.where(keep, v[:, ::3, ::3].flatten(1), torch.inf).sort(dim=1).values
    last = (keep.sum(1, keepdim=True) - 1).clamp(min=0)
    idx = (last * torch.tensor(_WINDOW_Q)[None]).round().long()   # [B, K] ranks among the kept pixels
    src = q.gather(1, idx)                                        # [B, K]
    dst = level[:, None] + width[:, None] * np.asarray(_WINDOW_OFF)[None]
    dst = torch.as_tensor(dst, dtype=torch.float32).clamp(0.0, 1.0)
    out = dst[:, :1].reshape(b, 1, 1).expand_as(v).clone()
    for i in range(len(_WINDOW_Q) - 1):
        lo, hi = src[:, i].reshape(b, 1, 1), src[:, i + 1].reshape(b, 1, 1)
        t = ((v - lo) / (hi - lo).clamp_min(1e-6)).clamp(0, 1)
        out = out + t * (dst[:, i + 1] - dst[:, i]).reshape(b, 1, 1)
    below = (v - src[:, :1].reshape(b, 1, 1)).clamp(max=0.0)
    above = (v - src[:, -1:].reshape(b, 1, 1)).clamp(min=0.0)
    out = out + 0.5 * (below + above)                         # the tails keep a little slope
    # The film's shoulder: highlights roll off below white (real films of the set never saturate).
    knee = 0.88
    return torch.where(out > knee, knee + (1 - knee) * sm.tanh((out - knee) / (1 - knee)), out)


def _lowpass(v: torch.Tensor, pool: int, sigma: float = 2.5) -> torch.Tensor:
    """Large-scale brightness [B,H,W] (σ ≈ pool·sigma px): pooled, blurred and brought back up."""
    small = F.avg_pool2d(v[:, None], pool, ceil_mode=True)[:, 0]
    small = gaussian_blur(small, np.full(len(v), sigma), radius=int(3 * sigma))
    return F.interpolate(small[:, None], size=v.shape[-2:], mode="bilinear", align_corners=False)[:, 0]


def develop(att: torch.Tensor, y_mm: torch.Tensor, acq: dict, noise_rng: np.random.Generator) -> torch.Tensor:
    """Attenuation [B,H,W] -> displayed film [B,H,W] in [0, 1] (bone bright)."""
    size = att.shape[-1]
    s = size / 224.0
    across = (torch.arange(size, dtype=torch.float32) / (size - 1) - 0.5).reshape(1, 1, -1)
    att = att * (1 + col(acq["heel"]) * y_mm / 60.0 + col(acq["f_tilt"]) * across)
    v = 1 - sm.exp(-col(acq["f_sat"] * acq["exposure"]) * att)   # mild saturation: bone texture stays
    v = gaussian_blur(v, acq["f_blur"] * s)
    # Unsharp masking (as film digitisers and PACS apply): crisp cortices, flattened background.
    base = gaussian_blur(v, acq["f_usm_sigma"] * s, radius=max(4, int(round(24 * s))))
    v = v + col(acq["f_usm"]) * (v - base)
    v = v - col(acq["f_flat"]) * _lowpass(v, max(2, int(round(8 * s))))
    # Detector noise, relative to the film's range (grows with signal).
    g = torch.from_numpy(noise_rng.standard_normal(v.shape).astype(np.float32))
    span = v.amax((1, 2), keepdim=True) - v.amin((1, 2), keepdim=True)
    v = v + g * col(acq["f_noise"]) * (0.5 + sm.sqrt(v.clamp(0, 1))) * span
    return _window(v, acq["f_level"], acq["f_width"], y_mm.abs() > _WINDOW_FAR_MM)
