"""Image transforms shared by training, inference and analysis."""

from __future__ import annotations

import numpy as np
import torch
from torch.nn import functional as F


def resize_images(images: np.ndarray, size: int, scale: float, chunk: int = 256) -> torch.Tensor:
    """uint8/uint16 [N,H,W] (or float with ``scale`` 1) -> float32 [N,1,size,size] in [0, 1].

    Area interpolation when shrinking, bilinear when enlarging; ``chunk`` images at a time.
    """
    out = torch.empty(len(images), 1, size, size)
    for i in range(0, len(images), chunk):
        x = torch.from_numpy(np.asarray(images[i:i + chunk], dtype=np.float32) / scale)[:, None]
        if x.shape[-1] != size or x.shape[-2] != size:
            x = F.interpolate(x, size=(size, size), mode="area" if x.shape[-1] > size else "bilinear",
                              align_corners=None if x.shape[-1] > size else False)
        out[i:i + len(x)] = x
    return out
