"""Scale: a cohort of N knees through generation, import, embedding and the latent map (issue 16 item 6).

    .venv/bin/python bench/bench_scale.py N [--cohort DIR] [--work DIR]

Every stage runs in its own fresh Python process, so its peak RSS (``ru_maxrss``) is its own and a
"cold" call is really the first of a process:
- generation: ``generate_cohort`` of ceil(N/3) subjects × 3 visits at 224×224, seed 0 (skipped with
  ``--cohort``, whose cohort.json then gives its speed);
- import: the cohort's images are written as PNGs in the KL-folder layout (``{split}/{kl}/{id}.png``,
  not timed) and imported back with ``import_kl_folders``;
- embedding: the bundled ``beta_vae-demo`` embeds every knee (μ and reconstruction error, what the
  map uses), beside a big float32 matmul in the same process (the CPU's FLOP roofline at the same
  thread count); the model's FLOPs per knee are counted from its conv/linear layers;
- map: ``build_latent_map`` for PCA and UMAP, every point (no subsampling): cold (first call of a
  fresh process; embeddings cached by the embed stage), warm (same process, another seed, so it is computed
  again) and cached (the disk cache), against plain ``umap.UMAP(random_state=0).fit_transform`` on
  the same latents, first and second call of a fresh process;
- browser bytes and interaction latencies: ``bench/scale_interactions.py`` when present, else n/a.

Peak RSS is printed whole and as "work" (above the process's RSS once its imports are done).
Threads follow OMP_NUM_THREADS (the project benches at 1). Files go to ``--work`` (default a
temporary folder, removed at the end) and caches to a temporary OAVIZ_HOME.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CHECKPOINT = "beta_vae-demo"


def _rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _clock() -> tuple[float, float]:
    return time.perf_counter(), time.process_time()


def _since(t: tuple[float, float]) -> dict:
    """Wall seconds and CPU seconds (all threads) since ``_clock()``: on a shared machine the CPU
    figure is the one other loads do not inflate."""
    return {"seconds": time.perf_counter() - t[0], "cpu_s": time.process_time() - t[1]}


# ----------------------------------------------------------------- stages (each in a child process)
def stage_generate(n: int, out: str) -> dict:
    from oaviz.data.synthetic import generate_cohort

    base, t = _rss_mb(), _clock()
    generate_cohort(out, subjects=-(-n // 3), visits=(0, 12, 24), size=224, seed=0)
    return {"base_mb": base, **_since(t)}


def stage_export_png(cohort: str, out: str) -> dict:
    """The cohort as the public KL-folder layout (PNG, fast compression): the import's source."""
    from PIL import Image

    from oaviz.data.cohort import load_cohort, read_rows

    c, t = load_cohort(cohort), time.perf_counter()
    meta = c.metadata
    for kl in range(5):
        for s in ("train", "val", "test"):
            (Path(out) / s / str(kl)).mkdir(parents=True, exist_ok=True)
    for i in range(0, len(c), 256):
        block = read_rows(c.images, i, i + 256)
        for k, img in enumerate(block):
            r = meta.iloc[i + k]
            Image.fromarray(img).save(Path(out) / r["split"] / str(int(r["kl"])) / f"{r['image_id']}.png",
                                      compress_level=1)
    return {"seconds": time.perf_counter() - t}


def stage_import(src: str, out: str) -> dict:
    from oaviz.data.kl_folders import import_kl_folders

    base, t = _rss_mb(), _clock()
    rep = import_kl_folders(src, out, size=224)
    return {"base_mb": base, **_since(t), "n": rep.n_imported, "skipped": len(rep.skipped)}


def flops_per_image(model, size: int) -> dict:
    """Multiply-adds × 2 of every Conv2d / ConvTranspose2d / Linear for one image, counted with
    forward hooks on ``embed`` and on ``reconstruct`` (what embedding a cohort runs)."""
    import torch
    from torch import nn

    count = [0]

    def hook(m, inp, out):
        if isinstance(m, nn.Conv2d):
            count[0] += 2 * out.numel() * (m.in_channels // m.groups) * m.kernel_size[0] * m.kernel_size[1]
        elif isinstance(m, nn.ConvTranspose2d):
            count[0] += 2 * inp[0].numel() * (m.out_channels // m.groups) * m.kernel_size[0] * m.kernel_size[1]
        elif isinstance(m, nn.Linear):
            count[0] += 2 * out.numel() * m.in_features

    hooks = [m.register_forward_hook(hook) for m in model.modules()
             if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear))]
    x = torch.zeros(1, 1, size, size)
    out = {}
    with torch.no_grad():
        for name, f in (("embed", model.embed), ("reconstruct", model.reconstruct)):
            count[0] = 0
            f(x)
            out[name] = count[0]
    for h in hooks:
        h.remove()
    return out


