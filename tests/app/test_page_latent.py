"""AppTests of the latent exploration pages on the bundled demo checkpoints and the tiny test cohort."""

from __future__ import annotations

import numpy as np
import pytest

from oaviz.paths import checkpoints_dir

needs_bundled = pytest.mark.skipif(not (checkpoints_dir() / "beta_vae-demo" / "config.json").is_file(),
                                   reason="bundled β-VAE checkpoint missing (make checkpoints)")


def _ok(at):
    assert not at.exception, [e.value for e in at.exception]


@needs_bundled
def test_reconstructions_page_shows_metrics_and_reacts_to_the_grade_filter(open_page):
    at = open_page("pages/reconstructions.py")
    _ok(at)
    labels = [m.label for m in at.metric]
    assert {"Mean MSE", "Mean PSNR", "Mean SSIM"} <= set(labels)
    mse = float(at.metric[labels.index("Mean MSE")].value)
    assert 0 < mse < 0.2
    assert len(at.image) >= 3 * 6  # original, reconstruction and error map per knee, six knees a page

    def n_listed():
        label = at.number_input(key="recon.page").label  # "Page (of P, N images)"
        return int(label.split(",")[1].split()[0].replace(",", ""))

    from oaviz.data.cohort import load_cohort
    meta = load_cohort(at.selectbox(key="oaviz.cohort").value).metadata
    assert n_listed() == len(meta)
    grades = at.multiselect(key="recon.grades")
    keep = grades.value[:1]
    grades.set_value(keep).run()
    _ok(at)
    assert n_listed() == int((meta["kl"] == keep[0]).sum())
