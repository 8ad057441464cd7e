"""`oaviz exchange`: KECAE key exchange between a KL 0 and a KL 2 knee of a cohort.

    oaviz exchange --checkpoint CKPT --pair ID0 ID2 --data COHORT --out DIR [--overwrite]

DIR gets recon_a.png, recon_b.png (each knee decoded from its own key and
non-key vectors), exchanged_a.png (ID0's non-key + ID2's key: should read as
KL 2), exchanged_b.png (ID2's non-key + ID0's key: should read as KL 0) and
discriminator.json: P(KL 2) and P(KL 0) of the two inputs and the four outputs
by the model's discriminator, its decisions, and whether each exchange flipped
it. Written through a temporary folder renamed into place.
"""

from __future__ import annotations

from oaviz.commands.future import write_json, write_png
from oaviz.data.atomic import output_folder


def register(sub) -> None:
    p = sub.add_parser("exchange", help="KECAE key exchange between a KL 0 and a KL 2 knee")
    p.add_argument("--checkpoint", required=True, help="kecae checkpoint folder (or bundled name)")
    p.add_argument("--pair", nargs=2, required=True, metavar=("ID0", "ID2"),
                   help="image ids: the KL 0 (grade_a) knee, then the KL 2 (grade_b) knee")
    p.add_argument("--data", required=True, help="cohort folder")
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--overwrite", action="store_true", help="replace an existing output folder")
    p.set_defaults(func=run)


def run(args) -> int:
    from pathlib import Path

    from oaviz.data.cohort import load_cohort
    from oaviz.errors import DataError
    from oaviz.services.exchange import OUTPUTS, exchange_pair, require_kecae
    from oaviz.services.future import rows_for_ids

    if Path(args.out).exists() and not args.overwrite:
        raise DataError("output folder exists (use --overwrite)", args.out)
    cohort = load_cohort(args.data)
    rows = rows_for_ids(cohort, args.pair)
    loaded = require_kecae(args.checkpoint)
    res = exchange_pair(loaded, cohort, rows[0], rows[1])
    with output_folder(args.out, args.overwrite) as tmp:
        for name in OUTPUTS:
            write_png(tmp / f"{name}.png", getattr(res, name))
        write_json(tmp / "discriminator.json", {**res.summary(), "checkpoint": str(loaded.path)})
    p, ga, gb = res.p_grade_b, res.grade_a, res.grade_b
    print(f"P(KL {gb}): {res.id_a} {p['image_a']:.3f} -> exchanged {p['exchanged_a']:.3f}; "
          f"{res.id_b} {p['image_b']:.3f} -> exchanged {p['exchanged_b']:.3f}")
    flips = sum(res.flipped.values())
    print(f"wrote {args.out}: 4 images + discriminator.json ({flips}/2 exchanges flip the KL {ga}/{gb} decision)")
    return 0
