"""Training speed per model and preset on this machine, against the model's FLOP count.

For each registered model and preset: parameters, forward GFLOPs per image
(torch's FlopCounterMode), measured training images/s (forward + backward +
Adam step, after warm-up), and the achieved GFLOP/s taking a training step as
about 3× the forward FLOPs. The ratio column compares each preset's
throughput with the demo preset of the same model, measured in the same run.

    .venv/bin/python bench/bench_train.py            # all models, both presets
    OAVIZ_BENCH_MODELS=beta_vae .venv/bin/python bench/bench_train.py
"""

from __future__ import annotations

import os
import time

import torch
from torch.utils.flop_counter import FlopCounterMode

from oaviz.models.base import build_model, make_config

MODELS = os.environ.get("OAVIZ_BENCH_MODELS", "beta_vae,vaesim,cnn,dual_head").split(",")
STEPS = int(os.environ.get("OAVIZ_BENCH_STEPS", "4"))
BATCH = 16


def batch(size: int) -> dict:
    g = torch.Generator().manual_seed(0)
    return {"image": torch.rand(BATCH, 1, size, size, generator=g), "kl": torch.randint(0, 5, (BATCH,), generator=g),
            "oa": torch.randint(0, 2, (BATCH,), generator=g).float(), "label": torch.zeros(BATCH, dtype=torch.long),
            "landmarks": torch.rand(BATCH, 16, 2, generator=g)}


def forward_flops(model, size: int) -> float:
    model.eval()
    with FlopCounterMode(display=False) as fc, torch.no_grad():
        model.loss(batch(size), 0)
    model.train()
    return fc.get_total_flops() / BATCH


def train_rate(model, size: int) -> float:
    opt = torch.optim.Adam(model.parameters(), 1e-3)
    b = batch(size)
    for step in range(STEPS + 1):
        if step == 1:
            t0 = time.perf_counter()
        out = model.loss(b, step)
        opt.zero_grad()
        out.total.backward()
        opt.step()
        model.on_train_step_end(b, step)
    return STEPS * BATCH / (time.perf_counter() - t0)


def main() -> None:
    print(f"torch {torch.__version__}, threads {torch.get_num_threads()}, batch {BATCH}, {STEPS} timed steps")
    print(f"{'model':<10} {'preset':<6} {'input':>7} {'params M':>9} {'GFLOP/img':>10} {'img/s':>8} "
          f"{'GFLOP/s':>8} {'vs demo':>8}")
    for name in MODELS:
        base = None
        for preset in ("demo", "paper"):
            cfg = make_config(name, preset)
            torch.manual_seed(0)
            m = build_model(name, cfg)
            size = int(cfg.image_size)
            params = sum(p.numel() for p in m.parameters()) / 1e6
            gf = forward_flops(m, size) / 1e9
            rate = train_rate(m, size)
            base = base or rate
            print(f"{name:<10} {preset:<6} {size:>4}px {params:>9.2f} {gf:>10.3f} {rate:>8.1f} "
                  f"{3 * gf * rate:>8.1f} {rate / base:>7.2f}×")


if __name__ == "__main__":
    main()
