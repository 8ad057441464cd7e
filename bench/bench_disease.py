"""Do the generative views show the disease? Issue 14's figures, measured on the images the pages show.

Every width is the landmark-free medial JSW the pages print (``services.measure``), every grade the KL
that the pages' independent reader calls (``measure.independent_reader``: a classifier the model was not
trained against). On the cohort's test split, with the bundled models (or those named):
0. references: the same figures on the originals (by-grade medial JSW, raw-pixel and reader ρ, the reader's
   calls of the exchange's two grades), which bound what a generated view can show;
1. reconstructions (β-VAE): Pearson r of medial JSW on the reconstruction vs on the original;
2. severity axis (β-VAE, centroid direction as the page's walk): held-out Spearman ρ of the axis with KL
   and true severity; KL 0 knees moved by +2 and +4 grades: decoded medial JSW change (median mm) and the
   share whose reader KL rises at each step (expected grade strictly increasing);
3. interpolation KL 0 -> KL 4 (10 steps, linear): per pair Spearman(step, medial JSW), median;
4. prototypes (VAESim): cluster -> KL accuracy vs matched VAE + KMeans (``probe_lab.clustering_report``),
   and the medial JSW of the decoded prototypes of the most and least severe clusters;
5. key exchange (KECAE): medial JSW change exchanged − own reconstruction (median mm) and the share the
   reader calls the other grade, over PAIRS test pairs.
The future-knee figures are ``bench/eval_progression.py``'s.

    .venv/bin/python bench/bench_disease.py [--cohort DIR] [--pairs 100] [--knees 40] [--seed 0]
"""

from __future__ import annotations

import argparse
import time

import numpy as np
from scipy.stats import pearsonr, spearmanr

from oaviz.analysis.feature_sets import raw_pixel_features
from oaviz.analysis.severity_axis import METHODS, SeverityAxis
from oaviz.models.checkpoints import load_checkpoint, resolve_checkpoint
from oaviz.services.exchange import exchange_images
from oaviz.services.interpolation import interpolate
from oaviz.services.measure import independent_reader, kl_probs, measured_jsw
from oaviz.services.model_io import as_cohort, decode, encode, model_inputs
from oaviz.services.probe_lab import clustering_report
from oaviz.services.prototypes import prototype_report
from oaviz.services.sampling import fit_severity_axis, severity_map, severity_walk


def test_rows(c, grade: int | None = None) -> np.ndarray:
    m = c.metadata
    keep = m["split"] == "test"
    if grade is not None:
        keep &= m["kl"] == grade
    return np.flatnonzero(keep.fillna(False).to_numpy(dtype=bool))


def reader_for(*made_by: str):
    path = independent_reader(exclude=[resolve_checkpoint(p) for p in made_by])
    return load_checkpoint(path, frozen=True)


def expected_kl(reader, images: np.ndarray) -> np.ndarray:
    import torch

    return kl_probs(reader.model, torch.from_numpy(np.asarray(images, np.float32)[:, None])) @ np.arange(5)


def medial(images: np.ndarray, c) -> np.ndarray:
    return measured_jsw(np.asarray(images, np.float32), c).medial_mm


def reconstructions(vae, c, rows) -> dict:
    model = vae.model
    x = model_inputs(model, c, rows)
    orig, recon = x[:, 0].numpy(), decode(model, encode(model, x))
    a, b = medial(orig, c), medial(recon, c)
    ok = np.isfinite(a) & np.isfinite(b)
    return {"recon_jsw_r": float(pearsonr(a[ok], b[ok])[0]), "recon_measurable": float(ok.mean()), "n": len(rows)}


