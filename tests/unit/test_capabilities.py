"""Capabilities declared on the model classes match what the classes can do, both ways."""

from __future__ import annotations

import dataclasses
import inspect

import pytest

from oaviz.models.base import (Cap, OAModel, build_model, capabilities_of, get_spec, has_capability, make_config,
                               model_names, model_types_with)
from oaviz.models.capabilities import CONFIG_FIELDS, METHODS


# The package's models (tests may register their own subclasses, which inherit a declaration).
PACKAGE_MODELS = [n for n in model_names() if get_spec(n).model_cls.__module__.startswith("oaviz.")]


def _provides(cls: type, name: str) -> bool:
    """``cls`` has ``name``, and not as a base-class stub that raises NotImplementedError."""
    attr = inspect.getattr_static(cls, name, None)
    if attr is None:
        return False
    fn = attr.fget if isinstance(attr, property) else attr
    try:
        src = inspect.getsource(fn)
    except (TypeError, OSError):
        return True
    return "raise NotImplementedError" not in src


def _has_fields(spec, cap: Cap) -> bool:
    names = {f.name for f in dataclasses.fields(spec.config_cls)}
    return all(f in names for f in CONFIG_FIELDS.get(cap, ()))


def test_every_capability_names_its_methods():
    assert set(METHODS) == set(Cap)
    assert len(PACKAGE_MODELS) >= 9


@pytest.mark.parametrize("name", PACKAGE_MODELS)
def test_declared_capabilities_have_their_methods(name):
    spec = get_spec(name)
    cls = spec.model_cls
    assert "capabilities" in vars(cls), f"{cls.__name__} does not declare its capabilities"
    assert all(isinstance(c, Cap) for c in cls.capabilities)
    for cap in cls.capabilities:
        missing = [m for m in METHODS[cap] if not _provides(cls, m)]
        assert not missing, f"{name} declares {cap} but lacks {missing}"
        assert _has_fields(spec, cap), f"{name} declares {cap} but its config lacks {CONFIG_FIELDS[cap]}"


@pytest.mark.parametrize("name", PACKAGE_MODELS)
def test_undeclared_capabilities_are_not_claimed(name):
    spec = get_spec(name)
    cls = spec.model_cls
    for cap in set(Cap) - cls.capabilities:
        if METHODS[cap] and all(_provides(cls, m) for m in METHODS[cap]) and _has_fields(spec, cap):
            pytest.fail(f"{name} has everything {cap} needs ({METHODS[cap]}) but does not declare it")


def test_registry_answers_by_type_name_without_weights():
    assert Cap.PROTOTYPES in capabilities_of("vaesim") and Cap.PROTOTYPES not in capabilities_of("beta_vae")
    assert capabilities_of("no_such_model") == frozenset()
    def ours(cap):
        return [n for n in model_types_with(cap) if n in PACKAGE_MODELS]

    assert ours(Cap.VECTOR_LATENT) == ["beta_vae", "vaesim"]
    assert ours(Cap.FUTURES) == ["latent_diffusion", "pixel_diffusion"]
    assert ours(Cap.EXCHANGE) == ["kecae"]
    assert ours(Cap.PREDICT_KL) == ["dual_head", "multitask"]
    assert has_capability(get_spec("cnn").model_cls, Cap.PREDICT_OA)
    assert not has_capability(object(), Cap.EMBED)


def test_an_instance_narrows_its_class_when_its_config_leaves_a_part_out():
    tiny = {"image_size": 32, "widths": [4, 4, 4, 4, 4], "feature_dim": 4}
    dual = build_model("dual_head", make_config("dual_head", "demo", tiny))
    single_oa = build_model("dual_head", make_config("dual_head", "demo", {**tiny, "variant": "single_oa"}))
    assert has_capability(dual, Cap.PREDICT_KL) and not has_capability(single_oa, Cap.PREDICT_KL)
    assert has_capability(single_oa, Cap.PREDICT_OA)
    assert single_oa.capabilities <= type(single_oa).capabilities
    assert OAModel.capabilities == frozenset({Cap.EMBED})
