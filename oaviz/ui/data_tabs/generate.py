"""The Generate tab of the Data page: a synthetic cohort with known ground truth."""

from __future__ import annotations

import streamlit as st

from oaviz.errors import DataError
from oaviz.services import cohorts
from oaviz.services import jobs as job_service
from oaviz.ui import state
from oaviz.ui.data_tabs import KEEP, data_jobs, select_new_cohort
from oaviz.ui.demo import DEMO_MAX_SYNTH_IMAGES, demo_mode, own_cohorts_root, redact
from oaviz.ui.layout import format_seconds


def generate() -> None:
    """Generate a synthetic cohort: inline when it takes a few seconds, else as an `oaviz synth` job."""
    st.markdown("A synthetic cohort has known ground truth (true grade, severity, joint-space width, progression), "
                "so every view can be checked against the truth.")
    c = st.columns(3)
    joint = c[0].segmented_control("Joint", ["knee", "hip"], key=state.DATA_GEN_JOINT, default="knee", required=True,
                                   persist_state=KEEP)
    subjects = c[1].number_input("Subjects", 1, 5000, 60, step=10, key=state.DATA_GEN_SUBJECTS, persist_state=KEEP)
    seed = c[2].number_input("Seed", 0, 2**31 - 1, 0, key=state.DATA_GEN_SEED, persist_state=KEEP)
    c = st.columns(3)
    visits = c[0].multiselect("Visits (months)", [0, 12, 24, 36, 48, 72, 96], default=[0, 12, 24],
                              key=state.DATA_GEN_VISITS, persist_state=KEEP)
    size = c[1].select_slider("Image size (px)", [64, 96, 128, 160, 192, 224, 256], value=128,
                              key=state.DATA_GEN_SIZE, persist_state=KEEP)
    auto_name = f"synthetic-{joint}-{subjects}x{len(visits)}-{size}px-s{seed}"
    name = c[2].text_input("Cohort name", key=state.DATA_GEN_NAME, placeholder=auto_name) or auto_name
    n_images = int(subjects) * len(visits)
    secs = cohorts.estimate_generation_s(int(subjects), len(visits), int(size))
    inline = cohorts.generation_runs_inline(int(subjects), len(visits), int(size))
    capped = demo_mode() and n_images > DEMO_MAX_SYNTH_IMAGES
    st.caption(f"{n_images:,} images, about {format_seconds(secs)} — "
               + ("generated right here." if inline else "runs as a background job (`oaviz synth`); "
                  "you can keep browsing meanwhile."))
    if capped:
        st.warning(f"The public demo generates at most {DEMO_MAX_SYNTH_IMAGES} images per cohort.")
    if st.button("Generate", type="primary", icon=":material/auto_awesome:", disabled=capped or not visits):
        try:
            out = cohorts.cohort_dir_for(name, own_cohorts_root(create=True))  # demo: the visitor's own space
            if inline:
                with st.spinner("Generating…"):
                    cohorts.generate(out, joint=joint, subjects=int(subjects), visits=tuple(sorted(visits)),
                                     size=int(size), seed=int(seed))
                select_new_cohort(str(out), "success",  # reruns the page: nothing below runs
                                  f"Generated **{out.name}** ({n_images:,} images) and selected it.")
            job = job_service.start_synth(out, joint=joint, subjects=int(subjects), visits=tuple(sorted(visits)),
                                          size=int(size), seed=int(seed))
            state.remember_job(state.DATA_JOBS, str(job.run_dir))
        except DataError as e:
            st.error(redact(str(e)), icon=":material/error:")
    data_jobs()
