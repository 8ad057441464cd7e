"""Does the bundled KECAE exchange what matters, and does its augmentation set help a classifier?

1. Flip rate: for random KL 0 / KL 2 test pairs, the share of exchanged images that the model's own
   judge (its discriminator, or the frozen classifier it was trained against) calls the *other* grade
   (KL 0 knee + KL 2 key -> KL 2, and the reverse). Because the exchange was optimised against that
   judge, two checks that it did not optimise: the flip rate under an independent KL classifier
   (INDEPENDENT, default the pages' reader, ``measure.independent_reader``), and the medial joint-space
   width measured on the images (exchanged − reconstruction: a KL 2 key should narrow a KL 0 knee, a KL 0 key widen a KL 2).
2. Augmentation, the KECAE paper's protocol: a KL 0 vs KL 2 logistic-regression classifier on 32×32
   pixels trained on the full training set T (every KL 0 / KL 2 knee of the train split) against the same
   classifier trained on T ∪ T', T' the exchanged images of random pairs from T (labels swapped as the
   exchange implies), scored on the test split; mean ± std over seeds (seeds draw T'). The KECAE and its
   judge were trained on T's labels too, so no label outside T reaches the augmented classifier. (The old
   "40 labelled images" variant augmented from a KECAE and judge trained on all 810 labelled knees: it
   leaked labels and is gone; a generator trained on the labelled subset alone is not built here.)

    .venv/bin/python bench/eval_exchange.py [CKPT=kecae-demo] [PAIRS_PER_IMAGE=1] [SEEDS=5] [INDEPENDENT]
"""

from __future__ import annotations

import sys

import numpy as np
import torch
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from torch.nn import functional as F

from oaviz.analysis.image_metrics import joint_space_width
from oaviz.data.cohort import load_cohort
from oaviz.paths import default_cohort_dir
from oaviz.services.exchange import exchange_images, require_kecae
from oaviz.services.measure import independent_reader, kl_probs
from oaviz.services.model_io import model_inputs
from oaviz.services.reconstructions import landmark_setup
from oaviz.training.checkpoint import load_checkpoint

PIX = 32


def pixels(x: torch.Tensor) -> np.ndarray:
    """[n, 1, S, S] -> [n, PIX*PIX] area-averaged."""
    return F.adaptive_avg_pool2d(x, PIX).flatten(1).numpy()


def grade_rows(c, split: str, grade: int) -> np.ndarray:
    m = c.metadata
    return np.flatnonzero(((m["split"] == split) & (m["kl"] == grade)).to_numpy())


def exchanged(model, c, rows_a, rows_b, batch: int = 32, recon: bool = False):
    """Images and P(grade_b) of the exchange for pairs (rows_a[i], rows_b[i]); with ``recon`` the
    reconstructions too."""
    outs, probs = [], []
    keys = ("exchanged_a", "exchanged_b") + (("recon_a", "recon_b") if recon else ())
    for i in range(0, len(rows_a), batch):
        xa, xb = model_inputs(model, c, rows_a[i:i + batch]), model_inputs(model, c, rows_b[i:i + batch])
        imgs, p = exchange_images(model, xa, xb)
        outs.append([imgs[k] for k in keys])
        probs.append((p["exchanged_a"], p["exchanged_b"], p["image_a"], p["image_b"]))
    images = [torch.cat([o[j] for o in outs]) for j in range(len(keys))]
    pa, pb, ra, rb = (torch.cat([p[k] for p in probs]).numpy() for k in range(4))
    return (*images[:2], pa, pb, ra, rb, *images[2:])


def independent_flips(path, ga: int, gb: int, ea, eb) -> tuple[float, float]:
    """Flip rates of exchanged images under another KL classifier (``measure.kl_probs``, as the pages read
    them): P(b) vs P(a) from its KL probabilities."""
    clf = load_checkpoint(path).model
    pa, pb = kl_probs(clf, ea), kl_probs(clf, eb)
    return float((pa[:, gb] > pa[:, ga]).mean()), float((pb[:, ga] > pb[:, gb]).mean())


def jsw_change(c, rows, exchanged_imgs, recon_imgs) -> np.ndarray:
    """Medial JSW (mm) of exchanged − reconstructed image, at each knee's own landmarks."""
    lm, names, mm = landmark_setup(c, exchanged_imgs.shape[-1])
    if lm is None:
        return np.array([np.nan])
    return np.array([joint_space_width(exchanged_imgs[i, 0].numpy(), lm[r], mm, names)["medial_mm"]
                     - joint_space_width(recon_imgs[i, 0].numpy(), lm[r], mm, names)["medial_mm"]
                     for i, r in enumerate(rows)])


