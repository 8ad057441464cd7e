"""The contract every registered model keeps, checked once per registry entry with its tiny config.

Output shapes and ranges, a finite scalar loss, gradients for every trainable parameter,
eval-mode determinism, save -> load giving back the *trained* model, strict configs.
A newly registered model is picked up here and fails until it has a tiny config.
"""

from __future__ import annotations

import dataclasses
import json

import pytest
import torch

from oaviz.models.base import ConfigError, build_model, config_to_dict, get_spec, make_config, model_names, parse_config
from oaviz.training.checkpoint import load_checkpoint, save_checkpoint
from tests.tiny_checkpoints import TINY_CONFIGS

pytestmark = pytest.mark.usefixtures("one_torch_thread")

# Names starting with "_" are registered by other test modules (e.g. test_training's exploding VAE).
MODELS = [n for n in model_names() if not n.startswith("_")]
# Config keys naming another model's checkpoint: {model: {key: partner model type}}.
PARTNERS = {"latent_diffusion": {"vqvae_checkpoint": "vqvae"}}
B, SIZE = 4, 32

# Every output a model may offer: call, expected shape, and the check on its values.
OUTPUTS = {
    "embed": (lambda m, x: m.embed(x), lambda m: (B, m.embed_dim), None),
    "reconstruct": (lambda m, x: m.reconstruct(x), lambda m: (B, 1, SIZE, SIZE), "unit"),
    "predict_proba": (lambda m, x: m.predict_proba(x), lambda m: (B,), "unit"),
    "predict_oa_proba": (lambda m, x: m.predict_oa_proba(x), lambda m: (B,), "unit"),
    "predict_kl_proba": (lambda m, x: m.predict_kl_proba(x), lambda m: (B, 5), "simplex"),
    "predict_landmarks": (lambda m, x: m.predict_landmarks(x), lambda m: (B, 16, 2), "unit"),
    "sample_future": (lambda m, x: m.sample_future(x, 2, seed=3), lambda m: (B, 2, 1, SIZE, SIZE), "unit"),
}


def batch(seed=0):
    """Every key any batch kind reads (images, visit pairs, grade pairs); each model takes what it needs."""
    g = torch.Generator().manual_seed(seed)
    return {"image": torch.rand(B, 1, SIZE, SIZE, generator=g),
            "image_next": torch.rand(B, 1, SIZE, SIZE, generator=g),
            "image_pair": torch.rand(B, 1, SIZE, SIZE, generator=g),
            "kl": torch.tensor([0, 1, 2, 4]), "oa": torch.tensor([0.0, 0.0, 1.0, 1.0]),
            "label": torch.zeros(B, dtype=torch.long), "landmarks": torch.rand(B, 16, 2, generator=g)}


@pytest.fixture(scope="module")
def partner_dir(tmp_path_factory):
    """Tiny checkpoints of the partner models (one warm training step each, so e.g. the VQ codebook is set)."""
    root = tmp_path_factory.mktemp("partners")
    for kind in sorted({k for keys in PARTNERS.values() for k in keys.values()}):
        torch.manual_seed(0)
        m = build_model(kind, make_config(kind, "demo", TINY_CONFIGS[kind]))
        m.train()
        m.loss(batch(), 0)
        m.on_train_step_end(batch(), 0)
        save_checkpoint(m.eval(), root / kind)
    return root


def tiny(name, partner_dir, seed=0):
    assert name in TINY_CONFIGS, f"add a tiny config for {name!r} to tests/tiny_checkpoints.py TINY_CONFIGS"
    links = {key: str(partner_dir / kind) for key, kind in PARTNERS.get(name, {}).items()}
    torch.manual_seed(seed)
    return build_model(name, make_config(name, "demo", {**TINY_CONFIGS[name], **links}))


def trained(name, partner_dir):
    """A tiny model after one Adam step (weights moved off their init) and the step hook; left in train mode
    holding the gradients of a second backward."""
    m = tiny(name, partner_dir)
    m.train()
    opt = torch.optim.Adam(m.parameters(), lr=1e-2)
    m.loss(batch(), 0).total.backward()
    opt.step()
    m.on_train_step_end(batch(), 0)
    opt.zero_grad(set_to_none=True)
    m.loss(batch(1), 1).total.backward()
    return m


@torch.no_grad()
def outputs(m) -> dict[str, torch.Tensor]:
    x = batch(2)["image"]
    return {k: call(m, x) for k, (call, _, _) in OUTPUTS.items() if hasattr(type(m), k)}


