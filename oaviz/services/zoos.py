"""Model sets: the bundled demo checkpoints, and each zoo that `oaviz train-zoo` wrote ("trained on <cohort>").

A page asks the set for the checkpoint of the kind it needs (``set_entry``); a
zoo that left that model out says why (``missing_reason``). A zoo is started
from the app as one job (``start_zoo``) whose run folder is the zoo folder, and
``zoo_progress`` reads each model's own run folder for per-model progress.
"""

from __future__ import annotations

import os
from collections import Counter
from dataclasses import dataclass, field, replace
from pathlib import Path

from oaviz.models.base import Cap, capabilities_of
from oaviz.models.checkpoints import CheckpointEntry
from oaviz.paths import runs_dir
from oaviz.training.zoo import ZOO_MODELS, plan_zoo, read_manifest, zoo_type

BUNDLED = ""      # the key of the bundled demo set


@dataclass(frozen=True)
class ModelSet:
    key: str                       # BUNDLED, or the zoo folder
    label: str
    cohort: str = ""               # the cohort a zoo was trained on
    preset: str = ""
    complete: bool = True
    left_out: dict = field(default_factory=dict, compare=False)   # {model: why it is not in the set}


def list_model_sets(runs_root: str | os.PathLike | None = None) -> list[ModelSet]:
    """The bundled set, then every zoo folder directly under the runs folder (newest first)."""
    root = Path(runs_root) if runs_root is not None else runs_dir()
    sets = [ModelSet(BUNDLED, "Bundled demo set (synthetic knees)")]
    zoos = []
    for d in (sorted(root.iterdir()) if root.is_dir() else []):
        m = read_manifest(d) if d.is_dir() and not d.name.startswith(".") else None
        if m is None:
            continue
        cohort = str((m.get("cohort") or {}).get("name", "?"))
        left = {e["model"]: e.get("reason") or e.get("status", "") for e in m["models"] if e.get("status") != "trained"}
        more = "" if m.get("complete") else " — training"
        zoos.append((d.stat().st_mtime, ModelSet(str(d), f"Trained on {cohort} ({m.get('preset', '?')}){more}",
                                                cohort, str(m.get("preset", "")), bool(m.get("complete")), left)))
    newest_first = [s for _, s in sorted(zoos, key=lambda t: t[0], reverse=True)]
    # Two zoos of one cohort and preset (a retrained one in a new folder) must not read the same in the sidebar.
    shared = {label for label, n in Counter(s.label for s in newest_first).items() if n > 1}
    return sets + [replace(s, label=f"{s.label} · {Path(s.key).name}") if s.label in shared else s
                   for s in newest_first]


def in_set(entry: CheckpointEntry, key: str) -> bool:
    """Whether a listed checkpoint belongs to the set ``key``."""
    return entry.origin == "bundled" if key == BUNDLED else entry.origin == "zoo" and entry.zoo == key


def set_first(entries: list[CheckpointEntry], key: str) -> list[CheckpointEntry]:
    """The set's checkpoints first — in name order for the bundled set (as listed), in the zoo's training
    order for a zoo (β-VAE before VAESim, as the bundled names sort) — then the others as listed."""
    mine = [e for e in entries if in_set(e, key)]
    if key != BUNDLED:
        order = {name: i for i, name in enumerate(ZOO_MODELS)}     # entry folders: <zoo>/<name>/checkpoint
        mine.sort(key=lambda e: order.get(e.path.parent.name, len(order)))
    return mine + [e for e in entries if not in_set(e, key)]


def set_entry(entries: list[CheckpointEntry], key: str, cap: Cap) -> CheckpointEntry | None:
    """The set's first checkpoint (``set_first`` order) whose model type has ``cap``."""
    return next((e for e in set_first(entries, key) if in_set(e, key) and cap in capabilities_of(e.model_type)),
                None)


def missing_reason(model_set: ModelSet, cap: Cap) -> str:
    """Why the set has no checkpoint with ``cap``: the reasons its zoo gave for the models that would have it."""
    whys = [f"{m}: {r}" for m, r in model_set.left_out.items() if cap in capabilities_of(zoo_type(m)) and r]
    return "; ".join(whys)


def plan_rows(cohort, preset: str = "real") -> list[tuple[str, str, str]]:
    """(model, "train" / "skip", why it is left out or what the plan changes) for every model of the zoo."""
    return [(it.model, "skip" if it.skipped else "train", it.reason or "; ".join(it.notes))
            for it in plan_zoo(cohort, None, preset)]


# ----------------------------------------------------------------- the job
def zoo_args(cohort: str | os.PathLike, out: str | os.PathLike, *, preset: str = "real",
             models: list[str] | None = None, epochs: int | None = None, max_images: int | None = None,
             device: str = "auto") -> list[str]:
    """Arguments of `oaviz train-zoo` (without the leading `oaviz`)."""
    args = ["train-zoo", "--data", str(cohort), "--out", str(out), "--preset", preset, "--device", device,
            "--resume"]                                       # a restarted job continues the same folder
    if models:
        args += ["--models", ",".join(models)]
    if epochs is not None:
        args += ["--epochs", str(int(epochs))]
    if max_images is not None:
        args += ["--max-images", str(int(max_images))]
    return args


def start_zoo(cohort: str | os.PathLike, *, preset: str = "real", models: list[str] | None = None,
              epochs: int | None = None, max_images: int | None = None, device: str = "auto",
              root: str | os.PathLike | None = None):
    """Start `oaviz train-zoo` as one job; its run folder is the zoo folder (so the set appears when it is done)."""
    from oaviz.services.jobs import new_run_dir, start_oaviz

    run_dir = new_run_dir(f"zoo-{Path(cohort).name}", root)
    args = zoo_args(cohort, run_dir, preset=preset, models=models, epochs=epochs, max_images=max_images,
                    device=device)
    return start_oaviz(args, run_dir, kind="train-zoo", title=f"train the model zoo ({preset}) on {Path(cohort).name}",
                       output=run_dir, expects_events=True)


@dataclass(frozen=True)
class ModelProgress:
    model: str
    status: str                    # pending / running / trained / skipped / failed / interrupted
    progress: float | None         # 0..1 of this model's training
    eta_s: float | None
    seconds: float | None
    note: str                      # why skipped or failed, or what the plan changed


def zoo_progress(zoo_dir: str | os.PathLike) -> list[ModelProgress]:
    """One row per model of a zoo (empty before its manifest is written)."""
    from oaviz.services.jobs import read_job

    m = read_manifest(zoo_dir)
    rows = []
    for e in (m or {}).get("models", []):
        status, prog, eta = e["status"], 1.0 if e["status"] == "trained" else None, None
        run = Path(zoo_dir) / e["model"]
        if status in ("running", "interrupted") and (run / "events.jsonl").is_file():
            job = read_job(run)
            prog, eta = job.progress, job.eta_s if status == "running" else None
        note = e.get("reason") or "; ".join(e.get("notes") or [])
        rows.append(ModelProgress(e["model"], status, prog, eta, e.get("seconds"), note))
    return rows
