"""Label audit: rank images whose rater label disagrees with their latent neighbourhood; review, correct, export."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from oaviz.services.exports import csv_bytes
from oaviz.errors import ConfigError, DataError
from oaviz.services.probe_lab import corrected_labels
from oaviz.ui import cached, cohort_notes, layout, state
from oaviz.ui.demo import redact

SHOWN = 50
ctx = layout.start_page("pages/label_audit.py", "Labels are noisy (KL readers disagree on about a quarter of "
                        "knees). Images whose label disagrees with the latent neighbourhood come first: review them "
                        "beside their neighbours, accept or change the grade, and export the corrected labels.",
                        model="any")
cohort, model_ref, cohort_ref = ctx.cohort, ctx.model.ref, ctx.cohort_ref
cohort_notes.say_missing(cohort, "kl_true")
meta = cohort.metadata
col = "kl" if cohort.has_kl else "label"
if meta[col].isna().all():
    st.info("This cohort has no labels to audit.")
    st.stop()

c = st.columns([1, 1, 2])
method = c[0].radio("Method", ["oof", "knn"], key=state.AUDIT_METHOD, horizontal=True,
                    format_func={"oof": "out-of-fold probe", "knn": "k-NN vote"}.get,
                    help="out-of-fold: a logistic probe on the latents, each image scored by a model that never saw "
                         "it (confident learning). k-NN: the share of latent neighbours that disagree.")
k = c[1].slider("Neighbours (k-NN)", 3, 50, 10, key=state.AUDIT_K, disabled=method != "knn")
try:
    rep = cached.label_audit(model_ref, cohort_ref, method, k)
except (DataError, ConfigError) as e:  # e.g. a grade with a single image: no out-of-fold estimate for it
    st.error(f"The audit cannot run with these settings: {redact(str(e))}. Try the k-NN vote.", icon=":material/error:")
    st.stop()
if rep.precision_at is not None:
    m = c[2].columns(3)
    m[0].metric(f"Precision at {rep.at}", f"{rep.precision_at:.0%}", border=True,
                help="Share of the top-ranked images whose rater label really differs from the true grade "
                     "(known on synthetic cohorts).")
    m[1].metric(f"Recall at {rep.at}", f"{rep.recall_at:.0%}", border=True)
    m[2].metric("Flipped labels", f"{rep.n_flipped:,}", border=True,
                help=f"Chance precision: {rep.n_flipped / max(1, len(rep.table)):.0%}.")

changes: dict[str, int] = st.session_state.setdefault(state.AUDIT_CHANGES, {})
top = rep.table.head(SHOWN).copy()
top["accepted"] = top["image_id"].map(lambda i: changes.get(i))
st.dataframe(top, hide_index=True, width="stretch", key=state.AUDIT_PICK, on_select="rerun",
             selection_mode="single-row",
             column_config={"score": st.column_config.ProgressColumn("suspicion", min_value=0, max_value=1,
                                                                      format="%.2f"),
                            "row": None})
sel = st.session_state.get(state.AUDIT_PICK)
picked = sel.selection.rows[0] if sel is not None and sel.selection.rows else 0
r = top.iloc[picked]
row = int(r["row"])

st.subheader(f"`{r['image_id']}`: rater says {int(r['given'])}, its neighbourhood says {int(r['suggested'])}",
             anchor=False)
near = cached.audit_neighbours(model_ref, cohort_ref, row, k=6)
cols = st.columns(1 + len(near))
cols[0].image(cohort.images[row], caption=f"this knee · label {int(r['given'])}", width="stretch")
for cc, (_, n) in zip(cols[1:], near.iterrows()):
    lab = "?" if pd.isna(n["label"]) else int(n["label"])
    cc.image(cohort.images[int(n["row"])], caption=f"neighbour · label {lab}", width="stretch")
grades = sorted(int(g) for g in pd.to_numeric(meta[col], errors="coerce").dropna().unique())
current = changes.get(r["image_id"], int(r["given"]))
b = st.columns([1, 1, 1, 2])
new = b[0].selectbox("Grade", grades, index=grades.index(current) if current in grades else 0,
                     key=f"{state.AUDIT_NEW_LABEL}.{r['image_id']}")
if b[1].button("Accept the suggestion", key="audit.accept", icon=":material/check:"):
    changes[r["image_id"]] = int(r["suggested"])
    st.rerun()
if b[2].button("Set this grade", key="audit.set", icon=":material/edit:"):
    changes[r["image_id"]] = int(new)
    st.rerun()

out = corrected_labels(cohort, changes)
b[3].download_button(f"Export corrected labels ({int(out['changed'].sum())} changed)", csv_bytes(out),
                     "corrected_labels.csv", "text/csv", icon=":material/download:", key="audit.export")
