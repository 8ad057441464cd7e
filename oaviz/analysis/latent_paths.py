"""Paths between latent codes and where a latent sits relative to the data and the prior.

Latents are float arrays: a code is [D], a set of codes [N, D].
"""

from __future__ import annotations

import numpy as np

from oaviz.errors import DataError

_PARALLEL_EPS = 1e-6  # below this sin(angle) the great circle is numerically undefined


def _endpoints(z0, z1, steps: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    z0, z1 = np.asarray(z0, dtype=np.float64), np.asarray(z1, dtype=np.float64)
    if z0.ndim != 1 or z0.shape != z1.shape:
        raise DataError(f"endpoints must be two vectors [D] of the same size, got {z0.shape} and {z1.shape}")
    if int(steps) < 2:
        raise DataError(f"a path needs at least 2 steps, got {steps}")
    return z0, z1, np.linspace(0.0, 1.0, int(steps))


def lerp(z0: np.ndarray, z1: np.ndarray, steps: int) -> np.ndarray:
    """Straight line from z0 to z1: [steps, D], first row z0, last row z1."""
    z0, z1, t = _endpoints(z0, z1, steps)
    return (1 - t)[:, None] * z0 + t[:, None] * z1


def slerp(z0: np.ndarray, z1: np.ndarray, steps: int) -> np.ndarray:
    """Spherical path: [steps, D], first row z0, last row z1.

    The direction moves along the great circle between z0/|z0| and z1/|z1| at
    constant angular speed and the norm changes linearly, so for endpoints of
    equal norm every point keeps that norm (a Gaussian prior's typical shell).
    Near-parallel directions fall back to lerp of the directions; exactly
    opposite ones pick a deterministic perpendicular great circle.
    """
    z0, z1, t = _endpoints(z0, z1, steps)
    n0, n1 = np.linalg.norm(z0), np.linalg.norm(z1)
    if n0 == 0 or n1 == 0:
        return lerp(z0, z1, steps)
    u0, u1 = z0 / n0, z1 / n1
    cos = float(np.clip(u0 @ u1, -1.0, 1.0))
    omega = np.arccos(cos)
    norms = (1 - t) * n0 + t * n1
    if np.sin(omega) < _PARALLEL_EPS and cos > 0:
        d = (1 - t)[:, None] * u0 + t[:, None] * u1
        d /= np.linalg.norm(d, axis=1, keepdims=True)
    else:
        if np.sin(omega) < _PARALLEL_EPS:  # antipodal: any perpendicular plane is a valid path
            e = np.zeros_like(u0)
            e[int(np.argmin(np.abs(u0)))] = 1.0
            v = e - (e @ u0) * u0
            v /= np.linalg.norm(v)
            omega = np.pi
            d = np.cos(t * omega)[:, None] * u0 + np.sin(t * omega)[:, None] * v
            d[-1] = u1
        else:
            s = np.sin(omega)
            d = (np.sin((1 - t) * omega) / s)[:, None] * u0 + (np.sin(t * omega) / s)[:, None] * u1
    out = norms[:, None] * d
    out[0], out[-1] = z0, z1  # exact endpoints despite rounding
    return out


def prior_log_density(Z: np.ndarray) -> np.ndarray:
    """log N(z; 0, I) per row: [N, D] -> [N] (nats)."""
    Z = np.atleast_2d(np.asarray(Z, dtype=np.float64))
    d = Z.shape[1]
    return -0.5 * (d * np.log(2 * np.pi) + (Z ** 2).sum(axis=1))


def nearest_distance(Z: np.ndarray, Zref: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Euclidean distance from each row of Z [N, D] to its nearest row of Zref [M, D].

    Returns (dist [N] float, idx [N] int64 into Zref). Computed in chunks, so
    large reference sets never build the full N×M matrix.
    """
    Z = np.atleast_2d(np.asarray(Z, dtype=np.float64))
    Zref = np.atleast_2d(np.asarray(Zref, dtype=np.float64))
    if len(Zref) == 0:
        raise DataError("the reference set of latents is empty")
    if Z.shape[1] != Zref.shape[1]:
        raise DataError(f"latent sizes differ: {Z.shape[1]} vs {Zref.shape[1]}")
    # |z|² + |r|² − 2 z·r by blocks of Z (≤ 4M distances at once); plain numpy because sklearn's
    # parameter checks cost more than the distances for the 10–16 latents of one interaction
    ref_sq = (Zref ** 2).sum(axis=1)
    step = max(1, 4_000_000 // len(Zref))
    dist, idx = np.empty(len(Z)), np.empty(len(Z), dtype=np.int64)
    for s in range(0, len(Z), step):
        z = Z[s:s + step]
        d2 = (z ** 2).sum(axis=1)[:, None] + ref_sq[None, :] - 2.0 * (z @ Zref.T)
        i = d2.argmin(axis=1)
        idx[s:s + step] = i
        dist[s:s + step] = np.sqrt(np.maximum(d2[np.arange(len(z)), i], 0.0))
    return dist, idx
