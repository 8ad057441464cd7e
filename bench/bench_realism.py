"""How far is the synthetic cohort from real knee radiographs? (issue 13's realism benchmark)

Side by side on the real test split (a folder in the public KL-folder layout)
and the synthetic cohort's test split:

- separability: logistic regression on 32×32 pixels and a small CNN at 64 px
  telling real from synthetic (ROC AUC, 5-fold cross-validated by subject:
  OAI id for real knees, subject_id for synthetic ones);
- sim-to-real (``--skip-transfer`` leaves it out): the dual-head classifier
  (demo preset, the project's training engine) trained only on synthetic knees,
  trained on the real train split, and pretrained on synthetic then fine-tuned on
  5 % (3 seeds), 25 % and 100 % of the real train labels; scored on the real
  test split (OA AUC, KL accuracy, quadratic-weighted κ), with the same
  fractions trained from scratch beside them; and real-to-sim, the classifier
  trained on the whole real train split scored on the synthetic test split
  (does what it learned as OA on real knees show in the synthetic ones?);
- image statistics: intensity and gradient-magnitude histogram distances, radial
  power-spectrum slope, mean row/column profiles (joint line, bone width), the
  8×8 Fréchet distance to the real train split (medial side turned to the right;
  the real test split's distance is the floor: a figure that shows progress long
  before the classifiers stop telling the sets apart), the 4×4 and 8×8 block Mahalanobis D² (a mean
  difference weighted as a linear classifier weights it), medial/lateral JSW in pixels by KL grade
  (``oaviz.analysis.joint_space``), and the disease signature on both train splits: how much brighter each grade's mean knee is than the KL 0 mean in
  the joint bands, the notch and the femoral subchondral band (``image_stats.disease_signature``);
- a PNG grid, per KL grade 4 real knees beside 4 synthetic ones (``--grid``).

    OAVIZ_REALKNEE_DIR=../shared/data/realknee-dev .venv/bin/python bench/bench_realism.py
    .venv/bin/python bench/bench_realism.py --real ../shared/data/realknee-dev --skip-transfer

Without a real folder (none given, no $OAVIZ_REALKNEE_DIR, no ../shared/data/realknee-dev)
it says so and exits 0, so ``make bench`` runs anywhere. The real images are imported once into
``--work`` (default data/bench-realism, gitignored); nothing real is written into the repository.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import stats

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from oaviz.analysis.image_stats import (SIGNATURE_REGIONS, block_mahalanobis, compare_sets,  # noqa: E402
                                       disease_signature, frechet_pixels)
from oaviz.analysis.joint_space import measure_joint_space, medial_on_right  # noqa: E402
from oaviz.analysis.separability import cnn_auc, pixel_lr_auc  # noqa: E402
from oaviz.data.cohort import load_cohort  # noqa: E402
from oaviz.data.errors import DataError  # noqa: E402
from oaviz.data.kl_folders import import_kl_folders  # noqa: E402
from oaviz.data.real_knees import default_real_knee_dir  # noqa: E402

FRACTIONS = (0.05, 0.25, 1.0)
SEEDS_AT_5 = (0, 1, 2)


def real_cohort(src: Path, work: Path):
    """The real folder imported (once) with the project's KL-folder importer."""
    out = work / "real-cohort"
    if out.is_dir():
        c = load_cohort(out)
        # an import from before subjects and sides were read from the file names is redone
        if c.info.get("source_path") == str(src.resolve()) and "subjects_in_two_splits" in c.info:
            return c
    import_kl_folders(src, out, overwrite=True)
    return load_cohort(out)


def split_view(cohort, split: str, real: bool):
    """Images [n,H,W] in [0,1], KL [n], subject [n], medial-on-right [n] of one split."""
    rows = cohort.split_indices(split)
    m = cohort.metadata.iloc[rows]
    # both importers record subject and side; the card says whether left knees were mirrored
    subject, side = m["subject_id"].astype(str).to_numpy(), m["side"].astype(str).to_numpy()
    mirrored = any("mirror" in s or "flipped" in s for s in cohort.info.get("preprocessing", []))
    kl = m["kl"].to_numpy(dtype=float, na_value=np.nan)
    return cohort.images_float(rows), kl, subject, medial_on_right(side, left_mirrored=mirrored)


