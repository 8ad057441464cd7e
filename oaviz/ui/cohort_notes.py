"""What a page cannot show on this cohort, said plainly, in one place (real cohorts lack the synthetic truth).

A real cohort (imported KL folders, DICOMs) has rater grades but no true KL, often no follow-up
visits and no landmarks. A page names the truths it would use; ``say_missing`` tells the reader, in
one line, which of them this cohort lacks and what is therefore not shown.
"""

from __future__ import annotations

import streamlit as st

from oaviz.data.cohort import Cohort

# truth: (what the cohort lacks, what a page therefore leaves out)
TRUTHS = {
    "kl_true": ("no true KL grade", "figures against the true grade"),
    "progression": ("no progression truth (no follow-up visits)", "real follow-ups and how well a risk predicts "
                    "progression"),
    "landmarks": ("no landmarks", "landmark overlays and joint-space widths measured at the landmarks"),
}


def lacks(cohort: Cohort, truth: str) -> bool:
    """Whether the cohort lacks ``truth`` (one of ``TRUTHS``)."""
    m = cohort.metadata
    if truth == "kl_true":
        return "kl_true" not in m or not m["kl_true"].notna().any()
    if truth == "progression":
        visits = m.groupby(["subject_id", "side"])["visit_month"].nunique() if "visit_month" in m else None
        return visits is None or not (visits > 1).any()
    if truth == "landmarks":
        return "landmarks" not in m or not m["landmarks"].notna().any()
    raise KeyError(truth)


def missing_text(cohort: Cohort, *truths: str) -> str | None:
    """The sentence ``say_missing`` shows, or None when the cohort has every truth asked for (or no KL grades
    at all: pages say themselves what they need then)."""
    if not cohort.has_kl:
        return None
    gone = [t for t in truths if lacks(cohort, t)]
    if not gone:
        return None
    return (f"This cohort has {', '.join(TRUTHS[t][0] for t in gone)}, as real radiographs do: "
            f"{'; '.join(TRUTHS[t][1] for t in gone)} cannot be shown here. Everything else is.")


def say_missing(cohort: Cohort, *truths: str) -> None:
    """One info line naming what this page cannot show on ``cohort`` (nothing when it lacks nothing)."""
    text = missing_text(cohort, *truths)
    if text:
        st.info(text, icon=":material/info:")
