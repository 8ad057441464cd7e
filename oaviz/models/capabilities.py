"""What a model can do, declared on its class (scikit-learn's estimator tags).

Every registered model class sets ``capabilities``, a frozenset of ``Cap``;
callers ask ``has_capability(model_or_class, Cap.X)`` (or, for a checkpoint
listed from its config.json, ``capabilities_of(model_type)`` in
``oaviz.models.base``) instead of probing with ``hasattr`` or comparing
model names. ``METHODS`` names what each capability promises, and a test
keeps the declarations and the methods in step both ways.

An instance may narrow its class's set when its config leaves a part out
(a single-OA dual-head model has no KL head): it then sets its own
``capabilities`` in ``__init__``, always a subset of the class's.

This module imports nothing heavy, so listings can use it without torch.
"""

from __future__ import annotations

from enum import Enum


class Cap(str, Enum):
    """One thing a model can do; the value is the name written in cards and tests."""

    EMBED = "embed"                    # embed(x [B,1,H,W]) -> [B, D], deterministic in eval; embed_dim
    AUTOENCODE = "autoencode"          # encode(x) -> Encoded, decode(z) -> [B,1,H,W] in [0, 1]
    RECONSTRUCT = "reconstruct"        # reconstruct(x) -> [B,1,H,W] in [0, 1]
    VECTOR_LATENT = "vector_latent"    # decode(z [B, config.latent_dim]): a flat latent to walk, decode, map
    SAMPLE_PRIOR = "sample_prior"      # sample_prior(n, temperature, generator) -> [n,1,S,S] from N(0, T²·I)
    PREDICT_OA = "predict_oa"          # predict_oa_proba(x) -> P(KL >= 2) [B]
    PREDICT_KL = "predict_kl"          # predict_kl_proba(x) -> P(KL = 0…4) [B, 5]
    LANDMARKS = "landmarks"            # predict_landmarks(x) -> [B, 16, 2] (x, y) in [0, 1]
    HEADS = "heads"                    # heads(x) -> {"oa": logits [B]} and/or {"kl": logits [B, 5]}
    PROTOTYPES = "prototypes"          # prototypes Q [K, D], assign(z), sample_near_prototype, prototype_images
    FUTURES = "futures"                # sample_future(image, n, steps=, generator=) -> [B,n,1,H,W]; describe_futures()
    EXCHANGE = "exchange"              # exchange(xa, xb) -> four images; discriminator_proba(x) -> [B]
    PROBE_FEATURES = "probe_features"  # embed() is a feature set the Probe lab offers (a VAE's μ, a head's features)

    def __str__(self) -> str:
        return self.value


# The methods (class attributes) each capability promises; PROBE_FEATURES is a judgement, not a method.
METHODS: dict[Cap, tuple[str, ...]] = {
    Cap.EMBED: ("embed", "embed_dim"),
    Cap.AUTOENCODE: ("encode", "decode"),
    Cap.RECONSTRUCT: ("reconstruct",),
    Cap.VECTOR_LATENT: ("encode", "decode"),
    Cap.SAMPLE_PRIOR: ("sample_prior",),
    Cap.PREDICT_OA: ("predict_oa_proba",),
    Cap.PREDICT_KL: ("predict_kl_proba",),
    Cap.LANDMARKS: ("predict_landmarks",),
    Cap.HEADS: ("heads",),
    Cap.PROTOTYPES: ("assign", "soft_assign", "sample_near_prototype", "prototype_images"),
    Cap.FUTURES: ("sample_future", "describe_futures"),
    Cap.EXCHANGE: ("exchange", "discriminator_proba"),
    Cap.PROBE_FEATURES: (),
}
# Config fields a capability needs besides its methods.
CONFIG_FIELDS: dict[Cap, tuple[str, ...]] = {
    Cap.VECTOR_LATENT: ("latent_dim",),
    Cap.PROTOTYPES: ("n_prototypes",),
}


def has_capability(model_or_class: object, cap: Cap) -> bool:
    """Whether a model instance (its own, possibly narrowed set) or a model class declares ``cap``."""
    return cap in getattr(model_or_class, "capabilities", frozenset())
