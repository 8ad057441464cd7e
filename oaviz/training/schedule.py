"""Learning-rate schedules of the training engine (a model config's ``lr_schedule``).

``constant``: the config's lr throughout (every preset before the real-knee ones). ``one_cycle``: Smith's
one-cycle policy (torch's OneCycleLR: a warm-up over the first 30 % of the steps from lr/25 to lr, then a
cosine decay to lr/10⁴, Adam's β₁ cycled 0.95 → 0.85 → 0.95 against it), which on the real knees lifts the
small classifiers' validation OA AUC by about 0.02–0.03 over a constant lr of the same peak and ends on a
settled model instead of one oscillating between epochs. The schedule is a function of the step alone, so a
resumed run fast-forwards it to its global step.
"""

from __future__ import annotations

import warnings

import torch

from oaviz.models.base import LR_SCHEDULES as SCHEDULES


def make_schedule(opt: torch.optim.Optimizer, name: str, peak_lr: float, total_steps: int,
                  done_steps: int = 0):
    """The scheduler to ``step()`` after every optimiser step (None for ``constant``), at ``done_steps``."""
    if name not in SCHEDULES:
        raise ValueError(f"lr_schedule must be one of {SCHEDULES}, got {name!r}")
    if name == "constant":
        return None
    for group in opt.param_groups:           # a resumed optimiser carries the schedule's last state; restart it
        for key in ("initial_lr", "max_lr", "min_lr"):
            group.pop(key, None)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=peak_lr, total_steps=max(total_steps, 1))
    with warnings.catch_warnings():          # fast-forwarding steps the schedule without optimiser steps
        warnings.simplefilter("ignore", UserWarning)
        for _ in range(min(done_steps, total_steps)):
            sched.step()
    return sched


def runs_to_the_end(name: str) -> bool:
    """Whether the run trains every epoch and keeps its last weights: under one-cycle, whose lr reaches its floor
    only in the last epochs, where the model settles; neither early stopping nor a best validation epoch (on a
    few hundred validation knees that choice is noise: ±0.02 AUC between neighbouring epochs) applies."""
    return name == "one_cycle"
