"""The shared plumbing: atomic writes (also from two threads of one process), the disk cache, checkpoint identity."""

from __future__ import annotations

import json
import os
import threading

import numpy as np
import pandas as pd
import pytest

from oaviz.data import atomic, disk_cache


def _race(write, values, rounds: int = 20) -> list[BaseException]:
    """Run ``write(value)`` for two values in two threads released together, ``rounds`` times."""
    errors: list[BaseException] = []
    for _ in range(rounds):
        gate = threading.Barrier(len(values))

        def run(v):
            gate.wait()
            try:
                write(v)
            except BaseException as e:  # collected: a thread's exception would otherwise vanish
                errors.append(e)

        threads = [threading.Thread(target=run, args=(v,)) for v in values]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    return errors


def _big_frame(fill: float) -> pd.DataFrame:
    return pd.DataFrame({f"z_{i}": np.full(20_000, fill, np.float32) for i in range(16)})


def test_two_threads_write_the_same_table(tmp_path):
    """Two app sessions are two threads of one pid: their temporary names must still differ."""
    out = tmp_path / "emb.parquet"
    errors = _race(lambda v: atomic.write_table(_big_frame(v), out), [1.0, 2.0])
    assert not errors, errors[:3]
    assert pd.read_parquet(out)["z_0"].iloc[0] in (1.0, 2.0)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["emb.parquet"]  # no temporary file left over


def test_two_threads_store_the_same_cache_entry(tmp_path, monkeypatch):
    monkeypatch.setenv("OAVIZ_HOME", str(tmp_path))
    key = {"checkpoint": "abc", "cohort": "def"}
    arrays = {v: {"coef": np.full((64, 4096), v)} for v in (1.0, 2.0)}
    errors = _race(lambda v: disk_cache.store("kl_probe", key, arrays[v], disk_cache.NPZ), [1.0, 2.0])
    assert not errors, errors[:3]
    got = disk_cache.lookup("kl_probe", key, disk_cache.NPZ)
    assert got["coef"][0, 0] in (1.0, 2.0) and (got["coef"] == got["coef"][0, 0]).all()
    assert [p.name for p in (tmp_path / "cache" / "kl_probe").iterdir()] == [
        disk_cache.cache_file("kl_probe", key, disk_cache.NPZ).name]


