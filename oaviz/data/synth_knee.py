"""Synthetic knee AP anatomy and OA pathology.

Canonical frame: a right knee seen AP, lateral (fibula) side at image left
(x < 0), medial at image right (x > 0), y downwards, origin at the joint line,
millimetres. Left knees are rendered in this frame and mirrored afterwards.

Pathology follows the Kellgren–Lawrence vocabulary, driven by a continuous
severity s in [0, 4]: joint-space narrowing (medial more than lateral),
marginal osteophytes, subchondral sclerosis, cysts and varus deformity at the
top grades. Sizes follow published radiographic norms (medial JSW ~5 mm in
healthy knees falling to ~1 mm at KL 4; femoral condylar width ~80 mm).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from oaviz.data import synth_math as sm
from oaviz.data.synth_render import (
    col, sd_ellipse, sd_rot_ellipse, shell_projection, smax, smin, smoothstep,
)

FOV_MM = 100.0
LANDMARK_NAMES = (
    "lat_femoral_condyle_margin", "med_femoral_condyle_margin",
    "lat_condyle_lowest", "med_condyle_lowest", "intercondylar_notch_apex",
    "lat_plateau_margin", "lat_plateau_mid", "lat_plateau_inner", "lat_tibial_spine",
    "med_tibial_spine", "med_plateau_inner", "med_plateau_mid", "med_plateau_margin",
    "fibular_head_apex", "lat_tibial_shaft", "med_tibial_shaft",
)



@dataclass(frozen=True)
class KneeShape:
    """The constants of the knee's outline and density that a rendering style may change (mm)."""
    fem_flare: tuple[float, float] = (14.0, 24.0)   # metaphyseal flare: start above the joint, length
    tib_flare: tuple[float, float] = (5.0, 21.0)
    condyle_blend: float = 4.0                      # smooth-union radius of shaft and condyles
    notch_depth: float | None = None                # None: cut the notch; else attenuation removed in it
    shaft_mm: float = 40.0                          # where the tibial shaft landmarks sit below the joint
    notch_dy: float = 0.0                           # notch centre below its schematic place (mm)
    mu_cortex: float = 0.095
    mu_trab: float = 0.022
    patella: float = 0.45
    radius_max: tuple[float, float] = (28.0, 27.0)  # femoral, tibial half-depth along the beam
    tibia: float = 1.0                              # tibial density relative to the femur's
    soft: float = 1.0                               # soft-tissue attenuation (thick legs, little bone contrast)
    cup: tuple[float, float] = (0.012, 0.006)       # medial, lateral plateau cupping (1/mm)
    droop: float = 0.0                              # plateau rim falling away beyond ``droop_from`` (1/mm)
    droop_from: float = 0.55                        # ... as a fraction of the condyle's half-width
    spine_w: float = 1.0                            # tibial spine width multiplier
    eminence: float = 0.0                           # broad intercondylar eminence under the spines (x spine_h)
    ost_round: float = 1.0                          # osteophyte thickness multiplier (>1: blunt lips, not spikes)
    ost_blend: float = 1.2                          # smooth-union radius of osteophyte and bone (mm)
    subchondral_mm: float = 0.9                     # depth of the dense subchondral plate under each joint surface
    fib_out: float = 0.0                            # fibula moved laterally (mm): out with a wider tibial metaphysis
    soft_taper: float = 0.10                        # soft tissue thicker towards the thigh (share at y = -inf)
    ost_depth: float | None = None                  # None: osteophytes as deep as the bone; else their own
                                                    # half-depth along the beam (mm): marginal lips, not plates


SCHEMATIC = KneeShape()

# Severity -> pathology curves (piecewise linear over s = 0..4).
_S = [0.0, 1.0, 2.0, 3.0, 4.0]
_JSW_MED = [1.0, 0.93, 0.78, 0.50, 0.14]   # fraction of the subject's healthy medial JSW
_JSW_LAT = [1.0, 0.985, 0.95, 0.88, 0.74]
_OST_S = [0.0, 0.55, 1.0, 2.0, 3.0, 4.0]
_OST_MM = [0.0, 0.0, 1.0, 2.5, 3.9, 5.6]   # marginal osteophyte length (mm)


