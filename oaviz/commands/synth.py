"""`oaviz synth`: generate a synthetic knee or hip cohort."""

from __future__ import annotations

import sys
import time

from oaviz.errors import DataError


def register(sub) -> None:
    p = sub.add_parser("synth", help="generate a synthetic OA cohort with known ground truth")
    p.add_argument("--out", help="cohort folder to create")
    p.add_argument("--default", action="store_true",
                   help="create the embedded default cohort (data/cohorts/synthetic-knee) if missing")
    p.add_argument("--joint", choices=("knee", "hip"), default="knee")
    p.add_argument("--style", choices=("schematic", "film"), default="schematic",
                   help="knee rendering: schematic (default) or film (calibrated against real radiographs)")
    p.add_argument("--subjects", type=int, default=600)
    p.add_argument("--visits", default="0,12,24", help="visit months, comma-separated (default 0,12,24)")
    p.add_argument("--size", type=int, default=224, help="image side in pixels")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--rater-disagreement", type=float, default=0.25,
                   help="overall share of rater KL grades that differ from the true grade")
    p.add_argument("--progressors", type=float, default=0.18, help="share of fast-progressing subjects")
    p.add_argument("--keep-left", action="store_true",
                   help="store left sides as acquired (mirrored) instead of flipped to right orientation")
    p.add_argument("--healthy", default="",
                   help="pathology signs drawn at each knee's healthy value whatever its grade, comma-separated "
                        "(osteophytes, jsw, sclerosis, cysts, varus, flattening, spines): the same knees and "
                        "labels without them, to see what a model or a page reads")
    p.add_argument("--visible-risk", action="store_true",
                   help="knees: part of each subject's progression risk shows in its baseline image (alignment, "
                        "a narrow joint space for its size), part is its own and unseen; the cohort card's Bayes "
                        "ceiling then reads both (default: the odds depend on the grade alone)")
    p.add_argument("--visit-acquisition", choices=("independent", "subject"), default=None,
                   help="subject: each knee keeps its first film's exposure, processing and texture at every "
                        "visit, as under a longitudinal study's protocol (positioning and noise still vary; "
                        "the default cohort's); independent: every film drawn afresh (default for --out)")
    p.add_argument("--overwrite", action="store_true")
    p.set_defaults(func=run)


def _parse_visits(text: str) -> tuple[int, ...]:
    try:
        return tuple(int(v) for v in text.split(",") if v.strip())
    except ValueError:
        raise DataError(f"--visits must be comma-separated months, got {text!r}") from None


def run(args) -> int:
    from oaviz.data.synthetic import default_cohort_config, generate_cohort, is_current_default
    from oaviz.paths import default_cohort_dir

    if args.default:
        out = default_cohort_dir()
        from oaviz.data.cohort import is_cohort, load_cohort
        if is_cohort(out) and not args.overwrite:
            if is_current_default(load_cohort(out).info):
                print(f"default cohort ready: {out}")
                return 0
            print(f"{out} was made by an earlier version's defaults: making today's default cohort")
            args.overwrite = True
        kwargs = default_cohort_config()
    else:
        if not args.out:
            raise DataError("--out is required (or use --default)")
        out = args.out
        kwargs = dict(joint=args.joint, subjects=args.subjects, visits=_parse_visits(args.visits),
                      size=args.size, seed=args.seed, style=args.style)
    kwargs.update(rater_disagreement=args.rater_disagreement, progressor_fraction=args.progressors,
                  flip_left=not args.keep_left)
    healthy = tuple(t.strip() for t in args.healthy.split(",") if t.strip())
    if healthy:
        kwargs["healthy"] = healthy
    if args.visible_risk:
        kwargs["visible_risk"] = True
    if args.visit_acquisition:
        kwargs["visit_acquisition"] = args.visit_acquisition

    t0 = time.perf_counter()
    last = [0.0]

    tty = sys.stderr.isatty()

    def progress(done: int, total: int) -> None:
        # On a terminal, one line rewritten in place; in a log, a line every few seconds.
        if tty or time.perf_counter() - last[0] > 5 or done == total:
            last[0] = time.perf_counter()
            end = "" if tty and done < total else "\n"
            print(f"{chr(13) if tty else ''}rendered {done}/{total} images", end=end, file=sys.stderr, flush=True)

    path = generate_cohort(out, overwrite=args.overwrite, progress=progress, **kwargs)
    dt = time.perf_counter() - t0
    from oaviz.data.cohort import load_cohort
    c = load_cohort(path)
    n = len(c)
    print(f"wrote {path}: {n} images of {c.image_size[0]}×{c.image_size[1]} from "
          f"{c.metadata.subject_id.nunique()} subjects in {dt:.1f} s ({n / dt:.0f} images/s); "
          f"fingerprint {c.fingerprint}")
    return 0
