"""services.measure: what a page prints under the images it makes — the JSW measured on each, and the KL
grade a classifier reads that the generating model was not trained against."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
import torch

from oaviz.models.checkpoints import load_checkpoint
from oaviz.paths import checkpoints_dir
from oaviz.services import measure

BUNDLED = checkpoints_dir()
pytestmark = pytest.mark.skipif(not (BUNDLED / "dual_head-dual-demo" / "config.json").is_file(),
                                reason="needs the bundled checkpoints")


def test_the_reader_is_never_the_model_nor_its_judge():
    dual, single = (BUNDLED / n for n in measure.BUNDLED_READERS)
    assert measure.independent_reader() == dual
    # KECAE was trained against multitask-demo's judgement, the diffusion model's risk comes from it too
    assert BUNDLED / "multitask-demo" in measure.partners(BUNDLED / "kecae-demo")
    assert measure.independent_reader(exclude=[BUNDLED / "kecae-demo"]) == dual
    assert measure.independent_reader(exclude=[dual]) == single        # a dual head's own images
    assert measure.independent_reader(exclude=[dual, single]) is None


def test_a_model_sets_own_dual_head_reads_its_images(tmp_path):
    zoo = tmp_path / "zoo"
    shutil.copytree(BUNDLED / "dual_head-single_kl-demo", zoo / "dual_head")
    assert measure.independent_reader(zoo) == zoo / "dual_head"
    assert measure.independent_reader(zoo, exclude=[zoo / "dual_head"]) == BUNDLED / "dual_head-dual-demo"


def test_readings_are_the_readers_own_prediction_and_the_measured_jsw(tiny_cohort):
    from oaviz.data.cohort import load_cohort

    cohort = load_cohort(tiny_cohort)
    x = torch.nn.functional.interpolate(torch.from_numpy(cohort.images_float(np.arange(6))[:, None]),
                                        size=128, mode="bilinear")   # at the reader's input size
    images = x[:, 0].numpy()
    reader = load_checkpoint(BUNDLED / "dual_head-dual-demo", frozen=True)
    r = measure.read_images(images, cohort, reader)
    with torch.no_grad():
        want = reader.model.predict_kl_proba(x).numpy()
    np.testing.assert_allclose(r.kl_probs, want, atol=1e-4)
    np.testing.assert_array_equal(r.pred_kl, want.argmax(1))
    js = measure.measured_jsw(images, cohort)
    np.testing.assert_array_equal(r.jsw.medial_px, js.medial_px)
    assert r.reader == "dual_head-dual-demo"
    assert r.caption(0).startswith(measure.jsw_caption(js, 0)) and f"reads KL {want[0].argmax()}" in r.caption(0)
    plain = measure.read_images(images, cohort)                     # no reader: JSW only
    assert plain.pred_kl is None and plain.caption(0) == measure.jsw_caption(js, 0)