def sample_anatomy(rng: np.random.Generator, n: int) -> dict[str, np.ndarray]:
    """Per-subject anatomy, fixed across that subject's visits."""
    a = rng.normal(1.0, 0.065, n).clip(0.82, 1.2)
    jit = lambda sd: rng.normal(1.0, sd, n)  # noqa: E731
    return {
        "a": a,
        "fs": 13.0 * a * jit(0.07),          # femoral shaft half-width
        "Wc": 40.0 * a * jit(0.03),          # half the condylar width
        "rxm": 19.5 * a * jit(0.06), "rym": 12.0 * a * jit(0.07),
        "rxl": 18.5 * a * jit(0.06), "ryl": 11.0 * a * jit(0.07),
        "notch_w": 6.0 * a * jit(0.1), "notch_h": 8.5 * a * jit(0.1),
        "Wt": 39.5 * a * jit(0.03), "ts": 16.0 * a * jit(0.07),
        "spine_h": 4.5 * a * jit(0.15), "spine_dx": 5.5 * a * jit(0.1),
        "fib_rx": 6.5 * a * jit(0.1), "fib_ry": 8.0 * a * jit(0.1), "fib_dy": 21.0 * a * jit(0.1),
        "pat_rx": 21.0 * a * jit(0.07), "pat_ry": 23.0 * a * jit(0.07),
        "pat_dx": rng.normal(2.0, 2.0, n), "pat_dy": -30.0 * a * jit(0.06),
        "soft": rng.normal(64.0, 7.0, n).clip(48, 85),   # soft-tissue half-width (habitus)
        "fat": rng.uniform(4.0, 14.0, n),                 # subcutaneous fat thickness
        "density": rng.normal(1.0, 0.08, n).clip(0.75, 1.25),
        "jsw0_m": rng.normal(5.2, 0.55, n).clip(3.8, 6.8) * a,
        "jsw0_l": rng.normal(6.4, 0.6, n).clip(4.8, 8.2) * a,
        "ost_f": rng.lognormal(0.0, 0.25, n),
        "varus0": rng.normal(0.0, 1.2, n),                # degrees, constitutional alignment
        "cyst_u": rng.uniform(0, 1, (n, 4)),              # where cysts appear if they do
    }


# Progression cues a baseline radiograph shows (visible-risk cohorts, ``synth_progression``): log odds ratio
# of being a progressor per SD of constitutional varus alignment (the tibia's tilt: varus knees progress
# medially several times as often, Sharma et al. 2001) and per SD of a narrow healthy medial joint space
# for the knee's size. Both are rendered at every grade, so an image can read them.
CUE_LOG_OR = {"varus": 0.8, "narrow_jsw": 0.5}
_VARUS0_SD, _JSW0_M = 1.2, (5.2, 0.55)     # sample_anatomy's draws (degrees; mm at a = 1)


def progression_cues(anat: dict[str, np.ndarray], jsw_scale: float = 1.0) -> np.ndarray:
    """Cue logit [n] of subjects with anatomy ``anat`` (jsw_scale: a style's scale of the healthy JSW)."""
    z_varus = anat["varus0"] / _VARUS0_SD
    z_narrow = -(anat["jsw0_m"] / (anat["a"] * _JSW0_M[0] * jsw_scale) - 1.0) * _JSW0_M[0] / _JSW0_M[1]
    return CUE_LOG_OR["varus"] * z_varus + CUE_LOG_OR["narrow_jsw"] * z_narrow


