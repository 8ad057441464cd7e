"""What many visitors share: one latent map (embedding table and projector) for every session, and the
knee pickers' option labels built once per cohort (issue 17, many visitors)."""

from __future__ import annotations

import pandas as pd

from oaviz.data.cohort import load_cohort
from oaviz.paths import checkpoints_dir
from oaviz.ui.refs import CohortRef, ModelRef
from tests.app.helpers import needs_bundled


@needs_bundled
def test_every_session_gets_the_same_latent_map_not_a_copy(app_home, tmp_path, monkeypatch):
    from oaviz.ui import cached

    monkeypatch.setenv("OAVIZ_HOME", str(tmp_path))    # the service's disk cache: private to this test
    model = ModelRef.of(checkpoints_dir() / "beta_vae-demo")
    cohort = CohortRef.of(app_home / "cohorts" / "synthetic-knee")
    a = cached.latent_map(model, cohort, "pca", {}, 5000, 0)
    b = cached.latent_map(model, cohort, "pca", {}, 5000, 0)   # as a second session's run would ask
    assert a is b and a.Z is b.Z                               # st.cache_data gave each call its own copy
    assert not a.Z.flags.writeable                             # shared, hence read-only
    assert a.projector.transform(a.Z[:3]).shape == (3, 2)


def test_knee_picker_labels_are_the_rows_described(app_home):
    from oaviz.ui.knee_picker import _row_labels

    cohort = load_cohort(app_home / "cohorts" / "synthetic-knee")
    meta = cohort.metadata
    labels = _row_labels(str(cohort.path), cohort.fingerprint, meta)
    m = meta.iloc[5]
    assert len(labels) == len(meta)
    assert labels[5] == f"{m['image_id']} · KL {int(m['kl'])} · {m['side']} · month {m['visit_month']}"
    no_kl = meta.assign(kl=pd.array([None] * len(meta), dtype="Int64"))
    assert _row_labels("elsewhere", "no-kl", no_kl)[5] == f"{m['image_id']} · {m['side']} · month {m['visit_month']}"