def main() -> None:
    ckpt = sys.argv[1] if len(sys.argv) > 1 else "kecae-demo"
    per_image = float(sys.argv[2]) if len(sys.argv) > 2 else 1.0
    seeds = int(sys.argv[3]) if len(sys.argv) > 3 else 5
    loaded = require_kecae(ckpt)
    model, cfg = loaded.model, loaded.model.config
    c = load_cohort(default_cohort_dir())
    ga, gb = int(cfg.grade_a), int(cfg.grade_b)
    rng = np.random.default_rng(0)
    ta, tb = grade_rows(c, "test", ga), grade_rows(c, "test", gb)
    n = min(len(ta), len(tb), 200)
    pa_rows, pb_rows = rng.choice(ta, n, replace=False), rng.choice(tb, n, replace=False)
    ea, eb, pa, pb, ra, rb, rec_a, rec_b = exchanged(model, c, pa_rows, pb_rows, recon=True)
    print(f"{loaded.path.name}: discriminator {cfg.discriminator}; {n} test pairs KL {ga} / KL {gb}")
    print(f"discriminator on the real images: KL {ga} judged KL {gb} {np.mean(ra >= 0.5):.0%}, "
          f"KL {gb} judged KL {gb} {np.mean(rb >= 0.5):.0%}")
    print(f"flip rate: KL {ga} knee with the KL {gb} key judged KL {gb}: {np.mean(pa >= 0.5):.0%}; "
          f"KL {gb} knee with the KL {ga} key judged KL {ga}: {np.mean(pb < 0.5):.0%}; "
          f"both: {np.mean(np.r_[pa >= 0.5, pb < 0.5]):.0%}")
    other = sys.argv[4] if len(sys.argv) > 4 else independent_reader(exclude=[loaded.path])   # the pages' reader
    fa, fb = independent_flips(other, ga, gb, ea, eb)
    print(f"independent judge {other}: flips KL {ga} -> KL {gb} {fa:.0%}, KL {gb} -> KL {ga} {fb:.0%}, "
          f"both {(fa + fb) / 2:.0%}")
    da, db = jsw_change(c, pa_rows, ea, rec_a), jsw_change(c, pb_rows, eb, rec_b)
    print(f"medial JSW, exchanged − reconstruction: KL {ga} knee with the KL {gb} key {np.nanmean(da):+.2f} mm "
          f"(narrower in {np.nanmean(da < 0):.0%}), KL {gb} knee with the KL {ga} key {np.nanmean(db):+.2f} mm "
          f"(wider in {np.nanmean(db > 0):.0%})")

    test = np.r_[ta, tb]
    y_test = np.r_[np.zeros(len(ta)), np.ones(len(tb))]
    X_test = pixels(model_inputs(model, c, test))
    tra, trb = grade_rows(c, "train", ga), grade_rows(c, "train", gb)
    X = pixels(model_inputs(model, c, np.r_[tra, trb]))
    y = np.r_[np.zeros(len(tra)), np.ones(len(trb))]
    clf = make_pipeline(StandardScaler(), LogisticRegression(max_iter=3000, C=0.1))
    base = roc_auc_score(y_test, clf.fit(X, y).predict_proba(X_test)[:, 1])   # deterministic: one value
    k = int(per_image * min(len(tra), len(trb)))
    aug = []
    for s in range(seeds):
        r = np.random.default_rng(100 + s)
        ia, ib = r.choice(tra, k), r.choice(trb, k)
        ea, eb, *_ = exchanged(model, c, ia, ib)
        X2 = np.r_[X, pixels(ea), pixels(eb)]
        y2 = np.r_[y, np.ones(k), np.zeros(k)]  # A + B's key looks like B's grade, and the reverse
        aug.append(roc_auc_score(y_test, clf.fit(X2, y2).predict_proba(X_test)[:, 1]))
    gain = np.array(aug) - base
    print(f"KL {ga} vs KL {gb} classifier (32×32 pixels, logistic regression), test AUC: T ({len(y)} train "
          f"images) {base:.3f}; T ∪ T' (+{2 * k} exchanged) {np.mean(aug):.3f} ± {np.std(aug, ddof=1):.3f} over "
          f"{seeds} draws of T'; gain {np.mean(gain):+.3f} ± {np.std(gain, ddof=1):.3f}")

if __name__ == "__main__":
    main()
