"""Synthetic hip AP anatomy and OA pathology.

Canonical frame: a right hip seen AP, femoral head centre at the origin,
lateral (greater trochanter) at image left (x < 0), pelvis medial (x > 0),
y downwards, millimetres. Same pathology vocabulary as the knee: superolateral
joint-space narrowing with migration of the head, osteophytes at the lateral
acetabular margin and the head–neck junction, sclerosis of the acetabular
roof, cysts, and flattening of the head at the top grades.
"""

from __future__ import annotations

import numpy as np
import torch

from oaviz.data import synth_math as sm
from oaviz.data.synth_render import col, sd_ellipse, sd_rot_ellipse, shell_projection, smax, smin

FOV_MM = 130.0
LANDMARK_NAMES = (
    "head_top", "head_lateral", "head_medial", "head_bottom", "head_centre",
    "acetabulum_lateral_edge", "acetabular_roof_top", "acetabulum_medial", "teardrop",
    "neck_superior", "neck_inferior", "greater_trochanter_tip", "lesser_trochanter",
    "shaft_lateral", "shaft_medial", "obturator_top",
)
_S = [0.0, 1.0, 2.0, 3.0, 4.0]
_JSW = [1.0, 0.92, 0.75, 0.48, 0.12]
_NECK_DIR = np.array([-np.cos(np.deg2rad(42)), np.sin(np.deg2rad(42))])  # head -> trochanter
_MIGRATE = np.array([-0.45, -0.89])  # superolateral unit vector


def sample_anatomy(rng: np.random.Generator, n: int) -> dict[str, np.ndarray]:
    a = rng.normal(1.0, 0.06, n).clip(0.84, 1.18)
    jit = lambda sd: rng.normal(1.0, sd, n)  # noqa: E731
    return {
        "a": a,
        "Rh": 23.5 * a * jit(0.05),
        "neck_w": 15.5 * a * jit(0.07), "neck_len": 44.0 * a * jit(0.06),
        "gt_rx": 13.0 * a * jit(0.1), "gt_ry": 17.0 * a * jit(0.1),
        "shaft_w": 15.0 * a * jit(0.06),
        "pelvis_rx": 52.0 * a * jit(0.06), "pelvis_ry": 34.0 * a * jit(0.08),
        "obt_rx": 12.0 * a * jit(0.1), "obt_ry": 17.0 * a * jit(0.1),
        "soft": rng.normal(95.0, 10.0, n).clip(70, 130),
        "fat": rng.uniform(6.0, 22.0, n),
        "density": rng.normal(1.0, 0.08, n).clip(0.75, 1.25),
        "jsw0": rng.normal(4.2, 0.5, n).clip(3.0, 5.8) * a,
        "ost_f": rng.lognormal(0.0, 0.25, n),
        "cyst_u": rng.uniform(0, 1, (n, 4)),
        # unused by the hip but kept so both joints share one sampling signature
        "varus0": np.zeros(n),
    }


