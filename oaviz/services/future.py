"""Future knees: sampled follow-ups of one knee and its risk of KL progression.

A latent-diffusion checkpoint names the two models it goes with in its config:
the frozen VQ-VAE (``vqvae_checkpoint``, loaded with it) and the multi-task KL
classifier (``classifier_checkpoint``). ``load_future_models`` loads the three
once; ``generate_futures`` then samples N futures of a cohort row or an
uploaded image and returns them with their mean, per-pixel spread, the
difference against today, the classifier's KL probabilities today and in the
future (averaged over the samples), the risk Σ_{i<j} p_now[i]·p̄_future[j]
(oaviz.analysis.progression_risk) and, when the cohort has it, the real
follow-up at the same horizon.

A horizon longer than the model's own (``horizon_months`` in its config) is
reached by feeding each generated future back as the next baseline, so it must
be a whole multiple of it.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from oaviz.analysis.progression_risk import progression_risk
from oaviz.data.cohort import Cohort
from oaviz.errors import ConfigError, DataError
from oaviz.models.base import Cap
from oaviz.models.checkpoints import LoadedCheckpoint, load_checkpoint, resolve_checkpoint
from oaviz.services.measure import kl_probs
from oaviz.services.model_io import array_input, as_checkpoint, eval_mode, model_inputs, require_capability


@dataclass
class FutureModels:
    """The diffusion model (with its VQ-VAE) and the KL classifier, in eval mode, loaded once."""

    diffusion: torch.nn.Module
    classifier: torch.nn.Module
    info: dict                    # the diffusion checkpoint's config.json
    path: Path
    classifier_path: Path

    @property
    def horizon_months(self) -> int:
        return int(getattr(self.diffusion.config, "horizon_months", 0) or 0)

    @property
    def image_size(self) -> int:
        return int(self.diffusion.config.image_size)


@dataclass
class FutureResult:
    """Futures of one knee. Images are float32 in [0, 1] at the diffusion model's size S."""

    today: np.ndarray                  # [S, S] the input at model size
    futures: np.ndarray                # [n, S, S]
    mean: np.ndarray                   # [S, S]
    std: np.ndarray                    # [S, S] per-pixel spread over the samples (0 for one sample)
    difference: np.ndarray             # [S, S] mean − today (negative: darker in the future)
    kl_probs_now: np.ndarray           # [5]
    kl_probs_future: np.ndarray        # [5] averaged over the samples
    kl_probs_samples: np.ndarray       # [n, 5]
    risk: float                        # P(KL future > KL now) in [0, 1]
    horizon_months: int
    n_samples: int
    steps: int
    seed: int
    row: int | None = None             # cohort row of today's image (None for an upload)
    image_id: str | None = None
    kl_now: int | None = None          # the cohort's (rater) grade today, when known
    real_future: np.ndarray | None = None      # [S, S] the cohort's follow-up at the same horizon
    real_future_row: int | None = None
    real_future_id: str | None = None
    real_future_kl: int | None = None
    kl_probs_real_future: np.ndarray | None = None   # [5] the classifier on the real follow-up
    method: str = ""                   # how a future image is built from today's (the model's own words)

    def summary(self) -> dict:
        """JSON-ready numbers (no images)."""
        def probs(p):
            return None if p is None else [round(float(v), 6) for v in p]

        return {
            "image_id": self.image_id, "row": self.row, "kl_now": self.kl_now,
            "horizon_months": self.horizon_months, "n_samples": self.n_samples, "steps": self.steps,
            "seed": self.seed,
            "kl_probs_now": probs(self.kl_probs_now), "kl_probs_future": probs(self.kl_probs_future),
            "kl_pred_now": int(np.argmax(self.kl_probs_now)), "kl_pred_future": int(np.argmax(self.kl_probs_future)),
            "risk": float(self.risk),
            "kl_probs_samples": [probs(p) for p in self.kl_probs_samples],
            "real_future_id": self.real_future_id, "real_future_kl": self.real_future_kl,
            "kl_probs_real_future": probs(self.kl_probs_real_future),
        }


def load_future_models(checkpoint: str | os.PathLike | LoadedCheckpoint, classifier: str | os.PathLike | None = None,
                       device: str | torch.device = "cpu") -> FutureModels:
    """The diffusion checkpoint (its VQ-VAE comes with it) and its KL classifier.

    ``classifier`` overrides the one the diffusion config names. ConfigError for a checkpoint of
    another type or when no classifier is named.
    """
    loaded = as_checkpoint(checkpoint)
    require_capability(loaded, Cap.FUTURES, "cannot generate future knees")
    name = classifier or getattr(loaded.model.config, "classifier_checkpoint", "")
    if not name:
        raise ConfigError(f"{loaded.path}: its config names no classifier_checkpoint (the multi-task KL "
                          "classifier the risk needs); train it with --set classifier_checkpoint=CKPT")
    clf_path = resolve_checkpoint(str(name))
    clf = load_checkpoint(clf_path, device=device)
    require_capability(clf, Cap.PREDICT_KL, "cannot predict KL grades (the risk needs a KL classifier)")
    return FutureModels(diffusion=loaded.model.to(device).eval(), classifier=clf.model.eval(), info=loaded.info,
                        path=Path(loaded.path), classifier_path=clf_path)


