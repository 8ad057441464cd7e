"""The three commands the app starts as jobs, as the argv a user would type: train, synth, import."""

from __future__ import annotations

import os
from pathlib import Path

from oaviz.services.jobs.control import start_oaviz
from oaviz.services.jobs.process import new_run_dir
from oaviz.services.jobs.status import Job


def train_args(model: str, cohort: str | os.PathLike, out: str | os.PathLike, run_dir: str | os.PathLike, *,
               preset: str = "demo", epochs: int | None = None, batch_size: int | None = None,
               device: str = "auto", seed: int | None = None, max_images: int | None = None,
               overrides: dict[str, object] | None = None) -> list[str]:
    """Arguments of `oaviz train` (without the leading `oaviz`) for the given choices."""
    args = ["train", model, "--data", str(cohort), "--out", str(out), "--preset", preset,
            "--device", device, "--run-dir", str(run_dir)]
    if epochs is not None:
        args += ["--epochs", str(int(epochs))]
    if batch_size is not None:
        args += ["--batch-size", str(int(batch_size))]
    if seed is not None:
        args += ["--seed", str(int(seed))]
    if max_images is not None:
        args += ["--max-images", str(int(max_images))]
    for k, v in (overrides or {}).items():
        args += ["--set", f"{k}={v}"]
    return args


def start_training(model: str, cohort: str | os.PathLike, *, preset: str = "demo", epochs: int | None = None,
                   batch_size: int | None = None, device: str = "auto", seed: int | None = None,
                   max_images: int | None = None, overrides: dict[str, object] | None = None,
                   root: str | os.PathLike | None = None) -> Job:
    """Start `oaviz train` as a job; the checkpoint goes to ``<run folder>/checkpoint``."""
    run_dir = new_run_dir(model, root)
    out = run_dir / "checkpoint"
    args = train_args(model, cohort, out, run_dir, preset=preset, epochs=epochs, batch_size=batch_size,
                      device=device, seed=seed, max_images=max_images, overrides=overrides)
    title = f"train {model} ({preset}) on {Path(cohort).name}"
    return start_oaviz(args, run_dir, kind="train", title=title, output=out, expects_events=True)


def synth_args(out: str | os.PathLike, *, joint: str = "knee", subjects: int = 600,
               visits: tuple[int, ...] = (0, 12, 24), size: int = 224, seed: int = 0) -> list[str]:
    """Arguments of `oaviz synth` (without the leading `oaviz`)."""
    return ["synth", "--out", str(out), "--joint", joint, "--subjects", str(int(subjects)),
            "--visits", ",".join(str(int(v)) for v in visits), "--size", str(int(size)), "--seed", str(int(seed))]


def start_synth(out: str | os.PathLike, *, joint: str = "knee", subjects: int = 600,
                visits: tuple[int, ...] = (0, 12, 24), size: int = 224, seed: int = 0,
                root: str | os.PathLike | None = None) -> Job:
    """Start `oaviz synth` as a job writing the cohort folder ``out``."""
    run_dir = new_run_dir(f"synth-{Path(out).name}", root)
    args = synth_args(out, joint=joint, subjects=subjects, visits=visits, size=size, seed=seed)
    title = f"generate {Path(out).name} ({joint}, {subjects} subjects × {len(visits)} visits, {size} px)"
    return start_oaviz(args, run_dir, kind="synth", title=title, output=out, expects_events=False)


def import_args(kind: str, src: str | os.PathLike, out: str | os.PathLike, *, size: int | None = None,
                on_error: str = "skip", labels: str | os.PathLike | None = None, columns: str | None = None,
                labels_are_kl: bool | None = None) -> list[str]:
    """Arguments of `oaviz import KIND SRC --out OUT …` (without the leading `oaviz`)."""
    args = ["import", kind, str(src), "--out", str(out), "--on-error", on_error]
    if size is not None:
        args += ["--size", str(int(size))]
    if labels is not None:
        args += ["--labels", str(labels)]
    if columns:
        args += ["--columns", columns]
    if labels_are_kl is not None:
        args += ["--labels-are", "kl" if labels_are_kl else "other"]
    return args


def start_import(kind: str, src: str | os.PathLike, out: str | os.PathLike, *, size: int | None = None,
                 on_error: str = "skip", labels: str | os.PathLike | None = None, columns: str | None = None,
                 labels_are_kl: bool | None = None, root: str | os.PathLike | None = None) -> Job:
    """Start `oaviz import` as a job (a server-side folder can hold thousands of files)."""
    run_dir = new_run_dir(f"import-{Path(out).name}", root)
    args = import_args(kind, src, out, size=size, on_error=on_error, labels=labels, columns=columns,
                       labels_are_kl=labels_are_kl)
    title = f"import {Path(out).name} ({kind})"
    return start_oaviz(args, run_dir, kind="import", title=title, output=out, expects_events=False)
