"""`oaviz probe`: frozen-feature probes (and the end-to-end CNN arm) under label scarcity and noise.

    oaviz probe --data COHORT --features CKPT[,CKPT…],raw,random [--cnn] --target oa|kl
                --fractions 0.05,0.1,0.25,0.5,1 --noise 0,0.1 --noise-kind symmetric|adjacent
                --seeds 5 --classifier logreg --out DIR

Fits on the cohort's train split, scores on its test split. Writes DIR/ with
results.csv (tidy: feature, fraction, noise, noise_kind, seed, metric, value),
summary.csv (mean, std, n per cell), figures.html (metric against label
fraction, clean solid and noisy dashed, ±std bands; standalone plotly HTML
because no static image exporter is installed) and settings.json (every
setting, the cohort fingerprint and checkpoint hashes). DIR is built in a
temporary folder and renamed into place at the end.

Progress goes to RUN_DIR/events.jsonl (``--run-dir``; default: inside DIR):
a ``start`` event with ``epochs`` = number of work units (frozen-feature
batches + CNN epochs) and ``steps_per_epoch`` = 1, then ``step`` events whose
``global_step`` counts finished units (CNN steps carry the epoch's mean
``loss``), then ``end`` or ``error``.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

from oaviz.data.atomic import output_folder
from oaviz.errors import DataError
from oaviz.errors import ConfigError


def register(sub) -> None:
    p = sub.add_parser("probe", help="probe frozen features (and a CNN) under label scarcity and noise")
    p.add_argument("--data", required=True, help="cohort folder")
    p.add_argument("--features", default="",
                   help="comma-separated feature sets: checkpoint folders or bundled names, raw, random")
    p.add_argument("--cnn", action="store_true", help="also train the end-to-end CNN on every cell (slow)")
    p.add_argument("--target", default="oa", help="oa (KL >= 2) or kl (5 grades)")
    p.add_argument("--fractions", default="0.05,0.1,0.25,0.5,1", help="label fractions in (0, 1]")
    p.add_argument("--noise", default="0,0.1", help="noise rates in [0, 0.5]")
    p.add_argument("--noise-kind", default="symmetric", help="symmetric (flip OA) or adjacent (move KL by one)")
    p.add_argument("--seeds", type=int, default=5)
    p.add_argument("--classifier", default="logreg", help="logreg, knn or linear")
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--overwrite", action="store_true", help="replace an existing output folder")
    p.add_argument("--run-dir", help="folder for events.jsonl (default: the output folder)")
    p.add_argument("--raw-size", type=int, default=32, help="side of the downsampled raw-pixel features")
    p.add_argument("--random-dim", type=int, help="dimension of the random features (default: first checkpoint's)")
    p.add_argument("--n-jobs", type=int, default=-1)
    p.add_argument("--backend", help="joblib backend: threading (default), loky, dask, ray; dask runs on the "
                   "scheduler DASK_SCHEDULER_ADDRESS names (tcp://host:8786), else on a local cluster")
    p.add_argument("--cnn-epochs", type=int, help="CNN epochs per cell (default: the preset's)")
    p.add_argument("--cnn-preset", default="demo")
    p.add_argument("--cnn-image-size", type=int, help="CNN input size (default: the preset's)")
    p.add_argument("--device", default="auto", help="CNN device: auto | cpu | cuda | mps")
    p.set_defaults(func=run)


def parse_floats(text: str, what: str) -> list[float]:
    try:
        vals = [float(v) for v in str(text).split(",") if v.strip()]
    except ValueError:
        raise ConfigError(f"{what} must be comma-separated numbers, got {text!r}") from None
    if not vals:
        raise ConfigError(f"{what} is empty")
    return sorted(set(vals))


def run(args) -> int:
    from oaviz.analysis import probes
    from oaviz.data.cohort import load_cohort
    from oaviz.models.checkpoints import resolve_checkpoint
    from oaviz.services import probe_lab
    from oaviz.training.events import EventLog

    fractions = parse_floats(args.fractions, "--fractions")
    noise = parse_floats(args.noise, "--noise")
    probes.check_grid(fractions, noise, args.noise_kind, args.target, args.classifier)
    if args.seeds < 1:
        raise ConfigError(f"--seeds must be >= 1, got {args.seeds}")
    names = probe_lab.parse_feature_names(args.features)
    if not names and not args.cnn:
        raise ConfigError("give --features (checkpoints, raw, random) and/or --cnn")
    out = Path(args.out)
    if out.exists() and not args.overwrite:
        raise DataError("output folder exists (use --overwrite)", out)
    cohort = load_cohort(args.data)
    y, y_kind, tr, te = probe_lab.probe_labels(cohort, args.target)
    if y_kind != "kl" and args.noise_kind == "adjacent" and any(r > 0 for r in noise):
        raise DataError("adjacent (KL) noise needs KL grades; this cohort has binary labels", cohort.path)
    for n in names:  # unknown names fail before any work
        if n not in ("raw", "random"):
            try:
                resolve_checkpoint(n)
            except ConfigError:
                raise ConfigError(f"unknown feature set {n!r}: not 'raw', 'random' or a checkpoint folder") from None

    log = None
    if args.run_dir:
        log = EventLog(Path(args.run_dir) / "events.jsonl")
        (Path(args.run_dir) / "argv.json").write_text(json.dumps(sys.argv))
    t0 = time.perf_counter()
    try:
        # A cancelled job gets SIGTERM: output_folder turns it into an exit that removes the temporary folder.
        with output_folder(out, overwrite=args.overwrite) as tmp:
            log = log or EventLog(tmp / "events.jsonl")
            summary, n_rows = _run(args, cohort, names, fractions, noise, y, y_kind, tr, te, tmp, log)
    except BaseException as e:
        if args.run_dir:  # (a log inside the temporary folder went with it)
            log.write("error", type=type(e).__name__, message=str(e) or type(e).__name__)
        raise
    if not args.run_dir:  # the log moved with the folder
        log = EventLog(out / "events.jsonl")
    log.write("end", status="finished", out=str(out), seconds=round(time.perf_counter() - t0, 1), n_rows=n_rows)
    auc = summary[summary.metric == "auc"]
    if len(auc):
        table = auc.assign(cell=auc["mean"].map("{:.3f}".format) + " ± " + auc["std"].map("{:.3f}".format))
        print(table.pivot_table(index=["feature", "noise"], columns="fraction", values="cell", aggfunc="first")
              .to_string())
    print(f"wrote {out}: results.csv, summary.csv, figures.html, settings.json")
    return 0


def _run(args, cohort, names, fractions, noise, y, y_kind, tr, te, tmp: Path, log):
    import pandas as pd

    from oaviz.analysis.cnn_arm import cnn_step_budget
    from oaviz.analysis.feature_sets import RandomFeatures

    from oaviz import __version__
    from oaviz.analysis import probes
    from oaviz.analysis.feature_sets import RANDOM, RAW
    from oaviz.analysis.subsample import stratified_subset
    from oaviz.models.checkpoints import checkpoint_hash, resolve_checkpoint
    from oaviz.services import probe_lab
    from oaviz.training.device import pick_device

    seeds = list(range(args.seeds))
    n_frozen_units = len(names) * len(seeds)
    cells = [(s, f, r) for s in seeds for f in fractions for r in noise]
    cnn_cfg = None
    if args.cnn:
        from oaviz.analysis.cnn_arm import baseline_config

        _, cnn_cfg = baseline_config(args.target, args.cnn_preset, args.cnn_image_size)
    cnn_epochs = (args.cnn_epochs or cnn_cfg.epochs) if cnn_cfg is not None else 0
    total_units = n_frozen_units + len(cells) * cnn_epochs
    t0 = time.perf_counter()
    log.write("start", kind="probe", epochs=total_units, steps_per_epoch=1, out=str(args.out),
              n_train=len(tr), n_test=len(te), features=names, cnn=bool(args.cnn), cells=len(cells))
    done = [0]

    def tick(phase: str, **fields):
        done[0] += 1
        elapsed = time.perf_counter() - t0
        eta = elapsed / done[0] * (total_units - done[0])
        log.write("step", phase=phase, global_step=done[0], eta_s=round(eta, 1), **fields)

    frames, timings, feature_info = [], {}, []
    if names:
        t = time.perf_counter()
        feats = probe_lab.build_feature_sets(cohort, names, args.raw_size, args.random_dim)
        timings["features_s"] = round(time.perf_counter() - t, 2)
        for n, (k, X) in zip(names, feats.items()):
            dim = X.dim if isinstance(X, RandomFeatures) else X.shape[1]
            info = {"name": k, "kind": k if k in (RAW, RANDOM) else "checkpoint", "dim": int(dim)}
            if info["kind"] == "checkpoint":
                path = resolve_checkpoint(n)
                info.update(path=str(path.resolve()), hash=checkpoint_hash(path))
            feature_info.append(info)
        grid = probes.ProbeGrid(feats, y, target=args.target, fractions=fractions, noise=noise,
                                noise_kind=args.noise_kind, seeds=seeds, classifier=args.classifier,
                                n_jobs=args.n_jobs, backend=args.backend, y_kind=y_kind)
        t = time.perf_counter()
        frames.append(grid.run(tr, te, progress=lambda i, n: tick("frozen")))
        timings["frozen_grid_s"] = round(time.perf_counter() - t, 2)
    if cnn_cfg is not None:
        device = pick_device(args.device)
        t = time.perf_counter()
        from oaviz.analysis import cnn_arm

        inputs = cnn_arm.cnn_inputs(cohort, tr, te, int(cnn_cfg.image_size))
        rows = []
        for i, (s, f, r) in enumerate(cells):
            rows += cnn_arm.cnn_arm(cohort, tr, te, y, f, r, s, cnn_epochs, args.cnn_preset, target=args.target,
                                    noise_kind=args.noise_kind, y_kind=y_kind, image_size=args.cnn_image_size,
                                    inputs=inputs, device=str(device),
                                    on_epoch=lambda ep, loss, c=i: tick("cnn", cell=c, epoch=ep, loss=loss))
        frames.append(pd.DataFrame(rows, columns=probes.COLUMNS))
        timings["cnn_s"] = round(time.perf_counter() - t, 2)

    results = pd.concat(frames, ignore_index=True)
    summary = probes.summarise(results)
    results.to_csv(tmp / "results.csv", index=False)
    summary.to_csv(tmp / "summary.csv", index=False)
    probe_figure(summary, args.target).write_html(tmp / "figures.html", include_plotlyjs=True, full_html=True)
    settings = {
        "argv": sys.argv, "oaviz_version": __version__, "created": time.strftime("%Y-%m-%dT%H:%M:%S"),
        "cohort": {"path": str(Path(args.data).resolve()), "fingerprint": cohort.fingerprint,
                   "n_train": int(len(tr)), "n_test": int(len(te)), "labels": y_kind},
        "features": feature_info, "target": args.target, "fractions": fractions, "noise": noise,
        "noise_kind": args.noise_kind, "seeds": seeds, "classifier": args.classifier,
        "raw_size": args.raw_size, "random_dim": args.random_dim,
        "backend": args.backend or probes.DEFAULT_BACKEND, "n_jobs": args.n_jobs,
        "cnn": None if cnn_cfg is None else {
            "preset": args.cnn_preset, "epochs": cnn_epochs, "image_size": int(cnn_cfg.image_size),
            "device": args.device, "batch_size": int(cnn_cfg.batch_size),
            "optimiser_steps": cnn_step_budget(len(tr), cnn_epochs, int(cnn_cfg.batch_size)),
            "budget_rule": "every label fraction gets the same optimiser steps: `epochs` passes over the full "
                           "training split, cycling over the labelled subset; no early stopping"},
        "labelled_per_fraction": {f"{f:g}": int(len(stratified_subset(y[tr], f, 0))) for f in fractions},
        "timings": timings, "metrics": probes.METRICS[args.target],
    }
    (tmp / "settings.json").write_text(json.dumps(settings, indent=2, default=_json_default))
    return summary, int(len(results))


def _json_default(o):
    try:
        return float(o)
    except (TypeError, ValueError):
        return str(o)


def probe_figure(summary, target: str = "oa"):
    """Plotly figure: one panel per metric, mean against label fraction per feature set,
    clean (solid) and noisy (dashed) with ±std bands."""
    import plotly.graph_objects as go
    from plotly.colors import qualitative
    from plotly.subplots import make_subplots

    from oaviz.analysis.probes import METRICS

    metrics = [m for m in METRICS[target] if m in set(summary["metric"])]
    fig = make_subplots(rows=1, cols=max(1, len(metrics)), subplot_titles=metrics, shared_xaxes=True)
    palette = qualitative.Plotly
    features = list(dict.fromkeys(summary["feature"]))
    for j, metric in enumerate(metrics, 1):
        for i, feat in enumerate(features):
            color = palette[i % len(palette)]
            sub = summary[(summary.metric == metric) & (summary.feature == feat)]
            for k, (rate, g) in enumerate(sub.groupby("noise", sort=True)):
                g = g.sort_values("fraction")
                x, m, s = g["fraction"].to_list(), g["mean"].to_numpy(), g["std"].to_numpy()
                dash = "solid" if rate == 0 else ("dash" if k == 1 else "dot")
                label = f"{feat} (noise {rate:g})"
                fig.add_trace(go.Scatter(x=x + x[::-1], y=list(m + s) + list(m - s)[::-1], fill="toself",
                                         fillcolor=color, opacity=0.12, line=dict(width=0), hoverinfo="skip",
                                         showlegend=False, legendgroup=label), row=1, col=j)
                fig.add_trace(go.Scatter(x=x, y=m, mode="lines+markers", name=label, legendgroup=label,
                                         line=dict(color=color, dash=dash), showlegend=j == 1,
                                         hovertemplate=f"{feat}<br>fraction %{{x}}<br>{metric} %{{y:.3f}}"),
                              row=1, col=j)
        fig.update_xaxes(type="log", title_text="label fraction", row=1, col=j)
    fig.update_layout(height=420, width=max(480, 380 * len(metrics)), template="plotly_white",
                      title=f"Probes ({target.upper()} target): metric against label fraction, mean ± std over seeds")
    return fig