def jsw_by_grade(images, kl, on_right) -> dict:
    js = measure_joint_space(images, on_right)
    df = pd.DataFrame({"kl": kl, "medial": js.medial_px, "lateral": js.lateral_px})
    g = df.groupby("kl")
    out = {int(k): {"n": int(len(v)), "medial_px": float(v.medial.median()), "lateral_px": float(v.lateral.median())}
           for k, v in g}
    ok = df.medial.notna() & df.kl.notna()
    out["spearman_medial"] = float(stats.spearmanr(df.medial[ok], df.kl[ok])[0])
    out["joint_row_median"] = float(np.nanmedian(js.medial_row))
    out["bone_width_px_median"] = float(np.nanmedian(js.bone_width_px))
    return out


def oriented(images, on_right) -> np.ndarray:
    """Images [n,H,W] with every knee's medial side on the right (left-as-acquired ones mirrored)."""
    return np.stack([x if r else x[:, ::-1] for x, r in zip(images, on_right)])


def frechet_to_real_train(real, xr, right_r, xs, right_s) -> dict:
    """Fréchet distances (8×8 blocks; fewer for sets of ≤ 64 knees, None below 5) to the real train split:
    of the real test split (the floor) and of the synthetic test split, medial sides aligned; beside them the
    4×4 and 8×8 block Mahalanobis D² (grids with fewer blocks than the smallest set has knees)."""
    xt, _, _, right_t = split_view(real, "train", real=True)
    fewest = min(len(xt), len(xr), len(xs))
    size = min(8, int(np.sqrt(fewest - 1)))  # a full-rank covariance needs more knees than blocks
    if size < 2:
        return None
    ref, test, syn = oriented(xt, right_t), oriented(xr, right_r), oriented(xs, right_s)
    grids = [g for g in (4, 8) if g * g < fewest]
    return {"size": size, "real_test": frechet_pixels(ref, test, size),
            "synthetic_test": frechet_pixels(ref, syn, size),
            "mahalanobis": {g: {"real_test": block_mahalanobis(ref, test, g), "synthetic_test": block_mahalanobis(ref, syn, g)}
                            for g in grids}}


def signatures(real, syn) -> dict:
    """The disease signature of the real and the synthetic train split (medial sides aligned), or
    {"skipped": reason} where a split has too few KL 0 knees to compare against."""
    out = {}
    for name, cohort, is_real in (("real", real, True), ("synthetic", syn, False)):
        x, kl, _, right = split_view(cohort, "train", real=is_real)
        try:
            out[name] = disease_signature(oriented(x, right), kl)
        except DataError as e:
            return {"skipped": f"{name} train split: {e}"}
    return out


