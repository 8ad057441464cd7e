"""`oaviz augment`: a cohort of KECAE key-exchanged images, for training a classifier with more OA examples.

    oaviz augment --checkpoint CKPT --data COHORT --pairs 200 --out COHORT_DIR [--split train] [--seed 0]

Random (KL 0, KL 2) pairs of the split give two images each: KL 0 anatomy with the KL 2 key (labelled
KL 2) and the reverse (labelled KL 0). Written as a normal cohort, atomically.
"""

from __future__ import annotations


def register(sub) -> None:
    p = sub.add_parser("augment", help="write a cohort of KECAE key-exchanged images (an augmentation set)")
    p.add_argument("--checkpoint", required=True, help="kecae checkpoint folder (or bundled name)")
    p.add_argument("--data", required=True, help="source cohort folder")
    p.add_argument("--pairs", type=int, default=200, help="number of (KL 0, KL 2) pairs; two images each")
    p.add_argument("--split", default="train", choices=("train", "val", "test"), help="draw pairs from this split")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", required=True, help="cohort folder to create")
    p.add_argument("--overwrite", action="store_true")
    p.set_defaults(func=run)


def run(args) -> int:
    from oaviz.services.exchange import augmentation_cohort

    out = augmentation_cohort(args.checkpoint, args.data, args.out, n_pairs=args.pairs, split=args.split,
                              seed=args.seed, overwrite=args.overwrite)
    print(f"wrote {out}: {2 * args.pairs} exchanged images from {args.pairs} pairs of the {args.split} split")
    return 0
