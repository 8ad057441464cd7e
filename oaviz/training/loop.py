"""The one training loop every oaviz model goes through.

Seeded; Adam at a constant lr or on a one-cycle schedule (``training.schedule``); validation
each epoch; early stopping on the validation loss (best weights restored; under one-cycle the last);
resumable from the last finished epoch; DDP when started by torchrun (only rank 0 writes);
progress events to events.jsonl.
Feeds every batch kind in ``oaviz.training.data.BATCH_KINDS``: single images,
visit pairs (diffusion) and grade pairs (KECAE, redrawn every epoch); for pairs
``max_images`` caps the number of training pairs.
A failure writes an ``error`` event and leaves no checkpoint at ``out``.
"""

from __future__ import annotations

import json
import math
import shlex
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from sklearn.metrics import roc_auc_score
from safetensors.torch import load_file, save_file
from torch import nn

from oaviz.data.atomic import atomic_file, write_json
from oaviz.data.cohort import load_cohort
from oaviz.errors import ConfigError
from oaviz.models.base import Cap, build_model, get_spec, has_capability, make_config
from oaviz.training import ddp
from oaviz.training.checkpoint import save_checkpoint
from oaviz.training.data import BATCH_KINDS, SplitTensors, training_data
from oaviz.training.device import autocast, grad_scaler, pick_device
from oaviz.training.events import EventLog
from oaviz.training.schedule import make_schedule, runs_to_the_end
from oaviz.training.metrics import validation_metrics


@dataclass
class TrainSpec:
    model: str
    data: str
    out: str
    preset: str = "demo"
    epochs: int | None = None
    batch_size: int | None = None
    lr: float | None = None
    device: str = "auto"
    resume: bool = False
    seed: int = 0
    run_dir: str | None = None
    max_images: int | None = None
    patience: int = 5
    overrides: dict = field(default_factory=dict)
    log_every: int = 5
    init_from: str | None = None   # a checkpoint of the same model type to start from (fine-tuning)
    command: str | None = None     # the `oaviz train …` line recorded in the checkpoint (default: this process's argv)
    listener: object = None        # called with every progress event (EventLog); train-zoo's progress relay


class _LossModule(nn.Module):
    """Wraps model.loss as forward so DistributedDataParallel can sync gradients."""

    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, batch, step):
        out = self.model.loss(batch, step)
        return out.total, out.terms


def batch_slices(n: int, batch_size: int) -> list[tuple[int, int]]:
    """(start, stop) of each training batch over n items. A last batch of a single item is folded into
    the one before: BatchNorm cannot train on one sample (and one sample is a poor gradient anyway)."""
    cuts = list(range(0, n, batch_size)) + [n]
    if len(cuts) > 2 and cuts[-1] - cuts[-2] == 1:
        del cuts[-2]
    return list(zip(cuts[:-1], cuts[1:])) or [(0, 0)]


def _seed_all(seed: int) -> None:
    torch.manual_seed(seed)
    np.random.seed(seed % 2**32)


def _warm_start(model, model_type: str, checkpoint: str) -> None:
    """Load the weights of a checkpoint of the same type and architecture (strict) before training."""
    from oaviz.models.checkpoints import load_checkpoint, resolve_checkpoint

    loaded = load_checkpoint(resolve_checkpoint(checkpoint))
    if loaded.info.get("model_type") != model_type:
        raise ConfigError(f"{checkpoint}: a {loaded.info.get('model_type')} checkpoint cannot start a "
                          f"{model_type} training run")
    try:
        model.load_state_dict(loaded.model.state_dict())
    except RuntimeError as e:  # another architecture (widths, image size, heads)
        raise ConfigError(f"{checkpoint}: its weights do not fit this {model_type} config ({e})") from None


