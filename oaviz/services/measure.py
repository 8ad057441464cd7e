"""What a page measures on the images it shows: medial/lateral joint-space width, landmark-free, and the
KL grade an independent classifier reads on them.

Generated, decoded and exchanged knees have no landmarks, so the width is read
from the pixels (``oaviz.analysis.joint_space``), with the cohort's pixel spacing
scaled to the image size and the side convention of the cohort (left knees
mirrored → medial on the right). The grade comes from a KL classifier the
generating model was not trained against (``independent_reader``), so a viewer
reads the effect of a latent move on the image instead of the model's own belief.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

import numpy as np
import torch

from oaviz.analysis.joint_space import JointSpace, measure_joint_space
from oaviz.data.cohort import Cohort
from oaviz.data.transforms import resize_images
from oaviz.errors import ConfigError
from oaviz.models.checkpoints import read_checkpoint_info, resolve_checkpoint
from oaviz.services.hierarchy import dual_head_checkpoints
from oaviz.services.model_io import eval_mode

BUNDLED_READERS = ("dual_head-dual-demo", "dual_head-single_kl-demo")
READER_VARIANTS = ("dual", "single_kl")      # dual-head variants that read KL, in order of preference


def images_pixel_mm(cohort: Cohort | None, image_size: int) -> float | None:
    """Pixel spacing of images shown at ``image_size`` px from this cohort (None when unknown)."""
    if cohort is None or not cohort.info.get("pixel_spacing_mm"):
        return None
    return float(cohort.info["pixel_spacing_mm"]) * cohort.images.shape[-1] / float(image_size)


def measured_jsw(images: np.ndarray, cohort: Cohort | None) -> JointSpace:
    """Medial/lateral JSW of knee images [N, S, S] (model space), in mm where the cohort's spacing is known.

    The cohort's knees are stored medial-right when its left knees were mirrored (every importer and
    the generator do so by default); that is assumed for the images a model makes from them.
    """
    images = np.asarray(images)
    return measure_joint_space(images, medial_right=True, pixel_mm=images_pixel_mm(cohort, images.shape[-1]))


def jsw_caption(js: JointSpace, i: int) -> str:
    """'JSW med 4.1 / lat 5.6 mm' (px when the spacing is unknown; '—' when not measurable)."""
    mm = np.isfinite(js.medial_mm[i]) or np.isfinite(js.lateral_mm[i])
    med, lat = (js.medial_mm[i], js.lateral_mm[i]) if mm else (js.medial_px[i], js.lateral_px[i])
    fmt = lambda v: "—" if not np.isfinite(v) else f"{v:.1f}"  # noqa: E731
    return f"JSW med {fmt(med)} / lat {fmt(lat)} {'mm' if mm else 'px'}"


@torch.no_grad()
def kl_probs(classifier, images: torch.Tensor) -> np.ndarray:
    """P(KL = 0…4) [n, 5] of images [n, 1, S, S] in [0, 1], resized to the classifier's input."""
    size = int(classifier.config.image_size)
    x = resize_images(images[:, 0].float().cpu().numpy(), size, 1.0)
    dev = next(classifier.parameters()).device
    with eval_mode(classifier):
        return classifier.predict_kl_proba(x.to(dev)).float().cpu().numpy().astype(np.float64)


def partners(checkpoint: str | os.PathLike) -> set[Path]:
    """The checkpoint folder and every checkpoint its config names (``*_checkpoint``: a judge, a classifier,
    a VQ-VAE), resolved: the models whose opinion the checkpoint was trained to satisfy."""
    path = Path(checkpoint).resolve()
    found = {path}
    try:
        config = read_checkpoint_info(path).get("config") or {}
    except ConfigError:
        return found
    for key, value in config.items():
        if key.endswith("_checkpoint") and isinstance(value, str) and value:
            try:
                found.add(resolve_checkpoint(value).resolve())
            except ConfigError:
                pass          # a partner that is gone cannot be the reader either
    return found


def independent_reader(model_set: str | os.PathLike | None = None,
                       exclude: Iterable[str | os.PathLike] = ()) -> Path | None:
    """The KL classifier that reads the images a page shows: the model set's dual head (variant dual, else
    single_kl) when the set (a zoo folder) has one, else a bundled one (``BUNDLED_READERS``); never one of
    ``exclude`` nor a partner of one (``partners``). None when no candidate is left."""
    banned = set().union(*(partners(p) for p in exclude)) if exclude else set()
    found = dual_head_checkpoints([model_set]) if model_set else {}
    candidates = [found[v] for v in READER_VARIANTS if v in found]
    for name in BUNDLED_READERS:
        try:
            candidates.append(resolve_checkpoint(name))
        except ConfigError:
            pass
    return next((Path(c) for c in candidates if Path(c).resolve() not in banned), None)


@dataclass
class ImageReadings:
    """What a page prints under each of n images: JSW (``measured_jsw``) and, with a reader, the grade it
    reads (pred_kl [n], kl_probs [n, 5]); reader: the classifier's folder name ("" without one)."""

    jsw: JointSpace
    pred_kl: np.ndarray | None
    kl_probs: np.ndarray | None
    reader: str

    def caption(self, i: int) -> str:
        """'JSW med 4.1 / lat 5.6 mm · reads KL 2 (71 %)'."""
        text = jsw_caption(self.jsw, i)
        if self.pred_kl is not None:
            text += f" · reads KL {int(self.pred_kl[i])} ({self.kl_probs[i].max():.0%})"
        return text


def read_images(images: np.ndarray, cohort: Cohort | None, reader=None) -> ImageReadings:
    """JSW and the reader's KL for images [n, S, S] in [0, 1]; reader: a LoadedCheckpoint that predicts KL
    (``independent_reader``'s, loaded) or None for JSW only."""
    images = np.asarray(images, dtype=np.float32)
    js = measured_jsw(images, cohort)
    if reader is None or not len(images):
        return ImageReadings(js, None, None, "")
    probs = kl_probs(reader.model, torch.from_numpy(images[:, None]))
    return ImageReadings(js, probs.argmax(1), probs, Path(reader.path).name)
