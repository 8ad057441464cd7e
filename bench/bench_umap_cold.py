"""The first UMAP map of a fresh server against a warm one, and against plain umap-learn, in one run.

Each case runs in its own fresh Python process on the same latents (N × 64 standard-normal float32,
seeded), because numba's compilation is what makes a first call slow:
- plain: `umap.UMAP(random_state=0).fit_transform(Z)` twice in a fresh process (first = cold, second = warm);
- oaviz: `warm_up_jit()` (what the app runs in a background thread at start-up), then the
  Projector's UMAP fit twice.
Prints each time and the ratio first / warm for both; issue 16 asks for oaviz's ≤ 1.2.

    .venv/bin/python bench/bench_umap_cold.py [N=10000]
"""

from __future__ import annotations

import json
import subprocess
import sys

CASE = r"""
import json, sys, time, warnings
import numpy as np
n, case = int(sys.argv[1]), sys.argv[2]
Z = np.random.default_rng(0).normal(size=(n, 64)).astype(np.float32)
out = {}
if case == "oaviz":
    from oaviz.analysis.projections import Projector, warm_up_jit
    out["warm_up_s"] = warm_up_jit()
    fit = lambda: Projector(method="umap", random_state=0).fit(Z)
else:
    import umap
    fit = lambda: umap.UMAP(random_state=0).fit_transform(Z)
warnings.filterwarnings("ignore")
for k in ("first_s", "warm_s"):
    t = time.perf_counter(); fit(); out[k] = time.perf_counter() - t
print(json.dumps(out))
"""


def run(n: int, case: str) -> dict:
    res = subprocess.run([sys.executable, "-c", CASE, str(n), case], capture_output=True, text=True, check=True)
    return json.loads(res.stdout.strip().splitlines()[-1])


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 10_000
    plain, ours = run(n, "plain"), run(n, "oaviz")
    print(f"UMAP of {n:,} × 64 latents, each case in a fresh process")
    print(f"  plain umap-learn: first {plain['first_s']:.1f} s, warm {plain['warm_s']:.1f} s "
          f"(first / warm {plain['first_s'] / plain['warm_s']:.2f})")
    print(f"  oaviz after the start-up warm-up ({ours['warm_up_s']:.1f} s in the background): first "
          f"{ours['first_s']:.1f} s, warm {ours['warm_s']:.1f} s (first / warm {ours['first_s'] / ours['warm_s']:.2f}; "
          f"first / plain warm {ours['first_s'] / plain['warm_s']:.2f})")


if __name__ == "__main__":
    main()