def matmul_gflops(n: int = 2048, reps: int = 5) -> dict:
    """float32 n×n matmul GFLOP/s, the roofline at this process's thread count: best wall time, and
    per CPU-second × threads (what the cores do when they are not shared)."""
    import torch

    a, b = torch.randn(n, n), torch.randn(n, n)
    a @ b
    wall = cpu = float("inf")
    for _ in range(reps):
        t = _clock()
        a @ b
        d = _since(t)
        wall, cpu = min(wall, d["seconds"]), min(cpu, d["cpu_s"])
    return {"wall": 2 * n ** 3 / wall / 1e9, "cpu": 2 * n ** 3 / cpu / 1e9 * torch.get_num_threads()}


def stage_embed(cohort: str, z_out: str) -> dict:
    import numpy as np
    import torch

    from oaviz.models.checkpoints import load_checkpoint, resolve_checkpoint
    from oaviz.services.embeddings import embed_cohort

    base = _rss_mb()
    model = load_checkpoint(resolve_checkpoint(CHECKPOINT)).model
    fl = flops_per_image(model, int(model.config.image_size))
    roof = matmul_gflops()
    t = _clock()
    df = embed_cohort(CHECKPOINT, cohort)   # OAVIZ_HOME is new: computed, then cached for the map stage
    took = _since(t)
    np.save(z_out, df[[c for c in df.columns if c.startswith("z_")]].to_numpy(np.float32))
    return {"base_mb": base, **took, "n": len(df), "flops_per_image": fl, "roofline_gflops": roof,
            "threads": torch.get_num_threads()}


def stage_map(cohort: str) -> dict:
    """PCA and UMAP maps of every point through the service: cold, warm (another seed) and cached."""
    import warnings

    from oaviz.paths import checkpoints_dir
    from oaviz.services.embeddings import embed_cohort
    from oaviz.services.latent_map import build_latent_map

    warnings.filterwarnings("ignore")
    base = _rss_mb()
    ck = checkpoints_dir() / CHECKPOINT
    t = time.perf_counter()
    embed_cohort(ck, cohort)   # from the embed stage's cache: the map stages time the map, not the model
    out = {"base_mb": base, "embed_fill_s": time.perf_counter() - t}
    for method in ("pca", "umap"):
        for case, seed in (("cold", 0), ("warm", 1), ("cached", 0)):
            t = time.perf_counter()
            r = build_latent_map(ck, cohort, method=method, max_points=None, seed=seed)
            out[f"{method}_{case}_s"] = time.perf_counter() - t
            out[f"{method}_{case}_cached"] = bool(r.cached)
            out["points"] = len(r.table)
    return out


def stage_plain_umap(z_path: str) -> dict:
    import warnings

    import numpy as np
    import umap

    warnings.filterwarnings("ignore")
    Z = np.load(z_path)
    base, out = _rss_mb(), {}
    for case in ("first", "second"):
        t = time.perf_counter()
        umap.UMAP(random_state=0).fit_transform(Z)
        out[f"{case}_s"] = time.perf_counter() - t
    return {"base_mb": base, **out}


def stage_interactions(n: int) -> dict:
    sys.path.insert(0, str(ROOT / "bench"))
    import scale_interactions as si

    lat = si.interaction_latencies(sessions=8)
    return {"payload_bytes": si.map_payload_bytes(n), "latencies": lat.to_dict(orient="records")}


STAGES = {"generate": stage_generate, "export_png": stage_export_png, "import": stage_import,
          "embed": stage_embed, "map": stage_map, "plain_umap": stage_plain_umap,
          "interactions": stage_interactions}


def run_stage(name: str, *args, env: dict) -> dict:
    """Run one stage in a fresh interpreter; its JSON result plus its peak RSS."""
    cmd = [sys.executable, str(Path(__file__).resolve()), "--stage", name, *map(str, args)]
    res = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=ROOT)
    if res.returncode != 0:
        raise RuntimeError(f"stage {name} failed ({res.returncode}):\n{res.stderr[-3000:]}")
    return json.loads(res.stdout.strip().splitlines()[-1])


# ----------------------------------------------------------------- report
def _row(label: str, n: int, r: dict) -> str:
    rate = f"{n / r['seconds']:6.0f} knees/s" if r.get("seconds") else " " * 13
    secs = f"{r['seconds']:7.1f} s" if r.get("seconds") else " " * 9
    cpu = f"{n / r['cpu_s']:6.0f} knees/CPU-s" if r.get("cpu_s") else " " * 17
    rss = f"peak RSS {r['peak_mb']:7.0f} MB (work {r['peak_mb'] - r.get('base_mb', 0):6.0f} MB)" if "peak_mb" in r else ""
    return f"  {label:<11}{secs}  {rate}  {cpu}   {rss}"


