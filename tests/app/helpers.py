"""Small helpers shared by the AppTests."""

from __future__ import annotations

import pytest

from oaviz.paths import checkpoints_dir

needs_bundled = pytest.mark.skipif(not (checkpoints_dir() / "beta_vae-demo" / "config.json").is_file(),
                                   reason="bundled β-VAE checkpoint missing (make checkpoints)")


def assert_no_exception(at) -> None:
    """The last run of AppTest ``at`` raised nothing (the messages are in the assertion)."""
    assert not at.exception, [e.value for e in at.exception]
