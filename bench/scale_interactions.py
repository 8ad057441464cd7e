"""Map payload and interaction latencies at scale (issue 16 items 1 and 4); bench/bench_scale.py imports both.

- ``map_payload_bytes(n)``: bytes of the latent-map figure the page sends the browser for ``n`` knees
  (``plotly.io.to_json``, exactly what ``st.plotly_chart`` puts in its message), coloured by a
  categorical (``kl``) and by a continuous column (``severity``). The table is synthetic but has the
  columns and dtypes of the page's (``services.latent_map._assemble``), so nothing is embedded.
- ``interaction_latencies(sessions)``: decode-anywhere, interpolation (10 steps) and prior sampling
  (16) called at the service, ``sessions`` threads at once, each a visitor issuing requests back to
  back (no think time: the worst case) on one cached PCA map of the default cohort and the bundled
  β-VAE, loaded once as the app's shared cache does. p50/p95 in ms per interaction. Run twice in one
  process: as served (``load_checkpoint(frozen=True)``: decodes at bf16 where the CPU has it natively)
  and with the same model decoding at fp32 (the baseline), with the p95 ratio.

    .venv/bin/python bench/scale_interactions.py [--repeats 12] [--cohort DIR] [--think 1.0] [--torch-threads 1]
"""

from __future__ import annotations

import argparse
import os
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pandas as pd
import plotly.io

INTERACTIONS = ("decode", "interpolate", "sample")


