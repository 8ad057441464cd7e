"""Random repositioning and re-exposure of radiographs, for models that would otherwise memorise.

A knee radiograph is never taken twice the same way: the knee sits a few
millimetres off, a degree or two rotated, magnified a little differently,
exposed brighter or darker, and left and right knees mirror each other.
``random_acquisition`` redraws those per image, so a model trained on a few
hundred images sees each one in many plausible acquisitions.
"""

from __future__ import annotations

import math

import torch
from torch.nn import functional as F


# The ranges for real radiographs stored in one orientation (every importer mirrors left knees to the right):
# never a mirror, which would swap medial and lateral. Every model's ``real`` preset trains with these.
REAL_KNEES = {"shift": 0.04, "rotate_deg": 5.0, "scale": 0.06, "gain": 0.1, "offset": 0.05, "flip": False,
              "gamma": 0.25, "noise": 0.02}


def real_acquisition(x: torch.Tensor, generator: torch.Generator | None = None, **overrides):
    """``random_acquisition`` with the ``REAL_KNEES`` ranges (``overrides`` replace some, e.g. noise=0)."""
    return random_acquisition(x, generator, **{**REAL_KNEES, **overrides})


def random_acquisition(x: torch.Tensor, generator: torch.Generator | None = None, shift: float = 0.04,
                       rotate_deg: float = 3.0, scale: float = 0.04, gain: float = 0.08, offset: float = 0.04,
                       flip: bool = True, gamma: float = 0.0, noise: float = 0.0,
                       landmarks: torch.Tensor | None = None):
    """x [B, C, H, W] in [0, 1] -> the same knees under new random acquisitions [B, C, H, W] in [0, 1].

    The channels of one item share its draw (e.g. a baseline and its follow-up stacked as two channels
    move together). With ``landmarks`` [B, K, 2] ((x, y) in [0, 1], NaN unknown) returns
    ``(images, landmarks moved with them)``.

    Per image, uniform in ±range: translation (fraction of the side), rotation (degrees),
    magnification, grey-level gain and offset, and a gamma exp(±gamma) (film contrast); a
    left/right mirror with probability ½ when ``flip`` (never for knees stored in one
    orientation, where medial must stay medial); Gaussian detector noise of std up to
    ``noise``. Border padding (no black corners). Random numbers come from ``generator`` on
    the CPU, so a seeded generator gives the same draw on any device.
    """
    b = x.shape[0]
    u = lambda: torch.rand(b, generator=generator) * 2 - 1  # noqa: E731  (uniform in [−1, 1])
    ang = u() * math.radians(rotate_deg)
    s = 1 + u() * scale
    mirror = torch.where(torch.rand(b, generator=generator) < 0.5, -1.0, 1.0) if flip else torch.ones(b)
    cos, sin = torch.cos(ang) * s, torch.sin(ang) * s
    theta = torch.stack([torch.stack([cos * mirror, -sin, u() * shift * 2], -1),
                         torch.stack([sin * mirror, cos, u() * shift * 2], -1)], 1)
    g, o = 1 + u() * gain, u() * offset
    grid = F.affine_grid(theta.to(x.device, x.dtype), list(x.shape), align_corners=False)
    out = F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)
    if gamma > 0:
        out = out.clamp_min(1e-6) ** torch.exp(u() * gamma).to(x).view(-1, 1, 1, 1)
    out = out * g.to(x).view(-1, 1, 1, 1) + o.to(x).view(-1, 1, 1, 1)
    if noise > 0:
        sd = (torch.rand(b, generator=generator) * noise).to(x).view(-1, 1, 1, 1)
        out = out + sd * torch.randn(x.shape, generator=generator).to(x)
    out = out.clamp(0, 1)
    return out if landmarks is None else (out, move_points(landmarks, theta.to(landmarks)))


def move_points(points: torch.Tensor, theta: torch.Tensor) -> torch.Tensor:
    """Where points [B, K, 2] ((x, y) in [0, 1]) of an input land in ``grid_sample``'s output for ``theta`` [B, 2, 3].

    The output pixel at p samples the input at A·p + t (normalised coordinates, align_corners=False),
    so an input point q appears at A⁻¹·(q − t).
    """
    q = points * 2 - 1
    a, t = theta[:, :, :2], theta[:, :, 2]
    p = torch.linalg.solve(a, (q - t[:, None, :]).transpose(1, 2)).transpose(1, 2)
    return (p + 1) / 2