def _save_resume(run_dir: Path, model, opt, state: dict) -> None:
    """last.safetensors (model + optimiser tensors) + last_state.json, atomically."""
    tensors = {f"model.{k}": v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    osd = opt.state_dict()
    for pid, st in osd["state"].items():
        for k, v in st.items():
            t = v if torch.is_tensor(v) else torch.tensor(v)
            tensors[f"opt.{pid}.{k}"] = t.detach().cpu().contiguous()
    with atomic_file(run_dir / "last.safetensors") as tmp:
        save_file(tensors, str(tmp))
    write_json(run_dir / "last_state.json", {**state, "param_groups": osd["param_groups"]}, indent=None)


def _load_resume(run_dir: Path, model, opt) -> dict | None:
    f, s = run_dir / "last.safetensors", run_dir / "last_state.json"
    if not (f.is_file() and s.is_file()):
        return None
    tensors = load_file(str(f))
    meta = json.loads(s.read_text())
    model.load_state_dict({k[6:]: v for k, v in tensors.items() if k.startswith("model.")})
    state: dict = {}
    for k, v in tensors.items():
        if k.startswith("opt."):
            _, pid, name = k.split(".", 2)
            state.setdefault(int(pid), {})[name] = v
    opt.load_state_dict({"state": state, "param_groups": meta.pop("param_groups")})
    return meta


def default_run_dir(model: str) -> Path:
    from oaviz.paths import runs_dir
    return runs_dir() / f"{model}-{time.strftime('%Y%m%d-%H%M%S')}"


def train(spec: TrainSpec) -> dict:
    """Train and write the checkpoint folder ``spec.out``; returns the final metrics."""
    rank, world = ddp.setup()
    is_main = rank == 0
    run_dir = Path(spec.run_dir) if spec.run_dir else default_run_dir(spec.model)
    log = EventLog(run_dir / "events.jsonl", enabled=is_main, listener=spec.listener)
    try:
        result = _train(spec, rank, world, run_dir, log)
        return result
    except BaseException as e:
        log.write("error", type=type(e).__name__, message=str(e))
        raise
    finally:
        ddp.teardown()


def _train(spec: TrainSpec, rank: int, world: int, run_dir: Path, log: EventLog) -> dict:
    is_main = rank == 0
    model_cls = get_spec(spec.model).model_cls  # unknown model -> ConfigError before any work
    if model_cls.batch_kind not in BATCH_KINDS:
        raise ConfigError(f"{spec.model} trains on {model_cls.batch_kind.replace('_', ' ')}, which this training "
                          f"engine cannot feed yet (it feeds: {', '.join(BATCH_KINDS)})")
    config = make_config(spec.model, spec.preset, spec.overrides)
    epochs = spec.epochs or getattr(config, "epochs", 10)
    batch_size = spec.batch_size or getattr(config, "batch_size", 32)
    lr = spec.lr or getattr(config, "lr", 1e-3)
    device = ddp.device_for_rank(pick_device(spec.device), rank)
    _seed_all(spec.seed)

    cohort = load_cohort(spec.data)
    size = int(config.image_size)
    # Pairs are checked (DataError: no follow-ups, no KL 0 / KL 2 images) before any model is built.
    train_t, val_t = training_data(cohort, model_cls.batch_kind, config, spec.max_images, spec.seed)

    model = build_model(spec.model, config)
    model.fit_training_labels(train_t.kl)     # e.g. KL class weights; recomputed on resume (same split)
    if spec.init_from:
        _warm_start(model, spec.model, spec.init_from)
    model = model.to(device)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    scaler = grad_scaler(device)
    per_rank = math.ceil(len(train_t) / world)
    slices = batch_slices(per_rank, batch_size)
    steps_per_epoch = len(slices)
    total_steps = epochs * steps_per_epoch
    model.set_total_steps(total_steps)
    wrapped = (ddp.wrap(_LossModule(model), device, find_unused_parameters=ddp.needs_unused_parameter_search(model))
               if world > 1 else _LossModule(model))

    if is_main:
        run_dir.mkdir(parents=True, exist_ok=True)
        (run_dir / "argv.json").write_text(json.dumps(sys.argv))
    start_epoch, global_step = 0, 0
    best_val, best_state, bad_epochs = math.inf, None, 0
    if spec.resume:
        meta = _load_resume(run_dir, model, opt)
        if meta is not None:
            start_epoch, global_step = meta["epoch"] + 1, meta["global_step"]
            best_val, bad_epochs = meta.get("best_val", math.inf), meta.get("bad_epochs", 0)
            torch.manual_seed(spec.seed + start_epoch)
    schedule_name = getattr(config, "lr_schedule", "constant")
    sched = make_schedule(opt, schedule_name, lr, total_steps, global_step)
    to_the_end = runs_to_the_end(schedule_name)        # one-cycle: every epoch, the last weights kept
    log.write("start", model=spec.model, preset=spec.preset, epochs=epochs, steps_per_epoch=steps_per_epoch,
              device=str(device), world_size=world, out=str(spec.out), n_train=len(train_t),
              n_val=0 if val_t is None else len(val_t), start_epoch=start_epoch, batch_size=batch_size,
              batch_kind=model_cls.batch_kind, train_data=train_t.describe())

    t_start = time.perf_counter()
    images_seen, status = 0, "finished"
    last_epoch = start_epoch - 1
    for epoch in range(start_epoch, epochs):
        model.train()
        train_t.set_epoch(epoch)          # grade pairs: this epoch's pairing (seeded, so resume redraws the same)
        g = torch.Generator().manual_seed(spec.seed * 1000 + epoch)
        perm = torch.randperm(len(train_t), generator=g)[rank::world]
        sums: dict[str, float] = {}
        n_batches = 0
        t_ep = time.perf_counter()
        for b, (start, stop) in enumerate(slices):
            idx = perm[start:stop]
            if len(idx) == 0:
                continue
            batch = train_t.batch(idx, device)
            with autocast(device):
                total, terms = wrapped(batch, global_step)
            if not torch.isfinite(total):
                raise FloatingPointError(f"loss became {float(total)} at epoch {epoch}, step {b}")
            opt.zero_grad(set_to_none=True)
            scaler.scale(total).backward()
            scaler.step(opt)
            scaler.update()
            if sched is not None:
                sched.step()
            model.on_train_step_end(batch, global_step)
            global_step += 1
            n_batches += 1
            images_seen += len(idx) * world
            sums["loss"] = sums.get("loss", 0.0) + float(total.detach())
            for k, v in terms.items():
                sums[k] = sums.get(k, 0.0) + float(v)
            if is_main and (global_step % spec.log_every == 0):
                elapsed = time.perf_counter() - t_start
                rate = images_seen / max(elapsed, 1e-9)
                remaining = (total_steps - global_step) * batch_size * world / max(rate, 1e-9)
                log.write("step", epoch=epoch, step=b, global_step=global_step, loss=float(total.detach()),
                          terms={k: float(v) for k, v in terms.items()}, images_per_s=round(rate, 2),
                          eta_s=round(remaining, 1))
        train_means = {k: v / max(n_batches, 1) for k, v in sums.items()}
        val = evaluate(model, val_t, device, global_step, batch_size) if val_t is not None else {}
        last_epoch = epoch
        elapsed = time.perf_counter() - t_start
        ep_time = time.perf_counter() - t_ep
        log.write("epoch", epoch=epoch, train=train_means, val=val, elapsed_s=round(elapsed, 1),
                  epoch_s=round(ep_time, 1), eta_s=round(ep_time * (epochs - epoch - 1), 1),
                  lr=opt.param_groups[0]["lr"])
        score = model.validation_score(val) if val else train_means.get("loss", math.inf)
        if score < best_val - 1e-6:
            best_val, bad_epochs = score, 0
            if not to_the_end:
                best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
        else:
            bad_epochs += 1
        if is_main:
            _save_resume(run_dir, model, opt, {"epoch": epoch, "global_step": global_step,
                                               "best_val": best_val, "bad_epochs": bad_epochs})
        if spec.patience and not to_the_end and bad_epochs >= spec.patience and epoch < epochs - 1:
            status = "early_stopped"
            break

    if best_state is not None:
        model.load_state_dict(best_state)
    metrics = validation_metrics(model, val_t, device) if val_t is not None else {}
    metrics["best_val_loss"] = None if not math.isfinite(best_val) else best_val
    seconds = time.perf_counter() - t_start
    if is_main:
        command = spec.command or ("oaviz " + " ".join(shlex.quote(a) for a in sys.argv[1:]) if sys.argv else "")
        save_checkpoint(
            model.cpu(), spec.out,
            preset=spec.preset,
            normalisation={"image_size": size, "scale": "0-1", "resize": "area"},
            cohort={"path": str(Path(spec.data).resolve()), "fingerprint": cohort.fingerprint,
                    "source": cohort.info.get("source"), "n_train": len(train_t),
                    "n_val": 0 if val_t is None else len(val_t), "batch_kind": model_cls.batch_kind,
                    "train_data": train_t.describe()},
            metrics=metrics,
            training={"epochs": last_epoch + 1, "status": status, "seconds": round(seconds, 1),
                      "images_seen": images_seen, "device": str(device), "world_size": world,
                      "batch_size": batch_size, "lr": lr, "seed": spec.seed, "command": command,
                                      **({"init_from": str(spec.init_from)} if spec.init_from else {})},
            card=model_card(spec, cohort, metrics, model=model, train_data=train_t),
        )
        log.write("end", status=status, checkpoint=str(spec.out), metrics=metrics, seconds=round(seconds, 1))
    return metrics


@torch.no_grad()
def evaluate(model, data, device, step: int, batch_size: int) -> dict:
    """Mean loss terms over a split, in eval mode (VAEs: μ path is not used by loss; loss samples),
    and, for models that predict OA, the split's OA AUC (``oa_auc``), which a model may choose
    its best epoch by (``validation_score``)."""
    model.eval()
    sums: dict[str, float] = {}
    n = 0
    predicts_oa = has_capability(model, Cap.PREDICT_OA)
    p_oa, y_oa = [], []
    with torch.no_grad():
        for i in range(0, len(data), batch_size):
            batch = data.batch(np.arange(i, min(len(data), i + batch_size)), device)
            out = model.loss(batch, step)
            w = len(batch["image"])
            sums["loss"] = sums.get("loss", 0.0) + float(out.total) * w
            for k, v in out.terms.items():
                sums[k] = sums.get(k, 0.0) + float(v) * w
            n += w
            if predicts_oa and "oa" in batch:
                p_oa.append(model.predict_oa_proba(batch["image"]).float().cpu())
                y_oa.append(batch["oa"].float().cpu())
    model.train()
    out = {k: v / max(n, 1) for k, v in sums.items()}
    if p_oa:
        p, y = torch.cat(p_oa).numpy(), torch.cat(y_oa).numpy()
        ok = ~np.isnan(y)
        if ok.any() and len(np.unique(y[ok])) == 2:
            out["oa_auc"] = float(roc_auc_score(y[ok] > 0.5, p[ok]))
    return out


def model_card(spec: TrainSpec, cohort, metrics: dict, model=None, train_data=None) -> dict:
    """summary, data, intended_use, limitations; plus what the training pairs were and the model's
    own ``card_notes()`` (e.g. KECAE's discriminator regime, the diffusion model's VQ-VAE), which never
    replace the four standard entries."""
    desc = get_spec(spec.model).description
    card = {
        "summary": f"{desc}; preset '{spec.preset}'",
        "data": f"{cohort.info.get('source', 'unknown')} cohort '{Path(spec.data).name}' "
                f"({len(cohort)} images, fingerprint {cohort.fingerprint})",
        "intended_use": "exploration and teaching in oaviz; not for diagnosis",
        "limitations": "trained on synthetic radiographs" if cohort.info.get("source") == "synthetic"
        else "validated only on the cohort named above",
    }
    if train_data is not None and not isinstance(train_data, SplitTensors):
        card["training_data"] = train_data.describe()
    notes = model.card_notes()
    card.update({str(k): str(v) for k, v in notes.items() if k not in card})
    return card
