"""`oaviz embed --checkpoint CKPT --data COHORT --out FILE`: latent codes of every image."""

from __future__ import annotations


def register(sub) -> None:
    p = sub.add_parser("embed", help="write the latent code (and reconstruction error) of every image")
    p.add_argument("--checkpoint", required=True)
    p.add_argument("--data", required=True, help="cohort folder")
    p.add_argument("--out", required=True, help="output .csv or .parquet")
    p.add_argument("--batch-size", type=int, default=128)
    p.set_defaults(func=run)


def run(args) -> int:
    from oaviz.data.atomic import write_table
    from oaviz.services.embeddings import embed_cohort

    df = embed_cohort(args.checkpoint, args.data, batch_size=args.batch_size, use_cache=False)
    write_table(df, args.out)
    n_z = sum(c.startswith("z_") for c in df.columns)
    print(f"wrote {args.out}: {len(df)} images × {n_z} latent dims")
    return 0
