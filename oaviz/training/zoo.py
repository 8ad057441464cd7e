"""A model zoo: every model a cohort can feed, trained in dependency order into one folder.

``plan_zoo`` decides, from the cohort alone, which models train and with what
(no follow-up visits: no latent diffusion; no KL 0 / KL 2 images: no KECAE; no
landmarks: the multitask classifier trains without its landmark term), and says
why for each one it leaves out. ``train_zoo`` runs the plan through the one
training engine (``loop.train``): the VQ-VAE and the multitask classifier before
the latent diffusion that encodes with the first and scores risk with the second,
the multitask classifier before KECAE, which it judges. A folder ``OUT`` holds

    zoo.json                 the manifest: cohort, preset, every model's status, checkpoint, time, metrics
    events.jsonl             the zoo's progress (one "epoch" event per finished model; ETA)
    <model>/checkpoint/      each model's checkpoint; <model>/ is its run folder (events, resume point)

and is resumable: a model whose checkpoint is complete is skipped, an interrupted
one continues from its last finished epoch (the engine's resume).
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

from oaviz.data.atomic import write_json
from oaviz.data.cohort import load_cohort
from oaviz.data.pairs import visit_pairs
from oaviz.errors import ConfigError, DataError
from oaviz.models.base import make_config
from oaviz.models.checkpoints import ZOO_MANIFEST as MANIFEST
from oaviz.models.checkpoints import is_checkpoint, read_checkpoint_info
from oaviz.training.events import EventLog

# Training order: every model after the ones it is built on (latent_diffusion: vqvae + multitask; kecae: multitask).
ZOO_MODELS = ("beta_vae", "beta_vae-matched", "vaesim", "cnn", "dual_head", "dual_head-single_oa",
              "dual_head-single_kl", "multitask", "vqvae", "kecae", "latent_diffusion")
# Entries that are another configuration of a model type: (type, what makes them this entry). The matched
# β-VAE is VAESim without its prototypes (the baseline of VAESim's clustering figures; β set in plan_zoo),
# the two single-head variants are the dual head's comparison (the Probe lab's OA/KL hierarchy).
VARIANTS = {"beta_vae-matched": ("beta_vae", {}), "dual_head": ("dual_head", {"variant": "dual"}),
            "dual_head-single_oa": ("dual_head", {"variant": "single_oa"}),
            "dual_head-single_kl": ("dual_head", {"variant": "single_kl"})}
NEEDS = {"latent_diffusion": ("vqvae",)}            # without these the model is left out
USES = {"latent_diffusion": ("multitask",), "kecae": ("multitask",)}   # used when trained, else done without
_CLASSIFIERS = ("cnn", "dual_head", "multitask", "kecae")


def zoo_type(name: str) -> str:
    """The model type of a zoo entry ("dual_head-single_oa" -> "dual_head")."""
    return VARIANTS[name][0] if name in VARIANTS else name


# Seconds of one training item-epoch relative to the β-VAE's at the real preset's sizes, measured in one zoo
# run on the 2,000 development knees on the 2-core machine (2026-12-01: β-VAE 7.2 s per epoch of 1,360 knees,
# the whole zoo 45 min); VQ-VAE and latent diffusion from the demo sizes. Only the ETA of the models not yet
# started uses it, scaled by the seconds per unit the zoo has measured so far.
RELATIVE_COST = {"beta_vae": 1.0, "vaesim": 0.86, "cnn": 1.13, "dual_head": 0.77, "multitask": 0.55, "vqvae": 3.9,
                 "kecae": 7.2, "latent_diffusion": 2.1}


@dataclass
class ZooItem:
    """One entry of the plan (its folder ``name``; ``model`` its type): trained with ``overrides`` (on top
    of the preset), or skipped for ``reason``."""

    name: str
    overrides: dict = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    reason: str = ""                 # why it is skipped ("" = it trains)

    @property
    def model(self) -> str:
        return zoo_type(self.name)

    @property
    def skipped(self) -> bool:
        return bool(self.reason)


def cohort_facts(cohort) -> dict:
    """What the cohort can feed: KL grades, KL 0 / KL 2 counts, follow-up gaps (months), landmarks."""
    m = cohort.metadata
    kl = m["kl"].to_numpy(dtype=float, na_value=np.nan)
    train = m["split"].isin(["train", "val"]).to_numpy()
    gaps: list[int] = []
    if {"subject_id", "side", "visit_month"} <= set(m.columns):
        t = visit_pairs(m[train])
        gaps = sorted({int(g) for g in t["gap_months"] if g > 0})
    lm = cohort.landmarks()
    return {"has_kl": cohort.has_kl, "n_kl0": int(np.sum(train & (kl == 0))), "n_kl2": int(np.sum(train & (kl == 2))),
            "gaps": gaps, "has_landmarks": lm is not None and bool(np.isfinite(lm).any())}


def plan_zoo(cohort, models: list[str] | None = None, preset: str = "real") -> list[ZooItem]:
    """The zoo for ``cohort`` in training order; ``models`` narrows it (their dependencies are added)."""
    wanted = list(ZOO_MODELS) if not models else list(models)
    unknown = sorted(set(wanted) - set(ZOO_MODELS))
    if unknown:
        raise ConfigError(f"train-zoo: unknown model(s) {unknown}; the zoo is {', '.join(ZOO_MODELS)}")
    for m in list(wanted):
        wanted += [d for d in NEEDS.get(m, ()) if d not in wanted]
    f = cohort_facts(cohort)
    items: dict[str, ZooItem] = {}
    for name in (m for m in ZOO_MODELS if m in wanted):
        it = items[name] = ZooItem(name, dict(VARIANTS.get(name, ("", {}))[1]))
        if name == "beta_vae-matched":
            vaesim = make_config("vaesim", preset)   # the baseline shares VAESim's β and augmentation
            it.overrides.update(beta=float(vaesim.beta), augment=bool(vaesim.augment))
        if it.model in _CLASSIFIERS and not f["has_kl"]:
            it.reason = "the cohort has no KL grades to learn from"
        elif name == "kecae" and (f["n_kl0"] == 0 or f["n_kl2"] == 0):
            it.reason = (f"no KL 0 / KL 2 pairs: the train and val splits hold {f['n_kl0']} KL 0 and "
                         f"{f['n_kl2']} KL 2 knees")
        elif name == "latent_diffusion" and not f["gaps"]:
            it.reason = "no follow-up visits: every knee is seen once, and diffusion learns from visit pairs"
        elif any(items.get(d) is None or items[d].skipped for d in NEEDS.get(name, ())):
            it.reason = f"needs {', '.join(NEEDS[name])}, which is left out"
        if it.skipped:
            continue
        if name == "multitask" and not f["has_landmarks"]:
            it.overrides["landmark_weight"] = 0.0
            it.notes.append("no landmarks in the cohort: the landmark head is not trained (δ = 0, the ablation)")
        if name == "latent_diffusion":
            horizon = int(make_config(name, preset).horizon_months)
            if horizon not in f["gaps"]:
                it.overrides["horizon_months"] = f["gaps"][0]
                it.notes.append(f"follow-ups {f['gaps'][0]} months apart (the cohort has no {horizon}-month gap)")
            if not f["has_landmarks"]:
                it.overrides["register_visits"] = False
                it.notes.append("no landmarks: follow-ups are not registered onto their baselines")
        for d in USES.get(name, ()):
            if d not in wanted or items.get(d) is None or items[d].skipped:
                it.notes.append(f"without {d}: " + ("its own KL 0 / KL 2 discriminator judges the exchange"
                                                     if name == "kecae" else "no progression risk"))
    ld, vq = items.get("latent_diffusion"), items.get("vqvae")
    if not models and vq is not None and not vq.skipped and ld is not None and ld.skipped:
        # The VQ-VAE is the diffusion's compressor: without the diffusion it would cost the zoo its longest
        # training for nothing a page needs (asked for by name with --models, it trains).
        vq.reason, vq.notes = "only the latent diffusion uses it, and that is left out", []
    return [items[m] for m in ZOO_MODELS if m in items]


# ----------------------------------------------------------------- the manifest
def read_manifest(out: str | Path) -> dict | None:
    """zoo.json of a zoo folder, or None when it has none (or it cannot be read)."""
    p = Path(out) / MANIFEST
    try:
        data = json.loads(p.read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) and isinstance(data.get("models"), list) else None


def _entry(item: ZooItem, out: Path) -> dict:
    return {"model": item.name, "model_type": item.model, "status": "skipped" if item.skipped else "pending",
            "reason": item.reason, "notes": list(item.notes),
            "checkpoint": f"{item.name}/checkpoint" if not item.skipped else None,
            "overrides": dict(item.overrides), "seconds": None, "metrics": {}}


@dataclass
class ZooSpec:
    data: str
    out: str
    preset: str = "real"
    models: list[str] | None = None
    epochs: int | None = None
    max_images: int | None = None
    device: str = "auto"
    seed: int = 0
    patience: int = 5
    resume: bool = False
    overrides: dict[str, dict] = field(default_factory=dict)   # {model: {key: value}} from --set MODEL.KEY=VALUE


def train_zoo(spec: ZooSpec) -> dict:
    """Train the plan for ``spec.data`` into ``spec.out``; returns the manifest (also in OUT/zoo.json)."""
    out = Path(spec.out)
    cohort = load_cohort(spec.data)
    old = read_manifest(out)
    if old is not None and not spec.resume:
        raise DataError("a zoo is already in this folder (pass --resume to continue it)", out)
    if old is not None and old.get("preset") != spec.preset:
        raise ConfigError(f"{out}: this zoo was trained with preset {old.get('preset')!r}, not {spec.preset!r}")
    plan = plan_zoo(cohort, spec.models, spec.preset)
    out.mkdir(parents=True, exist_ok=True)
    manifest = {"kind": "oaviz-zoo", "version": 1, "preset": spec.preset, "created": (old or {}).get("created",
                time.time()), "complete": False,
                "cohort": {"name": Path(spec.data).resolve().name, "path": str(Path(spec.data).resolve()),
                           "fingerprint": cohort.fingerprint, "source": cohort.info.get("source"),
                           "n_images": len(cohort)},
                "models": [_entry(it, out) for it in plan]}
    write_json(out / MANIFEST, manifest)
    (out / "argv.json").write_text(json.dumps(sys.argv))       # the jobs list shows a command-line zoo's command
    log = EventLog(out / "events.jsonl")
    todo = [it for it in plan if not it.skipped]
    log.write("start", model="zoo", epochs=len(todo), steps_per_epoch=1, models=[it.name for it in todo],
              skipped={it.name: it.reason for it in plan if it.skipped}, cohort=manifest["cohort"]["name"])
    clock = _Clock(todo, spec, len(cohort))
    try:
        for i, item in enumerate(todo):
            entry = next(e for e in manifest["models"] if e["model"] == item.name)
            _train_one(item, i, entry, manifest, spec, out, log, clock)
    except BaseException as e:
        log.write("error", type=type(e).__name__, message=str(e) or "interrupted")
        raise
    manifest["complete"] = all(e["status"] in ("trained", "skipped") for e in manifest["models"])
    manifest["updated"] = time.time()
    write_json(out / MANIFEST, manifest)
    log.write("end", status="finished", checkpoint=str(out), seconds=round(clock.elapsed(), 1),
              metrics={e["model"]: e["status"] for e in manifest["models"]})
    return manifest


def _train_one(item: ZooItem, i: int, entry: dict, manifest: dict, spec: ZooSpec, out: Path, log: EventLog,
               clock: "_Clock") -> None:
    from oaviz.training.loop import TrainSpec, train

    run_dir, ckpt = out / item.name, out / item.name / "checkpoint"
    if is_checkpoint(ckpt):                           # complete: a checkpoint is written whole or not at all
        info = read_checkpoint_info(ckpt)
        entry.update(status="trained", seconds=(info.get("training") or {}).get("seconds"),
                     metrics=info.get("metrics") or {})
        clock.done(item.name, entry["seconds"])
        log.write("epoch", epoch=i, model=item.name, status="already trained", eta_s=clock.eta(i + 1, 0.0))
        return
    overrides = dict(item.overrides)
    for dep, key in (("vqvae", "vqvae_checkpoint"), ("multitask", "classifier_checkpoint")):
        if item.name == "latent_diffusion" and _trained(manifest, dep):
            overrides[key] = str((out / dep / "checkpoint").resolve())
    if item.name == "kecae" and _trained(manifest, "multitask"):
        overrides["discriminator_checkpoint"] = str((out / "multitask" / "checkpoint").resolve())
    overrides.update(spec.overrides.get(item.name, {}))
    resume = (run_dir / "last_state.json").is_file()
    argv = ["train", item.model, "--data", str(spec.data), "--out", str(ckpt), "--preset", spec.preset,
            "--run-dir", str(run_dir), "--seed", str(spec.seed), "--patience", str(spec.patience)]
    argv += ["--epochs", str(spec.epochs)] if spec.epochs else []
    argv += ["--max-images", str(spec.max_images)] if spec.max_images else []
    argv += [a for k, v in overrides.items() for a in ("--set", f"{k}={_json(v)}")]
    entry.update(status="running", overrides=overrides, command="oaviz " + " ".join(shlex.quote(a) for a in argv))
    write_json(out / MANIFEST, manifest)

    def relay(ev: dict) -> None:                      # the model's progress as the zoo's
        if ev["event"] == "start":
            clock.start(item.name, ev)
        elif ev["event"] in ("step", "epoch"):
            frac = clock.fraction(ev)
            log.write("step", global_step=round(i + frac, 4), model=item.name, model_epoch=ev.get("epoch"),
                      eta_s=round(clock.eta(i, frac, ev.get("eta_s")), 1))

    t0 = time.perf_counter()
    try:
        metrics = train(TrainSpec(model=item.model, data=spec.data, out=str(ckpt), preset=spec.preset,
                                  epochs=spec.epochs, device=spec.device, resume=resume, seed=spec.seed,
                                  run_dir=str(run_dir), max_images=spec.max_images, patience=spec.patience,
                                  overrides=overrides, command=entry["command"], listener=relay))
    except (DataError, ConfigError, FloatingPointError) as e:   # this model cannot train here: go on with the rest
        entry.update(status="failed", reason=f"{type(e).__name__}: {e}")
        log.write("epoch", epoch=i, model=item.name, status="failed", eta_s=clock.eta(i + 1, 0.0))
        write_json(out / MANIFEST, manifest)
        return
    except BaseException:
        entry.update(status="interrupted", reason="interrupted: rerun with --resume to continue from the last epoch")
        write_json(out / MANIFEST, manifest)
        raise
    seconds = read_checkpoint_info(ckpt).get("training", {}).get("seconds", round(time.perf_counter() - t0, 1))
    entry.update(status="trained", seconds=seconds, metrics=metrics)
    clock.done(item.name, seconds)
    log.write("epoch", epoch=i, model=item.name, status="trained", seconds=seconds, eta_s=clock.eta(i + 1, 0.0))
    write_json(out / MANIFEST, manifest)


def _trained(manifest: dict, model: str) -> bool:
    return any(e["model"] == model and e["status"] == "trained" for e in manifest["models"])


def _json(v) -> str:
    return v if isinstance(v, str) else json.dumps(v)


class _Clock:
    """ETA of the zoo: the running model's own ETA plus the models not yet started, each estimated as
    epochs × training images × its RELATIVE_COST × seconds per cost unit measured on the models so far."""

    def __init__(self, todo: list[ZooItem], spec: ZooSpec, n_images: int):
        self.t0 = time.perf_counter()
        self.todo = todo
        self.n = min(n_images, spec.max_images or n_images)
        self.epochs = {it.name: spec.epochs or int(getattr(make_config(it.model, spec.preset, it.overrides),
                                                           "epochs", 10)) for it in todo}
        self.unit_s: list[float] = []        # seconds per cost unit of the models measured so far
        self.current: dict = {}

    def elapsed(self) -> float:
        return time.perf_counter() - self.t0

    def start(self, model: str, ev: dict) -> None:
        self.current = {"model": model, "total": max(1, int(ev.get("epochs") or 1) * int(ev.get("steps_per_epoch") or 1)),
                        "epochs": int(ev.get("epochs") or 1), "n": int(ev.get("n_train") or self.n), "t": time.perf_counter()}

    def fraction(self, ev: dict) -> float:
        c = self.current
        if not c:
            return 0.0
        if ev["event"] == "epoch":
            return min(1.0, (int(ev.get("epoch", 0)) + 1) / c["epochs"])
        return min(1.0, float(ev.get("global_step", 0)) / c["total"])

    def done(self, name: str, seconds) -> None:
        if seconds:
            self.unit_s.append(float(seconds) / (self.epochs[name] * self.n * RELATIVE_COST[zoo_type(name)]))

    def eta(self, next_index: int, frac: float, current_eta: float | None = None) -> float:
        """Seconds left: the current model's ETA (``current_eta``) plus the models from ``next_index + 1`` on
        (``next_index`` itself when no model is running)."""
        unit = float(np.median(self.unit_s)) if self.unit_s else None
        c = self.current
        if unit is None and c and frac > 0:
            unit = (time.perf_counter() - c["t"]) / frac / (c["epochs"] * c["n"] * RELATIVE_COST[zoo_type(c["model"])])
        rest = self.todo[next_index + (1 if current_eta is not None else 0):]
        left = sum(self.epochs[it.name] * self.n * RELATIVE_COST[it.model] for it in rest) * (unit or 0.0)
        return max(0.0, (current_eta or 0.0) + left) if math.isfinite(left) else 0.0