def severity(vae, c, reader, knees: np.ndarray) -> dict:
    stats = severity_map(vae, c).stats
    rho = {}
    for method in METHODS:   # every direction's held-out ranking; the map uses MAP_METHOD, the walk the centroid
        s = fit_severity_axis(vae, c, method)[1]
        rho[f"axis_rho_kl {method}"], rho[f"axis_rho_severity {method}"] = s.spearman_kl, s.spearman_severity
    d2, d4, rises = [], [], []
    for r in knees:
        w = severity_walk(vae, c, int(r), (0.0, 2.0, 4.0), "centroid")
        j = medial(w.images, c)
        d2.append(j[1] - j[0])
        d4.append(j[2] - j[0])
        rises.append(bool(np.all(np.diff(expected_kl(reader, w.images)) > 0)))
    return {f"map_axis_rho_kl ({stats.method})": stats.spearman_kl, f"map_axis_rho_severity ({stats.method})":
            stats.spearman_severity, **rho,
            "walk_jsw_change_+2_mm": float(np.nanmedian(d2)), "walk_jsw_change_+4_mm": float(np.nanmedian(d4)),
            "walk_reader_kl_rises": float(np.mean(rises)), "n": len(knees)}


def references(c, reader, pair=(0, 2)) -> dict:
    """The same figures read on the cohort's own test originals: what a view that showed the disease exactly
    would reach. The by-grade medial JSW gaps bound the walk, exchange and prototype widths; the held-out
    Spearman ρ of the regression axis on 32-px raw pixels and of the (supervised) reader's expected grade bound
    what an unsupervised latent axis can rank; the reader's calls of KL a / KL b originals bound its calls of
    exchanged images."""
    m = c.metadata
    te, tr = test_rows(c), np.flatnonzero((m["split"] == "train").to_numpy() & (m["kl"].to_numpy() >= 0))
    x = model_inputs(reader.model, c, te)[:, 0].numpy()
    j, kl, sev = medial(x, c), m["kl"].to_numpy()[te], m["severity"].to_numpy(float)[te]
    by = {g: float(np.nanmedian(j[kl == g])) for g in range(5) if (kl == g).any()}
    out = {f"original_medial_jsw_kl{g}_mm": v for g, v in by.items()}
    for g in (2, 4):
        if 0 in by and g in by:
            out[f"original_jsw_kl0_minus_kl{g}_mm"] = by[0] - by[g]
    X = raw_pixel_features(c, 32)   # the views' own ranking rule (the regression axis) on raw pixels
    pixels = SeverityAxis(method="regression").fit(X[tr], m["kl"].to_numpy(float)[tr])
    e = expected_kl(reader, x)
    out |= {"raw_pixel_axis_rho_kl": pixels.spearman(X[te], kl), "raw_pixel_axis_rho_severity": pixels.spearman(X[te], sev),
            "reader_rho_kl": float(spearmanr(e, kl)[0]), "reader_rho_severity": float(spearmanr(e, sev)[0])}
    ga, gb = pair
    ab = (kl == ga) | (kl == gb)
    out[f"reader_calls_kl{ga}/kl{gb}_originals_their_own_side"] = float(np.mean((e[ab] > (ga + gb) / 2) == (kl[ab] == gb)))
    return out


def interpolation(vae, c, pairs) -> dict:
    rho = []
    for a, b in pairs:
        j = medial(interpolate(vae, c, int(a), int(b), steps=10).images, c)
        ok = np.isfinite(j)
        rho.append(spearmanr(np.arange(10)[ok], j[ok])[0] if ok.sum() >= 3 else np.nan)
    return {"interp_jsw_spearman_median": float(np.nanmedian(rho)), "n": len(pairs)}


