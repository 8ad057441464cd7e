"""Rendering primitives for the synthetic radiographs (torch, batched, CPU-friendly).

Everything works on fields of shape [B, H, W] in millimetres of the *canonical*
anatomy frame (x to the image right, y downwards, origin at the joint). Bones
are signed distance fields (negative inside); a projected radiograph is the sum
of attenuation line integrals, which for a bone of local half-depth R is
approximated by the chord through an elliptic cross-section. A cortical shell
of thickness ``tc`` gives the bright rims seen tangentially on real films.

Only element-wise ops (and one bilinear texture lookup) are used so the result
is bit-identical for a given seed whatever the thread count.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from oaviz.data import synth_math as sm

Tensor = torch.Tensor


def col(v) -> Tensor:
    """Per-image parameter vector [B] -> [B, 1, 1] for broadcasting over pixels."""
    return torch.as_tensor(v, dtype=torch.float32).reshape(-1, 1, 1)


def smoothstep(e0, e1, x: Tensor) -> Tensor:
    t = ((x - e0) / (e1 - e0)).clamp(0, 1)
    return t * t * (3 - 2 * t)


def smin(a: Tensor, b: Tensor, k: float) -> Tensor:
    """Smooth union of two SDFs (polynomial smooth-min, blend radius k mm)."""
    h = (0.5 + 0.5 * (b - a) / k).clamp(0, 1)
    return b + (a - b) * h - k * h * (1 - h)


def smax(a: Tensor, b: Tensor, k: float) -> Tensor:
    """Smooth intersection (used for subtraction as smax(a, -b))."""
    return -smin(-a, -b, k)


def sd_ellipse(x: Tensor, y: Tensor, cx, cy, rx, ry) -> Tensor:
    """Approximate signed distance to an axis-aligned ellipse (mm)."""
    px, py = (x - cx) / rx, (y - cy) / ry
    k0 = sm.sqrt(px * px + py * py)
    k1 = sm.sqrt(px * px / rx**2 + py * py / ry**2).clamp_min(1e-6)
    return k0 * (k0 - 1.0) / k1


def sd_rot_ellipse(x: Tensor, y: Tensor, cx, cy, rx, ry, angle) -> Tensor:
    """Ellipse rotated by ``angle`` radians (counter-clockwise in image coordinates)."""
    c, s = torch.cos(angle), torch.sin(angle)
    dx, dy = x - cx, y - cy
    return sd_ellipse(c * dx + s * dy, -s * dx + c * dy, 0.0, 0.0, rx, ry)


def shell_projection(sd: Tensor, radius: Tensor, cortex: Tensor, mu_cortex: float,
                     mu_trab: float, texture: Tensor) -> Tensor:
    """Projected attenuation of a bone with a cortical shell.

    sd: signed distance [B,H,W] (mm, <0 inside); radius: local half-depth of the
    bone along the beam (mm); cortex: shell thickness (mm). The half-chord at
    depth d below the surface of a cylinder of radius R is sqrt(d(2R-d)).
    """
    depth = (-sd).clamp(min=0.0)
    depth = torch.minimum(depth, radius)
    outer = sm.sqrt(depth * (2 * radius - depth))
    r_in = (radius - cortex).clamp_min(0.5)
    d_in = torch.minimum((depth - cortex).clamp(min=0.0), r_in)
    inner = sm.sqrt(d_in * (2 * r_in - d_in))
    return mu_cortex * (outer - inner) + mu_trab * inner * texture


def texture_bank(rng: np.random.Generator, n: int, size: int = 256, mm_per_px: float = 0.5) -> Tensor:
    """Trabecular texture fields [n, 1, size, size] around 1.0.

    Band-pass filtered white noise, elongated vertically (trabeculae follow the
    load lines of the femur and tibia) with a finer isotropic component.
    """
    white = rng.standard_normal((n, size, size)).astype(np.float32)
    f = np.fft.fftfreq(size, d=mm_per_px)
    fy, fx = np.meshgrid(f, f, indexing="ij")
    out = np.zeros_like(white)
    spec = np.fft.fft2(white)
    # Two bands: coarse vertical struts (~2 mm, stretched 2.5×) and fine plates (~0.9 mm).
    for period, stretch, weight in ((1.8, 2.2, 1.0), (0.8, 1.2, 0.6)):
        r = np.sqrt((fx * stretch) ** 2 + fy**2)
        band = sm.np_exp(-((r - 1.0 / period) ** 2) / (2 * (0.35 / period) ** 2))
        comp = np.real(np.fft.ifft2(spec * band)).astype(np.float32)
        comp /= comp.std(axis=(1, 2), keepdims=True) + 1e-6
        out += weight * comp
    out /= out.std(axis=(1, 2), keepdims=True) + 1e-6
    # Trabeculae are bright struts on a darker marrow background: skew the field.
    tex = 1.0 + 0.22 * sm.np_tanh(out)
    return torch.from_numpy(tex[:, None])


def sample_texture(bank: Tensor, tex_id: np.ndarray, x: Tensor, y: Tensor, off: np.ndarray,
                   extent_mm: float = 128.0) -> Tensor:
    """Look up each image's texture at canonical coordinates (mm) -> [B, H, W]."""
    tex = bank[torch.as_tensor(tex_id)]
    gx = (x + col(off[:, 0])) / (extent_mm / 2)
    gy = (y + col(off[:, 1])) / (extent_mm / 2)
    grid = torch.stack([gx, gy], dim=-1)
    return F.grid_sample(tex, grid, mode="bilinear", padding_mode="reflection", align_corners=False)[:, 0]


def gaussian_blur(img: Tensor, sigma: np.ndarray, radius: int = 4) -> Tensor:
    """Per-image separable Gaussian blur (sigma in pixels) with shifted sums.

    Written with element-wise ops rather than conv2d so the output does not
    depend on the backend's reduction order.
    """
    offs = torch.arange(-radius, radius + 1, dtype=torch.float32)
    s = torch.as_tensor(sigma, dtype=torch.float32).reshape(-1, 1)
    w = sm.exp(-0.5 * (offs[None] / s) ** 2)
    w = w / w.sum(dim=1, keepdim=True)  # [B, K]
    out = img
    for dim in (1, 2):
        padded = F.pad(out[:, None], (radius, radius, 0, 0) if dim == 2 else (0, 0, radius, radius),
                       mode="replicate")[:, 0]
        acc = torch.zeros_like(out)
        n = out.shape[dim]
        for i in range(2 * radius + 1):
            acc = acc + w[:, i].reshape(-1, 1, 1) * padded.narrow(dim, i, n)
        out = acc
    return out


def glyph(letter: str, px: int) -> np.ndarray:
    """A side-marker letter as a float mask [px, px] (drawn once with PIL)."""
    from PIL import Image, ImageDraw, ImageFont

    big = 64
    im = Image.new("L", (big, big), 0)
    d = ImageDraw.Draw(im)
    try:
        font = ImageFont.load_default(size=52)
    except TypeError:  # very old Pillow
        font = ImageFont.load_default()
    bbox = d.textbbox((0, 0), letter, font=font)
    w, h = bbox[2] - bbox[0], bbox[3] - bbox[1]
    d.text(((big - w) / 2 - bbox[0], (big - h) / 2 - bbox[1]), letter, fill=255, font=font)
    im = im.resize((px, px), Image.Resampling.LANCZOS)
    return np.asarray(im, dtype=np.float32) / 255.0
