"""Latent map speed on the demo cohort: cold vs cached maps, UMAP overhead, decode latencies.

Prints (no assertions on time):
- time to a ready latent map for pca / umap / t-SNE: from cold (nothing cached: embed the
  cohort, project, fit the KL probe, structure metrics) and from the disk cache;
- UMAP through oaviz (seeded, one thread: the default) against plain
  ``umap.UMAP().fit_transform(Z)`` (unseeded, all threads) on the same latents, both after
  numba's one-off compilation, plus oaviz unseeded with n_jobs=-1;
- latency of decode_at, an interpolation (decode a [10, D] batch) and a prior sample
  (decode [16, D]): median and p95 over 20 repetitions;
- an upload placed on a cached map: the first call (PCA/UMAP refit lazily) and the next ones.

    .venv/bin/python bench/bench_latent.py
    OMP_WAIT_POLICY=PASSIVE .venv/bin/python bench/bench_latent.py   # see the note printed at the end

Caches go to a temporary OAVIZ_HOME, so "cold" is really cold and the user's cache is untouched.
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import torch

from oaviz.paths import checkpoints_dir, default_cohort_dir

REPS = 20


def pct(ts: list[float]) -> str:
    a = np.asarray(ts) * 1000
    return f"median {np.median(a):7.1f} ms   p95 {np.percentile(a, 95):7.1f} ms"


def timed(fn, reps: int = REPS) -> list[float]:
    fn()  # warm-up
    out = []
    for _ in range(reps):
        t = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t)
    return out


def main() -> None:
    cohort_dir = default_cohort_dir()
    if not cohort_dir.is_dir():
        print(f"{cohort_dir} missing: generating it (oaviz synth --default)")
        from oaviz.cli import main as cli
        if cli(["synth", "--default"]) != 0:
            sys.exit("could not generate the default cohort")
    os.environ["OAVIZ_HOME"] = tempfile.mkdtemp(prefix="oaviz-bench-latent-")
    from oaviz.data.cohort import load_cohort
    from oaviz.models.base import build_model
    from oaviz.services import latent_map as lm
    from oaviz.training.checkpoint import load_checkpoint, save_checkpoint

    ck_path = checkpoints_dir() / "beta_vae-demo"
    if (ck_path / "model.safetensors").is_file():
        # A private copy: a retrain replacing the bundled checkpoint mid-run must not change the key.
        ck_path = Path(shutil.copytree(ck_path, Path(os.environ["OAVIZ_HOME"]) / "beta_vae-demo"))
    else:
        torch.manual_seed(0)
        ck_path = save_checkpoint(build_model("beta_vae", preset="demo"), Path(os.environ["OAVIZ_HOME"]) / "untrained")
        print("NOTE: checkpoints/beta_vae-demo is absent: using an UNTRAINED demo-preset β-VAE")
    cohort = load_cohort(cohort_dir)
    ck = load_checkpoint(ck_path)
    print(f"cohort {cohort.name}: {len(cohort)} images {cohort.image_size}; checkpoint {ck_path.name} "
          f"(input {ck.model.input_size}, latent {ck.model.embed_dim})")
    print(f"cpus {os.cpu_count()}, torch threads {torch.get_num_threads()}, "
          f"OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS', '-')}, "
          f"OMP_WAIT_POLICY={os.environ.get('OMP_WAIT_POLICY', '-')}, load average {os.getloadavg()[0]:.1f}")

    # ------------------------------------------------------------ cold vs cached
    print("\n== time to a ready latent map (s) ==")
    t = time.perf_counter()
    from oaviz.services.embeddings import embed_cohort
    embed_cohort(ck_path, cohort)
    t_embed = time.perf_counter() - t
    print(f"embed the cohort once (cold, then on disk): {t_embed:.1f} s")
    print(f"{'method':7} {'project':>8} {'probe':>6} {'struct':>7} {'cold total':>11} {'cached':>7} {'speed-up':>8}")
    results = {}
    for method in ("pca", "umap", "tsne"):
        cold = lm.build_latent_map(ck, cohort, method=method)
        hit = lm.build_latent_map(ck, cohort, method=method)
        assert hit.cached and not cold.cached
        tm = cold.timings
        cold_total = t_embed + tm["total_s"] - tm["embed_s"]
        print(f"{method:7} {tm['project_s']:8.2f} {tm['probe_s']:6.2f} {tm['structure_s']:7.2f} "
              f"{cold_total:11.2f} {hit.timings['total_s']:7.3f} {cold_total / hit.timings['total_s']:7.0f}×")
        results[method] = hit
    print("(umap's project time includes numba's first compilation in this process)")
    st = results["pca"].structure
    print("latent structure: " + ", ".join(f"{m} {v:.3f}" for m, v in zip(st.metric, st.value)))
    print("trustworthiness (k=10): " + ", ".join(
        f"{m} {results[m].structure.set_index('metric').loc['trustworthiness', 'value']:.3f}" for m in results))

    # ------------------------------------------------------------ UMAP overhead
    import umap
    from oaviz.analysis.projections import Projector

    Z = results["umap"].Z
    warm = np.random.default_rng(0).normal(size=(100, Z.shape[1])).astype(np.float32)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        umap.UMAP().fit_transform(warm)  # compile the parallel layout too, so neither side pays numba
        t = time.perf_counter()
        Projector("umap", random_state=0).fit(Z)
        t_ours = time.perf_counter() - t
        t = time.perf_counter()
        umap.UMAP().fit_transform(Z)
        t_plain = time.perf_counter() - t
        t = time.perf_counter()
        Projector("umap", random_state=None, n_jobs=-1).fit(Z)
        t_par = time.perf_counter() - t
    print(f"\n== UMAP on the same {len(Z)}×{Z.shape[1]} latents (after compilation) ==")
    print(f"oaviz Projector (seeded, 1 thread, default): {t_ours:.2f} s")
    print(f"plain umap.UMAP().fit_transform (unseeded, parallel): {t_plain:.2f} s   ratio oaviz/plain {t_ours / t_plain:.2f}")
    print(f"oaviz Projector(random_state=None, n_jobs=-1): {t_par:.2f} s")

    # ------------------------------------------------------------ latencies
    model = ck.model
    z0, z1 = torch.from_numpy(results["pca"].Z[0]), torch.from_numpy(results["pca"].Z[1])
    steps = torch.linspace(0, 1, 10)[:, None]
    gen = torch.Generator().manual_seed(0)

    @torch.no_grad()
    def interpolate():
        return model.decode((1 - steps) * z0 + steps * z1)

    @torch.no_grad()
    def prior():
        return model.decode(torch.randn(16, model.embed_dim, generator=gen))

    print(f"\n== latency over {REPS} repetitions ==")
    for method in ("pca", "umap", "tsne"):
        res = results[method]
        px, py = res.table[["x", "y"]].mean().to_numpy()
        print(f"decode_at ({method:4}):      {pct(timed(lambda: lm.decode_at(ck, res, float(px), float(py))))}")
    print(f"interpolate (10 steps):  {pct(timed(interpolate))}")
    print(f"prior sample (16):       {pct(timed(prior))}")

    # An uploaded knee on a map read from the cache: PCA/UMAP refit their estimator on the first upload.
    import io

    from PIL import Image
    buf = io.BytesIO()
    Image.fromarray(np.asarray(cohort.images[0])).save(buf, format="PNG")
    png = buf.getvalue()
    print("\n== upload a PNG onto a cached map: first call (lazy refit) / then ==")
    for method in ("pca", "umap", "tsne"):
        res = results[method]
        t = time.perf_counter()
        lm.embed_upload(ck, cohort, res, png, "knee.png")
        first = time.perf_counter() - t
        rest = timed(lambda: lm.embed_upload(ck, cohort, res, png, "knee.png"), reps=5)
        print(f"embed_upload ({method:4}): first {first * 1000:8.0f} ms   then {pct(rest)}")
    if os.environ.get("OMP_WAIT_POLICY", "").upper() != "PASSIVE" and os.getloadavg()[0] > (os.cpu_count() or 1):
        print("\nnote: the machine is busier than its core count; OpenMP threads that spin while waiting "
              "slow torch down badly then: try OMP_WAIT_POLICY=PASSIVE")


if __name__ == "__main__":
    main()
