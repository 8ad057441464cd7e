"""The checkpoints shipped in checkpoints/: within the size budget, loadable, and naming what they need."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from oaviz.models.base import ConfigError
from oaviz.models.checkpoints import resolve_checkpoint

ROOT = Path(__file__).resolve().parents[2] / "checkpoints"
BUDGET_BYTES = 100_000_000         # all bundled weights and configs together (the product budget)
BUNDLED = sorted(p for p in ROOT.iterdir() if (p / "config.json").is_file()) if ROOT.is_dir() else []


def test_bundled_checkpoints_fit_the_budget():
    total = sum(f.stat().st_size for p in BUNDLED for f in p.iterdir())
    assert BUNDLED, "no bundled checkpoints found"
    assert total <= BUDGET_BYTES, f"bundled checkpoints take {total / 1e6:.1f} MB, over {BUDGET_BYTES / 1e6:.0f} MB"


@pytest.mark.parametrize("path", BUNDLED, ids=lambda p: p.name)
def test_bundled_checkpoint_is_safetensors_and_names_existing_partners(path):
    assert sorted(f.name for f in path.iterdir()) == ["config.json", "model.safetensors"]
    info = json.loads((path / "config.json").read_text())
    for key in ("vqvae_checkpoint", "classifier_checkpoint", "discriminator_checkpoint"):
        name = info["config"].get(key)
        if name:
            try:
                resolve_checkpoint(name)
            except ConfigError:
                pytest.fail(f"{path.name}: {key}={name} missing")
