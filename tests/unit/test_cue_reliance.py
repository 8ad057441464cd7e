"""Cue reliance: counterfactual synthetic knees tell which pathology sign a classifier reads."""

from __future__ import annotations

import pytest

from oaviz.analysis.cue_reliance import cue_reliance
from oaviz.data.synthetic import SynthConfig
from oaviz.paths import checkpoints_dir


def test_the_bundled_dual_head_reads_joint_space_narrowing_not_cysts():
    """The bundled dual head (trained on the default cohort: film knees) loses OA AUC when JSN is drawn
    healthy (measured 0.83 -> 0.76 on these 120 knees) and none when the rare cysts are (0.832 -> 0.832)."""
    ckpt = checkpoints_dir() / "dual_head-dual-demo"
    cfg = SynthConfig(subjects=60, visits=(0, 24), seed=3, style="film", visible_risk=True)
    out = cue_reliance({"dual": ckpt}, cfg, signs=("jsw", "cysts"))
    assert out["n"] == 120 and 0 < out["n_oa"] < 120
    full = out["all"]["dual"]
    assert full > 0.7
    assert out["jsw"]["dual"] < full - 0.05
    assert abs(out["cysts"]["dual"] - full) < 0.02


def test_unknown_sign_is_refused():
    with pytest.raises(ValueError, match="unknown pathology sign"):
        cue_reliance({}, SynthConfig(subjects=2), signs=("osteophyte",))
