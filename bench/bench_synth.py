"""Synthetic cohort generation speed: images per second at 224×224, knee and hip.

Target (issue 2): 2,000 knees at 224×224 in under a minute on two cores; issue 13 asks ≥ 100 knees/s.
Prints the time for 2,000 knees of each rendering (film: the default cohort's; schematic) and 2,000 hips,
and the determinism check (same seed, same bytes).
"""

from __future__ import annotations

import hashlib
import os
import time

import torch

from oaviz.data.synthetic import SynthConfig, generate_arrays


def run(joint: str, subjects: int, visits=(0, 12, 24), size=224, seed=0, style="schematic"):
    t0 = time.perf_counter()
    images, masks, meta, _ = generate_arrays(SynthConfig(joint=joint, subjects=subjects, visits=visits,
                                                         size=size, seed=seed, style=style))
    dt = time.perf_counter() - t0
    return dt, len(images), hashlib.sha256(images.tobytes()).hexdigest()[:12]


def main() -> None:
    print(f"torch threads: {torch.get_num_threads()}, cpus: {os.cpu_count()}")
    n_sub = int(os.environ.get("OAVIZ_BENCH_SUBJECTS", "667"))  # 667 × 3 visits ≈ 2,000 images
    for joint, style in (("knee", "film"), ("knee", "schematic"), ("hip", "schematic")):
        dt, n, h = run(joint, n_sub, style=style)
        print(f"{joint} ({style}): {n} images 224×224 in {dt:.1f} s = {n / dt:.0f} images/s "
              f"(projected 2,000 images: {2000 * dt / n:.1f} s; sha {h})")
    dt2, n2, h2 = run("knee", 20, style="film")
    dt3, n3, h3 = run("knee", 20, style="film")
    print(f"determinism: same seed twice -> {'identical' if h2 == h3 else 'DIFFERENT'} bytes")


if __name__ == "__main__":
    main()
