"""Synthetic OA cohort generator: knee or hip AP radiographs with known truth.

Subjects have fixed anatomy and a latent severity s in [0, 4] that rises over
visits (most subjects are stable, a minority progress). Each image gets its
own acquisition (rotation, translation, magnification, exposure, contrast,
blur, detector noise, side marker). The rater's KL grade is drawn from a
confusion model around KL_true = round(s): adjacent grades only, most
disagreement at KL 1, overall rate configurable.

Everything is drawn from one seeded generator up front and rendered in fixed
chunks, so the same seed gives byte-identical images.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Callable

import numpy as np
import pandas as pd
import torch

from oaviz.data import synth_math as sm
from oaviz.data.synth_progression import (CUE_SEED, PROGRESSION_RELATIVE_RISK, kl_from_severity,  # noqa: F401
                                          progression_bayes_ceiling, sample_severity, severity_at)
from oaviz.data.cohort import assign_splits, cohort_writer, encode_landmarks
from oaviz.data.synth_render import col, gaussian_blur, glyph, sample_texture, texture_bank
from oaviz.errors import DataError

# Baseline KL prevalence; with default progression the pooled visits land near
# the 40/18/26/13/3 % reported for knee cohorts such as OAI.
BASELINE_PREVALENCE = (0.445, 0.17, 0.275, 0.097, 0.013)
REFERENCE_PREVALENCE = (0.40, 0.18, 0.26, 0.13, 0.03)
# Relative disagreement of a single reader per true grade (KL 1 is the hardest).
_RATER_SHAPE = np.array([0.14, 0.52, 0.27, 0.17, 0.10])
STYLES = ("schematic", "film")
VISIT_ACQUISITION = ("independent", "subject")
# Settings left out of cohort.json at these values, so cohorts made before they existed keep their cards.
_UNRECORDED_DEFAULTS = {"healthy": (), "visible_risk": False, "visit_acquisition": "independent"}
# Drawn for every film even when a subject's visits share the rest of the acquisition: its positioning.
POSITIONING = ("rot", "tx", "ty", "mag", "f_dy")
CHUNK = 8  # images rendered together (small enough to stay in cache); fixed so output never depends on it


@dataclass(frozen=True)
class SynthConfig:
    joint: str = "knee"
    subjects: int = 600
    visits: tuple[int, ...] = (0, 12, 24)
    size: int = 224
    seed: int = 0
    rater_disagreement: float = 0.25
    progressor_fraction: float = 0.18
    flip_left: bool = True            # store left sides mirrored to the right orientation
    split_fractions: tuple[float, float, float] = (0.7, 0.1, 0.2)
    style: str = "schematic"          # or "film": calibrated against real knee radiographs (synth_film)
    # Pathology signs drawn at the subject's healthy value (s = 0) whatever its severity: a counterfactual
    # cohort, the same knees and grades without e.g. osteophytes (see HEALTHY_TERMS). Not in cohort.json
    # when empty, so ordinary cohorts keep their bytes.
    healthy: tuple[str, ...] = ()
    # Knees only: part of each subject's progression risk shows in its baseline image (alignment, a narrow
    # joint space for its size) and part is its own, unseen (synth_progression). Off: the odds depend on the
    # grade alone, as in every cohort made before. Not in cohort.json when off.
    visible_risk: bool = False
    # How a subject's visits are acquired. "independent": every film draws its whole acquisition afresh (every
    # cohort made before; a follow-up then differs from its baseline by window, processing, exposure and the
    # trabecular pattern's place in the bone far more than by disease). "subject": as in a longitudinal study's
    # standardised protocol (one site, one device, one processing), each knee keeps its first film's exposure,
    # processing and texture; positioning and detector noise are drawn per visit. Not in cohort.json when
    # "independent", so earlier cohorts keep their cards.
    visit_acquisition: str = "independent"

    @classmethod
    def from_card(cls, generator: dict) -> "SynthConfig":
        """The config a cohort card's ``generator`` entry records (JSON lists back to tuples; keys this
        version does not know are ignored, ones the card omits take their defaults)."""
        names = {f.name for f in fields(cls)}
        return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in generator.items() if k in names})

    def validate(self) -> None:
        if self.joint not in ("knee", "hip"):
            raise DataError(f"joint must be 'knee' or 'hip', got {self.joint!r}")
        if self.style not in STYLES:
            raise DataError(f"style must be one of {STYLES}, got {self.style!r}")
        if self.style == "film" and self.joint != "knee":
            raise DataError("the film style exists for knees only (there are no real hips to calibrate it on)")
        if self.subjects < 1:
            raise DataError(f"subjects must be >= 1, got {self.subjects}")
        if not self.visits or any(v < 0 for v in self.visits) or list(self.visits) != sorted(set(self.visits)):
            raise DataError(f"visits must be increasing non-negative months, got {self.visits}")
        if not 32 <= self.size <= 1024:
            raise DataError(f"size must be between 32 and 1024 pixels, got {self.size}")
        if not 0.0 <= self.rater_disagreement <= 0.6:
            raise DataError(f"rater_disagreement must be in [0, 0.6], got {self.rater_disagreement}")
        if not 0.0 <= self.progressor_fraction <= 1.0:
            raise DataError(f"progressor_fraction must be in [0, 1], got {self.progressor_fraction}")
        if self.visit_acquisition not in VISIT_ACQUISITION:
            raise DataError(f"visit_acquisition must be one of {VISIT_ACQUISITION}, got {self.visit_acquisition!r}")
        if self.visible_risk and self.joint != "knee":
            raise DataError("visible_risk exists for knees only (the hip model has no progression cues)")
        unknown = sorted(set(self.healthy) - set(HEALTHY_TERMS))
        if unknown:
            raise DataError(f"healthy: unknown pathology sign(s) {unknown}; known: {sorted(HEALTHY_TERMS)}")


# A pathology sign -> the keys of the joint module's pathology() that draw it (the hip has no varus or spines).
HEALTHY_TERMS = {"jsw": ("jsw_m", "jsw_l", "shift"), "osteophytes": ("ost_m", "ost_l", "ost"),
                 "sclerosis": ("scl",), "cysts": ("n_cyst",), "varus": ("varus",), "flattening": ("flat",),
                 "spines": ("spine_peak",)}


# ----------------------------------------------------------------- cohort-level sampling
def rater_grades(rng: np.random.Generator, severity: np.ndarray, disagreement: float) -> np.ndarray:
    """A reader's KL grade: the true grade, or an adjacent one.

    The flip probability per true grade follows _RATER_SHAPE scaled so the
    overall rate is ``disagreement`` at the reference prevalence; the direction
    leans towards the nearer grade boundary (a knee at s = 1.45 is called KL 2
    more often than KL 0).
    """
    kl = kl_from_severity(severity)
    scale = disagreement / float(np.dot(REFERENCE_PREVALENCE, _RATER_SHAPE))
    p_flip = np.clip(_RATER_SHAPE[kl] * scale, 0, 0.95)
    frac = np.clip(severity - kl + 0.5, 0, 1)           # position within the grade's interval
    p_up = np.where(kl == 0, 1.0, np.where(kl == 4, 0.0, 0.25 + 0.5 * frac))
    flip = rng.uniform(0, 1, len(kl)) < p_flip
    up = rng.uniform(0, 1, len(kl)) < p_up
    return np.where(flip, np.clip(kl + np.where(up, 1, -1), 0, 4), kl)


def sample_acquisition(rng: np.random.Generator, n: int) -> dict[str, np.ndarray]:
    """Per-image acquisition: positioning, exposure, detector."""
    return {
        "rot": np.deg2rad(rng.normal(0.0, 2.5, n)),
        "tx": rng.normal(0.0, 3.0, n), "ty": rng.normal(0.0, 3.0, n),
        "mag": rng.normal(1.0, 0.04, n).clip(0.88, 1.12),
        "exposure": rng.normal(1.0, 0.09, n).clip(0.75, 1.3),
        "contrast": rng.normal(1.0, 0.08, n).clip(0.75, 1.3),
        "offset": rng.normal(0.0, 0.03, n),
        "gamma": rng.normal(1.0, 0.06, n).clip(0.85, 1.2),
        "heel": rng.normal(0.0, 0.04, n),
        "blur": rng.uniform(0.6, 1.25, n),
        "noise": rng.uniform(0.008, 0.022, n),
        "marker_corner": rng.integers(0, 2, n),
        "marker_jit": rng.uniform(0, 1, (n, 2)),
        "tex_off": rng.uniform(-20, 20, (n, 2)),
    }


# ----------------------------------------------------------------- rendering
def _joint_module(joint: str, style: str = "schematic"):
    if joint == "knee" and style == "film":
        from oaviz.data import synth_film as m
    elif joint == "knee":
        from oaviz.data import synth_knee as m
    else:
        from oaviz.data import synth_hip as m
    return m


def _pixel_grid(size: int, acq: dict, fov: float):
    """Canonical mm coordinates [B,H,W] of each pixel after the inverse acquisition transform."""
    u = (torch.arange(size, dtype=torch.float32) + 0.5) / size - 0.5
    Y, X = torch.meshgrid(u, u, indexing="ij")
    mm = col(fov / acq["mag"])
    X, Y = X[None] * mm, Y[None] * mm
    c, s = col(np.cos(acq["rot"])), col(np.sin(acq["rot"]))
    dx, dy = X - col(acq["tx"]), Y - col(acq["ty"])
    return c * dx + s * dy, -s * dx + c * dy


def _to_pixels(pts_mm: np.ndarray, size: int, acq: dict, fov: float) -> np.ndarray:
    """Forward acquisition transform of canonical points [B,K,2] -> pixel coordinates."""
    c, s = np.cos(acq["rot"])[:, None], np.sin(acq["rot"])[:, None]
    x, y = pts_mm[..., 0], pts_mm[..., 1]
    X = c * x - s * y + acq["tx"][:, None]
    Y = s * x + c * y + acq["ty"][:, None]
    px_per_mm = size * acq["mag"][:, None] / fov
    return np.stack([X * px_per_mm + size / 2 - 0.5, Y * px_per_mm + size / 2 - 0.5], -1)


def _film(att: torch.Tensor, acq: dict, y_mm: torch.Tensor) -> torch.Tensor:
    """Attenuation -> displayed intensity in [0, 1] (bone bright), per-image exposure."""
    att = att * (1 + col(acq["heel"]) * y_mm / 60.0)
    v = 1 - sm.exp(-0.62 * col(acq["exposure"]) * att)
    v = v.clamp(0, 1) ** col(acq["gamma"])
    return (v - 0.45) * col(acq["contrast"]) + 0.45 + col(acq["offset"])


def _render_chunk(mod, A: dict, P: dict, acq: dict, sides: np.ndarray, size: int, fov: float,
                  bank: torch.Tensor, tex_id: np.ndarray, noise_rng: np.random.Generator,
                  flip_left: bool):
    x, y = _pixel_grid(size, acq, fov)
    tex = sample_texture(bank, tex_id, x, y, acq["tex_off"])
    att, mask = mod.fields(x, y, A, P, tex)
    if hasattr(mod, "develop"):  # the film style has its own processing chain and no side marker in the crop
        img = mod.develop(att, y, acq, noise_rng)
    else:
        img = _film(att, acq, y)
        img = gaussian_blur(img, acq["blur"] * size / 224.0)
        # Detector: quantum noise grows with signal, plus electronic noise and slight grain.
        g = torch.from_numpy(noise_rng.standard_normal(img.shape).astype(np.float32))
        img = img + g * col(acq["noise"]) * (0.5 + sm.sqrt(img.clamp(0, 1)))
        img = _side_markers(img, sides, acq, flip_left)
    img = img.clamp(0, 1)
    lms = _to_pixels(mod.landmarks(A, P), size, acq, fov)
    if not flip_left:  # as acquired: left knees are the mirror image
        left = sides == "L"
        img[left] = img[left].flip(-1)
        mask[left] = mask[left].flip(-1)
        lms[left, :, 0] = size - 1 - lms[left, :, 0]
    return img, mask, lms


def _side_markers(img: torch.Tensor, sides: np.ndarray, acq: dict, flip_left: bool) -> torch.Tensor:
    """Burn a lead side marker (bright letter) into a top corner.

    Left knees stored in right orientation were mirrored, so their marker reads
    mirrored — as on a real flipped film."""
    size = img.shape[-1]
    px = max(8, size // 14)
    for letter in ("R", "L"):
        idx = np.flatnonzero(sides == letter)
        if len(idx) == 0:
            continue
        g = torch.from_numpy(glyph(letter, px))
        if letter == "L" and flip_left:
            g = g.flip(-1)
        for i in idx:
            jx, jy = acq["marker_jit"][i]
            r0 = int(size * 0.03 + jy * size * 0.04)
            c0 = int(size * 0.03 + jx * size * 0.04)
            if acq["marker_corner"][i] == 1:
                c0 = size - px - c0
            patch = img[i, r0:r0 + px, c0:c0 + px]
            img[i, r0:r0 + px, c0:c0 + px] = patch * (1 - g) + 0.97 * g
    return img


# ----------------------------------------------------------------- the cohort
def sample_design(cfg: SynthConfig) -> dict:
    """Everything random about a cohort except pixel noise: subjects, visits,
    severities, grades, anatomy, pathology and acquisition (no rendering)."""
    cfg.validate()
    mod = _joint_module(cfg.joint, cfg.style)
    rng = np.random.default_rng(cfg.seed)
    n_sub, visits = cfg.subjects, np.asarray(cfg.visits, dtype=np.int64)
    anat = mod.sample_anatomy(rng, n_sub)
    cue = hidden = None
    if cfg.visible_risk:   # the hidden part from its own stream: every other draw stays the same
        cue = mod.progression_cues(anat)
        hidden = np.random.default_rng([cfg.seed, CUE_SEED]).standard_normal(n_sub)
    s0, rate, progressor = sample_severity(rng, n_sub, cfg.progressor_fraction, BASELINE_PREVALENCE, cue, hidden)
    side_sub = np.where(rng.uniform(0, 1, n_sub) < 0.5, "R", "L")
    tex_sub = rng.integers(0, 48, n_sub)

    # One row per (subject, visit), ordered by subject then visit.
    sub_idx = np.repeat(np.arange(n_sub), len(visits))
    months = np.tile(visits, n_sub)
    severity = severity_at(s0[sub_idx], rate[sub_idx], months)
    n = len(sub_idx)
    kl_true = kl_from_severity(severity)
    kl = rater_grades(rng, severity, cfg.rater_disagreement)
    acq = sample_acquisition(rng, n)
    if cfg.style == "film":  # its own stream for what only the film has: every draw above stays the same
        acq.update(mod.sample_film(np.random.default_rng([cfg.seed, 104729]), n))
        acq.update(tx=mod.SHIFT_SD * acq["tx"], ty=mod.SHIFT_SD * acq["ty"] + acq["f_dy"] + mod.CENTRE_DY,
                   mag=1.0 + mod.MAG_SHARE * (acq["mag"] - 1.0))
    if cfg.visit_acquisition == "subject":   # each knee keeps its first film's draws (visit 0 is unchanged)
        first = np.unique(sub_idx, return_index=True)[1][sub_idx]
        acq = {k: v if k in POSITIONING else v[first] for k, v in acq.items()}
    bank = (mod.texture_bank if cfg.style == "film" else texture_bank)(rng, 48)
    sides = side_sub[sub_idx]
    A_img = {k: v[sub_idx] for k, v in anat.items()}
    P_img = mod.pathology(severity, A_img)
    if cfg.healthy:
        P0 = mod.pathology(np.zeros_like(severity), A_img)
        for key in (k for term in cfg.healthy for k in HEALTHY_TERMS[term] if k in P_img):
            P_img[key] = P0[key]
    return dict(mod=mod, n_sub=n_sub, sub_idx=sub_idx, months=months, severity=severity, kl_true=kl_true,
                kl=kl, acq=acq, bank=bank, sides=sides, tex_sub=tex_sub, A=A_img, P=P_img,
                progressor=progressor, cue=None if cue is None else cue[sub_idx])


def render_chunks(cfg: SynthConfig, d: dict, progress: Callable[[int, int], None] | None = None):
    """Yield (slice, images uint8 [B,S,S], masks uint8 [B,S,S], landmarks float32 [B,16,2]) of the
    design ``d`` (``sample_design(cfg)``) in order, CHUNK images at a time."""
    mod, sub_idx, acq, sides = d["mod"], d["sub_idx"], d["acq"], d["sides"]
    n = len(sub_idx)
    for c0 in range(0, n, CHUNK):
        sl = slice(c0, min(n, c0 + CHUNK))
        pick = lambda d: {k: v[sl] for k, v in d.items()}  # noqa: E731
        noise_rng = np.random.default_rng([cfg.seed, 7919, c0 // CHUNK])
        img, mask, lm = _render_chunk(mod, pick(d["A"]), pick(d["P"]), pick(acq), sides[sl], cfg.size,
                                      mod.FOV_MM, d["bank"], d["tex_sub"][sub_idx[sl]], noise_rng, cfg.flip_left)
        yield sl, np.round(img.numpy() * 255.0).astype(np.uint8), mask.numpy().astype(np.uint8), lm
        if progress:
            progress(sl.stop, n)


def generate_arrays(cfg: SynthConfig, progress: Callable[[int, int], None] | None = None):
    """Images uint8 [N,S,S], masks uint8 [N,S,S], metadata DataFrame, info dict (all in memory;
    ``generate_cohort`` streams to disk instead)."""
    d = sample_design(cfg)
    n = len(d["sub_idx"])
    images = np.empty((n, cfg.size, cfg.size), dtype=np.uint8)
    masks = np.empty((n, cfg.size, cfg.size), dtype=np.uint8)
    lms = np.empty((n, 16, 2), dtype=np.float32)
    for sl, img, mask, lm in render_chunks(cfg, d, progress):
        images[sl], masks[sl], lms[sl] = img, mask, lm
    return (images, masks, *cohort_tables(cfg, d, lms))


def cohort_tables(cfg: SynthConfig, d: dict, lms: np.ndarray) -> tuple[pd.DataFrame, dict]:
    """metadata.csv rows and cohort.json keys of the design ``d`` with its rendered landmarks [N,16,2]."""
    mod, n_sub, sub_idx, months = d["mod"], d["n_sub"], d["sub_idx"], d["months"]
    severity, kl_true, kl, sides = d["severity"], d["kl_true"], d["kl"], d["sides"]
    P_img, progressor = d["P"], d["progressor"]
    fov = mod.FOV_MM
    subject_ids = np.array([f"S{i:05d}" for i in range(n_sub)])[sub_idx]
    meta = pd.DataFrame({
        "image_id": [f"{s}_{side}_V{m:03d}" for s, side, m in zip(subject_ids, sides, months)],
        "subject_id": subject_ids,
        "visit_month": months,
        "side": sides,
        "label": kl,
        "kl": kl,
        "oa": (kl >= 2).astype(int),
        "split": assign_splits(subject_ids, cfg.split_fractions, seed=cfg.seed),
        "kl_true": kl_true,
        "severity": np.round(severity, 4),
        "jsw_mm": np.round(P_img["jsw_m"], 3),
        "progressor": progressor[sub_idx].astype(int),
        "landmarks": [encode_landmarks(p) for p in lms],
    })
    if d.get("cue") is not None:   # the log-odds the baseline image shows (what the Bayes risk reads)
        meta.insert(meta.columns.get_loc("progressor") + 1, "progression_cue", np.round(d["cue"], 4))
    info = {
        "source": "synthetic",
        "joint": cfg.joint,
        "generator": {k: v for k, v in asdict(cfg).items() if v != _UNRECORDED_DEFAULTS.get(k, object())},
        "pixel_spacing_mm": round(fov / cfg.size, 5),
        "pixel_spacing_note": "nominal; each image also has a per-image magnification (±4 %)",
        "preprocessing": ["left sides mirrored to right orientation"] if cfg.flip_left else [],
        "landmark_names": list(mod.LANDMARK_NAMES),
        "labels": "kl",
        "label_names": ["KL0", "KL1", "KL2", "KL3", "KL4"],
        "jsw_definition": "minimum medial joint-space width in mm" if cfg.joint == "knee"
        else "minimum superolateral joint-space width in mm",
    }
    horizon = next((b - a for a, b in zip(cfg.visits, cfg.visits[1:])), None)
    if horizon:  # the best risk AUC any image can give on this cohort, from its own progression model
        info["progression_bayes_ceiling"] = progression_ceiling(cfg, horizon).to_dict()
    return meta, info


def progression_ceiling(cfg: SynthConfig, horizon: int):
    """``synth_progression.BayesCeiling`` of cohorts made with ``cfg`` (its progression model, and in a
    visible-risk cohort the joint module's cues of freshly drawn anatomy)."""
    mod = _joint_module(cfg.joint, cfg.style)
    cues = (lambda r, n: mod.progression_cues(mod.sample_anatomy(r, n))) if cfg.visible_risk else None
    return progression_bayes_ceiling(cfg.progressor_fraction, BASELINE_PREVALENCE, cfg.visits, horizon,
                                     seed=cfg.seed, cues=cues)


def generate_cohort(out: str | Path, joint: str = "knee", subjects: int = 600,
                    visits: tuple[int, ...] = (0, 12, 24), size: int = 224, seed: int = 0,
                    overwrite: bool = False, progress: Callable[[int, int], None] | None = None,
                    **options) -> Path:
    """Generate a synthetic cohort folder (atomically) and return its path; images and masks are
    written chunk by chunk as they are rendered, so memory stays flat however many knees."""
    cfg = SynthConfig(joint=joint, subjects=subjects, visits=tuple(int(v) for v in visits), size=size,
                      seed=seed, **options)
    out = Path(out)
    if out.exists() and not overwrite:
        raise DataError("destination already exists (use --overwrite)", out)
    t0 = time.perf_counter()
    with torch.inference_mode():
        d = sample_design(cfg)
        n = len(d["sub_idx"])
        lms = np.empty((n, 16, 2), dtype=np.float32)
        with cohort_writer(out, n, (size, size), np.uint8, with_masks=True, overwrite=overwrite) as w:
            for sl, img, mask, lm in render_chunks(cfg, d, progress):
                w.add(img, mask)
                lms[sl] = lm
            meta, info = cohort_tables(cfg, d, lms)
            info["generation_seconds"] = round(time.perf_counter() - t0, 2)
            w.finish(meta, info)
    return out


def default_cohort_config() -> dict:
    """Settings of the embedded default cohort the demo opens on and the bundled checkpoints are trained
    on: film knees (calibrated against real radiographs) whose progression risk partly shows at baseline."""
    return {"joint": "knee", "subjects": 600, "visits": (0, 12, 24), "size": 224, "seed": 0,
            "style": "film", "visible_risk": True, "visit_acquisition": "subject"}


def is_current_default(card: dict) -> bool:
    """Was the cohort with this ``cohort.json`` made with today's default settings? (A default cohort made
    by an earlier version, e.g. schematic knees, is not: the bundled checkpoints are trained on today's.)"""
    made = SynthConfig.from_card(card.get("generator", {}))
    return all(getattr(made, k) == (tuple(v) if isinstance(v, list) else v) for k, v in default_cohort_config().items())
