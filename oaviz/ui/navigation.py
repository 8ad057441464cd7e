"""The app's pages: file, title, icon and menu section (app.py builds st.navigation from this).

Every page file starts with ``layout.start_page(...)``, which also makes sure the
page runs inside app.py's frame (see ``oaviz.ui.frame``).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class PageDef:
    file: str      # relative to the repository root
    title: str
    icon: str      # Material Symbols name, shown as :material/<icon>:
    section: str


PAGES: tuple[PageDef, ...] = (
    PageDef("pages/latent_map.py", "Latent map", "scatter_plot", "Explore"),
    PageDef("pages/reconstructions.py", "Reconstructions", "compare", "Explore"),
    PageDef("pages/interpolation.py", "Interpolation", "linear_scale", "Explore"),
    PageDef("pages/prior_sampling.py", "Prior sampling", "casino", "Explore"),
    PageDef("pages/prototypes.py", "Prototypes", "hub", "Explore"),
    PageDef("pages/compare_models.py", "Compare models", "splitscreen", "Explore"),
    PageDef("pages/key_exchange.py", "Key exchange", "swap_horiz", "Methods"),
    PageDef("pages/future_knee.py", "Future knee", "update", "Methods"),
    PageDef("pages/probe_lab.py", "Probe lab", "science", "Methods"),
    PageDef("pages/label_audit.py", "Label audit", "fact_check", "Methods"),
    PageDef("pages/models_training.py", "Models & training", "model_training", "Workspace"),
    PageDef("pages/data.py", "Data", "database", "Workspace"),
)
# The page a visitor lands on.
DEFAULT_PAGE = "pages/data.py"


def page_by_file(file: str) -> PageDef:
    for p in PAGES:
        if p.file == file:
            return p
    raise KeyError(file)


def streamlit_pages() -> dict[str, list]:
    """``{section: [st.Page, …]}`` for st.navigation, in menu order."""
    import streamlit as st

    sections: dict[str, list] = {}
    for p in PAGES:
        sections.setdefault(p.section, []).append(
            st.Page(p.file, title=p.title, icon=f":material/{p.icon}:", default=p.file == DEFAULT_PAGE))
    return sections
