"""Rows of images with captions: decoded steps, nearest knees."""

from __future__ import annotations

import numpy as np
import pandas as pd
import streamlit as st

from oaviz.data.cohort import Cohort
from oaviz.ui.images import to_uint8


def image_row(images: np.ndarray, captions: list[str]) -> None:
    """One column per image: float images [n, H, W] in [0, 1], each with its caption."""
    cols = st.columns(len(images))
    for col, img, cap in zip(cols, images, captions):
        col.image(to_uint8(img), caption=cap, width="stretch")


def knee_strip(cohort: Cohort, frame: pd.DataFrame, n: int = 6) -> None:
    """The first ``n`` knees of ``frame`` (columns row, image_id, distance, optional kl), with their distance."""
    cols = st.columns(n)
    for col, (_, r) in zip(cols, frame.head(n).iterrows()):
        grade = "" if "kl" not in r or pd.isna(r["kl"]) else f" · KL {int(r['kl'])}"
        col.image(cohort.images[int(r["row"])], caption=f"{r['image_id']}{grade} · d={r['distance']:.2f}",
                  width="stretch")