def rows_for_ids(cohort: Cohort, ids) -> list[int]:
    """Cohort rows of image ids, in the order given; DataError naming the ids that are not there."""
    ids = [str(i).strip() for i in ids if str(i).strip()]
    if not ids:
        raise DataError("no image ids given", cohort.path)
    where = pd.Series(np.arange(len(cohort)), index=cohort.metadata["image_id"].astype(str))
    where = where[~where.index.duplicated()]
    missing = [i for i in ids if i not in where.index]
    if missing:
        raise DataError(f"image id(s) not in the cohort: {', '.join(missing[:10])}", cohort.path)
    return [int(where[i]) for i in ids]


def follow_up_row(cohort: Cohort, row: int, months: int) -> int | None:
    """The row of the same subject and side ``months`` after ``row``'s visit, or None."""
    m = cohort.metadata
    side = m["side"].fillna("").astype(str)
    hit = np.flatnonzero(((m["subject_id"] == m["subject_id"].iloc[row]) & (side == side.iloc[row])
                          & (m["visit_month"] == m["visit_month"].iloc[row] + months)).to_numpy())
    return int(hit[0]) if len(hit) else None


def _steps_for(models: FutureModels, horizon: int | None) -> tuple[int, int]:
    """(horizon in months, number of chained model steps)."""
    h0 = models.horizon_months
    if horizon is None:
        return h0, 1
    horizon = int(horizon)
    if h0 <= 0:
        raise DataError(f"this model records no horizon_months, so it cannot step {horizon} months")
    if horizon < h0 or horizon % h0:
        raise DataError(f"horizon {horizon} months: this model steps {h0} months at a time; choose a multiple of {h0}")
    return horizon, horizon // h0


def generate_futures(models: FutureModels | str | os.PathLike, image: np.ndarray | None = None, *,
                     cohort: Cohort | None = None, row: int | None = None, n_samples: int = 8,
                     steps: int | None = None, seed: int = 0, horizon: int | None = None) -> FutureResult:
    """``n_samples`` futures of ``image`` (float [H, W] in [0, 1]) or of ``cohort`` row ``row``.

    ``steps``: DDIM steps (default: the model's ``sample_steps``); the same seed gives the same
    futures. ``horizon`` in months (default: the model's; a multiple of it chains the model).
    """
    if not isinstance(models, FutureModels):
        models = load_future_models(models)
    if n_samples < 1:
        raise DataError(f"n_samples must be >= 1, got {n_samples}")
    m = models.diffusion
    if image is not None:
        x, row = array_input(m, image), None
    elif cohort is not None and row is not None:
        x = model_inputs(m, cohort, [int(row)])
    else:
        raise DataError("give an image, or a cohort and a row")
    horizon, k = _steps_for(models, horizon)
    steps = int(steps or m.config.sample_steps)
    if steps < 1:
        raise DataError(f"steps must be >= 1, got {steps}")
    dev = next(m.net.parameters()).device
    g = torch.Generator().manual_seed(int(seed))
    with eval_mode(m):
        fut = m.sample_future(x.to(dev), n_samples, steps=steps, generator=g)[0]        # [n, 1, S, S]
        for _ in range(k - 1):                                                          # longer horizons: chain
            fut = m.sample_future(fut, 1, steps=steps, generator=g)[:, 0]
    fut = fut.float().cpu().clamp(0, 1)
    p_now = kl_probs(models.classifier, x)[0]
    p_samples = kl_probs(models.classifier, fut)
    p_future = p_samples.mean(0)
    risk = float(progression_risk(p_now[None], p_samples[None])[0])
    futures = fut[:, 0].numpy()
    today = x[0, 0].numpy()
    mean = futures.mean(0)
    res = FutureResult(today=today, futures=futures, mean=mean, std=futures.std(0), difference=mean - today,
                       kl_probs_now=p_now, kl_probs_future=p_future, kl_probs_samples=p_samples, risk=risk,
                       horizon_months=horizon, n_samples=n_samples, steps=steps, seed=int(seed),
                       method=m.describe_futures())
    if row is not None:
        meta = cohort.metadata
        res.row, res.image_id = int(row), str(meta["image_id"].iloc[row])
        res.kl_now = _grade(meta["kl"].iloc[row])
        nxt = follow_up_row(cohort, int(row), horizon) if horizon > 0 else None
        if nxt is not None:
            real = model_inputs(m, cohort, [nxt])
            res.real_future, res.real_future_row = real[0, 0].numpy(), nxt
            res.real_future_id, res.real_future_kl = str(meta["image_id"].iloc[nxt]), _grade(meta["kl"].iloc[nxt])
            res.kl_probs_real_future = kl_probs(models.classifier, real)[0]
    return res


def _grade(v) -> int | None:
    return None if pd.isna(v) else int(v)
