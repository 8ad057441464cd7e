"""Transcendental functions for the synthetic generator whose result bits do not depend on the CPU.

The generator promises the same bytes for a seed on every machine, but on x86 torch's ``exp``,
``sqrt``, ``tanh`` and ``log`` (and float64 ``sin``/``cos``) run through MKL's vector math library,
whose last bits depend on the code path MKL picks for the CPU (AVX-512, AVX2, SSE4.2): the same
seed rendered a handful of pixels one grey level apart on different machines, and the cohort's
fingerprint with them. numpy's float64 ``exp``/``log``/``log1p`` likewise switch to AVX-512 kernels
where the CPU has them.

These route to kernels that give the same bits on any x86-64 CPU with AVX2 (checked in
tests/unit/test_synth_math.py by rerunning under forced MKL, ATen and numpy code paths):
ATen's SLEEF ``exp2``/``expm1``/``log1p`` and float32 ``sin``/``cos``, and IEEE square root, which
every CPU rounds correctly. They are not bit-exact ports of the functions they replace (a few ulp
apart), so output changed once when the generator moved to them.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

LOG2E = 1.4426950408889634


def exp(t: Tensor) -> Tensor:
    """e**t as 2**(t·log2 e) (SLEEF exp2, not MKL's exp)."""
    return torch.exp2(t * LOG2E)


def sqrt(t: Tensor) -> Tensor:
    """Square root, correctly rounded (numpy's hardware sqrt; MKL's vsSqrt is not)."""
    return torch.from_numpy(np.sqrt(t.numpy()))


def tanh(t: Tensor) -> Tensor:
    """tanh from expm1 of the negative magnitude: exact near 0, no overflow for large |t|."""
    a = torch.expm1(-2 * t.abs())
    return torch.copysign(-a / (a + 2), t)


def _float(a) -> np.ndarray:
    """``a`` as a float32 or float64 array (anything else, python floats included, as float64)."""
    a = np.asarray(a)
    return a if a.dtype in (np.float32, np.float64) else a.astype(np.float64)


def _np(fn, a: np.ndarray) -> np.ndarray:
    """Apply a torch function to a float numpy array (its dtype kept) and come back as numpy."""
    return fn(torch.from_numpy(np.ascontiguousarray(a))).numpy()


def np_exp(a) -> np.ndarray:
    """``exp`` for numpy arrays of the design and texture draws (float32 or float64)."""
    return _np(exp, _float(a))


def np_log(a) -> np.ndarray:
    """Natural log as log1p(a - 1) (SLEEF log1p; exact for a in [0.5, 2], a few ulp elsewhere)."""
    return _np(torch.log1p, _float(a) - 1)


def np_log1p(a) -> np.ndarray:
    """log(1 + a) for numpy arrays."""
    return _np(torch.log1p, _float(a))


def np_tanh(a) -> np.ndarray:
    """tanh for numpy arrays."""
    return _np(tanh, _float(a))


def np_pow(a, p: float) -> np.ndarray:
    """a ** p for numpy arrays (SLEEF pow; numpy's power switches to AVX-512 kernels)."""
    return _np(lambda t: t ** p, _float(a))
