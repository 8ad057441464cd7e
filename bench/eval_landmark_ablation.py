"""KL accuracy of the multi-task classifier with and without its landmark loss, on the test split.

    .venv/bin/python bench/eval_landmark_ablation.py CKPT [CKPT …]
    e.g. checkpoints/multitask-demo (δ = 0.5) and a run trained with --set landmark_weight=0

Prints, per checkpoint: δ, test KL accuracy, macro-F1, quadratic-weighted kappa, OA AUC from the KL
probabilities, and the mean landmark error in pixels of the model's input.
"""

from __future__ import annotations

import sys

import numpy as np
import torch
from sklearn.metrics import accuracy_score, cohen_kappa_score, f1_score, roc_auc_score

from oaviz.analysis.paired_tests import expected_grade
from oaviz.data.cohort import load_cohort
from oaviz.models.multitask import landmark_error
from oaviz.paths import default_cohort_dir
from oaviz.services.model_io import as_checkpoint, eval_mode, model_inputs


def main() -> None:
    c = load_cohort(default_cohort_dir())
    rows = c.split_indices("test")
    kl = c.metadata["kl"].to_numpy(dtype=float, na_value=np.nan)[rows]
    ok = np.isfinite(kl)
    rows, y = rows[ok], kl[ok].astype(int)
    lm = c.landmarks()
    for ck in sys.argv[1:] or ["multitask-demo"]:
        loaded = as_checkpoint(ck)
        model = loaded.model
        x = model_inputs(model, c, rows)
        with eval_mode(model):
            out = [model(x[i:i + 64]) for i in range(0, len(x), 64)]
        p = torch.cat([torch.softmax(o["kl"], 1) for o in out]).numpy()
        pred = p.argmax(1)
        line = (f"{loaded.path.name}: δ={model.config.landmark_weight:g}  KL accuracy {accuracy_score(y, pred):.3f}  "
                f"macro-F1 {f1_score(y, pred, average='macro'):.3f}  QWK {cohen_kappa_score(y, expected_grade(p), weights='quadratic'):.3f}  "
                f"OA AUC {roc_auc_score(y >= 2, p[:, 2:].sum(1)):.3f}")
        if lm is not None:
            h, w = c.image_size
            true = torch.from_numpy(lm[rows] / np.array([w, h], np.float32))
            predl = torch.cat([o["landmarks"] for o in out])
            _, err_px = landmark_error(predl, true, int(model.config.image_size))
            line += f"  landmark error {float(err_px):.1f} px (of {model.config.image_size})"
        print(f"{line}  [n={len(y)}]")


if __name__ == "__main__":
    main()
