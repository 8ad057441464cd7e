"""`oaviz future`: sample future knees with a latent-diffusion checkpoint and score the risk of progression.

    oaviz future --checkpoint CKPT (--image FILE | --image-id ID[,ID…] --data COHORT)
                 --samples N [--steps 50] [--seed 0] --out DIR [--overwrite]

CKPT is the diffusion checkpoint; its config names the VQ-VAE and the KL
classifier it goes with, and the three are loaded once for all images. DIR
gets one folder per image (its id, or the file's stem) holding today.png,
future_00.png … (the generated follow-ups), mean.png, std.png (per-pixel
spread, scaled to its maximum), difference.png (mean − today; mid-grey = no
change, scaled to the largest change), real_future.png when the cohort has the
follow-up, and result.json (kl_probs_now, kl_probs_future, risk, …), plus
results.csv with one row per image. DIR is built in a temporary folder beside
it and renamed into place at the end, so it is never half-written.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np

from oaviz.data.atomic import output_folder  # noqa: F401 (exchange.py imports it from here too)
from oaviz.errors import ConfigError, DataError


def register(sub) -> None:
    p = sub.add_parser("future", help="generate future knees with a latent-diffusion checkpoint, and the risk")
    p.add_argument("--checkpoint", required=True, help="latent_diffusion checkpoint folder (or bundled name)")
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--image", help="one image file (PNG, JPEG or DICOM)")
    src.add_argument("--image-id", help="comma-separated image ids of the cohort given with --data")
    p.add_argument("--data", help="cohort folder (with --image-id)")
    p.add_argument("--samples", type=int, default=8, help="futures per image (default 8)")
    p.add_argument("--steps", type=int, help="DDIM steps (default: the model's sample_steps, 50 in its presets)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--overwrite", action="store_true", help="replace an existing output folder")
    p.set_defaults(func=run)


# ----------------------------------------------------------------- shared with `oaviz exchange`
def write_png(path: Path, img01: np.ndarray) -> None:
    """float [H, W] in [0, 1] -> 8-bit greyscale PNG."""
    from PIL import Image

    Image.fromarray(np.round(np.clip(img01, 0, 1) * 255).astype(np.uint8)).save(path, format="PNG")


def safe_name(text: str) -> str:
    """A folder name for an image id (anything but letters, digits, '.', '_', '-' becomes '_')."""
    name = re.sub(r"[^A-Za-z0-9._-]", "_", str(text)).strip(".") or "image"
    return name[:120]


def write_json(path: Path, data: dict) -> None:
    path.write_text(json.dumps(data, indent=2))


# ----------------------------------------------------------------- the command
def run(args) -> int:
    import pandas as pd

    from oaviz.data.cohort import load_cohort
    from oaviz.data.readers import preprocess_any
    from oaviz.services.future import generate_futures, load_future_models, rows_for_ids

    if args.samples < 1:
        raise ConfigError(f"--samples must be >= 1, got {args.samples}")
    if args.steps is not None and args.steps < 1:
        raise ConfigError(f"--steps must be >= 1, got {args.steps}")
    if Path(args.out).exists() and not args.overwrite:
        raise DataError("output folder exists (use --overwrite)", args.out)
    cohort, rows = None, []
    if args.image_id is not None:
        if not args.data:
            raise ConfigError("--image-id needs --data COHORT")
        cohort = load_cohort(args.data)
        ids = list(dict.fromkeys(i.strip() for i in args.image_id.split(",") if i.strip()))
        rows = rows_for_ids(cohort, ids)            # unknown ids fail before any model is loaded
    elif not Path(args.image).is_file():
        raise DataError("image file not found", args.image)

    models = load_future_models(args.checkpoint)
    kw = dict(n_samples=args.samples, steps=args.steps, seed=args.seed)
    if cohort is None:
        img = preprocess_any(args.image, size=models.image_size).astype(np.float32) / 255.0
        items = [(safe_name(Path(args.image).stem), lambda: generate_futures(models, img, **kw))]
    else:
        items = [(safe_name(cohort.metadata["image_id"].iloc[r]),
                  lambda r=r: generate_futures(models, cohort=cohort, row=r, **kw)) for r in rows]

    table = []
    with output_folder(args.out, args.overwrite) as tmp:
        for name, make in items:
            res = make()
            folder = tmp / name
            folder.mkdir()
            summary = _write_result(folder, res)
            summary["checkpoint"] = str(models.path)
            summary["classifier_checkpoint"] = str(models.classifier_path)
            if cohort is None:
                summary["image_file"] = str(Path(args.image).resolve())
            write_json(folder / "result.json", summary)
            table.append(_csv_row(name, summary))
            print(_line(name, summary))
        df = pd.DataFrame(table)
        for col in ("kl_now", "real_future_kl"):          # grades stay integers beside missing values
            df[col] = df[col].astype("Int64")
        df.to_csv(tmp / "results.csv", index=False)
    print(f"wrote {args.out}: {len(items)} image(s), {args.samples} future(s) each")
    return 0


def _write_result(folder: Path, res) -> dict:
    """PNGs of one FutureResult; returns its summary with the PNG scales."""
    write_png(folder / "today.png", res.today)
    for i, f in enumerate(res.futures):
        write_png(folder / f"future_{i:02d}.png", f)
    write_png(folder / "mean.png", res.mean)
    std_max = float(res.std.max())
    write_png(folder / "std.png", res.std / std_max if std_max > 0 else res.std)
    diff_max = float(np.abs(res.difference).max())
    write_png(folder / "difference.png", 0.5 + res.difference / (2 * diff_max) if diff_max > 0
              else res.difference + 0.5)
    if res.real_future is not None:
        write_png(folder / "real_future.png", res.real_future)
    summary = res.summary()
    summary["png_scales"] = {"std_max": std_max, "difference_max_abs": diff_max}
    return summary


def _csv_row(name: str, s: dict) -> dict:
    row = {"image": name, "image_id": s["image_id"], "risk": s["risk"], "kl_now": s["kl_now"],
           "kl_pred_now": s["kl_pred_now"], "kl_pred_future": s["kl_pred_future"],
           "horizon_months": s["horizon_months"], "n_samples": s["n_samples"], "steps": s["steps"], "seed": s["seed"],
           "real_future_id": s["real_future_id"], "real_future_kl": s["real_future_kl"]}
    row.update({f"p_now_{k}": p for k, p in enumerate(s["kl_probs_now"])})
    row.update({f"p_future_{k}": p for k, p in enumerate(s["kl_probs_future"])})
    return row


def _line(name: str, s: dict) -> str:
    real = f"; real follow-up {s['real_future_id']} KL {s['real_future_kl']}" if s["real_future_id"] else ""
    return (f"{name}: risk {s['risk']:.3f}, predicted KL {s['kl_pred_now']} now -> {s['kl_pred_future']} in "
            f"{s['horizon_months']} months{real}")