def main() -> None:
    ap = argparse.ArgumentParser(description="generation, import, embedding and map at N knees")
    ap.add_argument("n", type=int, help="knees (rounded up to whole subjects of 3 visits when generated)")
    ap.add_argument("--cohort", help="use this cohort instead of generating one")
    ap.add_argument("--work", help="folder for the generated/imported cohorts and PNGs (kept)")
    ap.add_argument("--skip", default="", help="comma-separated stages to skip (e.g. map,plain_umap)")
    args = ap.parse_args()
    skip = set(filter(None, args.skip.split(",")))
    work = Path(args.work) if args.work else Path(tempfile.mkdtemp(prefix="oaviz-bench-scale-"))
    work.mkdir(parents=True, exist_ok=True)
    home = Path(tempfile.mkdtemp(prefix="oaviz-bench-home-"))
    env = {**os.environ, "OAVIZ_HOME": str(home), "PYTHONPATH": str(ROOT)}
    res: dict[str, dict] = {}
    try:
        if args.cohort:
            cohort = args.cohort
            info = json.loads((Path(cohort) / "cohort.json").read_text())
            res["generate"] = {"given": True, "seconds": info.get("generation_seconds")}
        else:
            cohort = str(work / "synthetic")
            if Path(cohort).exists():
                shutil.rmtree(cohort)
            res["generate"] = run_stage("generate", args.n, cohort, env=env)
        n = json.loads((Path(cohort) / "cohort.json").read_text())["n_images"]
        png, imported, z = work / "png", work / "imported", work / "z.npy"
        if "import" not in skip:
            for p in (png, imported):
                shutil.rmtree(p, ignore_errors=True)
            res["export_png"] = run_stage("export_png", cohort, png, env=env)
            res["import"] = run_stage("import", png, imported, env=env)
        res["embed"] = run_stage("embed", cohort, z, env=env)
        if "map" not in skip:
            res["map"] = run_stage("map", cohort, env=env)
        if "plain_umap" not in skip:
            res["plain_umap"] = run_stage("plain_umap", z, env=env)
        if not (ROOT / "bench" / "scale_interactions.py").is_file():   # the scale helper's module
            res["interactions"] = None
        elif "interactions" not in skip:
            res["interactions"] = run_stage("interactions", n, env=env)
    finally:
        shutil.rmtree(home, ignore_errors=True)
        if not args.work:
            shutil.rmtree(work, ignore_errors=True)
    print(json.dumps({"n": n, **res}, default=str), flush=True)   # first: a report that fails loses nothing
    report(n, res)


def report(n: int, res: dict) -> None:
    e = res["embed"]
    print(f"bench_scale: {n:,} knees at 224×224, {e['threads']} thread(s) per stage, {os.cpu_count()} CPUs")
    g = res["generate"]
    print(_row("generation", n, g) + ("   (given cohort: cohort.json's generation_seconds)" if g.get("given") else ""))
    if "import" in res:
        print(_row("import", res["import"]["n"], res["import"]) + f"   (KL-folder PNGs; export took "
              f"{res['export_png']['seconds']:.0f} s, not counted)")
    fl = e["flops_per_image"]
    per = fl["embed"] + fl["reconstruct"]
    roof = e["roofline_gflops"]
    wall, cpu = per * e["n"] / e["seconds"] / 1e9, per * e["n"] / e["cpu_s"] / 1e9 * e["threads"]
    print(_row("embedding", e["n"], e) + f"   {CHECKPOINT}: {per / 1e6:.0f} MFLOP/knee (embed {fl['embed'] / 1e6:.0f}"
          f" + reconstruct {fl['reconstruct'] / 1e6:.0f})")
    print(f"  {'':<11}roofline (2048² float32 matmul): {roof['cpu']:.1f} GFLOP/s per CPU-s, {roof['wall']:.1f} "
          f"wall; embedding {cpu:.1f} GFLOP/s per CPU-s = {100 * cpu / roof['cpu']:.0f} % of it "
          f"({wall:.1f} wall = {100 * wall / roof['wall']:.0f} %)")
    if "map" in res:
        m = res["map"]
        print(f"  map of {m['points']:,} points (service, embeddings cached; peak RSS {m['peak_mb']:.0f} MB):")
        for method in ("pca", "umap"):
            print(f"    {method:<5} cold {m[f'{method}_cold_s']:7.1f} s   warm {m[f'{method}_warm_s']:7.1f} s   "
                  f"cached {m[f'{method}_cached_s']:6.2f} s   (cold / warm {m[f'{method}_cold_s'] / m[f'{method}_warm_s']:.2f})")
    if "plain_umap" in res:
        p = res["plain_umap"]
        line = f"    plain umap-learn  first {p['first_s']:7.1f} s   second {p['second_s']:7.1f} s"
        if "map" in res:
            line += f"   (oaviz cold / plain warm {res['map']['umap_cold_s'] / p['second_s']:.2f})"
        print(line)
    it = res.get("interactions")
    if it is None:
        print("  browser bytes for the map: n/a   interaction latencies: n/a (bench/scale_interactions.py absent)")
    else:
        print(f"  browser bytes for the map: {', '.join(f'{k} {v / 1e6:.1f} MB' for k, v in it['payload_bytes'].items())}")
        for r in it["latencies"]:
            print(f"    {r['interaction']:<12} {r['sessions']} sessions  p50 {r['p50_ms']:6.1f} ms  p95 {r['p95_ms']:6.1f} ms")


if __name__ == "__main__":
    if len(sys.argv) > 2 and sys.argv[1] == "--stage":
        name, rest = sys.argv[2], sys.argv[3:]
        out = STAGES[name](*[int(a) if a.isdigit() else a for a in rest])
        print(json.dumps({**out, "peak_mb": _rss_mb()}, default=str))
    else:
        main()
