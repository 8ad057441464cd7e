"""Frozen-feature probe grid speed on the default cohort (issue 6).

Target: a 5 fractions × 5 seeds × 2 noise grid of logistic probes on three
feature sets (checkpoints/beta_vae-demo, raw pixels 32×32, random N(0, I))
in under 30 s on this machine. Prints the wall time of the whole job (features
included; the β-VAE embedding is timed both uncached and from the disk cache),
serial against joblib threads and loky processes, and the AUC / accuracy
summary next to the thesis's numbers.

    .venv/bin/python bench/bench_probes.py [--repeats 2] [--cohort PATH]
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np

from oaviz.analysis import probes
from oaviz.analysis.feature_sets import random_features, raw_pixel_features
from oaviz.data.cohort import load_cohort
from oaviz.paths import checkpoints_dir, default_cohort_dir

THESIS = "thesis (hip OA, CHECK): AUC at 100 % labels VAE 0.78, raw 0.64, random 0.50; " \
         "5 % labels VAE 0.63 vs CNN 0.53; 10 % noise at 100 %: VAE 0.71→0.70, CNN 0.65→0.56"


def vae_features(cohort, home: Path):
    """(name, Z, seconds uncached, seconds cached) for the bundled β-VAE (or a fresh demo β-VAE)."""
    os.environ["OAVIZ_HOME"] = str(home)  # a private cache: the first call really embeds
    from oaviz.services.embeddings import embed_cohort

    ckpt = checkpoints_dir() / "beta_vae-demo"
    if not (ckpt / "model.safetensors").is_file():
        import torch

        from oaviz.models.base import build_model
        from oaviz.training.checkpoint import save_checkpoint
        print(f"NOTE: {ckpt} is absent; using a freshly initialised demo β-VAE")
        torch.manual_seed(0)
        ckpt = save_checkpoint(build_model("beta_vae", preset="demo").eval(), home / "beta_vae-fresh")
    t = time.perf_counter()
    df = embed_cohort(ckpt, cohort)
    t_uncached = time.perf_counter() - t
    t = time.perf_counter()
    df = embed_cohort(ckpt, cohort)
    t_cached = time.perf_counter() - t
    Z = df[[c for c in df.columns if c.startswith("z_")]].to_numpy(np.float32)
    return ckpt.name, Z, t_uncached, t_cached


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--cohort", default=str(default_cohort_dir()))
    ap.add_argument("--repeats", type=int, default=2)
    args = ap.parse_args()
    cohort = load_cohort(args.cohort)
    print(f"cohort {cohort.path} ({len(cohort)} images), cpus {os.cpu_count()}, load avg {os.getloadavg()}")
    home = Path(tempfile.mkdtemp(prefix="oaviz-bench-"))
    try:
        name, Z, t_emb, t_emb_cached = vae_features(cohort, home)
        t = time.perf_counter()
        R = raw_pixel_features(cohort, 32)
        t_raw = time.perf_counter() - t
    finally:
        shutil.rmtree(home, ignore_errors=True)
    feats = {name: Z, "raw": R, "random": random_features(len(cohort), Z.shape[1], 0)}
    y = cohort.metadata["kl"].to_numpy(int)
    tr, te = cohort.split_indices("train"), cohort.split_indices("test")
    print(f"features: {name} embed {t_emb:.1f} s uncached / {t_emb_cached:.2f} s cached; raw 32×32 {t_raw:.2f} s")

    times: dict[str, list[float]] = {}
    df = None
    for _ in range(args.repeats):
        for label, backend, n_jobs in (("serial", "sequential", 1), ("joblib threads", "threading", -1),
                                       ("joblib loky", "loky", -1)):
            grid = probes.ProbeGrid(feats, y, seeds=5, n_jobs=n_jobs, backend=backend)
            t = time.perf_counter()
            out = grid.run(tr, te)
            times.setdefault(label, []).append(time.perf_counter() - t)
            df = out if df is None else df
    n_fits = len(feats) * 5 * 5 * 2
    for label, ts in times.items():
        print(f"grid ({n_fits} logistic fits) {label:15s}: " + ", ".join(f"{x:.2f} s" for x in ts))
    best = min(np.median(v) for v in times.values())
    default = np.median(times["joblib threads"])
    total = t_emb_cached + t_raw + default
    print(f"whole frozen grid with the default backend (cached embedding + raw features + fits): {total:.1f} s "
          f"(target < 30 s; fastest backend median {best:.2f} s)")
    print(f"same grid with an uncached embedding: {t_emb + t_raw + default:.1f} s")

    s = probes.summarise(df)
    for metric in ("auc", "accuracy"):
        t = s[s.metric == metric]
        cell = t["mean"].map("{:.3f}".format) + " ± " + t["std"].map("{:.3f}".format)
        table = t.assign(cell=cell).pivot_table(index=["feature", "noise"], columns="fraction", values="cell",
                                                aggfunc="first")
        print(f"\n{metric} (OA, test split, mean ± std over 5 seeds)\n{table.to_string()}")
    print("\n" + THESIS)


if __name__ == "__main__":
    main()
