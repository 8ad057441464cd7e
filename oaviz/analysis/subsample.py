"""Stratified, nested label subsets for label-scarcity experiments."""

from __future__ import annotations

import numpy as np


def stratified_subset(y: np.ndarray, fraction: float, seed: int) -> np.ndarray:
    """Sorted positions (int64) of a class-stratified subset of ``y`` [n].

    Each class c keeps ``max(1, round(fraction * n_c))`` of its n_c members, so
    every class present in ``y`` stays present. The members are taken from a
    per-class permutation that depends on ``seed`` only, which makes subsets
    deterministic per (fraction, seed) and nested: for one seed, a larger
    fraction is a superset of a smaller one.
    """
    y = np.asarray(y)
    if y.ndim != 1:
        raise ValueError(f"y must be 1-D, got shape {y.shape}")
    if not 0.0 < float(fraction) <= 1.0:
        raise ValueError(f"fraction must be in (0, 1], got {fraction}")
    keep = []
    for i, c in enumerate(np.unique(y)):
        members = np.flatnonzero(y == c)
        # One generator per (seed, class index): a class's order does not depend on
        # how many members the other classes have.
        order = np.random.default_rng([int(seed), i]).permutation(len(members))
        n_c = min(len(members), max(1, int(round(float(fraction) * len(members)))))
        keep.append(members[order[:n_c]])
    return np.sort(np.concatenate(keep)) if keep else np.zeros(0, np.int64)