def test_contract_covers_the_registry():
    registered = {n for n in model_names() if not n.startswith("_")}
    assert set(MODELS) == registered                                   # collected from the registry itself
    assert set(TINY_CONFIGS) == registered, "TINY_CONFIGS must have exactly one entry per registered model"
    assert {"beta_vae", "vaesim", "cnn", "dual_head", "vqvae", "multitask", "latent_diffusion",
            "pixel_diffusion", "kecae"} <= registered


@pytest.mark.parametrize("name", MODELS)
def test_loss_is_a_finite_scalar_and_every_parameter_gets_a_gradient(name, partner_dir):
    m = tiny(name, partner_dir)
    m.train()
    out = m.loss(batch(), step=0)
    assert out.total.ndim == 0 and torch.isfinite(out.total)
    assert out.terms and all(v.ndim == 0 and torch.isfinite(v) for v in out.terms.values()), out.terms
    m = trained(name, partner_dir)
    params = [(k, p) for k, p in m.named_parameters() if p.requires_grad]
    assert params
    assert [k for k, p in params if p.grad is None] == []                  # nothing detached from the loss
    assert [k for k, p in params if not torch.isfinite(p.grad).all()] == []
    assert [k for k, p in params if not p.grad.any()] == []                # nothing multiplied away


@pytest.mark.parametrize("name", MODELS)
def test_output_shapes_ranges_and_eval_determinism(name, partner_dir):
    m = trained(name, partner_dir).eval()
    first, second = outputs(m), outputs(m)
    assert "embed" in first
    for k, y in first.items():
        _, shape, kind = OUTPUTS[k]
        if y is None:                                                     # e.g. a head the variant lacks
            continue
        assert tuple(y.shape) == shape(m), k
        assert torch.isfinite(y).all(), k
        if kind == "unit":
            assert ((y >= 0) & (y <= 1)).all(), k
        if kind == "simplex":
            torch.testing.assert_close(y.sum(1), torch.ones(B))
        assert torch.equal(y, second[k]), f"{k} differs between two eval-mode calls"


@pytest.mark.parametrize("name", MODELS)
def test_save_load_gives_back_the_trained_model(name, partner_dir, tmp_path):
    m = trained(name, partner_dir).eval()
    expected = outputs(m)
    save_checkpoint(m, tmp_path / "ck")
    torch.manual_seed(12345)                                              # a reload must not lean on the RNG
    loaded = load_checkpoint(tmp_path / "ck").model
    assert type(loaded) is type(m) and loaded.config == m.config and not loaded.training
    sd, sd2 = m.state_dict(), loaded.state_dict()
    assert sd.keys() == sd2.keys()
    assert [k for k in sd if not torch.equal(sd[k], sd2[k])] == []
    got = outputs(loaded)
    assert got.keys() == expected.keys()
    for k, y in expected.items():
        assert (y is None and got[k] is None) or torch.equal(y, got[k]), k
    # the comparison can fail: an untrained model of the same config gives other outputs
    fresh = outputs(tiny(name, partner_dir, seed=7).eval())
    assert any(y is not None and not torch.equal(y, fresh[k]) for k, y in expected.items())


@pytest.mark.parametrize("name", MODELS)
def test_configs_are_strict_and_round_trip(name, partner_dir):
    spec = get_spec(name)
    with pytest.raises(ConfigError, match=r"unknown key\(s\) \['no_such_key'\]"):
        make_config(name, "demo", {"no_such_key": 1})
    with pytest.raises(ConfigError, match=r"unknown key\(s\) \['no_such_key'\]"):
        build_model(name, {**TINY_CONFIGS[name], "no_such_key": 1})
    with pytest.raises(ConfigError, match="has no preset 'huge'"):
        make_config(name, "huge")
    for preset in spec.presets:                                            # every preset parses and survives JSON
        cfg = make_config(name, preset)
        assert dataclasses.is_dataclass(cfg) and type(cfg) is spec.config_cls
        assert parse_config(spec.config_cls, json.loads(json.dumps(config_to_dict(cfg)))) == cfg
    assert config_to_dict(make_config(name, "paper"))["image_size"] >= 224
    with pytest.raises(dataclasses.FrozenInstanceError, match="cannot assign to field 'image_size'"):
        tiny(name, partner_dir).config.image_size = 64
