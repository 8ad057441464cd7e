"""How well a future-knee pipeline predicts progression on the synthetic test subjects.

For every test-split knee that has a visit 12 months later: sample futures with the diffusion checkpoint,
read the risk of progression, and measure the medial joint-space width (on the images, between the condyle
and the plateau, at today's landmarks) on today's image and on each generated future. Prints:

- the risk's ROC AUC against true progression (the subject is a progressor, or the true KL rises at the
  next visit), beside two references from the same run: the risk when the future is taken to be today
  (the classifier alone, no diffusion), and the ceiling an image can give on this cohort (the generator's
  own progression odds for the true baseline grade: progression itself is drawn at random);
- the JSW change, generated future − today, of progressing and stable knees (mean ± standard error over
  knees), and the same for the real follow-up registered onto today's frame.

    .venv/bin/python bench/eval_progression.py [CKPT=latent_diffusion-demo] [SAMPLES=4] [STEPS=20] [COHORT]
"""

from __future__ import annotations

import sys
import time

import numpy as np
import torch
from sklearn.metrics import roc_auc_score

from oaviz.analysis.image_metrics import joint_space_width
from oaviz.analysis.progression_risk import progression_risk
from oaviz.data.cohort import load_cohort
from oaviz.data.registration import register_follow_up
from oaviz.data.synthetic import PROGRESSION_RELATIVE_RISK
from oaviz.paths import default_cohort_dir
from oaviz.services.future import follow_up_row, generate_futures, load_future_models
from oaviz.services.model_io import model_inputs
from oaviz.services.reconstructions import landmark_setup


def mean_se(v: np.ndarray) -> str:
    v = v[np.isfinite(v)]
    return f"{v.mean():+.2f} ± {v.std(ddof=1) / np.sqrt(len(v)):.2f} mm (n={len(v)})" if len(v) > 1 else "n/a"


def main() -> None:
    ckpt = sys.argv[1] if len(sys.argv) > 1 else "latent_diffusion-demo"
    n, steps = (int(sys.argv[2]) if len(sys.argv) > 2 else 4), (int(sys.argv[3]) if len(sys.argv) > 3 else 20)
    c = load_cohort(sys.argv[4] if len(sys.argv) > 4 else default_cohort_dir())
    models = load_future_models(ckpt)
    lm, names, mm = landmark_setup(c, models.image_size)
    if lm is None:
        raise SystemExit("this cohort has no landmarks or pixel spacing: the JSW cannot be measured")
    meta = c.metadata
    rows = [int(r) for r in c.split_indices("test") if follow_up_row(c, int(r), 12) is not None]
    t0 = time.perf_counter()
    risk, no_change, truth, d_gen, d_real, k_true = [], [], [], [], [], []
    jsw = lambda img, r: joint_space_width(img, lm[r], mm, names)["medial_mm"]  # noqa: E731  (today's frame)
    for r in rows:
        res = generate_futures(models, cohort=c, row=r, n_samples=n, steps=steps, seed=0)
        nxt = follow_up_row(c, r, 12)
        truth.append(bool(meta["progressor"].iloc[r]) or bool(meta["kl_true"].iloc[nxt] > meta["kl_true"].iloc[r]))
        k_true.append(int(meta["kl_true"].iloc[r]))
        risk.append(res.risk)
        no_change.append(float(progression_risk(res.kl_probs_now[None], res.kl_probs_now[None])[0]))
        now = jsw(res.today, r)
        d_gen.append(np.nanmean([jsw(f, r) for f in res.futures]) - now)
        x_now, x_next = (model_inputs(models.diffusion, c, [i]) for i in (r, nxt))
        real = register_follow_up(x_next, x_now, torch.from_numpy(lm[[nxt]]), torch.from_numpy(lm[[r]]))
        d_real.append(jsw(real[0, 0].numpy(), r) - now)
    dt = time.perf_counter() - t0
    truth, risk, no_change = np.array(truth), np.array(risk), np.array(no_change)
    d_gen, d_real = np.array(d_gen, dtype=float), np.array(d_real, dtype=float)
    print(f"{models.path.name}: {len(rows)} test knees with a 12-month follow-up ({truth.sum()} progressing), "
          f"{n} futures × {steps} DDIM steps each, {dt:.0f} s ({dt / max(1, len(rows)):.2f} s per knee)")
    print(f"risk ROC AUC against true progression: {roc_auc_score(truth, risk):.3f} "
          f"(mean risk: progressing {risk[truth].mean():.3f}, stable {risk[~truth].mean():.3f})")
    print(f"  reference, future taken to be today (classifier only): {roc_auc_score(truth, no_change):.3f}")
    print(f"  ceiling on this cohort (generator's progression odds for the true baseline KL): "
          f"{roc_auc_score(truth, PROGRESSION_RELATIVE_RISK[np.array(k_true)]):.3f}")
    print(f"medial JSW, generated future − today (mean over each knee's futures): progressing {mean_se(d_gen[truth])}, "
          f"stable {mean_se(d_gen[~truth])}; narrower in {np.mean(d_gen[truth] < 0):.0%} of progressing knees")
    print(f"medial JSW, real follow-up (registered) − today: progressing {mean_se(d_real[truth])}, "
          f"stable {mean_se(d_real[~truth])}")


if __name__ == "__main__":
    main()
