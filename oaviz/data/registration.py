"""Register a follow-up radiograph onto its baseline (same knee, another visit).

Every visit is positioned and exposed anew, so a raw (baseline, follow-up)
pair differs mostly by pose and exposure, not by disease. Longitudinal
studies register the follow-up to the baseline before comparing them; the
diffusion model does the same before it learns the change, so what it learns
is joint-space narrowing and osteophyte growth rather than repositioning.

- Geometry: a similarity transform (scale, rotation, translation) fitted by
  least squares to the 16 landmarks of both images. A similarity, not an
  affine, so the landmarks that move with narrowing (2 of 16) cannot be
  "explained away" by shear or anisotropic scale.
- Intensity: a gain and offset fitted by least squares over the overlapping
  pixels, mapping the follow-up's grey levels onto the baseline's.

Pairs whose landmarks are unknown (NaN) are left as they are.
"""

from __future__ import annotations

import torch
from torch.nn import functional as F


def similarity_from_landmarks(fixed: torch.Tensor, moving: torch.Tensor) -> torch.Tensor:
    """Least-squares similarity mapping fixed-image points onto moving-image points.

    fixed, moving [B, K, 2] (x, y) in [0, 1] image coordinates. Returns θ [B, 2, 3] in
    ``F.affine_grid``'s normalised [−1, 1] coordinates (align_corners=False), i.e. the
    grid that samples the moving image at T(p) for every output pixel p of the fixed
    frame. Rows with a non-finite landmark get the identity.
    """
    p, q = fixed.double() * 2 - 1, moving.double() * 2 - 1
    b, k, _ = p.shape
    ok = (torch.isfinite(p).all(dim=(1, 2)) & torch.isfinite(q).all(dim=(1, 2)))[:, None, None]
    # Rows without landmarks solve an identity problem (points on a diagonal mapped onto themselves).
    diag = torch.linspace(-0.5, 0.5, k, dtype=p.dtype)[:, None] * torch.tensor([1.0, -0.7], dtype=p.dtype)
    p, q = torch.where(ok, p, diag), torch.where(ok, q, diag)
    one, zero = torch.ones_like(p[..., 0]), torch.zeros_like(p[..., 0])
    # qx = a·px − c·py + tx ; qy = c·px + a·py + ty  ->  A [B, 2K, 4] · (a, c, tx, ty)
    A = torch.cat([torch.stack([p[..., 0], -p[..., 1], one, zero], -1),
                   torch.stack([p[..., 1], p[..., 0], zero, one], -1)], 1)
    y = torch.cat([q[..., 0], q[..., 1]], 1).unsqueeze(-1)
    a, c, tx, ty = torch.linalg.lstsq(A, y).solution[..., 0].unbind(-1)
    theta = torch.stack([torch.stack([a, -c, tx], -1), torch.stack([c, a, ty], -1)], 1)
    return theta.to(fixed.dtype)


def match_intensity(moving: torch.Tensor, fixed: torch.Tensor) -> torch.Tensor:
    """moving·g + o with (g, o) per image minimising ‖moving·g + o − fixed‖², clamped to [0, 1].

    moving, fixed [B, 1, H, W] in [0, 1]. The gain is kept within [0.5, 2] so a
    flat image cannot blow up.
    """
    m, f = moving.flatten(1), fixed.flatten(1)
    mc, fc = m - m.mean(1, keepdim=True), f - f.mean(1, keepdim=True)
    gain = ((mc * fc).sum(1) / (mc * mc).sum(1).clamp_min(1e-8)).clamp(0.5, 2.0)
    offset = f.mean(1) - gain * m.mean(1)
    return (moving * gain.view(-1, 1, 1, 1) + offset.view(-1, 1, 1, 1)).clamp(0, 1)


def warp_follow_up(follow_up: torch.Tensor, landmarks_follow_up: torch.Tensor,
                   landmarks_baseline: torch.Tensor) -> torch.Tensor:
    """The follow-up [B, 1, H, W] resampled into the baseline's frame (geometry only).

    Landmarks [B, K, 2] in [0, 1]. Bilinear resampling with border padding; pairs with
    unknown landmarks keep their geometry.
    """
    theta = similarity_from_landmarks(landmarks_baseline, landmarks_follow_up).to(follow_up.dtype)
    grid = F.affine_grid(theta.to(follow_up.device), list(follow_up.shape), align_corners=False)
    return F.grid_sample(follow_up, grid, mode="bilinear", padding_mode="border", align_corners=False)


def register_follow_up(follow_up: torch.Tensor, baseline: torch.Tensor, landmarks_follow_up: torch.Tensor,
                       landmarks_baseline: torch.Tensor) -> torch.Tensor:
    """The follow-up [B, 1, H, W] resampled into the baseline's frame (``warp_follow_up``) and grey levels
    (``match_intensity``); pairs with unknown landmarks still get the intensity match."""
    return match_intensity(warp_follow_up(follow_up, landmarks_follow_up, landmarks_baseline), baseline)
