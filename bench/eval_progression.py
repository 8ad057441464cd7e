"""How well a future-knee pipeline predicts progression on the synthetic test subjects.

For every test-split knee below KL 4 that has a visit 12 months later: sample futures with the diffusion
checkpoint, read the risk of progression, and measure the medial joint-space width (on the images, between
the condyle and the plateau, at today's landmarks) on today's image and on each generated future. Prints:

- the risk's ROC AUC against a true KL rise at 12 months (kl_true), and against the rater's KL rise (as the
  paper scores it), each with a 95 % CI from a subject-level bootstrap; beside, from the same run, the risk
  when the future is taken to be today (the classifier alone, no diffusion), the risk when it is the real
  follow-up registered onto today (a perfect generator: what the classifier can read), and the Bayes ceiling: the AUC
  of the best risk any image can give, P(KL rises | today's severity), computed from the generator's own
  progression model (in the cohort card, else simulated) and also scored on these very knees;
- the JSW change, generated future − today, of knees whose KL truly rises and of the others (mean ± standard
  error over knees), the same for the real follow-up registered onto today's frame, and for that follow-up
  put through the diffusion's space and decoded as a generated future is (``decode_as_future``): the most
  narrowing the autoencoder lets any generated future show.

    .venv/bin/python bench/eval_progression.py [CKPT=latent_diffusion-demo] [SAMPLES=4] [STEPS=20] [COHORT]
"""

from __future__ import annotations

import sys
import time

import numpy as np
import torch

from oaviz.analysis.image_metrics import joint_space_width
from oaviz.analysis.paired_tests import bootstrap_ci, fast_auc
from oaviz.analysis.progression_risk import progression_risk, progression_target
from oaviz.data.cohort import load_cohort
from oaviz.data.registration import register_follow_up
from oaviz.data.synthetic import SynthConfig, progression_ceiling
from oaviz.paths import default_cohort_dir
from oaviz.services.future import follow_up_row, generate_futures, load_future_models
from oaviz.services.measure import kl_probs
from oaviz.services.model_io import model_inputs
from oaviz.services.reconstructions import landmark_setup

HORIZON = 12


def mean_se(v: np.ndarray) -> str:
    v = v[np.isfinite(v)]
    return f"{v.mean():+.2f} ± {v.std(ddof=1) / np.sqrt(len(v)):.2f} mm (n={len(v)})" if len(v) > 1 else "n/a"


def auc_ci(y, score, groups) -> str:
    auc, lo, hi = bootstrap_ci(fast_auc, np.asarray(y), np.asarray(score), groups=np.asarray(groups), n_boot=2000)
    return f"{auc:.3f} [95 % CI {lo:.3f}–{hi:.3f}]"


def ceiling_of(c):
    """The Bayes ceiling simulated from the generator settings the cohort card records (a visible-risk
    cohort's reads each knee's cues too)."""
    return progression_ceiling(SynthConfig.from_card(c.info.get("generator") or {}), HORIZON)


