"""Every model of a trained zoo on its cohort's test split: the figures the "Your own knees" README section
and the real-knee issue report, in one run.

Prints, for the zoo folder ZOO (written by `oaviz train-zoo`, default data/runs/zoo-realknee):
- each model's status and training time (zoo.json) and the zoo's total;
- the classifiers (dual head and its single-head variants, the end-to-end CNN, the multitask classifier):
  OA AUC and quadratic-weighted κ of the expected grade (``paired_tests.expected_grade``) with 95 % CIs
  (bootstrap over subjects), KL accuracy of the most probable grade, and κ of that argmax beside it;
- the β-VAE's frozen-latent OA probe (logistic regression, C = 1, the Probe lab's) against raw pixels and
  random features at 5 / 25 / 100 % of the train labels, mean ± std over SEEDS;
- VAESim's cluster → KL accuracy against its matched β-VAE + KMeans (the Prototypes page's comparison).

    .venv/bin/python bench/zoo_figures.py [ZOO] [--seeds 5] [--skip-probe]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from oaviz.analysis.hierarchy import predict_variant, variant_metrics
from oaviz.analysis.paired_tests import bootstrap_ci, expected_grade, fast_auc, quadratic_kappa
from oaviz.analysis.probes import summarise
from oaviz.data.cohort import load_cohort
from oaviz.services.probe_lab import clustering_report, run_frozen_grid

CLASSIFIERS = ("dual_head", "dual_head-single_oa", "dual_head-single_kl", "cnn", "multitask")


def _ci(v: tuple[float, float, float]) -> str:
    return f"{v[0]:.3f} [{v[1]:.3f}–{v[2]:.3f}]"


def times(manifest: dict) -> None:
    total = 0.0
    print("model                  status     minutes")
    for m in manifest["models"]:
        s = m.get("seconds") or 0.0
        total += s
        print(f"{m['model']:<22} {m['status']:<10} {s / 60:6.1f}" + (f"   ({m['reason']})" if m.get("reason") else ""))
    print(f"{'all':<22} {'':<10} {total / 60:6.1f}   (training only; the zoo's wall time adds loading)\n")


def classifiers(zoo: Path, cohort) -> None:
    subjects = cohort.metadata["subject_id"].to_numpy()
    print("classifier             OA AUC [95 % CI]          κ [95 % CI]               KL accuracy   κ of the argmax")
    for name in CLASSIFIERS:
        ck = zoo / name / "checkpoint"
        if not ck.exists():
            continue
        out = predict_variant(ck, cohort, "test")
        ok = out.kl >= 0
        y, groups = out.kl[ok], subjects[out.rows][ok]
        m = variant_metrics(out)
        auc = bootstrap_ci(fast_auc, (y >= 2).astype(int), out.p_oa[ok], groups)
        if out.p_kl is None:
            print(f"{name:<22} {_ci(auc):<25} {'(no KL head)':<25}")
            continue
        qwk = bootstrap_ci(lambda a, b: quadratic_kappa(a, b, 5), y, expected_grade(out.p_kl[ok]), groups)
        qwk_argmax = quadratic_kappa(y, out.p_kl[ok].argmax(1), 5)
        print(f"{name:<22} {_ci(auc):<25} {_ci(qwk):<25} {m['kl_accuracy']:.3f}         {qwk_argmax:.3f}")
    print()


def probe(zoo: Path, cohort, seeds: int) -> None:
    # the Probe lab's own grid (and its cache): the β-VAE's μ, raw pixels at 32 px, random N(0, I) features
    df = summarise(run_frozen_grid(cohort, [str(zoo / "beta_vae" / "checkpoint"), "raw", "random"], "oa",
                                   fractions=(0.05, 0.25, 1.0), noise=(0.0,), seeds=seeds, n_jobs=1))
    auc = df[df["metric"] == "auc"][["feature", "fraction", "mean", "std", "n"]]
    print(f"frozen-latent OA probe (test AUC, mean ± std over {seeds} seeds):")
    print(auc.round(3).to_string(index=False), "\n")


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("zoo", nargs="?", default="data/runs/zoo-realknee")
    p.add_argument("--seeds", type=int, default=5)
    p.add_argument("--skip-probe", action="store_true")
    a = p.parse_args(argv)
    zoo = Path(a.zoo)
    manifest = json.loads((zoo / "zoo.json").read_text())
    cohort = load_cohort(manifest["cohort"]["path"])
    print(f"zoo {zoo} on cohort {cohort.path} ({len(cohort)} knees; test split {len(cohort.split_indices('test'))})\n")
    times(manifest)
    classifiers(zoo, cohort)
    if not a.skip_probe and (zoo / "beta_vae" / "checkpoint").exists():
        probe(zoo, cohort, a.seeds)
    if (zoo / "vaesim" / "checkpoint").exists() and (zoo / "beta_vae-matched" / "checkpoint").exists():
        print("VAESim against its matched β-VAE + KMeans (test split):")
        print(clustering_report(zoo / "vaesim" / "checkpoint", zoo / "beta_vae-matched" / "checkpoint",
                                cohort).round(3).to_string(index=False))


if __name__ == "__main__":
    np.set_printoptions(precision=3)
    main()
