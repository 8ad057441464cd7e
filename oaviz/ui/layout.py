"""Page furniture shared by every page: the preamble (header, cohort, model), one-shot messages, guards."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import streamlit as st

from oaviz.data.cohort import Cohort
from oaviz.errors import DataError
from oaviz.services.model_cards import format_seconds  # noqa: F401 (pages use layout.format_seconds)
from oaviz.ui import loaders, state
from oaviz.ui.demo import redact
from oaviz.ui.frame import ensure_frame
from oaviz.ui.model_pick import Cap, PickedModel, current_model
from oaviz.ui.navigation import page_by_file
from oaviz.ui.refs import CohortRef


@dataclass(frozen=True)
class PageContext:
    """What a page works on: the sidebar's cohort and the checkpoint picked for the page (None when not asked)."""

    cohort: Cohort | None
    model: PickedModel | None

    @property
    def cohort_path(self) -> str | None:
        return str(self.cohort.path) if self.cohort is not None else None

    @property
    def cohort_ref(self) -> CohortRef | None:
        """The cohort's cache key for ``oaviz.ui.cached``."""
        return CohortRef.of(self.cohort) if self.cohort is not None else None


def start_page(file: str, subtitle: str, *, cohort: Literal["required", "optional", "none"] = "required",
               model: "Cap | Literal['any'] | None" = None) -> PageContext:
    """The preamble of every page: header from the navigation entry of ``file``, then cohort and model.

    ``cohort``: "required" stops the page (after the message saying why) when there is none, "optional"
    goes on without one, "none" does not ask. ``model``: the capability the page's checkpoint needs
    (a ``Cap``, or "any" for any checkpoint; ``model_pick.current_model``), asked once the cohort is
    settled; the page stops when there is none. None: the page needs no model.
    """
    page = page_by_file(file)
    page_header(page.title, subtitle, page.icon)
    chosen = current_cohort() if cohort != "none" else None
    if cohort == "required" and chosen is None:
        st.stop()
    picked = current_model(None if model == "any" else model) if model is not None else None
    if model is not None and picked is None:
        st.stop()
    return PageContext(chosen, picked)


def page_header(title: str, subtitle: str = "", icon: str | None = None) -> None:
    """Title (the page's name, as in the menu) and a one-line explanation of the page.

    ``start_page`` calls it first: it also reruns through app.py when Streamlit started
    the page file on its own (see ``oaviz.ui.frame``).
    """
    ensure_frame()
    st.title(f":material/{icon}: {title}" if icon else title, anchor=False)
    if subtitle:
        st.caption(subtitle)
    shown = state.take_flash()
    if shown:
        kind, text = shown
        getattr(st, kind if kind in ("success", "info", "warning", "error") else "info")(text)


def current_cohort() -> Cohort | None:
    """The cohort picked in the sidebar, or None with a message saying why there is none."""
    path = state.selected_cohort()
    if not path:
        st.info("No cohort yet: generate or import one on the **Data** page.", icon=":material/info:")
        return None
    try:
        return loaders.cohort(path)
    except DataError as e:
        st.error(f"The selected cohort cannot be opened: {redact(str(e))}", icon=":material/error:")
        return None

