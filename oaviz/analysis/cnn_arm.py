"""The probe lab's end-to-end baseline: a CNN trained on the very rows and labels the frozen probes saw.

target 'oa' trains the thesis CNN (oaviz.models.cnn); 'kl' trains the dual-head encoder with only
its KL head. Every label fraction gets the same optimiser-step budget (``cnn_step_budget``).
"""

from __future__ import annotations

import math
from typing import Callable

import numpy as np

from oaviz.analysis.probes import check_grid, label_plan, score, target_labels
from oaviz.errors import ConfigError


def cnn_inputs(cohort, train_idx: np.ndarray, test_idx: np.ndarray, size: int):
    """(train images, test images) as float tensors [n, 1, size, size] in [0, 1], resized once for all cells."""
    from oaviz.data.transforms import resize_images

    scale = 65535.0 if cohort.images.dtype == np.uint16 else 255.0
    return (resize_images(cohort.images[np.asarray(train_idx)], size, scale),
            resize_images(cohort.images[np.asarray(test_idx)], size, scale))


def baseline_config(target: str, preset: str = "demo", image_size: int | None = None):
    """(model type, config) of the end-to-end baseline for a target: the thesis CNN for 'oa', the
    dual-head encoder with only its KL head for 'kl'."""
    from oaviz.models.base import make_config

    overrides = {} if image_size is None else {"image_size": int(image_size)}
    if target == "oa":
        return "cnn", make_config("cnn", preset, overrides)
    return "dual_head", make_config("dual_head", preset, {**overrides, "variant": "single_kl"})


def cnn_step_budget(n_train: int, epochs: int, batch_size: int) -> int:
    """Optimiser steps every label fraction gets: ``epochs`` passes over the full training split.

    Fixed epochs would give a 5 % subset a twentieth of the updates (about 30 steps), so the
    CNN would lose at low label fractions for want of training, not of labels.
    """
    return int(epochs) * max(1, math.ceil(int(n_train) / int(batch_size)))


def cnn_arm(cohort, train_idx: np.ndarray, test_idx: np.ndarray, labels: np.ndarray, fraction: float,
            noise: float, seed: int, epochs: int | None = None, preset: str = "demo", *, target: str = "oa",
            noise_kind: str = "symmetric", y_kind: str = "kl", image_size: int | None = None,
            batch_size: int | None = None, inputs=None, device: str = "cpu",
            on_epoch: Callable[[int, float], None] | None = None) -> list[tuple]:
    """Train the end-to-end baseline on one cell's subset and noisy labels; tidy rows like ProbeGrid.

    labels: labels [N] of all cohort rows (KL or OA by ``y_kind``); the subset and
    noise come from ``label_plan`` with the same arguments as the frozen grid,
    so the CNN sees exactly the rows and labels the probes saw. target 'oa'
    trains the thesis CNN (oaviz.models.cnn, which standardises its input); 'kl'
    trains the dual-head encoder with only its KL head (variant single_kl).
    Budget: every fraction gets the same number of optimiser steps,
    ``cnn_step_budget(len(train_idx), epochs, batch_size)`` (``epochs`` = passes
    at 100 % labels), cycling reshuffled passes over its subset; no early stopping
    (nothing clean to stop on). ``inputs`` from ``cnn_inputs`` saves resizing per
    cell. ``on_epoch(k, mean_loss)`` reports after each ``epochs``-th of the budget.
    """
    import torch

    from oaviz.models.base import build_model

    train_idx, test_idx = np.asarray(train_idx), np.asarray(test_idx)
    labels = np.asarray(labels)
    check_grid([fraction], [noise], noise_kind, target, "logreg", y_kind)
    pos, y_noisy = label_plan(labels[train_idx], fraction, noise, noise_kind, seed, target, y_kind)
    name, config = baseline_config(target, preset, image_size)
    epochs = int(epochs or config.epochs)
    batch_size = int(batch_size or config.batch_size)
    size = int(config.image_size)
    if inputs is None:
        inputs = cnn_inputs(cohort, train_idx, test_idx, size)
    x_tr, x_te = inputs[0][pos], inputs[1]
    if x_tr.shape[-1] != size:
        raise ConfigError(f"inputs are {x_tr.shape[-1]} px but the model expects {size}")
    budget = cnn_step_budget(len(train_idx), epochs, batch_size)
    report_every = max(1, budget // epochs)
    torch.manual_seed(int(seed))
    model = build_model(name, config).to(device)
    opt = torch.optim.Adam(model.parameters(), lr=config.lr)
    yt = torch.from_numpy(y_noisy)
    g = torch.Generator().manual_seed(int(seed))
    model.train()
    step, total, n, perm = 0, 0.0, 0, torch.zeros(0, dtype=torch.long)
    while step < budget:
        if len(perm) == 0:
            perm = torch.randperm(len(pos), generator=g)
        # a last short batch of 1 cannot train BatchNorm: take it with the next pass's first
        b, perm = perm[:batch_size], perm[batch_size:]
        if len(b) < 2 and len(pos) >= 2:
            extra = torch.randperm(len(pos), generator=g)
            b, perm = torch.cat([b, extra[:batch_size - len(b)]]), extra[batch_size - len(b):]
        batch = {"image": x_tr[b].to(device), "oa": yt[b].float().to(device), "kl": yt[b].to(device)}
        out = model.loss(batch, step)
        opt.zero_grad(set_to_none=True)
        out.total.backward()
        opt.step()
        total += float(out.total.detach()) * len(b)
        n += len(b)
        step += 1
        if step % report_every == 0:   # budget = epochs × report_every: exactly ``epochs`` reports
            if on_epoch is not None:
                on_epoch(step // report_every - 1, total / max(n, 1))
            total, n = 0.0, 0
    model.eval()
    with torch.no_grad():
        ps = []
        for i in range(0, len(x_te), 128):
            xb = x_te[i:i + 128].to(device)
            if target == "oa":
                p1 = model.predict_proba(xb).double().cpu().numpy()
                ps.append(np.stack([1 - p1, p1], 1))
            else:
                ps.append(model.predict_kl_proba(xb).double().cpu().numpy())
    proba = np.concatenate(ps)
    y_te = target_labels(labels[test_idx], target, y_kind)
    return [("cnn", float(fraction), float(noise), noise_kind, int(seed), m, v)
            for m, v in score(y_te, proba, target).items()]
