"""The generator's bytes for a seed do not depend on the CPU: rerun under forced MKL, ATen and numpy code paths.

On x86, torch's exp/sqrt/tanh/log go through MKL's vector math, whose last bits follow the code path MKL
picks for the CPU; numpy's float64 exp/log/power switch to AVX-512 kernels. Forcing the paths another
machine would take (MKL at SSE4.2 or AVX2, ATen at AVX2, numpy without AVX-512) in a subprocess must
render the same cohorts byte for byte.
"""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest
import torch

from oaviz.data import synth_math as sm

_DIGESTS = r"""
import hashlib
import torch
# the control: MKL's own exp, which the forced paths must change for this test to mean anything
print(hashlib.sha256(torch.exp(torch.linspace(-30, 30, 1_000_003)).numpy().tobytes()).hexdigest())
from oaviz.data.synthetic import SynthConfig, generate_arrays
for cfg in (SynthConfig(subjects=6, visits=(0, 12), size=96, seed=3),
            SynthConfig(subjects=6, visits=(0, 12), size=64, seed=5, style="film", visible_risk=True),
            SynthConfig(joint="hip", subjects=4, visits=(0,), size=64, seed=1)):
    images, masks, meta, info = generate_arrays(cfg)
    print(hashlib.sha256(images.tobytes() + masks.tobytes() + meta.to_csv(index=False).encode()).hexdigest())
"""


def _numpy_avx512_features() -> str:
    """The numpy dispatch targets above AVX2 this CPU has (disabling one it lacks is an error)."""
    from numpy._core._multiarray_umath import __cpu_features__ as found
    return " ".join(f for f in ("AVX512_SPR", "AVX512_ICL", "AVX512_CLX", "AVX512_CNL", "AVX512_SKX", "X86_V4")
                    if found.get(f))


def _digests(env: dict[str, str]) -> list[str]:
    out = subprocess.run([sys.executable, "-c", _DIGESTS], env={**os.environ, **env}, capture_output=True,
                         text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    return out.stdout.split()


@pytest.mark.timeout(900)
def test_generator_bytes_do_not_depend_on_the_cpu_code_path():
    native = _digests({})
    assert len(native) == 4
    if _digests({"MKL_ENABLE_INSTRUCTIONS": "SSE4_2"})[0] == native[0]:
        pytest.skip("forcing MKL's SSE4.2 path does not change torch.exp here: nothing to compare")
    paths = [{"MKL_ENABLE_INSTRUCTIONS": "SSE4_2"}, {"MKL_ENABLE_INSTRUCTIONS": "AVX2"},
             {"ATEN_CPU_CAPABILITY": "avx2"}]
    if _numpy_avx512_features():
        paths.append({"NPY_DISABLE_CPU_FEATURES": _numpy_avx512_features()})
    for env in paths:
        assert _digests(env)[1:] == native[1:], f"the generator's bytes changed under {env}"


def test_the_functions_match_what_they_replace():
    x = torch.linspace(-30, 30, 200_001)
    pos = torch.linspace(1e-6, 1e4, 200_001)
    torch.testing.assert_close(sm.exp(x), torch.exp(x), rtol=3e-6, atol=0)
    torch.testing.assert_close(sm.tanh(x), torch.tanh(x), rtol=2e-6, atol=1e-7)
    tiny = torch.tensor([-0.0, 1e-30])
    assert torch.equal(sm.tanh(tiny), tiny) and str(sm.tanh(tiny)[0].item()) == "-0.0"
    assert torch.equal(sm.sqrt(pos), torch.from_numpy(np.sqrt(pos.numpy())))
    torch.testing.assert_close(sm.sqrt(pos), torch.sqrt(pos), rtol=2e-7, atol=0)
    a = np.linspace(0.01, 0.99, 1001)
    np.testing.assert_allclose(sm.np_log(a), np.log(a), rtol=1e-14)
    np.testing.assert_allclose(sm.np_log1p(-a), np.log1p(-a), rtol=1e-14)
    np.testing.assert_allclose(sm.np_exp(a * 40 - 20), np.exp(a * 40 - 20), rtol=1e-14)
    np.testing.assert_allclose(sm.np_pow(a, -0.9), a ** -0.9, rtol=1e-14)
    np.testing.assert_allclose(sm.np_tanh(a * 8 - 4), np.tanh(a * 8 - 4), rtol=1e-14)
    assert sm.np_exp(np.float32([1.0])).dtype == np.float32 and sm.np_exp(0.5).dtype == np.float64
