"""What separates a knee's visits once the follow-up is registered onto the baseline: disease or film?

For every train-split knee with a visit 12 months later, at the diffusion model's 128 px, the follow-up is
registered onto the baseline as the diffusion model's training does (16-landmark similarity, grey-level
gain and offset: ``oaviz.data.registration.register_follow_up``). Prints, for the cohort given:

- the rms grey-level difference follow-up − baseline (images in [0, 1]), whole image and central
  80 × 80 px, before registration, after the geometry only and after the grey-level match;
- the medial JSW change (on the images, at the baseline's landmarks) of knees whose true KL rises and of
  the others: mean, SD and the SD's share of the rising knees' mean change.

Compare two cohorts of the same seed, e.g. the default (``visit_acquisition="subject"``) and one made with
``--visit-acquisition independent``:

    .venv/bin/python bench/eval_visit_change.py [COHORT ...]
"""

from __future__ import annotations

import sys

import numpy as np
import torch

from oaviz.analysis.image_metrics import joint_space_width
from oaviz.analysis.progression_risk import progression_target
from oaviz.data.cohort import load_cohort
from oaviz.data.registration import match_intensity, warp_follow_up
from oaviz.data.transforms import resize_images
from oaviz.paths import default_cohort_dir
from oaviz.services.future import follow_up_row
from oaviz.services.reconstructions import landmark_setup

SIZE, HORIZON, CENTRE = 128, 12, slice(24, 104)


def rms(a: torch.Tensor, b: torch.Tensor, region=slice(None)) -> float:
    return float((a - b)[..., region, region].pow(2).mean().sqrt())


def report(path: str) -> None:
    c = load_cohort(path)
    lm, names, mm = landmark_setup(c, SIZE)
    if lm is None:
        raise SystemExit(f"{path}: no landmarks or pixel spacing: follow-ups cannot be registered")
    pairs = [(int(r), follow_up_row(c, int(r), HORIZON)) for r in c.split_indices("train")]
    rows, nxt = map(np.array, zip(*[(r, f) for r, f in pairs if f is not None]))
    scale = 65535.0 if c.images.dtype == np.uint16 else 255.0
    now, later = (resize_images(c.images[idx], SIZE, scale) for idx in (rows, nxt))   # [n, 1, 128, 128]
    warped = warp_follow_up(later, torch.from_numpy(lm[nxt]), torch.from_numpy(lm[rows]))
    matched = match_intensity(warped, now)              # = register_follow_up(later, now, …)
    kl = c.metadata["kl_true"].to_numpy(int)
    rise, _ = progression_target(kl[rows], kl[nxt])
    jsw = lambda imgs: np.array([joint_space_width(x[0].numpy(), lm[r], mm, names)["medial_mm"]  # noqa: E731
                                 for x, r in zip(imgs, rows)])
    d = jsw(matched) - jsw(now)
    gen = c.info.get("generator", {})
    print(f"{path}: {len(rows)} train pairs ({rise.sum()} with a true KL rise), visit_acquisition "
          f"{gen.get('visit_acquisition', 'independent')}")
    print("  rms follow-up − baseline (whole / centre): " + ", ".join(
        f"{name} {rms(x, now):.4f} / {rms(x, now, CENTRE):.4f}"
        for name, x in (("as filmed", later), ("registered", warped), ("+ grey-level match", matched))))
    rising, stable = d[rise & np.isfinite(d)], d[~rise & np.isfinite(d)]
    print(f"  medial JSW change: KL rises {rising.mean():+.3f} mm (SD {rising.std(ddof=1):.3f}), others "
          f"{stable.mean():+.3f} mm (SD {stable.std(ddof=1):.3f}); others' SD / rising mean "
          f"{stable.std(ddof=1) / abs(rising.mean()):.2f}")


if __name__ == "__main__":
    for p in sys.argv[1:] or [str(default_cohort_dir())]:
        report(p)
