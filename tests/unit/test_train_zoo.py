"""`oaviz train-zoo`: the plan a cohort allows (and why it leaves models out), training in dependency order
with tiny configs, the manifest, and resuming after an interruption."""

from __future__ import annotations

import json

import pytest

from oaviz.cli import main as cli
from oaviz.data.cohort import load_cohort
from oaviz.errors import DataError
from oaviz.models.checkpoints import is_checkpoint, read_checkpoint_info
from oaviz.training.events import read_events
from oaviz.training.zoo import ZOO_MODELS, ZooSpec, plan_zoo, read_manifest, train_zoo, zoo_type
from tests.kl_folders_cohort import kl_folders_cohort
from tests.tiny_checkpoints import TINY_CONFIGS

pytestmark = pytest.mark.usefixtures("one_torch_thread")
TINY = {m: dict(TINY_CONFIGS[zoo_type(m)]) for m in ZOO_MODELS}


def _set_args(overrides: dict) -> list[str]:
    return [a for m, cfg in overrides.items() for k, v in cfg.items() for a in ("--set", f"{m}.{k}={json.dumps(v)}")]


@pytest.fixture(scope="module")
def real_style(tmp_path_factory):
    """Dataset-style kl-folders cohort without KL 0 (so no KL 0 / KL 2 pairs), one visit, no landmarks."""
    return kl_folders_cohort(tmp_path_factory.mktemp("klf"), n_subjects=12, grades=(1, 2, 3, 4))


def test_the_plan_says_what_a_real_cohort_cannot_feed_and_why(real_style):
    plan = {it.name: it for it in plan_zoo(load_cohort(real_style))}
    assert list(plan) == list(ZOO_MODELS)
    assert "no follow-up visits" in plan["latent_diffusion"].reason
    assert "no KL 0 / KL 2 pairs" in plan["kecae"].reason and "0 KL 0" in plan["kecae"].reason
    mt = plan["multitask"]
    assert not mt.skipped and mt.overrides == {"landmark_weight": 0.0} and "no landmarks" in mt.notes[0]
    assert [m for m, it in plan.items() if it.skipped] == ["vqvae", "kecae", "latent_diffusion"]
    assert "only the latent diffusion uses it" in plan["vqvae"].reason
    asked = {it.name: it for it in plan_zoo(load_cohort(real_style), ["vqvae"])}
    assert not asked["vqvae"].skipped                                   # asked for by name, it trains


def test_the_plan_on_a_synthetic_cohort_trains_everything_and_adds_dependencies(tiny_cohort):
    c = load_cohort(tiny_cohort)
    assert not any(it.skipped for it in plan_zoo(c))
    assert [it.model for it in plan_zoo(c, ["latent_diffusion"])] == ["vqvae", "latent_diffusion"]
    notes = plan_zoo(c, ["latent_diffusion"])[1].notes
    assert notes == ["without multitask: no progression risk"]


