"""`oaviz import {kl-folders,dicom,npz,csv} SRC --out DIR`: bring real data in as a cohort."""

from __future__ import annotations


def register(sub) -> None:
    p = sub.add_parser("import", help="import real data (KL folders, DICOM, MedMNIST npz, CSV manifest)")
    p.add_argument("kind", choices=("kl-folders", "dicom", "npz", "csv"))
    p.add_argument("src", help="source folder, .npz file or manifest CSV")
    p.add_argument("--out", required=True, help="cohort folder to create")
    p.add_argument("--size", type=int, default=224, help="output image side (pixels)")
    p.add_argument("--on-error", choices=("skip", "stop"), default="skip",
                   help="skip bad files and report them (default) or stop at the first")
    p.add_argument("--labels", help="dicom: labels CSV (path column, or OAI ID, SIDE[, VISIT], KL / VxxXRKL)")
    p.add_argument("--columns", help="dicom: column mapping NAME=column,… (NAME in path, ID, SIDE, VISIT, KL)")
    p.add_argument("--spacing", type=float, default=0.4, help="dicom/csv: resample to this many mm per pixel")
    p.add_argument("--labels-are", choices=("kl", "other"), default="other",
                   help="npz: whether the labels are KL grades (fills kl/oa)")
    p.add_argument("--overwrite", action="store_true")
    p.set_defaults(func=run)


def run(args) -> int:
    import sys

    from oaviz.data import importers as imp
    from oaviz.data.kl_folders import import_kl_folders
    from oaviz.errors import DataError

    if args.kind == "kl-folders":
        rep = import_kl_folders(args.src, args.out, size=args.size, on_error=args.on_error, overwrite=args.overwrite)
    elif args.kind == "dicom":
        if not args.labels:
            raise DataError("--labels is required for a DICOM import")
        rep = imp.import_dicom(args.src, args.out, labels=args.labels, columns=imp.parse_columns(args.columns),
                               size=args.size, spacing_mm=args.spacing, on_error=args.on_error,
                               overwrite=args.overwrite)
    elif args.kind == "npz":
        from oaviz.data.npz_import import import_npz

        rep = import_npz(args.src, args.out, labels_are=args.labels_are,
                         size=args.size if args.size != 224 else None, overwrite=args.overwrite)
    else:
        rep = imp.import_csv(args.src, args.out, size=args.size, on_error=args.on_error, overwrite=args.overwrite,
                             spacing_mm=args.spacing)
    for where, reason in rep.skipped[:20]:
        print(f"skipped {where}: {reason}", file=sys.stderr)
    if len(rep.skipped) > 20:
        print(f"… and {len(rep.skipped) - 20} more", file=sys.stderr)
    for w in rep.warnings:
        print(f"warning: {w}", file=sys.stderr)
    print(rep.summary())
    return 0
