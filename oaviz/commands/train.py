"""`oaviz train MODEL --data COHORT --out CKPT`: train any registered model."""

from __future__ import annotations

import json

from oaviz.errors import ConfigError


def register(sub) -> None:
    p = sub.add_parser("train", help="train a model on a cohort and write a checkpoint folder")
    p.add_argument("model", help="registered model name (beta_vae, vaesim, cnn, dual_head, ...)")
    p.add_argument("--data", required=True, help="cohort folder")
    p.add_argument("--out", required=True, help="checkpoint folder to write")
    p.add_argument("--preset", default="demo", help="demo (CPU, 128×128) or paper (GPU sizes)")
    p.add_argument("--epochs", type=int)
    p.add_argument("--batch-size", type=int)
    p.add_argument("--lr", type=float)
    p.add_argument("--device", default="auto", help="auto | cpu | cuda | mps")
    p.add_argument("--resume", action="store_true", help="continue the run in --run-dir from its last epoch")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--run-dir", help="folder for events.jsonl and the resume point")
    p.add_argument("--max-images", type=int, help="subsample the training split (quick runs)")
    p.add_argument("--patience", type=int, default=5, help="early-stopping patience in epochs (0 = off)")
    p.add_argument("--init-from", metavar="CHECKPOINT",
                   help="start from the weights of a checkpoint of the same model and config (fine-tuning)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override a model config key (value parsed as JSON, else string)")
    p.add_argument("--unless-current", action="store_true",
                   help="do nothing when --out already holds this model trained on --data (the same cohort "
                        "fingerprint and --set values): `make checkpoints` picks up where it stopped")
    p.set_defaults(func=run)


def is_current(out: str, model: str, data: str, overrides: dict) -> bool:
    """Does checkpoint folder ``out`` hold ``model`` trained on cohort ``data`` with these config values?"""
    from oaviz.models.checkpoints import is_checkpoint, read_checkpoint_info
    from oaviz.services.cohorts import cohort_fingerprint

    if not is_checkpoint(out):
        return False
    c = read_checkpoint_info(out)
    return (c.get("model_type") == model and c.get("cohort", {}).get("fingerprint") == cohort_fingerprint(data)
            and all(c.get("config", {}).get(k) == v for k, v in overrides.items()))


def parse_overrides(items: list[str]) -> dict:
    out = {}
    for item in items:
        if "=" not in item:
            raise ConfigError(f"--set expects KEY=VALUE, got {item!r}")
        k, v = item.split("=", 1)
        try:
            out[k.strip()] = json.loads(v)
        except json.JSONDecodeError:
            out[k.strip()] = v
    return out


def run(args) -> int:
    import sys

    from oaviz.training.loop import TrainSpec, train

    if args.unless_current and is_current(args.out, args.model, args.data, parse_overrides(args.set)):
        print(f"{args.out} is up to date (trained on {args.data}): not retrained")
        return 0
    try:
        spec = TrainSpec(model=args.model, data=args.data, out=args.out, preset=args.preset, epochs=args.epochs,
                         batch_size=args.batch_size, lr=args.lr, device=args.device, resume=args.resume,
                         seed=args.seed, run_dir=args.run_dir, max_images=args.max_images,
                         patience=args.patience, overrides=parse_overrides(args.set), init_from=args.init_from)
        metrics = train(spec)
    except ConfigError as e:
        print(f"oaviz train: error: {e}", file=sys.stderr)
        return 2
    import os
    if os.environ.get("RANK", "0") != "0":  # under torchrun only rank 0 reports
        return 0
    print(f"wrote {args.out}: " + ", ".join(f"{k}={v:.4g}" for k, v in metrics.items() if isinstance(v, float)))
    return 0
