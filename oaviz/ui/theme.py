"""Colours shared by every figure, so KL 2 is the same orange on every page."""

from __future__ import annotations

# KL 0 → 4: calm to alarming (colour-blind-safe sequence, readable on white and dark).
KL_COLORS = {0: "#3b8bc2", 1: "#6cc3b4", 2: "#f2c14e", 3: "#f08a4b", 4: "#c8423b"}
SPLIT_COLORS = {"train": "#4c72b0", "val": "#8fb3de", "test": "#dd8452"}
ACCENT = "#2f6fae"
LANDMARK_COLOR = "#ff4d6d"
MASK_COLOR = "rgba(0, 200, 255, 0.35)"
PLOT_FONT = dict(family="Inter, Source Sans Pro, sans-serif", size=13)


def kl_color(grade) -> str:
    try:
        return KL_COLORS[int(grade)]
    except (KeyError, TypeError, ValueError):
        return "#9aa0a6"