def grid_png(real, kl_r, syn, kl_s, path: Path, per: int = 4, seed: int = 0) -> None:
    """Rows KL 0–4; each row `per` real knees, a gap, `per` synthetic knees (uint8 PNG)."""
    from PIL import Image, ImageDraw

    rng = np.random.default_rng(seed)
    h, w = real.shape[1:]
    gap, label = 12, 48
    canvas = np.full((24 + 5 * h, label + 2 * per * w + gap), 255, np.uint8)
    for g in range(5):
        for j, (imgs, kl) in enumerate(((real, kl_r), (syn, kl_s))):
            idx = np.flatnonzero(kl == g)
            idx = np.sort(rng.choice(idx, min(per, len(idx)), replace=False)) if len(idx) else idx
            for k, i in enumerate(idx):
                x0 = label + j * (per * w + gap) + k * w
                canvas[24 + g * h: 24 + (g + 1) * h, x0:x0 + w] = np.round(imgs[i] * 255).astype(np.uint8)
    im = Image.fromarray(canvas)
    d = ImageDraw.Draw(im)
    d.text((label + 4, 6), "real (test split, as acquired)", fill=0)
    d.text((label + per * w + gap + 4, 6), "synthetic (test split)", fill=0)
    for g in range(5):
        d.text((6, 24 + g * h + h // 2), f"KL {g}", fill=0)
    path.parent.mkdir(parents=True, exist_ok=True)
    im.save(path)


# ----------------------------------------------------------------- sim-to-real
def _train(name: str, data: Path, work: Path, epochs: int, seed: int, max_images=None, init: Path | None = None):
    """Train the demo dual-head classifier with the project's engine; ``init``: start from those weights."""
    from oaviz.training import loop

    out, run_dir = work / "models" / name, work / "runs" / name
    shutil.rmtree(run_dir, ignore_errors=True)
    loop.train(loop.TrainSpec(model="dual_head", data=str(data), out=str(out), preset="demo", epochs=epochs,
                              seed=seed, run_dir=str(run_dir), max_images=max_images,
                              init_from=None if init is None else str(init)))
    return out


def _score(ckpt: Path, cohort) -> dict:
    from oaviz.analysis.hierarchy import predict_variant, variant_metrics

    m = variant_metrics(predict_variant(ckpt, cohort, "test"))
    return {"oa_auc": m["oa_auc"], "kl_accuracy": m["kl_accuracy"], "kl_qwk": m["kl_qwk"]}


def _selection(work: Path, name: str) -> dict:
    """Epochs run and the epoch the engine kept (lowest validation loss), from the run's events.jsonl."""
    ev = [json.loads(s) for s in (work / "runs" / name / "events.jsonl").read_text().splitlines()]
    val = [(e["val"].get("loss", float("inf")), e["epoch"]) for e in ev if e["event"] == "epoch" and e.get("val")]
    return {"epochs_run": len(val), "kept_epoch": min(val)[1] if val else None}


def transfer(real, syn, work: Path, epochs: int, log) -> dict:
    n_train = len(real.split_indices("train"))
    res: dict = {"epochs": epochs, "n_real_train": n_train}
    t = time.perf_counter()
    syn_ckpt = _train("synthetic-only", syn.path, work, epochs, 0)
    res["synthetic_only"] = {"real_test": _score(syn_ckpt, real), "synthetic_test": _score(syn_ckpt, syn),
                             **_selection(work, "synthetic-only")}
    log(f"  synthetic-only trained and scored ({time.perf_counter() - t:.0f} s)")
    for frac in FRACTIONS:
        seeds = SEEDS_AT_5 if frac == 0.05 else (0,)
        cap = None if frac == 1.0 else max(8, int(round(frac * n_train)))
        for arm, init in (("scratch", None), ("pretrained", syn_ckpt)):
            runs, kept = [], []
            for s in seeds:
                name = f"{arm}-{int(frac * 100)}-s{s}"
                runs.append(_score(_train(name, real.path, work, epochs, s, cap, init), real))
                kept.append(_selection(work, name))
            key = f"{arm}_{int(frac * 100)}"
            res[key] = {k: {"mean": float(np.mean([r[k] for r in runs])), "std": float(np.std([r[k] for r in runs])),
                            "runs": [r[k] for r in runs]} for k in runs[0]}
            res[key]["n_labels"] = cap or n_train
            res[key]["selection"] = kept
            log(f"  {key}: OA AUC {res[key]['oa_auc']['mean']:.3f} ({time.perf_counter() - t:.0f} s)")
    # Real-to-sim: does a classifier that learned OA on real knees see it in the synthetic ones?
    res["real_trained_synthetic_test"] = _score(work / "models" / "scratch-100-s0", syn)
    return res


def cues(generator: dict, work: Path, subjects: int = 200) -> dict:
    """OA AUC of the synthetic-only and the real-trained classifier on a fresh cohort of this generator
    (``subjects``, next seed) with each pathology sign drawn healthy in turn (``analysis.cue_reliance``)."""
    import dataclasses

    from oaviz.analysis.cue_reliance import cue_reliance
    from oaviz.data.synthetic import SynthConfig

    cfg = SynthConfig.from_card(generator)
    cfg = dataclasses.replace(cfg, subjects=subjects, seed=cfg.seed + 1)
    return cue_reliance({"synthetic-only": work / "models" / "synthetic-only",
                         "real-trained": work / "models" / "scratch-100-s0"}, cfg)


def targets(r: dict) -> dict:
    """Issue 13's "done when" figures: each target with its value and whether it holds (None: not measured)."""
    s, jr, js = r["separability"], r["jsw"]["real"], r["jsw"]["synthetic"]
    out = {"pixel_lr_auc <= 0.80": (s["pixel_lr_auc"], s["pixel_lr_auc"] <= 0.80),
           "cnn_auc <= 0.95": (s["cnn_auc"], s["cnn_auc"] <= 0.95)}
    for g in range(5):
        if g in jr and jr[g]["n"] >= 10:
            ratio = js[g]["medial_px"] / jr[g]["medial_px"] if g in js else float("nan")
            out[f"medial JSW KL{g} within ±15 % of real"] = (ratio, bool(abs(ratio - 1) <= 0.15))
    t = r.get("transfer")
    if t:
        so, ceil = t["synthetic_only"]["real_test"]["oa_auc"], t["scratch_100"]["oa_auc"]["mean"]
        out["sim-to-real OA AUC >= 0.80"] = (so, so >= 0.80)
        out["sim-to-real >= 0.9 x real-trained"] = (so / ceil, so >= 0.9 * ceil)
        p5, s5 = t["pretrained_5"]["oa_auc"]["mean"], t["scratch_5"]["oa_auc"]["mean"]
        out["5 % labels: pretrained > scratch (OA AUC gain)"] = (p5 - s5, p5 > s5)
    return {k: {"value": float(v), "met": bool(ok)} for k, (v, ok) in out.items()}


# ----------------------------------------------------------------- printing
def print_report(r: dict) -> None:
    s, st = r["separability"], r["stats"]
    print(f"\nreal: {r['real']['n_test']} test knees ({r['real']['path']}); "
          f"synthetic: {r['synthetic']['n_test']} test knees ({r['synthetic']['path']})")
    print(f"separability (AUC real vs synthetic, {s['folds']}-fold by subject): "
          f"pixel LR 32px {s['pixel_lr_auc']:.3f} | CNN 64px {s['cnn_auc']:.3f}")
    a, b = st["real"], st["synthetic"]
    print(f"\n{'image statistics':<34}{'real':>10}{'synthetic':>11}")
    for k, f in (("intensity_mean", ".3f"), ("intensity_std", ".3f"), ("image_std_median", ".3f"),
                 ("gradient_mean", ".4f"), ("psd_slope_median", ".2f"), ("psd_slope_iqr", ".2f"),
                 ("joint_row_frac", ".3f"), ("bone_width_frac", ".3f")):
        print(f"  {k:<32}{a[k]:>10{f}}{b[k]:>11{f}}")
    jr, js = r["jsw"]["real"], r["jsw"]["synthetic"]
    for k in ("joint_row_median", "bone_width_px_median"):
        print(f"  {'jsw module ' + k:<32}{jr[k]:>10.1f}{js[k]:>11.1f}")
    print(f"  intensity histogram: JS {st['intensity_hist']['js']:.3f}, W1 {st['intensity_hist']['w1']:.4f}; "
          f"gradient histogram: JS {st['gradient_hist']['js']:.3f}, W1 {st['gradient_hist']['w1']:.4f}; "
          f"profile r rows {st['row_profile_r']:.3f}, columns {st['col_profile_r']:.3f}")
    fd = st.get("frechet_8x8")
    if fd:
        f, s0 = fd["synthetic_test"], fd["real_test"]["fd"]
        print(f"  {fd['size']}x{fd['size']} Fréchet distance to the real train split: synthetic {f['fd']:.3f} (mean {f['mean_term']:.3f}, "
              f"covariance {f['cov_term']:.3f}); real test split (floor) {s0:.3f}")
        for g, m in fd.get("mahalanobis", {}).items():
            print(f"  {g}x{g} block Mahalanobis D² to the real train split: synthetic {m['synthetic_test']:.2f}; "
                  f"real test split (floor) {m['real_test']:.2f}")
    print("\nJSW px by KL (median, n)   real medial / lateral      synthetic medial / lateral   medial syn/real")
    def fmt(v):
        return f"{v['medial_px']:5.1f} / {v['lateral_px']:5.1f} (n={v['n']:3d})" if v else " " * 25

    for g in range(5):
        x, y = jr.get(g), js.get(g)
        ratio = f"{y['medial_px'] / x['medial_px']:.2f}" if x and y else ""
        print(f"  KL {g}                     {fmt(x)}    {fmt(y)}    {ratio}")
    print(f"  Spearman ρ(medial JSW, KL): real {jr['spearman_medial']:.3f}, synthetic {js['spearman_medial']:.3f}")
    sig = r.get("signature")
    if sig and "skipped" in sig:
        print(f"\ndisease signature: skipped ({sig['skipped']})")
    elif sig:
        sr, ss = sig["real"]["grades"], sig["synthetic"]["grades"]
        print("\ndisease signature (train splits): mean knee of the grade minus the KL 0 mean, ×1000 grey levels,"
              " real / synthetic")
        print("  " + " " * 6 + "".join(f"{k:>24}" for k in SIGNATURE_REGIONS))
        for g in sorted(set(sr) | set(ss), key=int):
            a, b = sr.get(g, {}), ss.get(g, {})
            cell = lambda k: f"{1000 * a[k]:+.0f} / {1000 * b[k]:+.0f}" if k in a and k in b else "–"  # noqa: E731
            print(f"  KL {g}  " + "".join(f"{cell(k):>24}" for k in SIGNATURE_REGIONS))
    t = r.get("transfer")
    if t:
        print(f"\nsim-to-real, dual_head demo, {t['epochs']} epochs, scored on the real test split")
        print(f"  {'arm':<34}{'OA AUC':>16}{'KL acc':>16}{'KL qwk':>16}   kept epoch (lowest val loss)")
        so = t["synthetic_only"]
        for name, m in (("synthetic only -> real test", so["real_test"]),
                        ("synthetic only -> synthetic test", so["synthetic_test"])):
            print(f"  {name:<34}" + "".join(f"{m[k]:>16.3f}" for k in ("oa_auc", "kl_accuracy", "kl_qwk"))
                  + f"   {so['kept_epoch']}")
        for frac in FRACTIONS:
            for arm in ("scratch", "pretrained"):
                v = t[f"{arm}_{int(frac * 100)}"]
                how = "syn-pretrained" if arm == "pretrained" else "scratch"
                name = f"real {int(frac * 100)}% ({v['n_labels']}) {how}"
                kept = ",".join(str(x["kept_epoch"]) for x in v["selection"])
                print(f"  {name:<34}" + "".join(f"{v[k]['mean']:>9.3f} ± {v[k]['std']:.3f}"
                                                  for k in ("oa_auc", "kl_accuracy", "kl_qwk")) + f"   {kept}")
        m = t.get("real_trained_synthetic_test")
        if m:  # absent from JSON written before it was measured
            print(f"  {'real 100% scratch -> synthetic test':<34}"
                  + "".join(f"{m[k]:>16.3f}" for k in ("oa_auc", "kl_accuracy", "kl_qwk")))
    c = r.get("cues")
    if c:
        print(f"\ncue reliance: OA AUC on {c['n']} fresh synthetic knees ({c['n_oa']} OA), each sign drawn healthy")
        print(f"  {'sign held healthy':<24}{'synthetic-only':>16}{'real-trained':>14}")
        for sign, v in c.items():
            if isinstance(v, dict):
                print(f"  {'(none)' if sign == 'all' else sign:<24}{v['synthetic-only']:>16.3f}{v['real-trained']:>14.3f}")
    print("\nissue-13 targets")
    for k, v in r["targets"].items():
        print(f"  {'met ' if v['met'] else 'NOT '} {k:<48} {v['value']:.3f}")
    print(f"\ngrid: {r['grid']}   json: {r['json']}   wall time {r['seconds']:.0f} s")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--real", type=Path, default=None, help="real knees in the KL-folder layout")
    ap.add_argument("--cohort", type=Path, default=ROOT / "data/cohorts/synthetic-knee")
    ap.add_argument("--skip-transfer", action="store_true", help="leave out the sim-to-real training")
    ap.add_argument("--epochs", type=int, default=None,
                    help="epochs of every sim-to-real training run (default: the demo preset's, 15)")
    ap.add_argument("--cnn-epochs", type=int, default=6, help="epochs of the separability CNN per fold")
    ap.add_argument("--folds", type=int, default=5)
    ap.add_argument("--grid", type=Path, default=ROOT / "bench/results/realism_grid.png")
    ap.add_argument("--json", type=Path, default=ROOT / "bench/results/realism.json")
    ap.add_argument("--work", type=Path, default=ROOT / "data/bench-realism", help="imports and models (scratch)")
    args = ap.parse_args(argv)
    real_dir = args.real or default_real_knee_dir(ROOT)
    if real_dir is None or not Path(real_dir).is_dir():
        print("bench_realism: skipped — no real knee folder (pass --real DIR or set OAVIZ_REALKNEE_DIR)")
        return 0
    t0 = time.perf_counter()
    log = lambda msg: print(f"[{time.perf_counter() - t0:6.0f} s] {msg}", flush=True)  # noqa: E731
    real, syn = real_cohort(Path(real_dir), args.work), load_cohort(args.cohort)
    xr, klr, subj_r, right_r = split_view(real, "test", real=True)
    xs, kls, subj_s, right_s = split_view(syn, "test", real=False)
    if xs.shape[1:] != xr.shape[1:]:
        from oaviz.training.data import resize_images
        xs = resize_images(xs, xr.shape[1], 1.0)[:, 0].numpy()
    log(f"loaded {len(xr)} real and {len(xs)} synthetic test knees")
    r: dict = {"real": {"path": str(real_dir), "n_test": len(xr)},
               "synthetic": {"path": str(args.cohort), "n_test": len(xs)}}
    r["separability"] = {"folds": args.folds,
                         "pixel_lr_auc": pixel_lr_auc(xr, xs, subj_r, subj_s, folds=args.folds)}
    log(f"pixel LR AUC {r['separability']['pixel_lr_auc']:.3f}")
    r["separability"]["cnn_auc"] = cnn_auc(xr, xs, subj_r, subj_s, folds=args.folds, epochs=args.cnn_epochs)
    log(f"CNN AUC {r['separability']['cnn_auc']:.3f}")
    r["stats"] = st = compare_sets(xr, xs)
    st["real"], st["synthetic"] = st.pop("a"), st.pop("b")
    st["frechet_8x8"] = frechet_to_real_train(real, xr, right_r, xs, right_s)
    r["jsw"] = {"real": jsw_by_grade(xr, klr, right_r), "synthetic": jsw_by_grade(xs, kls, right_s)}
    r["signature"] = signatures(real, syn)
    log("image statistics, JSW and disease signature done")
    grid_png(xr, klr, xs, kls, args.grid)
    r["grid"], r["json"] = str(args.grid), str(args.json)
    if not args.skip_transfer:
        shutil.rmtree(args.work / "models", ignore_errors=True)
        from oaviz.models.base import make_config
        epochs = args.epochs or int(make_config("dual_head", "demo").epochs)
        r["transfer"] = transfer(real, syn, args.work, epochs, log)
        gen = syn.info.get("generator")
        if syn.info.get("source") == "synthetic" and gen and gen.get("joint") == "knee":
            r["cues"] = cues(gen, args.work)
            log("  cue reliance done")
    r["targets"] = targets(r)
    r["seconds"] = time.perf_counter() - t0
    print_report(r)
    args.json.parent.mkdir(parents=True, exist_ok=True)
    prof = r["stats"].pop("profiles")
    r["stats"]["profiles"] = {k: {"row": np.round(v["row_profile"], 4).tolist(),
                                  "col": np.round(v["col_profile"], 4).tolist()}
                              for k, v in (("real", prof["a"]), ("synthetic", prof["b"]))}
    args.json.write_text(json.dumps(r, indent=1, default=float))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