def test_a_failed_write_leaves_the_old_file(tmp_path):
    out = tmp_path / "job.json"
    atomic.write_json(out, {"v": 1})
    with pytest.raises(RuntimeError):
        with atomic.atomic_file(out) as tmp:
            tmp.write_text('{"v": 2, "half')
            raise RuntimeError("killed mid-write")
    assert json.loads(out.read_text()) == {"v": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["job.json"]


def test_output_folder_replaces_whole_or_not_at_all(tmp_path):
    out = tmp_path / "cohort"
    with atomic.output_folder(out) as tmp:
        (tmp / "a.txt").write_text("first")
    with pytest.raises(atomic.DataError, match="exists"):
        with atomic.output_folder(out):
            pass
    with pytest.raises(ValueError):
        with atomic.output_folder(out, overwrite=True) as tmp:
            (tmp / "a.txt").write_text("second")
            raise ValueError("bad input")
    assert (out / "a.txt").read_text() == "first"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cohort"]


def test_cached_computes_once_per_key_and_recomputes_a_broken_entry(tmp_path, monkeypatch):
    monkeypatch.setenv("OAVIZ_HOME", str(tmp_path))
    calls = []

    def compute(v):
        calls.append(v)
        return pd.DataFrame({"x": [v]})

    a = disk_cache.cached({"k": 1}, lambda: compute(1), scope="t")
    b = disk_cache.cached({"k": 1}, lambda: compute(99), scope="t")
    assert calls == [1] and b["x"].tolist() == a["x"].tolist() == [1]
    disk_cache.cached({"k": 2}, lambda: compute(2), scope="t")
    assert calls == [1, 2]
    disk_cache.cache_file("t", {"k": 1}, disk_cache.PARQUET).write_bytes(b"PAR1 truncated")
    assert disk_cache.cached({"k": 1}, lambda: compute(3), scope="t")["x"].tolist() == [3]
    assert disk_cache.cached({"k": 1}, lambda: compute(4), scope="t", accept=lambda df: len(df) > 1)["x"].tolist() == [4]
    assert disk_cache.cached({"k": 1}, lambda: compute(5), scope="t", enabled=False)["x"].tolist() == [5]
    assert calls == [1, 2, 3, 4, 5]
    assert disk_cache.cached({"k": 1}, lambda: compute(6), scope="t")["x"].tolist() == [4]  # enabled=False stored nothing


def test_checkpoint_identity_resolution_and_listing(tmp_path, monkeypatch):
    from oaviz.models.base import ConfigError
    from oaviz.models.checkpoints import checkpoint_hash, list_checkpoints, resolve_checkpoint
    from oaviz.paths import checkpoints_dir

    bundled = sorted(p for p in checkpoints_dir().iterdir() if (p / "config.json").is_file())
    assert resolve_checkpoint(bundled[0].name) == checkpoints_dir() / bundled[0].name  # a bundled name
    with pytest.raises(ConfigError, match="not a checkpoint folder"):
        resolve_checkpoint(tmp_path / "nothing-here")

    ck = tmp_path / "runs" / "run-1" / "checkpoint"
    ck.mkdir(parents=True)
    (ck / "model.safetensors").write_bytes(b"weights")
    (ck / "config.json").write_text(json.dumps({"model_type": "beta_vae", "preset": "demo"}))
    assert resolve_checkpoint(ck) == ck
    import hashlib

    assert checkpoint_hash(ck) == hashlib.sha256(b"weights" + (ck / "config.json").read_bytes()).hexdigest()[:16]
    before, stat = checkpoint_hash(ck), (ck / "model.safetensors").stat()
    (ck / "model.safetensors").write_bytes(b"retrained weights")
    os.utime(ck / "model.safetensors", ns=(stat.st_atime_ns, stat.st_mtime_ns))  # same mtime: the size tells
    assert checkpoint_hash(ck) != before
    runs = [e for e in list_checkpoints(runs_root=tmp_path / "runs") if e.origin == "run"]
    assert [(e.path, e.model_type, e.preset) for e in runs] == [(ck, "beta_vae", "demo")]


def test_event_log_refuses_unknown_kinds(tmp_path):
    from oaviz.training.events import EventLog, read_events

    log = EventLog(tmp_path / "events.jsonl")
    log.write("start", epochs=1, steps_per_epoch=2)
    with pytest.raises(ValueError, match="unknown event"):
        log.write("strat")
    assert [e["event"] for e in read_events(tmp_path / "events.jsonl")] == ["start"]


def test_start_up_removes_the_litter_of_a_killed_process_and_keeps_live_work(tmp_path):
    """A process killed inside atomic_folder leaves `.name.tmp-<pid>-…`; remove_stale_temps deletes it,
    but never the temporary of a process that still runs, nor anything else."""
    import subprocess
    import sys
    import time

    from oaviz.data.atomic import atomic_folder, remove_stale_temps

    code = ("import os, sys\nfrom oaviz.data.atomic import atomic_folder\n"
            f"with atomic_folder({str(tmp_path / 'cohorts' / 'big')!r}) as t:\n"
            "    (t / 'images.npy').write_bytes(b'x' * 1000)\n    os._exit(9)\n")
    subprocess.run([sys.executable, "-c", code], check=False)
    litter = [p for p in (tmp_path / "cohorts").iterdir() if p.name.startswith(".big.tmp-")]
    assert len(litter) == 1 and (litter[0] / "images.npy").is_file()      # the crash left it behind
    keep = tmp_path / "cohorts" / "kept"
    keep.mkdir()
    with atomic_folder(tmp_path / "cohorts" / "mine") as live:           # this (running) process's work
        old = time.time() - 3600
        for p in (litter[0], live):
            os.utime(p, (old, old))
        assert remove_stale_temps([tmp_path], min_age_s=0) == [litter[0]]
        assert live.is_dir() and keep.is_dir() and not litter[0].exists()
    young = tmp_path / "cohorts" / ".new.tmp-999999999-x"
    young.write_text("")
    assert remove_stale_temps([tmp_path], min_age_s=3600) == []          # too young: a pid may be reused
