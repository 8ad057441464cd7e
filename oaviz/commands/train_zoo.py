"""`oaviz train-zoo --data COHORT --out DIR`: every model the cohort can feed, in dependency order, resumable."""

from __future__ import annotations

import sys

from oaviz.errors import ConfigError


def register(sub) -> None:
    p = sub.add_parser("train-zoo", help="train every model a cohort can feed into one folder (a model set)",
                       description="Trains, in order, the models of the zoo that the cohort can feed (no visits: "
                                   "no latent diffusion; no KL 0/2 knees: no KECAE; no landmarks: the multitask "
                                   "landmark head is left untrained) and writes DIR/zoo.json naming the cohort and "
                                   "every checkpoint. A folder under the app's runs folder (data/runs/ or "
                                   "$OAVIZ_HOME/runs/) is offered in the sidebar as a model set.")
    p.add_argument("--data", required=True, help="cohort folder")
    p.add_argument("--out", required=True, help="zoo folder to write (DIR/<model>/checkpoint per model)")
    p.add_argument("--preset", default="real", help="real (default: real radiographs, CPU sizes), demo or paper")
    p.add_argument("--models", help="comma-separated subset (their dependencies are added), e.g. beta_vae,cnn")
    p.add_argument("--resume", action="store_true",
                   help="continue a zoo in DIR: complete models are kept, an interrupted one resumes its last epoch")
    p.add_argument("--epochs", type=int, help="epochs of every model (default: each preset's)")
    p.add_argument("--max-images", type=int, help="subsample each training split (quick runs)")
    p.add_argument("--patience", type=int, default=5, help="early-stopping patience in epochs (0 = off)")
    p.add_argument("--device", default="auto", help="auto | cpu | cuda | mps")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--set", action="append", default=[], metavar="MODEL.KEY=VALUE",
                   help="override one model's config key, e.g. dual_head.epochs=80 (value parsed as JSON)")
    p.set_defaults(func=run)


def model_overrides(items: list[str]) -> dict[str, dict]:
    """['dual_head.epochs=80', …] -> {'dual_head': {'epochs': 80}, …}."""
    from oaviz.commands.train import parse_overrides

    out: dict[str, dict] = {}
    for k, v in parse_overrides(items).items():
        model, dot, key = k.partition(".")
        if not dot or not key:
            raise ConfigError(f"--set expects MODEL.KEY=VALUE, got {k!r}")
        out.setdefault(model, {})[key] = v
    return out


def run(args) -> int:
    from oaviz.data.cohort import load_cohort
    from oaviz.training.zoo import ZooSpec, plan_zoo, train_zoo

    models = [m.strip() for m in args.models.split(",") if m.strip()] if args.models else None
    for item in plan_zoo(load_cohort(args.data), models, args.preset):
        if item.skipped:
            print(f"skip {item.model}: {item.reason}")
        else:
            print(f"train {item.model}" + "".join(f"; {n}" for n in item.notes))
    sys.stdout.flush()
    manifest = train_zoo(ZooSpec(data=args.data, out=args.out, preset=args.preset, models=models,
                                 epochs=args.epochs, max_images=args.max_images, device=args.device, seed=args.seed,
                                 patience=args.patience, resume=args.resume, overrides=model_overrides(args.set)))
    for e in manifest["models"]:
        took = f" in {e['seconds']:.0f} s" if e.get("seconds") else ""
        print(f"{e['model']}: {e['status']}{took}" + (f" ({e['reason']})" if e.get("reason") else ""))
    print(f"wrote {args.out}/zoo.json")
    return 0 if all(e["status"] in ("trained", "skipped") for e in manifest["models"]) else 1
