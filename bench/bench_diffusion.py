"""Seconds per generated future: latent diffusion against pixel-space diffusion.

Both use the same U-Net width and levels, the same DDIM sampler and the same
number of steps (demo presets, 128×128); only the space differs — the VQ-VAE's
4×16×16 latent (the latent time includes encoding the baseline and decoding
the futures) or the 1×128×128 image. Untrained weights: sampling cost does not
depend on the weights. Also prints each U-Net call's forward FLOPs (torch's
FlopCounterMode), which do not depend on how busy the machine is. The two
models are timed in alternation and the best repeat of each is kept, so a
shared machine's load hits both alike; OAVIZ_BENCH_THREADS=1 avoids the
spin-waiting of intra-op threads on a busy CPU.

    .venv/bin/python bench/bench_diffusion.py
    OAVIZ_BENCH_STEPS=20 OAVIZ_BENCH_FUTURES=2 OAVIZ_BENCH_REPEATS=3 OAVIZ_BENCH_THREADS=1 .venv/bin/python bench/bench_diffusion.py
"""

from __future__ import annotations

import os
import time

import torch
from torch.utils.flop_counter import FlopCounterMode

from oaviz.models.base import build_model, make_config
from oaviz.models.latent_diffusion import LatentDiffusion

STEPS = int(os.environ.get("OAVIZ_BENCH_STEPS", "50"))
FUTURES = int(os.environ.get("OAVIZ_BENCH_FUTURES", "4"))
REPEATS = int(os.environ.get("OAVIZ_BENCH_REPEATS", "2"))
PRESET = os.environ.get("OAVIZ_BENCH_PRESET", "demo")
THREADS = int(os.environ.get("OAVIZ_BENCH_THREADS", "0"))      # 0: torch's default


def build(device: torch.device):
    torch.manual_seed(0)
    vq = build_model("vqvae", make_config("vqvae", PRESET))
    latent = LatentDiffusion(make_config("latent_diffusion", PRESET), vqvae=vq).to(device).eval()
    pixel = build_model("pixel_diffusion", make_config("pixel_diffusion", PRESET)).to(device).eval()
    assert latent.config.width == pixel.config.width and latent.config.mults == pixel.config.mults
    return latent, pixel


def unet_gflops(model, image: torch.Tensor) -> float:
    """Forward GFLOPs of one U-Net call for one future."""
    y = model.to_space(image)
    with FlopCounterMode(display=False) as fc, torch.no_grad():
        model.net(torch.randn_like(y), torch.zeros(1, dtype=torch.long, device=y.device), y)
    return fc.get_total_flops() / 1e9


def time_call(model, image: torch.Tensor, seed: int) -> float:
    """Wall time of sample_future(image, FUTURES, STEPS) / FUTURES."""
    if image.is_cuda:
        torch.cuda.synchronize()
    t0 = time.perf_counter()
    model.sample_future(image, n_samples=FUTURES, steps=STEPS, seed=seed)
    if image.is_cuda:
        torch.cuda.synchronize()
    return (time.perf_counter() - t0) / FUTURES


def seconds_per_future(models: dict, image: torch.Tensor) -> dict[str, float]:
    """Best of REPEATS per model, the models timed in alternation."""
    for m in models.values():
        m.sample_future(image, n_samples=1, steps=2, seed=0)          # warm-up
    best = {name: float("inf") for name in models}
    for r in range(REPEATS):
        for name, m in models.items():
            best[name] = min(best[name], time_call(m, image, r))
    return best


def main() -> None:
    if THREADS:
        torch.set_num_threads(THREADS)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    latent, pixel = build(device)
    size = latent.config.image_size
    image = torch.rand(1, 1, size, size, device=device)
    print(f"torch {torch.__version__}, {device}, threads {torch.get_num_threads()}, preset {PRESET}, "
          f"{size}px, U-Net width {latent.config.width} mults {latent.config.mults}, "
          f"{STEPS} DDIM steps, {FUTURES} futures per call, best of {REPEATS}")
    models = {"latent": latent, "pixel": pixel}
    secs = seconds_per_future(models, image)
    rows = []
    for name, m in models.items():
        shape = tuple(m.to_space(image).shape[1:])
        gf = unet_gflops(m, image)
        rows.append((name, shape, gf, secs[name]))
        print(f"{name:<7} space {str(shape):<15} {gf:8.3f} GFLOP/U-Net call  {secs[name]:9.3f} s per future")
    (_, _, gl, sl), (_, _, gp, sp) = rows
    print(f"pixel / latent: {sp / sl:.1f}× slower per future, {gp / gl:.1f}× the U-Net FLOPs")


if __name__ == "__main__":
    main()
