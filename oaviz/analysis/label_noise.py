"""Label noise with an exact rate: symmetric flips or KL-adjacent moves."""

from __future__ import annotations

import numpy as np

KINDS = ("symmetric", "adjacent")


def inject_noise(y: np.ndarray, rate: float, kind: str = "symmetric", seed: int = 0,
                 n_classes: int = 2) -> np.ndarray:
    """Noisy copy of integer labels ``y`` [n]; exactly ``round(rate * n)`` labels change.

    symmetric: each chosen label becomes a different class drawn uniformly
    (for ``n_classes == 2`` a flip of the binary OA label).
    adjacent: each chosen KL grade moves to a neighbouring grade (0 -> 1,
    ``n_classes - 1`` -> ``n_classes - 2``, otherwise ±1 with equal odds), which
    mimics rater disagreement; binarise afterwards for an OA target.
    """
    y = np.asarray(y)
    if kind not in KINDS:
        raise ValueError(f"noise kind must be one of {KINDS}, got {kind!r}")
    if not 0.0 <= float(rate) <= 1.0:
        raise ValueError(f"noise rate must be in [0, 1], got {rate}")
    if n_classes < 2:
        raise ValueError("n_classes must be >= 2")
    if y.size and (y.min() < 0 or y.max() >= n_classes):
        raise ValueError(f"labels must be in 0..{n_classes - 1}")
    out = y.astype(np.int64, copy=True)
    n_flip = int(round(float(rate) * len(y)))
    if n_flip == 0:
        return out
    rng = np.random.default_rng(seed)
    idx = rng.choice(len(y), n_flip, replace=False)
    if kind == "symmetric":
        # An offset in 1..K-1 (mod K) never lands on the original class.
        out[idx] = (out[idx] + rng.integers(1, n_classes, n_flip)) % n_classes
    else:
        step = np.where(rng.random(n_flip) < 0.5, -1, 1)
        step[out[idx] == 0] = 1
        step[out[idx] == n_classes - 1] = -1
        out[idx] = out[idx] + step
    return out
