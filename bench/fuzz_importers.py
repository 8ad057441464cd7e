"""Fuzz every importer: N generated bad inputs each, every case in a child capped at +2 GiB and 30 s.

    OMP_NUM_THREADS=1 python bench/fuzz_importers.py --cases 1000 [--importers npz,dicom] [--first 0]
        [--json results.json]

Prints one row per importer: cases, ok, DataError, unhandled (by exception type), hangs, over-memory, crashes;
then every case that broke the contract with its seed, so ``--importers X --first SEED --cases 1`` replays it.
The cases are ``tests/fuzz/cases.py`` (the same generator as the seeded sample in ``make test``).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import asdict
from pathlib import Path

sys.path.append(str(Path(__file__).resolve().parents[1]))   # for tests.fuzz; oaviz as installed or on PYTHONPATH

from tests.fuzz.cases import IMPORTERS  # noqa: E402
from tests.fuzz.harness import run_many  # noqa: E402


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--cases", type=int, default=100, help="cases per importer")
    p.add_argument("--first", type=int, default=0, help="seed of the first case")
    p.add_argument("--importers", default=",".join(IMPORTERS), help=f"comma-separated, of {', '.join(IMPORTERS)}")
    p.add_argument("--json", type=Path, help="write every result here")
    args = p.parse_args(argv)
    importers = [i for i in args.importers.split(",") if i]
    unknown = sorted(set(importers) - set(IMPORTERS))
    if unknown:
        p.error(f"unknown importer(s) {unknown}")
    t0, done = time.monotonic(), [0]
    total = len(importers) * args.cases

    def progress(r):
        done[0] += 1
        if r.outcome not in ("ok", "DataError"):
            print(f"  {r.importer} seed {r.seed}: {r.outcome} {r.detail[:160]} {r.where}", flush=True)
        if done[0] % 100 == 0 or done[0] == total:
            print(f"[{done[0]}/{total}] {time.monotonic() - t0:.0f} s", flush=True)

    table = run_many(importers, range(args.first, args.first + args.cases), progress=progress)
    print()
    print(table.render())
    print(f"\n{total} cases in {time.monotonic() - t0:.0f} s")
    bad = table.failures()
    for r in bad:
        print(f"- {r.importer} --first {r.seed}: {r.outcome} {r.detail[:200]} {r.where}")
    if args.json:
        args.json.write_text(json.dumps([asdict(r) for r in table.results], indent=1))
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
