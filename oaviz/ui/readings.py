"""Under every image a page makes: the JSW measured on it and the KL grade an independent classifier reads.

The classifier is ``measure.independent_reader``'s: the sidebar's model set's dual head, else a bundled
one, and never the page's own checkpoint nor a model that checkpoint was trained against (KECAE's judge,
the diffusion model's risk classifier). The page's own latent probe says what the model believes; this
says what someone else sees in the picture.
"""

from __future__ import annotations

import numpy as np
import streamlit as st

from oaviz.services.measure import ImageReadings, independent_reader
from oaviz.ui import cached, state
from oaviz.ui.layout import PageContext
from oaviz.ui.refs import ModelRef


def page_reader(ctx: PageContext, checkpoint=None) -> ModelRef | None:
    """The independent KL reader for the checkpoint that made the images (``checkpoint``, else the page's)
    and the sidebar's model set (None: JSW only)."""
    own = [checkpoint] if checkpoint is not None else [ctx.model.path] if ctx.model is not None else []
    found = independent_reader(state.selected_model_set() or None, exclude=own)
    return ModelRef.of(found) if found is not None else None


def read(ctx: PageContext, images: np.ndarray, checkpoint=None) -> ImageReadings:
    """Readings of images [n, S, S] in [0, 1] that ``checkpoint`` (default: the page's model) made,
    cached per images and reader."""
    return cached.image_readings(page_reader(ctx, checkpoint), ctx.cohort_ref,
                                 np.ascontiguousarray(images, np.float32))


def explain(r: ImageReadings) -> None:
    """One line under a row of read images: what the numbers are and whose reading the grade is."""
    who = (f"the KL grade read by **{r.reader}**, a classifier this model was not trained against"
           if r.reader else "no independent KL classifier is available")
    st.caption(f"Under each image: medial / lateral joint-space width measured on the image itself "
               f"(landmark-free, from its intensity profile), and {who}.")