def pathology(s: np.ndarray, anat: dict[str, np.ndarray], jsw_med=_JSW_MED, jsw_lat=_JSW_LAT,
              ost_mm=_OST_MM) -> dict[str, np.ndarray]:
    """Per-image pathology from severity s (shape [B]) and the subject's anatomy.

    jsw_med, jsw_lat: fraction of the healthy JSW at s = 0..4; ost_mm: osteophyte length at _OST_S."""
    s = np.clip(s, 0.0, 4.0)
    ost = np.interp(s, _OST_S, ost_mm) * anat["ost_f"]
    return {
        "jsw_m": anat["jsw0_m"] * np.interp(s, _S, jsw_med),
        "jsw_l": anat["jsw0_l"] * np.interp(s, _S, jsw_lat),
        "ost_m": ost, "ost_l": 0.55 * ost,
        "scl": np.interp(s, [0, 1.6, 2.5, 3.3, 4.0], [0, 0, 0.22, 0.55, 0.85]),
        "n_cyst": np.floor(np.clip((s - 3.0) * 3.0, 0, 4)).astype(int),
        "varus": anat["varus0"] + np.interp(s, [0, 2.5, 4.0], [0, 0, 4.0]),
        "flat": np.interp(s, [0, 3.0, 4.0], [0, 0, 0.22]),          # medial condyle flattening
        "spine_peak": np.interp(s, [0, 1.0, 2.5, 4.0], [1.0, 1.1, 1.3, 1.45]),
    }


def _compartment_top(x, jsw, cx, rx, cup: float, k: KneeShape):
    """Plateau height (mm, y down) of one compartment at x (numpy or torch, broadcast): cupped under
    its condyle and, where the style asks for it, falling away toward the rim."""
    d = x - cx
    top = jsw / 2 + cup * d ** 2
    if k.droop:
        beyond = abs(d) - k.droop_from * rx
        top = top + k.droop * ((beyond + abs(beyond)) / 2) ** 2
    return top


def _eminence(x, sdx, k: KneeShape):
    """The broad base of the intercondylar eminence (fraction of the spine height) at x."""
    return k.eminence * (2.718281828 ** (-(x / (1.9 * sdx)) ** 2))


def _plateau_top(x, P, A, k: KneeShape = None):
    """Tibial plateau surface y(x) [B,H,W]: each compartment cupped under its condyle."""
    k = k or SCHEMATIC
    cxm = col(A["Wc"] - 0.95 * A["rxm"])
    cxl = -col(A["Wc"] - 0.95 * A["rxl"])
    med = _compartment_top(x, col(P["jsw_m"]), cxm, col(A["rxm"]), k.cup[0], k)
    lat = _compartment_top(x, col(P["jsw_l"]), cxl, col(A["rxl"]), k.cup[1], k) - 0.4
    w = smoothstep(-4.0, 4.0, x)
    top = w * med + (1 - w) * lat
    # Tibial spines rise into the intercondylar notch.
    sh = col(A["spine_h"] * P["spine_peak"])
    sdx = col(A["spine_dx"])
    spines = sh * (sm.exp(-((x - sdx) / (2.3 * k.spine_w)) ** 2)
                   + 0.85 * sm.exp(-((x + sdx) / (2.5 * k.spine_w)) ** 2))
    if k.eminence:
        spines = spines + sh * _eminence(x, sdx, k)
    return top - spines