def prototypes(vaesim, vae_path: str, c) -> dict:
    rep = prototype_report(vaesim, c)
    t = rep.table
    shares = t[[f"share_kl{g}" for g in range(5)]].to_numpy()
    mean_grade = np.where(t["size"].to_numpy() > 0, shares @ np.arange(5), np.nan)
    hi, lo = int(np.nanargmax(mean_grade)), int(np.nanargmin(mean_grade))
    j = medial(rep.decoded[[hi, lo]], c)
    cmp = clustering_report(vaesim.path, vae_path, c)
    acc = {f"cluster_kl_accuracy {r.method} K={r.K} ({r.K_rule})": float(r.statistical_mapping_accuracy)
           for r in cmp.itertuples()}
    return {**acc, "proto_jsw_least_minus_most_severe_mm": float(j[1] - j[0]),
            "most_severe_cluster_mean_kl": float(mean_grade[hi]), "least_severe_cluster_mean_kl": float(mean_grade[lo])}


def exchange(kecae, c, reader, rng, n_pairs: int) -> dict:
    cfg = kecae.info["config"]
    ga, gb = int(cfg.get("grade_a", 0)), int(cfg.get("grade_b", 2))
    ra, rb = rng.choice(test_rows(c, ga), n_pairs), rng.choice(test_rows(c, gb), n_pairs)
    model = kecae.model
    imgs, _ = exchange_images(model, model_inputs(model, c, ra), model_inputs(model, c, rb))
    im = {k: v[:, 0].numpy() for k, v in imgs.items()}
    narrow = medial(im["exchanged_a"], c) - medial(im["recon_a"], c)   # KL a knee + KL b key: should narrow
    widen = medial(im["exchanged_b"], c) - medial(im["recon_b"], c)    # KL b knee + KL a key: should widen
    ea, eb = expected_kl(reader, im["exchanged_a"]), expected_kl(reader, im["exchanged_b"])
    mid = (ga + gb) / 2
    return {f"kl{ga}+key_jsw_change_mm": float(np.nanmedian(narrow)), f"kl{gb}+key_jsw_change_mm": float(np.nanmedian(widen)),
            "reader_calls_other_grade": float(np.mean(np.concatenate([ea > mid, eb < mid]))), "pairs": n_pairs}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cohort", default=None, help="cohort folder (default: the default synthetic cohort)")
    ap.add_argument("--vae", default="beta_vae-demo")
    ap.add_argument("--vaesim", default="vaesim-demo")
    ap.add_argument("--vae-matched", default="beta_vae-matched-demo")
    ap.add_argument("--kecae", default="kecae-demo")
    ap.add_argument("--pairs", type=int, default=100)
    ap.add_argument("--knees", type=int, default=40)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    from oaviz.services.cohorts import ensure_default_cohort

    c = as_cohort(args.cohort or ensure_default_cohort())
    rng = np.random.default_rng(args.seed)
    vae = load_checkpoint(resolve_checkpoint(args.vae), frozen=True)
    reader = reader_for(args.vae)
    print(f"cohort {c.path.name} ({len(c)} knees), test split; reader {reader.path.name}; seed {args.seed}")
    kl0, kl4 = test_rows(c, 0), test_rows(c, 4)
    pick = lambda rows, n: rng.choice(rows, min(n, len(rows)), replace=False)   # noqa: E731
    t = time.perf_counter()
    out = {"references (the originals)": references(c, reader),
           "reconstructions": reconstructions(vae, c, test_rows(c)),
           "severity": severity(vae, c, reader, pick(kl0, args.knees)),
           "interpolation": interpolation(vae, c, list(zip(pick(kl0, args.knees), pick(kl4, args.knees))))}
    vaesim = load_checkpoint(resolve_checkpoint(args.vaesim), frozen=True)
    out["prototypes"] = prototypes(vaesim, str(resolve_checkpoint(args.vae_matched)), c)
    kecae = load_checkpoint(resolve_checkpoint(args.kecae), frozen=True)
    out["exchange"] = exchange(kecae, c, reader_for(args.kecae), rng, args.pairs)
    for name, figures in out.items():
        print(f"{name}:")
        for k, v in figures.items():
            print(f"  {k}: {v:.3f}" if isinstance(v, float) else f"  {k}: {v}")
    print(f"({time.perf_counter() - t:.0f} s)")


if __name__ == "__main__":
    main()
