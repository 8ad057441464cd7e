"""Model and cohort plumbing every latent service shares.

Resolve a checkpoint or cohort given as a path or an object, check that a model
can decode, and encode/decode in eval mode under ``torch.no_grad`` with the
model's previous mode restored after, so a model cached by the app and shared
between sessions is never changed.
"""

from __future__ import annotations

import contextlib
import os
from typing import Iterable

import numpy as np
import torch

from oaviz.data.cohort import Cohort, load_cohort
from oaviz.data.transforms import resize_images
from oaviz.errors import DataError, MissingCapability
from oaviz.models.base import Cap, has_capability, model_types_with
from oaviz.models.checkpoints import LoadedCheckpoint, load_checkpoint, resolve_checkpoint
from oaviz.training.device import serving_autocast


def as_checkpoint(checkpoint: str | os.PathLike | LoadedCheckpoint) -> LoadedCheckpoint:
    """A LoadedCheckpoint as is, or load one from its folder."""
    if isinstance(checkpoint, LoadedCheckpoint):
        return checkpoint
    return load_checkpoint(resolve_checkpoint(checkpoint))  # a path, or a bundled checkpoint's name


def as_cohort(cohort: str | os.PathLike | Cohort) -> Cohort:
    return cohort if isinstance(cohort, Cohort) else load_cohort(cohort)


def require_capability(loaded: LoadedCheckpoint, cap: Cap, cannot: str,
                       error: type[MissingCapability] = MissingCapability):
    """The loaded model, if it declares ``cap``; else ``error`` saying what it ``cannot`` do and which
    model types can."""
    m = loaded.model
    if not has_capability(m, cap):
        kind = loaded.info.get("model_type", type(m).__name__)
        raise error(f"{loaded.path}: a {kind!r} checkpoint {cannot}; pick a "
                    f"{' or '.join(model_types_with(cap)) or '(none registered)'} checkpoint", cap)
    return m


class NotAnAutoencoder(MissingCapability):
    """The checkpoint's model has no decoder of vector latents (e.g. the CNN baseline)."""


def require_autoencoder(loaded: LoadedCheckpoint):
    """The model, if it can decode vector latents; NotAnAutoencoder otherwise."""
    return require_capability(loaded, Cap.VECTOR_LATENT, "has no latent decoder", NotAnAutoencoder)


@contextlib.contextmanager
def eval_mode(model):
    """Eval mode and no autograd for the block; the model's previous mode is restored after.
    A model already in eval mode (every served one) is not touched: no walk over its modules per call,
    and no thread ever flips the mode of a model other threads are using."""
    was_training = model.training
    if was_training:
        model.eval()
    try:
        with torch.no_grad():
            yield model
    finally:
        if was_training:
            model.train(True)


def _device(model) -> torch.device:
    return next(model.parameters()).device


def model_inputs(model, cohort: Cohort, rows: Iterable[int]) -> torch.Tensor:
    """Cohort rows at the model's input size: float [n, 1, S, S] in [0, 1] (on CPU)."""
    rows = np.asarray(list(rows) if not isinstance(rows, np.ndarray) else rows, dtype=np.int64).reshape(-1)
    if len(rows) and (rows.min() < 0 or rows.max() >= len(cohort)):
        raise DataError(f"row out of range 0–{len(cohort) - 1}", cohort.path)
    scale = 65535.0 if cohort.images.dtype == np.uint16 else 255.0
    return resize_images(cohort.images[rows], int(model.config.image_size), scale)


def array_input(model, image: np.ndarray) -> torch.Tensor:
    """One preprocessed image [H, W] float in [0, 1] -> [1, 1, S, S] at the model's size."""
    a = np.asarray(image)
    if a.ndim != 2 or not np.issubdtype(a.dtype, np.floating):
        raise DataError(f"an uploaded image must be a float array [H, W] in [0, 1], got {a.dtype} {a.shape}")
    if not np.isfinite(a).all() or a.min() < -1e-6 or a.max() > 1 + 1e-6:
        raise DataError("an uploaded image must hold finite values in [0, 1]")
    return resize_images(np.clip(a, 0, 1)[None].astype(np.float32), int(model.config.image_size), 1.0)


def encode(model, x: torch.Tensor, batch_size: int = 64) -> np.ndarray:
    """Deterministic latents (μ) of images [n, 1, S, S]: float32 [n, D]."""
    dev = _device(model)
    with eval_mode(model), torch.inference_mode():  # the result leaves as an array: no autograd bookkeeping
        out = [model.embed(x[i:i + batch_size].to(dev)).float().cpu() for i in range(0, len(x), batch_size)]
    return torch.cat(out).numpy() if out else np.zeros((0, model.embed_dim), np.float32)


def decode(model, Z: np.ndarray, batch_size: int = 64) -> np.ndarray:
    """Latents [n, D] -> images float32 [n, S, S] in [0, 1]. A served model (``load_checkpoint(frozen=True)``,
    what the pages hold) decodes under ``serving_autocast``: bf16 where the hardware has it, twice as fast on
    such a CPU and within 0.005 of the fp32 image; latents (``encode``) stay fp32 for the probes and maps."""
    Z = np.atleast_2d(np.asarray(Z, dtype=np.float32))
    if Z.shape[1] != int(model.config.latent_dim):
        raise DataError(f"latents have {Z.shape[1]} dimensions; the model expects {model.config.latent_dim}")
    dev = _device(model)
    precision = serving_autocast(dev) if getattr(model, "serving", False) else contextlib.nullcontext()
    with eval_mode(model), torch.inference_mode(), precision:
        out = [model.decode(torch.from_numpy(Z[i:i + batch_size]).to(dev)).float().cpu()
               for i in range(0, len(Z), batch_size)]
    return torch.cat(out)[:, 0].numpy()


def row_or_array_latent(model, cohort: Cohort | None, item,
                        latents: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray, int | None]:
    """(z [D] float32, model-size image [S, S], row or None) for a cohort row or an uploaded image array.
    latents: the cohort's latents [N, D] when the caller holds them (``kl_probe.cohort_latents``): a row's z
    is then read, not re-encoded (one encoder pass per endpoint was a third of an interpolation's CPU)."""
    if isinstance(item, (int, np.integer)):
        if cohort is None:
            raise DataError("a cohort row needs a cohort")
        x = model_inputs(model, cohort, [int(item)])
        row = int(item)
        if latents is not None:
            return np.asarray(latents[row], dtype=np.float32), x[0, 0].numpy(), row
    else:
        x, row = array_input(model, item), None
    return encode(model, x)[0], x[0, 0].numpy(), row