def fields(x: torch.Tensor, y: torch.Tensor, A: dict, P: dict, tex: torch.Tensor,
           k: KneeShape = SCHEMATIC):
    """Attenuation (soft-tissue-equivalent units) and joint-space mask [B,H,W].

    x, y: canonical coordinates (mm) of every pixel; k: the style's outline and density constants.
    """
    # Varus deformity: tibia (and fibula) rotate about the medial compartment.
    ang = torch.as_tensor(np.deg2rad(P["varus"]), dtype=torch.float32).reshape(-1, 1, 1)
    pivot = col(A["Wc"] * 0.5)
    xt = pivot + torch.cos(ang) * (x - pivot) + torch.sin(ang) * y
    yt = -torch.sin(ang) * (x - pivot) + torch.cos(ang) * y

    # ---------------- femur: flared shaft + two condyles - notch
    Wc, fs = col(A["Wc"]), col(A["fs"])
    rxm, rxl = col(A["rxm"]), col(A["rxl"])
    rym = col(A["rym"] * (1 - P["flat"]))
    ryl = col(A["ryl"])
    cxm, cxl = Wc - 0.95 * rxm, -(Wc - 0.95 * rxl)
    cym = -col(P["jsw_m"]) / 2 - rym
    cyl = -col(P["jsw_l"]) / 2 - ryl - 0.4
    # Concave metaphyseal flare: near-vertical epicondyles, narrowing to the shaft.
    hw = fs + (Wc - 1.0 - fs) / (1 + (((-y - k.fem_flare[0]).clamp(min=0.0)) / k.fem_flare[1]) ** 2)
    slope = (Wc - fs) / 60.0
    sd_shaft = torch.maximum((x.abs() - hw) / sm.sqrt(1 + slope**2 * 0.5), y - (cym + cyl) / 2)
    sd_fem = smin(sd_shaft, sd_ellipse(x, y, cxm, cym, rxm, rym), k.condyle_blend)
    sd_fem = smin(sd_fem, sd_ellipse(x, y, cxl, cyl, rxl, ryl), k.condyle_blend)
    notch = sd_ellipse(x, y, 0.0, cym + rym * 0.15 + k.notch_dy, col(A["notch_w"]), col(A["notch_h"]))
    if k.notch_depth is None:
        sd_fem = smax(sd_fem, -notch, 2.0)
    sd_fem0 = sd_fem
    # Marginal osteophytes: beaks at the outer-lower corners of the condyles.
    om, ol = col(P["ost_m"]) + 1e-3, col(P["ost_l"]) + 1e-3
    sd_fem = smin(sd_fem, sd_rot_ellipse(x, y, cxm + rxm * 0.93, cym + rym * 0.42,
                                         om, om * (0.42 * k.ost_round), torch.full_like(om, 0.75)), k.ost_blend)
    sd_fem = smin(sd_fem, sd_rot_ellipse(x, y, cxl - rxl * 0.93, cyl + ryl * 0.42,
                                         ol, ol * (0.42 * k.ost_round), torch.full_like(ol, -0.75)), k.ost_blend)

    # ---------------- tibia: plateau + tapering metaphysis (in the rotated frame)
    Wt, ts = col(A["Wt"]), col(A["ts"])
    top = _plateau_top(xt, P, A, k)
    # Trumpet-shaped metaphysis: the plateau overhangs, the sides are concave.
    hwt = ts + (Wt - ts) / (1 + (((yt - k.tib_flare[0]).clamp(min=0.0)) / k.tib_flare[1]) ** 2)
    sd_tib = smax(xt.abs() - hwt, top - yt, 2.5)
    ym_edge = _compartment_top(Wt, col(P["jsw_m"]), cxm, rxm, k.cup[0], k)  # medial plateau height at its margin
    # (the schematic puts the lateral beak at the medial rim's height; a drooping rim needs its own)
    sd_tib0 = sd_tib
    yl_edge = ym_edge if not k.droop else _compartment_top(-Wt, col(P["jsw_l"]), cxl, rxl, k.cup[1], k) - 0.4
    sd_tib = smin(sd_tib, sd_rot_ellipse(xt, yt, Wt + om * 0.35, ym_edge + 0.8, om, om * (0.4 * k.ost_round),
                                         torch.full_like(om, -0.55)), k.ost_blend)
    sd_tib = smin(sd_tib, sd_rot_ellipse(xt, yt, -Wt - ol * 0.35, yl_edge + 0.4, ol, ol * (0.4 * k.ost_round),
                                         torch.full_like(ol, 0.55)), k.ost_blend)

    # ---------------- fibula: head + shaft, lateral and partly behind the tibia
    fx = -Wt - k.fib_out + col(A["fib_rx"]) * 0.55
    fyc = col(A["fib_dy"])
    sd_fib = smin(sd_ellipse(xt, yt, fx, fyc, col(A["fib_rx"]), col(A["fib_ry"])),
                  torch.maximum((xt - (fx + 0.06 * (yt - fyc))).abs() - col(A["fib_rx"]) * 0.62,
                                fyc - yt), 3.0)

    # ---------------- patella, superimposed on the distal femur
    sd_pat = sd_ellipse(x, y, col(A["pat_dx"]), col(A["pat_dy"]), col(A["pat_rx"]), col(A["pat_ry"]))

    dens = col(A["density"])
    mu_c, mu_t = k.mu_cortex, k.mu_trab
    fem_R = torch.clamp(hw, max=k.radius_max[0])
    tib_R = torch.clamp(hwt, max=k.radius_max[1])
    if k.ost_depth is not None:  # where only an osteophyte is bone, the beam crosses a lip, not the condyle
        fem_R = k.ost_depth + (fem_R - k.ost_depth) * smoothstep(1.5, 0.0, sd_fem0)
        tib_R = k.ost_depth + (tib_R - k.ost_depth) * smoothstep(1.5, 0.0, sd_tib0)
    fem = shell_projection(sd_fem, fem_R, 1.3 + 2.9 * smoothstep(-30.0, -70.0, y), mu_c, mu_t, tex)
    if k.notch_depth is not None:  # seen AP the notch is bone-poor, not empty: the trochlea lies in front
        fem = fem * (1 - k.notch_depth * smoothstep(1.0, -2.5, notch))
    att = fem * dens
    att = att + shell_projection(sd_tib, tib_R, 1.2 + 2.6 * smoothstep(30.0, 70.0, yt), mu_c, mu_t, tex) * (dens * k.tibia)
    att = att + shell_projection(sd_fib, col(A["fib_rx"]) + 0 * x, 1.6 + 0 * x, mu_c, mu_t, tex) * dens
    att = att + k.patella * shell_projection(sd_pat, 10.0 + 0 * x, 1.0 + 0 * x, mu_c, mu_t, tex) * dens

    # ---------------- subchondral plates: thin dense lines seen tangentially at the joint
    depth_t0 = (yt - top).clamp(min=0.0)
    sub = k.subchondral_mm
    att = att + 0.16 * dens * (sd_tib < 0) * sm.exp(-depth_t0 / sub)
    att = att + 0.14 * dens * (sd_fem < 0) * (y > cym) * sm.exp(-(-sd_fem).clamp(min=0.0) / sub)
    # Physeal scars: faint dense lines where the growth plates closed.
    wave = 0.8 * torch.sin(x / 9.0 + col(A["a"]) * 7.0)
    att = att + 0.07 * dens * (sd_tib < 0) * sm.exp(-((yt - 21.0 * col(A["a"]) - wave) / 0.9) ** 2)
    att = att + 0.06 * dens * (sd_fem < 0) * sm.exp(-((y - cym + 22.0 * col(A["a"]) + wave) / 0.9) ** 2)
    # Epiphyses are denser toward their centre (more trabecular bone along the load axis).
    att = att + 0.10 * dens * (sd_fem < 0) * sm.exp(-((y - cym) / 18.0) ** 2) * sm.exp(-(x / 30.0) ** 2)

    # ---------------- subchondral sclerosis (medial > lateral) and cysts
    scl = col(P["scl"])
    inside_t = (sd_tib < 0).float()
    inside_f = (sd_fem < 0).float()
    med_w = 0.3 + 0.7 * smoothstep(-6.0, 8.0, x)
    depth_t = (yt - top).clamp(min=0.0)
    fem_bottom_m = cym + rym
    if P["scl"].max() > 0:  # most chunks of a cohort have no sclerosis: skip the work
        att = att + scl * 0.55 * med_w * inside_t * sm.exp(-depth_t / 4.0)
        att = att + scl * 0.45 * med_w * inside_f * sm.exp(-(fem_bottom_m - y).clamp(min=0.0) / 4.0) * (x > 0)
    cyst = torch.zeros_like(x)
    for j in range(4):
        if not (P["n_cyst"] > j).any():
            break
        on = col((P["n_cyst"] > j).astype(np.float32))
        cu = A["cyst_u"][:, j]
        ccx = col(A["Wc"] * (0.25 + 0.55 * cu))
        below = (j % 2 == 0)
        ccy = col(P["jsw_m"] / 2 + 4.0 + 3.0 * cu) if below else -col(P["jsw_m"] / 2 + 4.0 + 3.0 * cu)
        rad = col(1.3 + 1.4 * cu)
        cyst = cyst + on * sm.exp(-((x - ccx) ** 2 + (y - ccy) ** 2) / rad**2)
    att = att - 0.45 * cyst.clamp(max=1.0) * (inside_t + inside_f).clamp(max=1.0)

    # ---------------- soft tissue: muscle core + subcutaneous fat (elliptic cross-section)
    L = col(A["soft"]) * (1 + k.soft_taper * sm.tanh(-y / 45.0))
    Lm = (L - col(A["fat"])).clamp_min(10.0)
    fat_chord = sm.sqrt((L**2 - x**2).clamp(min=0.0))
    mus_chord = sm.sqrt((Lm**2 - x**2).clamp(min=0.0))
    att = att + 0.0095 * fat_chord + 0.0055 * mus_chord
    if k.soft != 1.0:
        att = att + (k.soft - 1.0) * (0.0095 * fat_chord + 0.0055 * mus_chord)

    # ---------------- joint-space mask: between condyle and plateau in each compartment
    fem_m = cym + rym * sm.sqrt((1 - ((x - cxm) / rxm) ** 2).clamp(min=0.0))
    fem_l = cyl + ryl * sm.sqrt((1 - ((x - cxl) / rxl) ** 2).clamp(min=0.0))
    in_m = ((x - cxm).abs() < rxm * 0.75) & (y > fem_m) & (yt < top)
    in_l = ((x - cxl).abs() < rxl * 0.75) & (y > fem_l) & (yt < top)
    mask = in_m | in_l
    return att, mask


