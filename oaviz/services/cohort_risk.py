"""The cohort's distribution of progression risks, computed by `oaviz future` as a job, to place one knee in it."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from oaviz.analysis.progression_risk import risk_percentile
from oaviz.data.cohort import Cohort
from oaviz.services import jobs
from oaviz.services.future import follow_up_row

# Cheap settings: the reference only has to rank knees, not draw them well.
REFERENCE_SAMPLES, REFERENCE_STEPS = 2, 10


def reference_ids(cohort: Cohort, split: str = "test", horizon_months: int = 12) -> list[str]:
    """Image ids of the split's knees that have a follow-up ``horizon_months`` later (what the model predicts)."""
    rows = [int(r) for r in cohort.split_indices(split) if follow_up_row(cohort, int(r), horizon_months) is not None]
    return cohort.metadata["image_id"].iloc[rows].astype(str).tolist()


def start_reference_job(checkpoint: str | Path, cohort: Cohort, root: str | Path | None = None,
                        split: str = "test") -> jobs.Job:
    """Start `oaviz future` over the split's baseline knees; results land in ``<run folder>/risks``."""
    ids = reference_ids(cohort, split)
    if not ids:
        ids = cohort.metadata["image_id"].iloc[cohort.split_indices(split)].astype(str).tolist()
    run_dir = jobs.new_run_dir(f"risk-{cohort.name}", root)
    out = run_dir / "risks"
    args = ["future", "--checkpoint", str(checkpoint), "--image-id", ",".join(ids), "--data", str(cohort.path),
            "--samples", str(REFERENCE_SAMPLES), "--steps", str(REFERENCE_STEPS), "--out", str(out)]
    return jobs.start_oaviz(args, run_dir, kind="future", title=f"risk of {len(ids)} {split} knees",
                            output=out, expects_events=False)


def read_reference(out: str | Path) -> pd.DataFrame | None:
    """results.csv of a finished reference job (image_id, risk, …), or None while it is not there."""
    p = Path(out) / "results.csv"
    return pd.read_csv(p) if p.is_file() else None


def place_risk(risk: float, reference: pd.DataFrame) -> dict:
    """Where ``risk`` sits among the reference: percentile (0–100), n, and the reference quartiles."""
    r = reference["risk"].to_numpy(dtype=float)
    r = r[np.isfinite(r)]
    return {"percentile": risk_percentile(risk, r), "n": int(len(r)),
            "quartiles": [float(q) for q in np.quantile(r, [0.25, 0.5, 0.75])] if len(r) else []}


def find_reference(checkpoint: str | Path, cohort: Cohort, root: str | Path | None = None) -> pd.DataFrame | None:
    """The newest finished reference job's risks for this checkpoint and cohort, or None."""
    for job in jobs.list_jobs(root):  # newest first
        if job.kind != "future" or job.status != "finished" or not job.output:
            continue
        argv = job.argv or []
        if str(checkpoint) in argv and str(cohort.path) in argv:
            ref = read_reference(job.output)
            if ref is not None:
                return ref
    return None
