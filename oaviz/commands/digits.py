"""`oaviz digits --out DIR [--size 128]`: scikit-learn's bundled handwritten digits as a cohort (no download).

A small real dataset with known classes, for checking clustering and probes
outside the OA cohort (e.g. VAESim against VAE + KMeans)."""

from __future__ import annotations

from oaviz.errors import DataError


def register(sub) -> None:
    p = sub.add_parser("digits", help="write scikit-learn's 8×8 handwritten digits (1,797 images) as a cohort")
    p.add_argument("--out", required=True, help="cohort folder to create")
    p.add_argument("--size", type=int, default=128, help="resize the 8×8 digits to this side (8–1024)")
    p.add_argument("--overwrite", action="store_true")
    p.set_defaults(func=run)


def run(args) -> int:
    from oaviz.analysis.clustering import digits_cohort

    if not 8 <= args.size <= 1024:
        raise DataError(f"--size must be between 8 and 1024, got {args.size}")
    out = digits_cohort(args.out, size=args.size, overwrite=args.overwrite)
    print(f"wrote {out}: 1797 digit images of {args.size}×{args.size}")
    return 0
