"""Dual-head hierarchical supervision over seeds: is a difference between variants bigger than training noise?

Trains (or reuses) each variant (single_oa, single_kl, dual; demo preset, 15 epochs, patience 4 as
`make checkpoints`) with seeds 0..S-1 on the default cohort, then on the test split prints
- per variant: mean ± std over seeds of OA AUC, KL macro-AUC, KL accuracy, macro-F1, QWK and PC1 ρ;
- per seed and pair: the paired tests the Probe lab shows (McNemar clustered by subject; bootstrap over
  subjects: difference, 95 % CI, p) for OA AUC, and the seeds on which the CI excludes 0.
Seed 0 is the bundled checkpoint; other seeds are trained into RUNS (default data/runs/dual-head-seeds),
about a minute each on this CPU, and reused when present.

    .venv/bin/python bench/eval_dual_head.py [SEEDS=3] [RUNS] [N_BOOT=2000]
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pandas as pd

from oaviz.analysis.hierarchy import compare_variants
from oaviz.data.cohort import load_cohort
from oaviz.models.checkpoints import is_checkpoint, resolve_checkpoint
from oaviz.paths import default_cohort_dir

VARIANTS = ("single_oa", "single_kl", "dual")
METRICS = ("oa_auc", "kl_macro_auc", "kl_accuracy", "kl_f1", "kl_qwk", "pc1_rho")


def checkpoint_for(variant: str, seed: int, runs: Path, cohort: Path) -> Path:
    if seed == 0:
        return resolve_checkpoint(f"dual_head-{variant}-demo")
    out = runs / f"dual_head-{variant}-seed{seed}"
    if not is_checkpoint(out):
        subprocess.run([sys.executable, "-m", "oaviz", "train", "dual_head", "--data", str(cohort), "--out",
                        str(out), "--epochs", "15", "--patience", "4", "--seed", str(seed), "--set",
                        f"variant={variant}"], check=True, stdout=subprocess.DEVNULL)
    return out


def main() -> None:
    seeds = int(sys.argv[1]) if len(sys.argv) > 1 else 3
    runs = Path(sys.argv[2]) if len(sys.argv) > 2 else Path("data/runs/dual-head-seeds")
    n_boot = int(sys.argv[3]) if len(sys.argv) > 3 else 2000
    cohort_dir = default_cohort_dir()
    c = load_cohort(cohort_dir)
    metrics, tests = [], []
    for s in range(seeds):
        ckpts = {v: checkpoint_for(v, s, runs, cohort_dir) for v in VARIANTS}
        res = compare_variants(ckpts, c, n_boot=n_boot, seed=s)
        metrics.append(res["metrics"].assign(seed=s))
        b = res["bootstrap"]
        b = b[b.metric == "oa_auc"].merge(res["mcnemar"][["a", "b", "p"]].rename(columns={"p": "mcnemar_p"}))
        tests.append(b.assign(seed=s))
    m = pd.concat(metrics)
    summary = m.groupby("variant", sort=False)[list(METRICS)].agg(["mean", "std"])
    pd.set_option("display.width", 200)
    print(f"test split: {int(m['n'].iloc[0])} images of {c.metadata.loc[c.split_indices('test'), 'subject_id'].nunique()} "
          f"subjects; {seeds} seeds per variant")
    print("mean ± std over seeds")
    for v in summary.index:
        print(f"  {v:9s} " + "  ".join(f"{k} {summary.loc[v, (k, 'mean')]:.3f} ± {summary.loc[v, (k, 'std')]:.3f}"
                                       for k in METRICS))
    t = pd.concat(tests)
    print("OA AUC, paired by seed (a − b, 95 % CI over subjects, bootstrap p; McNemar p on the OA decisions):")
    for _, r in t.iterrows():
        print(f"  seed {r.seed}: {r.a} − {r.b} = {r['diff']:+.3f} [{r.lo:+.3f}, {r.hi:+.3f}] p = {r.p:.3f}; "
              f"McNemar p = {r.mcnemar_p:.3f}")
    for (a, b), g in t.groupby(["a", "b"], sort=False):
        sig = int(((g.lo > 0) | (g.hi < 0)).sum())
        print(f"  {a} vs {b}: the CI excludes 0 on {sig} of {len(g)} seeds; mean difference "
              f"{g['diff'].mean():+.3f} ± {g['diff'].std(ddof=1):.3f}")


if __name__ == "__main__":
    main()
