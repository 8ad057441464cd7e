"""How well can a classifier tell two image sets apart (e.g. real from synthetic knees)?

Cross-validated by subject (``StratifiedGroupKFold``: no subject in both the
training and the held-out fold), every image gets an out-of-fold P(set b);
the score is the ROC AUC over all images (0.5: indistinguishable, 1: always told
apart). Two classifiers:

- ``pixel_lr_auc``: logistic regression on standardised 32×32 pixels (area-downsampled);
- ``cnn_auc``: the project's small 4-conv CNN (``oaviz.models.cnn``) at 64 px, a few epochs.
"""

from __future__ import annotations

import numpy as np
import torch
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import StratifiedGroupKFold
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from oaviz.data.errors import DataError
from oaviz.training.data import resize_images


def _labels_groups(n_a: int, n_b: int, groups_a, groups_b) -> tuple[np.ndarray, np.ndarray]:
    y = np.r_[np.zeros(n_a, int), np.ones(n_b, int)]
    ga = np.array([f"a:{g}" for g in groups_a]) if groups_a is not None else np.array([f"a:{i}" for i in range(n_a)])
    gb = np.array([f"b:{g}" for g in groups_b]) if groups_b is not None else np.array([f"b:{i}" for i in range(n_b)])
    if len(ga) != n_a or len(gb) != n_b:
        raise DataError("one group id per image is needed")
    return y, np.r_[ga, gb]


def _folds(y, groups, folds: int, seed: int):
    cv = StratifiedGroupKFold(n_splits=folds, shuffle=True, random_state=seed)
    return list(cv.split(np.zeros(len(y)), y, groups))


def _resized(a, b, size: int) -> torch.Tensor:
    """Both sets [n,H,W] in [0, 1] -> one tensor [n_a + n_b, 1, size, size] (area interpolation)."""
    x = np.concatenate([np.asarray(a, np.float32), np.asarray(b, np.float32)])
    return resize_images(x, size, 1.0)


def pixel_lr_auc(a, b, groups_a=None, groups_b=None, *, size: int = 32, folds: int = 5, C: float = 0.1,
                 seed: int = 0) -> float:
    """Out-of-fold ROC AUC of a logistic regression on size×size pixels telling set b from set a.

    a [n_a,H,W], b [n_b,H,W] in [0, 1]; groups_*: subject id per image (None: each image its own)."""
    y, groups = _labels_groups(len(a), len(b), groups_a, groups_b)
    X = _resized(a, b, size).flatten(1).numpy().astype(np.float64)
    p = np.zeros(len(y))
    for tr, te in _folds(y, groups, folds, seed):
        clf = make_pipeline(StandardScaler(), LogisticRegression(C=C, max_iter=2000))
        clf.fit(X[tr], y[tr])
        p[te] = clf.predict_proba(X[te])[:, 1]
    return float(roc_auc_score(y, p))


def cnn_auc(a, b, groups_a=None, groups_b=None, *, size: int = 64, folds: int = 5, epochs: int = 8,
            batch_size: int = 32, lr: float = 1e-3, seed: int = 0) -> float:
    """Out-of-fold ROC AUC of a small CNN (4 conv layers 8→32, at size px) telling set b from set a."""
    from oaviz.models.base import build_model, make_config

    y, groups = _labels_groups(len(a), len(b), groups_a, groups_b)
    X = _resized(a, b, size)
    t = torch.from_numpy(y.astype(np.float32))
    p = np.zeros(len(y))
    cfg = make_config("cnn", "demo", {"image_size": size, "widths": [8, 16, 32, 32], "hidden": 32})
    for k, (tr, te) in enumerate(_folds(y, groups, folds, seed)):
        torch.manual_seed(seed * 100 + k)
        model = build_model("cnn", cfg)
        opt = torch.optim.Adam(model.parameters(), lr=lr)
        g = torch.Generator().manual_seed(seed * 100 + k)
        model.train()
        for _ in range(epochs):
            perm = torch.as_tensor(tr)[torch.randperm(len(tr), generator=g)]
            for i in range(0, len(perm), batch_size):
                idx = perm[i:i + batch_size]
                if len(idx) < 2:
                    continue
                loss = model.loss({"image": X[idx], "oa": t[idx]}).total
                opt.zero_grad()
                loss.backward()
                opt.step()
        model.eval()
        with torch.no_grad():
            p[te] = torch.cat([model.predict_proba(X[te[i:i + 256]]) for i in range(0, len(te), 256)]).numpy()
    return float(roc_auc_score(y, p))
