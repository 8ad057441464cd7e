"""How well the bundled future-knee pipeline predicts progression on the synthetic test subjects.

For every test-split knee that has a visit 12 months later: sample futures with the diffusion checkpoint,
read the risk of progression, and measure the medial joint-space width on today's image and on the mean
generated future (on the images, between the condyle and the plateau). Prints the risk's ROC AUC against
true progression (the subject is a progressor, or the true KL rises at the next visit) and the JSW change
of progressors vs non-progressors.

    .venv/bin/python bench/eval_progression.py [CKPT=latent_diffusion-demo] [SAMPLES=4] [STEPS=20]
"""

from __future__ import annotations

import sys
import time

import numpy as np
from sklearn.metrics import roc_auc_score

from oaviz.analysis.image_metrics import joint_space_width
from oaviz.data.cohort import load_cohort
from oaviz.paths import default_cohort_dir
from oaviz.services.future import follow_up_row, generate_futures, load_future_models
from oaviz.services.reconstructions import landmark_setup


def main() -> None:
    ckpt = sys.argv[1] if len(sys.argv) > 1 else "latent_diffusion-demo"
    n, steps = (int(sys.argv[2]) if len(sys.argv) > 2 else 4), (int(sys.argv[3]) if len(sys.argv) > 3 else 20)
    c = load_cohort(default_cohort_dir())
    models = load_future_models(ckpt)
    S = models.image_size
    lm, names, mm = landmark_setup(c, S)
    meta = c.metadata
    rows = [int(r) for r in c.split_indices("test") if follow_up_row(c, int(r), 12) is not None]
    t0 = time.perf_counter()
    risk, truth, d_jsw = [], [], []
    for r in rows:
        res = generate_futures(models, cohort=c, row=r, n_samples=n, steps=steps, seed=0)
        nxt = follow_up_row(c, r, 12)
        rose = meta["kl_true"].iloc[nxt] > meta["kl_true"].iloc[r]
        truth.append(bool(meta["progressor"].iloc[r]) or bool(rose))
        risk.append(res.risk)
        if lm is not None:
            now = joint_space_width(res.today, lm[r], mm, names)["medial_mm"]
            fut = joint_space_width(res.mean, lm[r], mm, names)["medial_mm"]
            d_jsw.append(fut - now)
    dt = time.perf_counter() - t0
    truth, risk, d_jsw = np.array(truth), np.array(risk), np.array(d_jsw, dtype=float)
    print(f"{len(rows)} test knees with a 12-month follow-up ({truth.sum()} progressing), {n} futures × {steps} "
          f"DDIM steps each, {dt:.0f} s ({dt / max(1, len(rows)):.2f} s per knee)")
    print(f"risk ROC AUC against true progression: {roc_auc_score(truth, risk):.3f}")
    print(f"mean risk: progressing {risk[truth].mean():.3f}, stable {risk[~truth].mean():.3f}")
    if len(d_jsw):
        ok = np.isfinite(d_jsw)
        print(f"medial JSW, mean generated future − today (measured on the images, mm): progressing "
              f"{np.nanmean(d_jsw[truth & ok]):+.2f} (n={int((truth & ok).sum())}), stable "
              f"{np.nanmean(d_jsw[~truth & ok]):+.2f} (n={int((~truth & ok).sum())}); "
              f"narrower in {np.mean(d_jsw[truth & ok] < 0):.0%} of progressing knees")


if __name__ == "__main__":
    main()
