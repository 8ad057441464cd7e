"""The contract every oaviz model follows, its strict configs, and the registry.

Batches are dicts of tensors so no model depends on a positional tuple:

    image      float32 [B, 1, H, W], intensities in [0, 1]
    kl         int64   [B]      rater KL grade, -1 where unknown
    oa         float32 [B]      1.0 when KL >= 2, NaN where unknown
    label      int64   [B]      the source's class (for non-KL cohorts)
    landmarks  float32 [B, 16, 2] (x, y) in [0, 1] image coordinates, NaN where unknown

A model reads only the keys it needs.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from typing import Any, Callable, ClassVar

import torch
from torch import nn

from oaviz.errors import ConfigError
from oaviz.models.capabilities import Cap, has_capability

__all__ = ["LR_SCHEDULES", "Autoencoder", "Cap", "ConfigError", "Encoded", "LossOutput", "ModelSpec", "OAModel",
           "build_model", "capabilities_of", "config_to_dict", "get_spec", "has_capability", "load_frozen_model", "make_config",
           "model_names", "model_types_with", "parse_config", "register_model"]


# ----------------------------------------------------------------- configs
# The learning-rate schedules a config's ``lr_schedule`` may name (oaviz.training.schedule implements them).
LR_SCHEDULES = ("constant", "one_cycle")


def parse_config(cls: type, data: dict[str, Any] | None, where: str = "config") -> Any:
    """Build a frozen dataclass config from a dict, strictly.

    Unknown keys are an error (a typo must not silently fall back to a default);
    tuples stored as JSON lists are turned back into tuples.
    """
    data = dict(data or {})
    names = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - set(names))
    if unknown:
        raise ConfigError(f"{where}: unknown key(s) {unknown} for {cls.__name__}; known: {sorted(names)}")
    kwargs = {}
    for k, v in data.items():
        default = names[k].default
        if isinstance(v, list) and isinstance(default, tuple):
            v = tuple(v)
        kwargs[k] = v
    try:
        cfg = cls(**kwargs)
    except (TypeError, ValueError) as e:
        raise ConfigError(f"{where}: {e}") from None
    return cfg


def config_to_dict(cfg: Any) -> dict[str, Any]:
    """JSON-ready dict of a config dataclass."""
    return json.loads(json.dumps(dataclasses.asdict(cfg)))


# ----------------------------------------------------------------- outputs
@dataclass
class Encoded:
    """What an autoencoder's encoder gives. z: the latent used by decode
    ([B, D] or [B, C, h, w]); mu/logvar for variational models; extras for
    model-specific outputs (e.g. VAESim's similarities ``c``)."""

    z: torch.Tensor
    mu: torch.Tensor | None = None
    logvar: torch.Tensor | None = None
    extras: dict[str, torch.Tensor] = field(default_factory=dict)


@dataclass
class LossOutput:
    """total: scalar to backprop; terms: named scalar parts (detached for logging)."""

    total: torch.Tensor
    terms: dict[str, torch.Tensor] = field(default_factory=dict)


# ----------------------------------------------------------------- base classes
class OAModel(nn.Module):
    """Base of every model. Subclasses set ``model_type`` and take their config."""

    model_type: ClassVar[str] = ""
    # What a training batch holds: "images" (one image per item), "visit_pairs" (baseline + follow-up of one
    # knee: keys image, image_next) or "grade_pairs" (a KL a and a KL b image: keys image, image_pair).
    batch_kind: ClassVar[str] = "images"
    # What callers may ask of it (oaviz.models.capabilities); every subclass declares its full set.
    capabilities: ClassVar[frozenset[Cap]] = frozenset({Cap.EMBED})
    # Some parameters get no gradient at some steps, so DDP must search for them every step.
    ddp_find_unused_parameters: ClassVar[bool] = False

    def __init__(self, config: Any):
        super().__init__()
        self.config = config

    @property
    def input_size(self) -> int:
        return int(self.config.image_size)

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        """[B, 1, H, W] -> [B, D]; deterministic in eval mode."""
        raise NotImplementedError

    def loss(self, batch: dict[str, torch.Tensor], step: int = 0) -> LossOutput:
        raise NotImplementedError

    def on_train_step_end(self, batch: dict[str, torch.Tensor], step: int) -> None:
        """Hook after each optimiser step (e.g. VAESim's EMA prototype update)."""

    def set_total_steps(self, n: int) -> None:
        """Hook before training: the number of optimiser steps, for schedules over the run (VAESim's τ)."""

    def card_notes(self) -> dict[str, str]:
        """Model-specific lines for the checkpoint card (the standard entries are never replaced)."""
        return {}

    def fit_training_labels(self, kl: torch.Tensor) -> None:
        """Hook before training: the training split's KL grades [n] (−1 unknown), e.g. for class weights."""

    def validation_score(self, val: dict[str, float]) -> float:
        """Lower is better; picks the best epoch (and drives early stopping): the validation loss, or
        1 − OA AUC for a config with ``select_by="oa_auc"`` (when the engine computed one)."""
        if getattr(self.config, "select_by", "loss") == "oa_auc" and "oa_auc" in val:
            return 1.0 - float(val["oa_auc"])
        return float(val["loss"])

    @property
    def embed_dim(self) -> int:
        raise NotImplementedError


class Autoencoder(OAModel):
    """Adds encode/decode/reconstruct to the contract."""

    capabilities = OAModel.capabilities | {Cap.AUTOENCODE, Cap.RECONSTRUCT}

    def encode(self, x: torch.Tensor) -> Encoded:
        raise NotImplementedError

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """Latent -> image [B, 1, H, W] in [0, 1]."""
        raise NotImplementedError

    def reconstruct(self, x: torch.Tensor) -> torch.Tensor:
        enc = self.encode(x)
        z = enc.mu if (enc.mu is not None and not self.training) else enc.z
        return self.decode(z)


# ----------------------------------------------------------------- registry
@dataclass(frozen=True)
class ModelSpec:
    name: str
    model_cls: type
    config_cls: type
    presets: dict[str, dict[str, Any]]
    description: str = ""


_REGISTRY: dict[str, ModelSpec] = {}


def register_model(name: str, config_cls: type, presets: dict[str, dict[str, Any]], description: str = "") -> Callable:
    """Class decorator: ``@register_model("beta_vae", BetaVAEConfig, {"demo": {...}, "paper": {...}})``."""

    def deco(model_cls: type) -> type:
        model_cls.model_type = name
        _REGISTRY[name] = ModelSpec(name, model_cls, config_cls, presets, description)
        return model_cls

    return deco


def _ensure_loaded() -> None:
    # Importing the model modules registers them.
    import oaviz.models.zoo  # noqa: F401


def model_names() -> list[str]:
    _ensure_loaded()
    return sorted(_REGISTRY)


def get_spec(name: str) -> ModelSpec:
    _ensure_loaded()
    if name not in _REGISTRY:
        raise ConfigError(f"unknown model {name!r}; known: {sorted(_REGISTRY)}")
    return _REGISTRY[name]


def capabilities_of(model_type: str) -> frozenset[Cap]:
    """The capabilities a registered model type declares (read from a checkpoint's config.json model type,
    without loading weights); empty for an unknown type."""
    _ensure_loaded()
    spec = _REGISTRY.get(str(model_type))
    return spec.model_cls.capabilities if spec is not None else frozenset()


def model_types_with(cap: Cap) -> list[str]:
    """Registered model types that declare ``cap``, sorted (for "pick a … checkpoint" messages)."""
    _ensure_loaded()
    return sorted(n for n, spec in _REGISTRY.items()
                  if cap in spec.model_cls.capabilities and not n.startswith("_"))  # "_x": registered by tests


def make_config(name: str, preset: str = "demo", overrides: dict[str, Any] | None = None) -> Any:
    """Preset values, then overrides, parsed strictly."""
    spec = get_spec(name)
    if preset not in spec.presets:
        raise ConfigError(f"model {name!r} has no preset {preset!r}; presets: {sorted(spec.presets)}")
    return parse_config(spec.config_cls, {**spec.presets[preset], **(overrides or {})}, where=f"{name} config")


def build_model(name: str, config: Any = None, preset: str = "demo") -> OAModel:
    """Instantiate a registered model from a config object, a dict, or a preset."""
    spec = get_spec(name)
    if config is None:
        config = make_config(name, preset)
    elif isinstance(config, dict):
        config = parse_config(spec.config_cls, config, where=f"{name} config")
    return spec.model_cls(config)


def load_frozen_model(path: str, model_type: str) -> OAModel:
    """A partner model (the VQ-VAE of a latent diffusion, the judge of a KECAE): the checkpoint ``path``
    names (a folder or a bundled checkpoint's name), of ``model_type``, frozen in eval mode."""
    from oaviz.models.checkpoints import load_checkpoint, resolve_checkpoint  # that module imports this one

    return load_checkpoint(resolve_checkpoint(path), frozen=True, model_type=model_type).model