def pathology(s: np.ndarray, anat: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    s = np.clip(s, 0.0, 4.0)
    jsw = anat["jsw0"] * np.interp(s, _S, _JSW)
    ost = np.interp(s, [0, 0.55, 1, 2, 3, 4], [0, 0, 1.2, 3.0, 5.0, 7.5]) * anat["ost_f"]
    return {
        "jsw_m": jsw,                               # superolateral minimum (named like the knee's)
        "shift": anat["jsw0"] - jsw,                # head migration towards the roof
        "ost": ost,
        "scl": np.interp(s, [0, 1.6, 2.5, 3.3, 4.0], [0, 0, 0.25, 0.6, 0.9]),
        "n_cyst": np.floor(np.clip((s - 3.0) * 3.0, 0, 4)).astype(int),
        "flat": np.interp(s, [0, 3.0, 4.0], [0, 0, 0.14]),
    }


def _head_centre(A, P):
    return P["shift"][:, None] * _MIGRATE[None]        # [B, 2]


def fields(x: torch.Tensor, y: torch.Tensor, A: dict, P: dict, tex: torch.Tensor):
    Rh = col(A["Rh"])
    hc = _head_centre(A, P)
    hx, hy = col(hc[:, 0]), col(hc[:, 1])
    Rc = Rh + col(A["jsw0"])  # acetabular cup radius, centred at the origin
    # Femoral head (flattened superiorly at the top grades), neck, trochanters, shaft.
    ry_head = Rh * col(1 - P["flat"])
    sd_head = sd_ellipse(x, y, hx, hy + (Rh - ry_head), Rh, ry_head)
    nd = torch.as_tensor(_NECK_DIR, dtype=torch.float32)
    along = (x - hx) * nd[0] + (y - hy) * nd[1]
    across = -(x - hx) * nd[1] + (y - hy) * nd[0]
    nl, nw = col(A["neck_len"]), col(A["neck_w"])
    # Neck narrows in its middle (waist) and widens into the intertrochanteric region.
    waist = nw * (0.78 + 0.35 * ((along - nl * 0.45) / nl) ** 2)
    sd_neck = torch.maximum(across.abs() - waist, torch.maximum(-along, along - nl))
    gt_x, gt_y = hx + nd[0] * nl - 6.0, hy + nd[1] * nl - 12.0
    sd_gt = sd_ellipse(x, y, gt_x, gt_y, col(A["gt_rx"]), col(A["gt_ry"]))
    shaft_cx = hx + nd[0] * nl + 2.0
    sw = col(A["shaft_w"])
    sd_shaft = torch.maximum((x - shaft_cx - 0.12 * (y - gt_y)).abs() - sw, gt_y + 6.0 - y)
    lt = sd_ellipse(x, y, shaft_cx + sw + 2.0, gt_y + 38.0, 5.0 + 0 * sw, 8.0 + 0 * sw)
    sd_fem = smin(smin(smin(sd_head, sd_neck, 5.0), smin(sd_gt, sd_shaft, 6.0), 7.0), lt, 3.0)
    # Head–neck junction osteophyte (inferomedial) grows with severity.
    o = col(P["ost"]) + 1e-3
    sd_fem = smin(sd_fem, sd_rot_ellipse(x, y, hx + Rh * 0.55, hy + Rh * 0.85, o, o * 0.45,
                                         torch.full_like(o, 0.9)), 1.2)

    # Pelvis: ilium above-medial with the acetabular cup carved out, pubis/ischium ring below.
    sd_pelvis = sd_rot_ellipse(x, y, 22.0 + 0 * Rh, -Rh * 1.35, col(A["pelvis_rx"]), col(A["pelvis_ry"]),
                               torch.full_like(Rh, -0.25))
    sd_pelvis = smin(sd_pelvis, sd_ellipse(x, y, Rh * 0.35, -Rh * 0.1, Rc * 1.05, Rc * 1.0), 6.0)
    ring_c = (Rh * 1.55, Rh * 1.9)
    sd_ring = smax(sd_ellipse(x, y, *ring_c, col(A["obt_rx"]) + 9.0, col(A["obt_ry"]) + 9.0),
                   -sd_ellipse(x, y, *ring_c, col(A["obt_rx"]), col(A["obt_ry"])), 1.5)
    sd_pelvis = smin(sd_pelvis, sd_ring, 5.0)
    cup = (sm.sqrt(x**2 + y**2) - Rc)
    sd_pelvis = smax(sd_pelvis, -cup, 1.5)
    # Lateral acetabular margin osteophyte.
    sd_pelvis = smin(sd_pelvis, sd_rot_ellipse(x, y, -Rc * 0.86 - o * 0.3, -Rc * 0.52, o, o * 0.4,
                                               torch.full_like(o, 0.6)), 1.2)

    dens = col(A["density"])
    mu_c, mu_t = 0.095, 0.022
    att = shell_projection(sd_fem, torch.clamp(nw * 1.2 + 0 * x, max=26.0), 1.6 + 0 * x, mu_c, mu_t, tex) * dens
    att = att + 0.9 * shell_projection(sd_pelvis, 16.0 + 0 * x, 1.4 + 0 * x, mu_c, mu_t, tex) * dens
    # Sourcil: the dense subchondral roof seen tangentially, thickening with sclerosis.
    roof = sm.exp(-((cup - 1.2) / (1.0 + 2.0 * col(P["scl"]))) ** 2) * (y < Rh * 0.1)
    att = att + (0.18 + 0.5 * col(P["scl"])) * dens * roof * (sd_pelvis < 1.0)
    # Posterior acetabular wall: a faint arc projected over the head.
    wall = sm.exp(-((sm.sqrt(x**2 + (y + 3.0) ** 2) - Rc * 0.93) / 1.2) ** 2) * (x < Rc * 0.3) * (y > -Rh * 0.2)
    att = att + 0.08 * dens * wall
    # Teardrop: a small U-shaped dense line medial to the head.
    td = sd_ellipse(x, y, Rc + 9.0, Rh * 0.35, 5.0 + 0 * Rh, 9.0 + 0 * Rh)
    att = att + 0.12 * dens * sm.exp(-(td / 0.8) ** 2)
    cyst = torch.zeros_like(x)
    for k in range(4):
        if not (P["n_cyst"] > k).any():
            break
        on = col((P["n_cyst"] > k).astype(np.float32))
        ang = col(np.deg2rad(-150 + 60 * A["cyst_u"][:, k]))
        r = Rc + 5.0 if k % 2 == 0 else Rh - 6.0
        cyst = cyst + on * sm.exp(-((x - r * torch.cos(ang)) ** 2 + (y - r * torch.sin(ang)) ** 2) / 4.0)
    att = att - 0.45 * cyst.clamp(max=1.0) * ((sd_fem < 0) | (sd_pelvis < 0)).float()

    L = col(A["soft"])
    Lm = (L - col(A["fat"])).clamp_min(10.0)
    xs = x + 25.0  # the limb's axis is lateral to the head
    att = att + 0.0075 * sm.sqrt((L**2 - xs**2).clamp(min=0.0)) + 0.0045 * sm.sqrt((Lm**2 - xs**2).clamp(min=0.0))

    rr = sm.sqrt((x - hx) ** 2 + (y - hy) ** 2)
    mask = (rr > Rh) & (sm.sqrt(x**2 + y**2) < Rc) & (y < Rh * 0.1) & (x > -Rc * 0.95)
    return att, mask


def landmarks(A: dict, P: dict) -> np.ndarray:
    Rh, Rc = A["Rh"], A["Rh"] + A["jsw0"]
    hc = _head_centre(A, P)
    hx, hy = hc[:, 0], hc[:, 1]
    nl = A["neck_len"]
    nd = _NECK_DIR
    gt_x, gt_y = hx + nd[0] * nl - 6.0, hy + nd[1] * nl - 12.0
    shaft_cx = hx + nd[0] * nl + 2.0
    z = np.zeros_like(Rh)
    pts = [
        (hx, hy - Rh * (1 - 2 * P["flat"])), (hx - Rh, hy), (hx + Rh, hy), (hx, hy + Rh), (hx, hy),
        (-Rc * 0.87, -Rc * 0.5), (z, -Rc), (Rc * 0.7, -Rc * 0.7), (Rc + 9.0, Rh * 0.35 + 9.0),
        (hx + nd[0] * nl * 0.5 - nd[1] * A["neck_w"] * 0.85, hy + nd[1] * nl * 0.5 + nd[0] * A["neck_w"] * 0.85),
        (hx + nd[0] * nl * 0.5 + nd[1] * A["neck_w"] * 0.85, hy + nd[1] * nl * 0.5 - nd[0] * A["neck_w"] * 0.85),
        (gt_x, gt_y - A["gt_ry"]), (shaft_cx + A["shaft_w"] + 6.0, gt_y + 38.0),
        (shaft_cx - A["shaft_w"] + 0.12 * 50.0, gt_y + 50.0), (shaft_cx + A["shaft_w"] + 0.12 * 50.0, gt_y + 50.0),
        (Rh * 1.55, Rh * 1.9 - A["obt_ry"]),
    ]
    return np.stack([np.stack([px, py], -1) for px, py in pts], axis=1).astype(np.float32)