def landmarks(A: dict, P: dict, k: KneeShape = SCHEMATIC) -> np.ndarray:
    """The 16 landmarks in canonical mm coordinates, [B, 16, 2] (before varus for femur)."""
    Wc, Wt = A["Wc"], A["Wt"]
    rxm, rxl, rym, ryl = A["rxm"], A["rxl"], A["rym"] * (1 - P["flat"]), A["ryl"]
    cxm, cxl = Wc - 0.95 * rxm, -(Wc - 0.95 * rxl)
    cym = -P["jsw_m"] / 2 - rym
    cyl = -P["jsw_l"] / 2 - ryl - 0.4
    def top(xv, side):  # plateau height without spines
        if side == "m":
            return _compartment_top(xv, P["jsw_m"], cxm, rxm, k.cup[0], k)
        return _compartment_top(xv, P["jsw_l"], cxl, rxl, k.cup[1], k) - 0.4
    fib_x = -Wt - k.fib_out + A["fib_rx"] * 0.55
    pts_f = [  # femoral points are not rotated by the varus deformity
        (cxl - rxl, cyl), (cxm + rxm, cym),
        (cxl, cyl + ryl), (cxm, cym + rym),
        (np.zeros_like(Wc), cym + rym * 0.15 + A["notch_h"]) if k.notch_dy == 0.0 else  # schematic: cut notch's foot
        (np.zeros_like(Wc), cym + rym * 0.15 + k.notch_dy - A["notch_h"]),              # the arch's apex
    ]
    sdx = A["spine_dx"]
    hw40 = A["ts"] + (Wt - A["ts"]) / (1 + ((k.shaft_mm - k.tib_flare[0]) / k.tib_flare[1]) ** 2)  # tibial edge
    pts_t = [
        (-Wt, top(-Wt, "l")), (cxl, top(cxl, "l")), (-sdx - 4.0, top(-sdx - 4.0, "l")),
        (-sdx, top(-sdx, "l") - (0.85 + _eminence(sdx, sdx, k)) * A["spine_h"] * P["spine_peak"]),
        (sdx, top(sdx, "m") - (1.0 + _eminence(sdx, sdx, k)) * A["spine_h"] * P["spine_peak"]),
        (sdx + 4.0, top(sdx + 4.0, "m")), (cxm, top(cxm, "m")), (Wt, top(Wt, "m")),
        (fib_x, A["fib_dy"] - A["fib_ry"]),
        (-hw40, np.full_like(Wc, k.shaft_mm)), (hw40, np.full_like(Wc, k.shaft_mm)),
    ]
    # Tibial points live in the varus-rotated frame: map them back to the image frame.
    ang = np.deg2rad(P["varus"])
    pivot = Wc * 0.5
    out = [np.stack([px, py], -1) for px, py in pts_f]
    for px, py in pts_t:
        dx = px - pivot
        xi = pivot + np.cos(ang) * dx - np.sin(ang) * py
        yi = np.sin(ang) * dx + np.cos(ang) * py
        out.append(np.stack([xi, yi], -1))
    return np.stack(out, axis=1).astype(np.float32)