def test_train_zoo_trains_in_dependency_order_and_writes_the_manifest(tiny_cohort, tmp_path, capsys):
    out = tmp_path / "zoo"
    assert cli(["train-zoo", "--data", str(tiny_cohort), "--out", str(out), "--epochs", "1", *_set_args(TINY)]) == 0
    m = read_manifest(out)
    assert m["complete"] and m["preset"] == "real" and m["cohort"]["name"] == tiny_cohort.name
    assert m["cohort"]["fingerprint"] == load_cohort(tiny_cohort).fingerprint
    assert [e["model"] for e in m["models"]] == list(ZOO_MODELS) and {e["status"] for e in m["models"]} == {"trained"}
    for e in m["models"]:
        info = read_checkpoint_info(out / e["checkpoint"])
        assert info["model_type"] == e["model_type"] == zoo_type(e["model"]) and info["preset"] == "real"
        assert info["training"]["command"] == e["command"]
        assert e["command"].startswith(f"oaviz train {e['model_type']} ")
    variants = {e["model"]: read_checkpoint_info(out / e["checkpoint"])["config"] for e in m["models"]}
    assert [variants[f"dual_head{v}"]["variant"] for v in ("", "-single_oa", "-single_kl")] == [
        "dual", "single_oa", "single_kl"]
    assert variants["beta_vae-matched"]["beta"] == variants["vaesim"]["beta"] != variants["beta_vae"]["beta"]
    # the matched baseline re-acquires films as VAESim does; the zoo's own β-VAE does not (its real preset)
    assert variants["beta_vae-matched"]["augment"] == variants["vaesim"]["augment"] != variants["beta_vae"]["augment"]
    kecae = read_checkpoint_info(out / "kecae" / "checkpoint")["config"]
    ld = read_checkpoint_info(out / "latent_diffusion" / "checkpoint")["config"]
    assert kecae["discriminator_checkpoint"] == str((out / "multitask" / "checkpoint").resolve())
    assert ld["vqvae_checkpoint"] == str((out / "vqvae" / "checkpoint").resolve())
    assert ld["classifier_checkpoint"] == str((out / "multitask" / "checkpoint").resolve())
    ends = [e for e in read_events(out / "events.jsonl") if e["event"] == "epoch"]
    assert [e["model"] for e in ends] == list(ZOO_MODELS) and ends[-1]["eta_s"] == 0
    steps = [e["global_step"] for e in read_events(out / "events.jsonl") if e["event"] == "step"]
    assert steps == sorted(steps) and 0 < steps[0] and steps[-1] == len(ZOO_MODELS)
    assert "train multitask" in capsys.readouterr().out
    with pytest.raises(DataError, match="--resume"):
        train_zoo(ZooSpec(data=str(tiny_cohort), out=str(out), epochs=1, overrides=TINY))
    # the folder is a model set: its checkpoints are listed as the zoo's, named by entry and cohort
    from oaviz.models.base import Cap
    from oaviz.models.checkpoints import list_checkpoints
    from oaviz.services.zoos import list_model_sets, set_entry

    entries = list_checkpoints(bundled_root=tmp_path / "none", runs_root=tmp_path)
    assert {e.origin for e in entries} == {"zoo"} and len(entries) == len(ZOO_MODELS)
    assert f"beta_vae-matched · real · trained on {tiny_cohort.name}" in {e.label for e in entries}
    sets = list_model_sets(tmp_path)
    assert [s.label for s in sets] == ["Bundled demo set (synthetic knees)", f"Trained on {tiny_cohort.name} (real)"]
    assert set_entry(entries, sets[1].key, Cap.VECTOR_LATENT).path == out / "beta_vae" / "checkpoint"
    assert set_entry(entries, sets[1].key, Cap.PROTOTYPES).path == out / "vaesim" / "checkpoint"
    # a second zoo of the same cohort and preset (retrained into another folder) reads differently in the sidebar
    (tmp_path / "zoo-again").mkdir()
    (tmp_path / "zoo-again" / "zoo.json").write_text((out / "zoo.json").read_text())
    again = [s.label for s in list_model_sets(tmp_path)][1:]
    assert sorted(again) == [f"Trained on {tiny_cohort.name} (real) · {n}" for n in ("zoo", "zoo-again")]


def test_train_zoo_skips_with_reasons_on_a_real_style_cohort(real_style, tmp_path, capsys):
    out = tmp_path / "zoo"
    args = ["train-zoo", "--data", str(real_style), "--out", str(out), "--epochs", "1", "--models", "multitask,kecae",
            *_set_args({"multitask": TINY["multitask"], "kecae": TINY["kecae"]})]
    assert cli(args) == 0
    printed = capsys.readouterr().out
    assert "skip kecae: no KL 0 / KL 2 pairs" in printed and "no landmarks" in printed
    m = read_manifest(out)
    assert [(e["model"], e["status"]) for e in m["models"]] == [("multitask", "trained"), ("kecae", "skipped")]
    assert m["complete"] and m["models"][1]["checkpoint"] is None
    assert read_checkpoint_info(out / "multitask" / "checkpoint")["config"]["landmark_weight"] == 0.0


def test_an_interrupted_zoo_resumes_where_it_stopped(tiny_cohort, tmp_path, monkeypatch):
    from oaviz.training import loop

    out = tmp_path / "zoo"
    spec = dict(data=str(tiny_cohort), out=str(out), epochs=2, models=["beta_vae", "cnn"], patience=0,
                overrides={"beta_vae": TINY["beta_vae"], "cnn": TINY["cnn"]})
    real_save = loop._save_resume

    def save_then_die(run_dir, model, opt, state):          # the power goes after the CNN's first epoch
        real_save(run_dir, model, opt, state)
        if run_dir.name == "cnn":
            raise KeyboardInterrupt

    monkeypatch.setattr(loop, "_save_resume", save_then_die)
    with pytest.raises(KeyboardInterrupt):
        train_zoo(ZooSpec(**spec))
    m = read_manifest(out)
    assert [e["status"] for e in m["models"]] == ["trained", "interrupted"] and not m["complete"]
    assert not is_checkpoint(out / "cnn" / "checkpoint")
    vae_stamp = (out / "beta_vae" / "checkpoint" / "model.safetensors").stat().st_mtime_ns
    monkeypatch.setattr(loop, "_save_resume", real_save)
    m = train_zoo(ZooSpec(**spec, resume=True))
    assert [e["status"] for e in m["models"]] == ["trained", "trained"] and m["complete"]
    assert (out / "beta_vae" / "checkpoint" / "model.safetensors").stat().st_mtime_ns == vae_stamp   # kept
    starts = [e for e in read_events(out / "cnn" / "events.jsonl") if e["event"] == "start"]
    assert [s["start_epoch"] for s in starts] == [0, 1]                 # the engine's resume, from epoch 1
    assert read_checkpoint_info(out / "cnn" / "checkpoint")["training"]["epochs"] == 2
    with pytest.raises(Exception, match="preset"):
        train_zoo(ZooSpec(**{**spec, "resume": True}, preset="demo"))