def synthetic_map_table(n: int, seed: int = 0) -> pd.DataFrame:
    """A map table of n knees with the page's columns (row, image_id, x, y, metadata, recon_error, pred_kl)."""
    rng = np.random.default_rng(seed)
    subj = rng.integers(0, max(1, n // 10), n)
    visit = rng.choice([0, 12, 24, 36, 48], n)
    side = rng.choice(["L", "R"], n)
    kl = rng.integers(0, 5, n)
    return pd.DataFrame({
        "row": np.arange(n, dtype=np.int64),
        "image_id": [f"S{s:05d}_{sd}_V{v:03d}" for s, sd, v in zip(subj, side, visit)],
        "x": rng.normal(size=n).astype(np.float32), "y": rng.normal(size=n).astype(np.float32),
        "subject_id": [f"S{s:05d}" for s in subj], "visit_month": visit, "side": side,
        "label": kl, "kl": pd.array(kl, dtype="Int64"), "oa": pd.array((kl >= 2).astype(int), dtype="Int64"),
        "split": rng.choice(["train", "val", "test"], n), "kl_true": kl,
        "severity": rng.uniform(0, 4, n).round(4), "jsw_mm": rng.uniform(1, 6, n).round(3),
        "progressor": rng.integers(0, 2, n), "recon_error": rng.uniform(0, 0.02, n).astype(np.float32),
        "pred_kl": pd.array(kl, dtype="Int64"),
    })


def map_payload_bytes(n: int, colours=("kl", "severity")) -> dict[str, int]:
    """{colour: bytes of the map figure's JSON spec} for n knees (what the browser receives)."""
    from oaviz.ui.map_figure import latent_map_figure

    table = synthetic_map_table(n)
    return {c: len(plotly.io.to_json(latent_map_figure(table, c), validate=False).encode()) for c in colours}


def map_setup(cohort=None, checkpoint: str = "beta_vae-demo"):
    """(loaded checkpoint, cohort, its cached PCA map of every knee): what the app holds in its shared
    caches. cohort: a folder or Cohort (default: the default synthetic cohort); checkpoint: a folder or a
    bundled checkpoint's name. bench_scale.py passes its N-knee cohort to measure on that map."""
    from oaviz.models.checkpoints import load_checkpoint, resolve_checkpoint
    from oaviz.services.cohorts import ensure_default_cohort
    from oaviz.services.latent_map import build_latent_map
    from oaviz.services.model_io import as_cohort

    cohort = as_cohort(cohort if cohort is not None else ensure_default_cohort())
    loaded = load_checkpoint(resolve_checkpoint(checkpoint), device="cpu", frozen=True)
    lm = build_latent_map(loaded, cohort, method="pca", max_points=None, seed=0)
    return loaded, cohort, lm


def _calls(loaded, cohort, lm):
    from oaviz.services.interpolation import interpolate
    from oaviz.services.latent_map import decode_at
    from oaviz.services.sampling import sample_prior

    x0, x1 = float(lm.table["x"].min()), float(lm.table["x"].max())
    y0, y1 = float(lm.table["y"].min()), float(lm.table["y"].max())
    n = len(cohort)
    return {
        "decode": lambda r: decode_at(loaded, lm, r.uniform(x0, x1), r.uniform(y0, y1)),
        "interpolate": lambda r: interpolate(loaded, cohort, int(r.integers(n)), int(r.integers(n)), steps=10),
        "sample": lambda r: sample_prior(loaded, n=16, seed=int(r.integers(1 << 30)), cohort=cohort),
    }


def interaction_latencies(sessions: int = 8, repeats: int = 12, setup=None, think_s: float = 0.0) -> pd.DataFrame:
    """One row per interaction: sessions, think_s, calls, p50_ms, p95_ms, max_ms and cpu_ms (median CPU time
    of one call in its thread: what the call costs, whatever else the machine runs). Each of ``sessions``
    threads calls every interaction ``repeats`` times (interleaved, seeded), pausing a random
    0.5–1.5 × ``think_s`` seconds after each (0: back to back); one warm-up round runs first.
    setup: ``map_setup(...)``'s triple, built once and shared by several calls (default: ``map_setup()``)."""
    loaded, cohort, lm = setup or map_setup()
    calls = _calls(loaded, cohort, lm)
    warm = np.random.default_rng(12345)
    for f in calls.values():  # fills the probe / reference caches a running server already holds
        f(warm)
    times: dict[str, list[float]] = {k: [] for k in INTERACTIONS}
    cpu: dict[str, list[float]] = {k: [] for k in INTERACTIONS}   # this thread's CPU time: what load hides
    lock, start = threading.Lock(), threading.Barrier(sessions)

    def visitor(i: int) -> None:
        r = np.random.default_rng(i)
        start.wait()
        for _ in range(repeats):
            for name in INTERACTIONS:
                t, c = time.perf_counter(), time.thread_time()
                calls[name](r)
                dt, dc = (time.perf_counter() - t) * 1000, (time.thread_time() - c) * 1000
                with lock:
                    times[name].append(dt)
                    cpu[name].append(dc)
                if think_s:
                    time.sleep(think_s * r.uniform(0.5, 1.5))

    with ThreadPoolExecutor(sessions) as pool:
        list(pool.map(visitor, range(sessions)))
    return pd.DataFrame([{"interaction": k, "sessions": sessions, "think_s": think_s, "calls": len(v),
                          "p50_ms": float(np.percentile(v, 50)), "p95_ms": float(np.percentile(v, 95)),
                          "max_ms": float(np.max(v)), "cpu_ms": float(np.median(cpu[k]))} for k, v in times.items()])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=12)
    ap.add_argument("--sizes", type=int, nargs="*", default=[10_000, 50_000])
    ap.add_argument("--cohort", help="cohort folder (default: the default synthetic cohort)")
    ap.add_argument("--think", type=float, default=1.0, help="mean pause of a visitor between interactions (s)")
    ap.add_argument("--torch-threads", type=int, default=None, help="torch intra-op threads (default: torch's)")
    args = ap.parse_args()
    if args.torch_threads:
        import torch

        torch.set_num_threads(args.torch_threads)
    for n in args.sizes:
        b = map_payload_bytes(n)
        print(f"map payload, {n:,} knees: " + ", ".join(f"colour {c} {v / 1e6:.2f} MB" for c, v in b.items()))
    setup = map_setup(args.cohort)
    import torch

    print(f"interactions on the cached PCA map of {len(setup[1]):,} knees (bundled beta_vae-demo), "
          f"torch threads {torch.get_num_threads()}; think_s 0 = back to back")
    from oaviz.training.device import cpu_has_native_bf16

    runs = [(1, 0.0), (8, 0.0)] + ([(8, args.think)] if args.think else [])
    model, tables = setup[0].model, {}
    for precision, serving in (("served", True), ("fp32", False)):
        model.serving = serving        # False: services.model_io.decode at full precision (the baseline)
        tables[precision] = pd.concat([interaction_latencies(s, args.repeats, setup, think) for s, think in runs])
    model.serving = True
    table = tables["served"].assign(p95_fp32_ms=tables["fp32"]["p95_ms"].to_numpy(),
                                    cpu_fp32_ms=tables["fp32"]["cpu_ms"].to_numpy())
    table["p95_ratio"] = table["p95_ms"] / table["p95_fp32_ms"]
    print(f"served precision: {'bf16 (native on this CPU)' if cpu_has_native_bf16() else 'fp32 (no native bf16)'}")
    print(table.to_string(index=False, float_format=lambda v: f"{v:.2f}" if v < 10 else f"{v:.1f}"))
    print(f"load average while measuring: {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")


if __name__ == "__main__":
    main()
