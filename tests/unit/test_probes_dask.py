"""The probe grid on joblib's Dask backend against a real ``distributed.LocalCluster`` (issue 16 item 5).

Skipped when dask.distributed is not installed: requirements.txt pins it (distributed==2026.8.0).
"""

from __future__ import annotations

import pandas as pd
import pytest

from oaviz.analysis import probes
from oaviz.errors import ConfigError

try:
    import dask
    import distributed
except ImportError:
    dask = distributed = None
needs_dask = pytest.mark.skipif(distributed is None, reason="dask.distributed is not installed "
                                "(requirements.txt: distributed==2026.8.0): the LocalCluster tests are skipped")


def _grid_data(n=240, seed=0):
    import numpy as np

    rng = np.random.default_rng(seed)
    kl = rng.choice(5, n, p=[0.4, 0.2, 0.2, 0.15, 0.05])
    X = rng.normal(size=(n, 8)).astype(np.float32)
    X[:, 0] += 1.5 * kl
    return X, kl, np.arange(0, 160), np.arange(160, n)


@pytest.fixture(scope="module")
def cluster():  # two worker processes, as a cluster's machines would be
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as c:
        yield c


def _grid(backend: str, **kw) -> probes.ProbeGrid:
    X, kl, _, _ = _grid_data()
    return probes.ProbeGrid({"x": X, "y": X[:, ::-1].copy()}, kl, target="oa", fractions=(0.25, 1.0),
                            noise=(0.0, 0.1), seeds=2, backend=backend, **kw)


@pytest.mark.slow
@needs_dask
def test_the_grid_runs_on_the_cluster_workers_and_matches_a_sequential_run(cluster):
    _, _, tr, te = _grid_data()
    seq = _grid("sequential", n_jobs=1).run(tr, te)
    with distributed.Client(cluster) as client, distributed.get_task_stream(client) as ts:
        got = _grid("dask").run(tr, te)
    pd.testing.assert_frame_equal(got, seq)          # the same cells, the same numbers
    workers = {t["worker"] for t in ts.data}
    assert len(ts.data) >= 1 and workers <= set(cluster.scheduler_info["workers"])


@pytest.mark.slow
@needs_dask
def test_without_a_client_it_connects_to_the_scheduler_the_dask_config_names(cluster):
    _, _, tr, te = _grid_data()
    seen = []

    def progress(done, total):  # called in this process while the grid runs: which scheduler serves it?
        seen.append(distributed.get_client().scheduler.address)

    with pytest.raises(ValueError):
        distributed.get_client()                     # no client yet in this process
    with dask.config.set({"scheduler-address": cluster.scheduler_address}):  # = DASK_SCHEDULER_ADDRESS
        got = _grid("dask").run(tr, te, progress=progress)
    assert seen and set(seen) == {cluster.scheduler_address}
    pd.testing.assert_frame_equal(got, _grid("sequential", n_jobs=1).run(tr, te))
    with pytest.raises(ValueError):
        distributed.get_client()                     # the client it opened is closed again


def test_dask_backend_without_the_package_says_what_to_install(monkeypatch):
    import builtins

    real = builtins.__import__
    monkeypatch.setattr(builtins, "__import__",
                        lambda name, *a, **k: (_ for _ in ()).throw(ImportError(name)) if name == "distributed"
                        else real(name, *a, **k))
    _, _, tr, te = _grid_data()
    with pytest.raises(ConfigError, match="needs dask.distributed"):
        _grid("dask").run(tr, te)
