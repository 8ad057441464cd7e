"""The probe lab's end-to-end CNN baseline: the grid's subsets and labels, and one step budget for every fraction."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from oaviz.analysis import cnn_arm, probes
from oaviz.data.cohort import load_cohort
from oaviz.models.base import build_model, make_config


@pytest.fixture
def one_torch_thread():
    # Tiny convolutions: a second thread only adds contention on the shared 2-core machine.
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def test_cnn_arm_trains_on_the_grid_subset(tiny_cohort, one_torch_thread):
    c = load_cohort(tiny_cohort)
    kl = c.metadata["kl"].to_numpy(int)
    tr, te = c.split_indices("train"), c.split_indices("test")
    inputs = cnn_arm.cnn_inputs(c, tr, te, 32)
    assert inputs[0].shape == (len(tr), 1, 32, 32)
    epochs = []
    rows = cnn_arm.cnn_arm(c, tr, te, kl, 0.25, 0.1, seed=0, epochs=2, image_size=32, batch_size=8,
                          inputs=inputs, on_epoch=lambda e, loss: epochs.append(loss))
    assert len(epochs) == 2 and all(np.isfinite(epochs))
    df = pd.DataFrame(rows, columns=probes.COLUMNS)
    assert set(df.metric) == set(probes.METRICS["oa"]) and (df.feature == "cnn").all()
    assert (df.fraction == 0.25).all() and (df.noise == 0.1).all()
    again = cnn_arm.cnn_arm(c, tr, te, kl, 0.25, 0.1, seed=0, epochs=2, image_size=32, batch_size=8,
                           inputs=inputs)
    assert pd.DataFrame(again, columns=probes.COLUMNS).equals(df)  # seeded
    kl_rows = cnn_arm.cnn_arm(c, tr, te, kl, 0.25, 0.0, seed=0, epochs=1, image_size=32, target="kl",
                             inputs=inputs)
    assert {r[5] for r in kl_rows} == set(probes.METRICS["kl"])


def test_cnn_arm_gives_every_label_fraction_the_same_optimiser_steps(tiny_cohort, one_torch_thread, monkeypatch):
    c = load_cohort(tiny_cohort)
    kl = c.metadata["kl"].to_numpy(int)
    tr, te = c.split_indices("train"), c.split_indices("test")
    inputs = cnn_arm.cnn_inputs(c, tr, te, 32)
    steps = []
    real_step = torch.optim.Adam.step
    monkeypatch.setattr(torch.optim.Adam, "step", lambda self, *a, **k: (steps.append(1), real_step(self, *a, **k)))
    counts = {}
    for f in (0.1, 1.0):
        steps.clear()
        cnn_arm.cnn_arm(c, tr, te, kl, f, 0.0, seed=0, epochs=2, image_size=32, batch_size=8, inputs=inputs)
        counts[f] = len(steps)
    expected = cnn_arm.cnn_step_budget(len(tr), 2, 8)
    assert expected == 2 * -(-len(tr) // 8)
    assert counts == {0.1: expected, 1.0: expected}


def test_bundled_cnn_presets_standardise_their_input():
    assert make_config("cnn", "demo").standardise_input and make_config("cnn", "paper").standardise_input
    m = build_model("cnn", make_config("cnn", "demo", {"image_size": 32, "widths": [4, 4, 4, 4], "hidden": 8}))
    m.train()
    x = 0.6 + 0.2 * torch.rand(16, 1, 32, 32)        # a bright, low-contrast batch
    z = m.input_norm(x)
    assert abs(float(z.mean())) < 1e-4 and abs(float(z.std()) - 1) < 1e-2
