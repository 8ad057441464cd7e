"""The training engine end to end through the CLI, on a tiny cohort."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pandas as pd
import pytest
import torch

from oaviz.cli import main as cli
from oaviz.errors import ConfigError
from oaviz.data.cohort import load_cohort
from oaviz.models.base import build_model, register_model
from oaviz.models.beta_vae import BetaVAE, BetaVAEConfig
from oaviz.models.dual_head import DualHead, DualHeadConfig
from oaviz.training.checkpoint import load_checkpoint, read_checkpoint_info
from oaviz.training.data import training_data
from oaviz.training.events import read_events
from oaviz.training.metrics import validation_metrics

TINY = ["--set", "image_size=32", "--set", "widths=[4,8,8]"]


@register_model("_exploding_vae", BetaVAEConfig, presets={"demo": {"image_size": 32, "widths": [4, 8, 8]}})
class ExplodingVAE(BetaVAE):
    """Fails at its third step: the engine must leave no checkpoint behind."""

    def loss(self, batch, step=0):
        if step >= 2:
            raise RuntimeError("boom at step 2")
        return super().loss(batch, step)


@register_model("_worsening_dual_head", DualHeadConfig, presets={"demo": {}})
class WorseningDualHead(DualHead):
    """Its validation score worsens every epoch: a best-epoch rule would keep epoch 0."""

    def validation_score(self, val):
        self._epochs_scored = getattr(self, "_epochs_scored", 0) + 1
        return float(self._epochs_scored)


def train(tmp_path, cohort, *extra, model="beta_vae", name="ck"):
    out, run = tmp_path / name, tmp_path / f"run-{name}"
    rc = cli(["train", model, "--data", str(cohort), "--out", str(out), "--run-dir", str(run),
              "--batch-size", "16", *TINY, *extra])
    return rc, out, run


def test_train_writes_events_and_loadable_checkpoint(tmp_path, tiny_cohort):
    rc, out, run = train(tmp_path, tiny_cohort, "--epochs", "3")
    assert rc == 0
    ev = read_events(run / "events.jsonl")
    kinds = [e["event"] for e in ev]
    assert kinds[0] == "start" and kinds[-1] == "end" and kinds.count("epoch") == 3
    losses = [e["train"]["loss"] for e in ev if e["event"] == "epoch"]
    assert all(torch.isfinite(torch.tensor(losses))) and losses[-1] < losses[0]
    info = read_checkpoint_info(out)
    assert info["model_type"] == "beta_vae" and info["cohort"]["fingerprint"]
    assert info["training"]["epochs"] == 3 and "summary" in info["card"] and "val_mse" in info["metrics"]
    # the reloaded model is the trained one: it reproduces the validation MSE the engine measured on
    # its final (best-epoch) weights, which an untrained model of the same config does not
    loaded = load_checkpoint(out).model
    _, val = training_data(load_cohort(tiny_cohort), "images", loaded.config, None, info["training"]["seed"])
    assert len(val) == info["cohort"]["n_val"] > 0
    assert validation_metrics(loaded, val, "cpu")["val_mse"] == pytest.approx(info["metrics"]["val_mse"], rel=1e-5)
    untrained = validation_metrics(build_model("beta_vae", loaded.config), val, "cpu")["val_mse"]
    assert untrained != pytest.approx(info["metrics"]["val_mse"], rel=1e-2)


def test_resume_continues_from_last_epoch(tmp_path, tiny_cohort):
    rc, out, run = train(tmp_path, tiny_cohort, "--epochs", "1", "--patience", "0")
    assert rc == 0
    rc, out, run = train(tmp_path, tiny_cohort, "--epochs", "3", "--patience", "0", "--resume")
    assert rc == 0
    starts = [e for e in read_events(run / "events.jsonl") if e["event"] == "start"]
    assert starts[-1]["start_epoch"] == 1
    assert read_checkpoint_info(out)["training"]["epochs"] == 3


def test_crash_leaves_no_checkpoint_and_an_error_event(tmp_path, tiny_cohort):
    with pytest.raises(RuntimeError, match="boom"):
        train(tmp_path, tiny_cohort, "--epochs", "5", model="_exploding_vae")
    assert not (tmp_path / "ck").exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".ck")]
    ev = read_events(tmp_path / "run-ck" / "events.jsonl")
    assert ev[-1]["event"] == "error" and "boom" in ev[-1]["message"]


def test_early_stopping(tmp_path, tiny_cohort):
    # lr 0 -> validation loss never improves after the first epoch
    rc, out, run = train(tmp_path, tiny_cohort, "--epochs", "10", "--patience", "2", "--lr", "1e-12")
    assert rc == 0
    end = read_events(run / "events.jsonl")[-1]
    assert end["status"] == "early_stopped"
    assert read_checkpoint_info(out)["training"]["epochs"] < 10


def test_bad_override_is_a_clean_error(tmp_path, tiny_cohort, capsys):
    rc, out, _ = train(tmp_path, tiny_cohort, "--set", "no_such=1")
    assert rc == 2 and "unknown key" in capsys.readouterr().err
    assert not out.exists()


def test_embed_writes_one_row_per_image(tmp_path, tiny_cohort):
    rc, out, _ = train(tmp_path, tiny_cohort, "--epochs", "1")
    assert cli(["embed", "--checkpoint", str(out), "--data", str(tiny_cohort), "--out", str(tmp_path / "z.parquet")]) == 0
    df = pd.read_parquet(tmp_path / "z.parquet")
    meta = pd.read_csv(tiny_cohort / "metadata.csv")
    assert len(df) == len(meta) and list(df.image_id) == list(meta.image_id.astype(str))
    assert [c for c in df.columns if c.startswith("z_")] == [f"z_{i}" for i in range(64)]
    assert (df.recon_error > 0).all()


def test_ddp_two_processes_on_cpu(tmp_path, tiny_cohort):
    out = tmp_path / "ddp"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    torchrun = os.path.join(os.path.dirname(sys.executable), "torchrun")
    r = subprocess.run([torchrun, "--nproc-per-node", "2", "-m", "oaviz", "train", "vaesim", "--data",
                        str(tiny_cohort), "--out", str(out), "--run-dir", str(tmp_path / "run"), "--epochs", "2",
                        *TINY], env=env, capture_output=True, text=True, timeout=240)
    assert r.returncode == 0, r.stderr[-2000:]
    info = read_checkpoint_info(out)
    assert info["training"]["world_size"] == 2
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith((".ddp", "ddp"))] == ["ddp"]
    starts = [e for e in read_events(tmp_path / "run" / "events.jsonl") if e["event"] == "start"]
    assert len(starts) == 1  # only rank 0 writes


def test_batch_slices_never_leave_a_single_item_batch():
    from oaviz.training.loop import batch_slices

    assert batch_slices(64, 32) == [(0, 32), (32, 64)]
    assert batch_slices(449, 32)[-1] == (416, 449) and len(batch_slices(449, 32)) == 14  # 449 = 14·32 + 1
    assert batch_slices(33, 32) == [(0, 33)]
    assert batch_slices(1, 32) == [(0, 1)]
    for n in range(1, 200):
        s = batch_slices(n, 16)
        assert s[0][0] == 0 and s[-1][1] == n and all(a[1] == b[0] for a, b in zip(s, s[1:]))
        assert n == 1 or all(stop - start > 1 for start, stop in s)


def test_init_from_starts_training_from_a_checkpoint_and_refuses_another_model(tmp_path, tiny_cohort):
    import torch

    from oaviz.models.base import build_model, make_config
    from oaviz.training.checkpoint import save_checkpoint
    from oaviz.training.loop import TrainSpec, _warm_start

    cfg = make_config("dual_head", "demo", {"image_size": 32, "widths": [4, 8, 8], "feature_dim": 8})
    torch.manual_seed(5)
    src = build_model("dual_head", cfg)
    ck = save_checkpoint(src.eval(), tmp_path / "src", preset="demo")
    fresh = build_model("dual_head", cfg)
    _warm_start(fresh, "dual_head", str(ck))
    for k, v in src.state_dict().items():
        assert torch.equal(fresh.state_dict()[k], v), k
    with pytest.raises(ConfigError, match="a dual_head checkpoint cannot start a cnn training run"):
        _warm_start(build_model("cnn", make_config("cnn", "demo")), "cnn", str(ck))
    other = build_model("dual_head", make_config("dual_head", "demo", {"image_size": 32, "widths": [4, 8, 16],
                                                                       "feature_dim": 8}))
    with pytest.raises(ConfigError, match="do not fit this dual_head config"):
        _warm_start(other, "dual_head", str(ck))
    assert TrainSpec(model="x", data="d", out="o").init_from is None


# ----------------------------------------------------------------- the one-cycle schedule
ONE_CYCLE = ["--set", "image_size=32", "--set", "widths=[4,8,8,8,8]", "--set", "feature_dim=8",
             "--set", "lr_schedule=one_cycle"]


def _epoch_lrs(run):
    # parsed here, not with read_events: the resume test rewrites the log in place (read_events caches by inode)
    events = [json.loads(line) for line in (run / "events.jsonl").read_text().splitlines()]
    return [e["lr"] for e in events if e["event"] == "epoch"]


def test_one_cycle_warms_up_then_anneals_and_is_not_stopped_early(tmp_path, tiny_cohort):
    # lr ≈ 0 would early-stop a constant-lr run after 2 epochs (test_early_stopping); one-cycle runs to its floor
    out, run = tmp_path / "oc", tmp_path / "run-oc"
    assert cli(["train", "dual_head", "--data", str(tiny_cohort), "--out", str(out), "--run-dir", str(run),
                "--batch-size", "16", "--epochs", "6", "--patience", "2", "--lr", "1e-9", *ONE_CYCLE]) == 0
    lrs = _epoch_lrs(run)
    assert len(lrs) == 6 and read_checkpoint_info(out)["training"]["status"] == "finished"
    peak = lrs.index(max(lrs))
    assert 0 < peak < 5 and lrs[-1] < lrs[0] < lrs[peak] <= 1e-9 * 1.0001    # up to the peak, then down below the start


def test_a_resumed_one_cycle_run_continues_the_same_schedule(tmp_path, tiny_cohort):
    def run_dual(name, epochs, *extra):
        out, run = tmp_path / name, tmp_path / f"run-{name}"
        assert cli(["train", "dual_head", "--data", str(tiny_cohort), "--out", str(out), "--run-dir", str(run),
                    "--batch-size", "16", "--epochs", str(epochs), "--patience", "0", *ONE_CYCLE, *extra]) == 0
        return run

    whole = _epoch_lrs(run_dual("whole", 4))
    part = run_dual("part", 4)
    # stop after 2 of 4 epochs: rewrite the resume point as an interrupted 4-epoch run would have left it
    state = json.loads((part / "last_state.json").read_text())
    events = [json.loads(line) for line in (part / "events.jsonl").read_text().splitlines()]
    events = [e for e in events if not (e["event"] == "epoch" and e["epoch"] >= 2)]
    state.update(epoch=1, global_step=2 * (state["global_step"] // 4))
    (part / "last_state.json").write_text(json.dumps(state))
    (part / "events.jsonl").write_text("".join(json.dumps(e) + "\n" for e in events if e["event"] != "end"))
    run_dual("part", 4, "--resume")
    assert _epoch_lrs(part) == pytest.approx(whole, rel=1e-9)


def test_a_one_cycle_run_keeps_its_last_epoch_not_the_best_scored(tmp_path, tiny_cohort):
    from safetensors.torch import load_file

    out, run = tmp_path / "w", tmp_path / "run-w"
    assert cli(["train", "_worsening_dual_head", "--data", str(tiny_cohort), "--out", str(out), "--run-dir", str(run),
                "--batch-size", "16", "--epochs", "3", "--patience", "1", *ONE_CYCLE]) == 0
    last = {k[6:]: v for k, v in load_file(str(run / "last.safetensors")).items() if k.startswith("model.")}
    kept = load_checkpoint(out).model.state_dict()
    assert read_checkpoint_info(out)["training"]["epochs"] == 3
    assert all(torch.equal(kept[k], v) for k, v in last.items())


def test_an_unknown_schedule_is_a_clean_error(tmp_path, tiny_cohort, capsys):
    rc, out, _ = train(tmp_path, tiny_cohort, "--set", "lr_schedule=cosine", model="dual_head")
    assert rc == 2 and "lr_schedule must be one of" in capsys.readouterr().err


def test_unless_current_skips_a_checkpoint_trained_on_the_same_cohort_only(tmp_path, tiny_cohort, capsys):
    rc, out, _ = train(tmp_path, tiny_cohort, "--epochs", "1")
    assert rc == 0
    written = (out / "model.safetensors").stat().st_mtime_ns
    # same model, cohort and --set values: nothing is retrained
    assert cli(["train", "beta_vae", "--data", str(tiny_cohort), "--out", str(out), "--epochs", "1",
                "--unless-current", *TINY]) == 0
    assert "up to date" in capsys.readouterr().out and (out / "model.safetensors").stat().st_mtime_ns == written
    # another --set value is another model: retrained
    assert cli(["train", "beta_vae", "--data", str(tiny_cohort), "--out", str(out), "--epochs", "1",
                "--unless-current", *TINY, "--set", "beta=1"]) == 0
    assert "up to date" not in capsys.readouterr().out and read_checkpoint_info(out)["config"]["beta"] == 1
