"""Shared fixtures. Tests never touch the user's data: OAVIZ_HOME points to a temp dir."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pytest

_HOME = Path(tempfile.mkdtemp(prefix="oaviz-test-home-"))
os.environ.setdefault("OAVIZ_HOME", str(_HOME))
# Two cores are shared by everything in the suite: keep torch from oversubscribing.
os.environ.setdefault("OMP_NUM_THREADS", "2")
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # see oaviz/__init__.py
# The app's start-up JIT warm-up costs about a minute of one core: not in every test process/server.
os.environ.setdefault("OAVIZ_WARM_UP", "0")


@pytest.fixture(scope="session")
def tiny_cohort(tmp_path_factory) -> Path:
    """A small synthetic knee cohort: 24 subjects × 3 visits at 64×64."""
    from oaviz.data.synthetic import generate_cohort

    out = tmp_path_factory.mktemp("cohorts") / "tiny-knee"
    return generate_cohort(out, joint="knee", subjects=24, visits=(0, 12, 24), size=64, seed=0)


@pytest.fixture(scope="module")
def one_torch_thread():
    """Tiny tensors: intra-op threads only add spin-waiting on the shared two cores (use per module)."""
    import torch

    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)