def main() -> None:
    ckpt = sys.argv[1] if len(sys.argv) > 1 else "latent_diffusion-demo"
    n, steps = (int(sys.argv[2]) if len(sys.argv) > 2 else 4), (int(sys.argv[3]) if len(sys.argv) > 3 else 20)
    c = load_cohort(sys.argv[4] if len(sys.argv) > 4 else default_cohort_dir())
    models = load_future_models(ckpt)
    lm, names, mm = landmark_setup(c, models.image_size)
    if lm is None:
        raise SystemExit("this cohort has no landmarks or pixel spacing: the JSW cannot be measured")
    meta = c.metadata
    pairs = [(int(r), follow_up_row(c, int(r), HORIZON)) for r in c.split_indices("test")]
    pairs = [(r, f) for r, f in pairs if f is not None]
    now_true = meta["kl_true"].to_numpy(int)
    pairs = [(r, f) for r, f in pairs if now_true[r] < 4]      # a KL 4 knee cannot progress
    rows, nxts = np.array([p[0] for p in pairs]), np.array([p[1] for p in pairs])
    rise, _ = progression_target(now_true[rows], now_true[nxts])
    kl = meta["kl"].to_numpy(int)
    rater_rise, rater_ok = progression_target(kl[rows], kl[nxts])
    groups = meta["subject_id"].astype(str).to_numpy()[rows]
    t0 = time.perf_counter()
    risk, no_change, oracle, d_gen, d_real, d_space = [], [], [], [], [], []
    jsw = lambda img, r: joint_space_width(img, lm[r], mm, names)["medial_mm"]  # noqa: E731  (today's frame)
    for r, nxt in pairs:
        res = generate_futures(models, cohort=c, row=r, n_samples=n, steps=steps, seed=0)
        risk.append(res.risk)
        no_change.append(float(progression_risk(res.kl_probs_now[None], res.kl_probs_now[None])[0]))
        now = jsw(res.today, r)
        d_gen.append(np.nanmean([jsw(f, r) for f in res.futures]) - now)
        x_now, x_next = (model_inputs(models.diffusion, c, [i]) for i in (r, nxt))
        real = register_follow_up(x_next, x_now, torch.from_numpy(lm[[nxt]]), torch.from_numpy(lm[[r]]))
        d_real.append(jsw(real[0, 0].numpy(), r) - now)
        d_space.append(jsw(models.diffusion.decode_as_future(x_now, real)[0, 0].numpy(), r) - now)
        oracle.append(float(progression_risk(res.kl_probs_now[None], kl_probs(models.classifier, real))[0]))
    dt = time.perf_counter() - t0
    risk, no_change, oracle = np.array(risk), np.array(no_change), np.array(oracle)
    d_gen, d_real, d_space = (np.array(d, dtype=float) for d in (d_gen, d_real, d_space))
    ceiling = ceiling_of(c)
    cue = meta["progression_cue"].to_numpy(float)[rows] if "progression_cue" in meta else None
    best = ceiling.risk_at(meta["severity"].to_numpy(float)[rows], cue)
    print(f"{models.path.name}: {len(rows)} test knees below KL 4 with a {HORIZON}-month follow-up "
          f"({len(np.unique(groups))} subjects; true KL rises in {rise.sum()}, rater's KL in "
          f"{rater_rise[rater_ok].sum()}), {n} futures × {steps} DDIM steps each, {dt:.0f} s")
    print(f"risk ROC AUC against a true KL rise: {auc_ci(rise, risk, groups)} "
          f"(mean risk: rising {risk[rise].mean():.3f}, others {risk[~rise].mean():.3f})")
    print(f"  against the rater's KL rise (rater KL < 4 today): "
          f"{auc_ci(rater_rise[rater_ok], risk[rater_ok], groups[rater_ok])}")
    print(f"  reference, future taken to be today (classifier only): {auc_ci(rise, no_change, groups)}")
    print(f"  reference, the real registered follow-up taken as the future (a perfect generator; it also carries "
          f"the outcome): {auc_ci(rise, oracle, groups)}")
    print(f"  Bayes ceiling of the generator's progression model, P(rise | today's severity): "
          f"{ceiling.auc:.3f} (population, simulated); on these knees {auc_ci(rise, best, groups)}")
    print(f"  model / ceiling: {fast_auc(rise, risk) / ceiling.auc:.2f}")
    print(f"medial JSW, generated future − today (mean over each knee's futures): KL rises {mean_se(d_gen[rise])}, "
          f"others {mean_se(d_gen[~rise])}; narrower in {np.mean(d_gen[rise] < 0):.0%} of rising knees")
    print(f"medial JSW, real follow-up (registered) − today: KL rises {mean_se(d_real[rise])}, "
          f"others {mean_se(d_real[~rise])}")
    print(f"  the same follow-up through the diffusion's autoencoder, decoded as a future (a perfect latent): "
          f"KL rises {mean_se(d_space[rise])}, others {mean_se(d_space[~rise])}")


if __name__ == "__main__":
    main()
