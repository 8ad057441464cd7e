"""What many concurrent visitors rely on: per-(checkpoint, cohort) values computed once and shared read-only
(services.memo), and frozen models decoding as fast as the layout allows with the same images."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest
import torch

from oaviz.data.cohort import load_cohort
from oaviz.services import memo

TINY = {"image_size": 64, "widths": [4, 8, 8, 8], "latent_dim": 8}


@pytest.fixture(scope="module")
def vae(tmp_path_factory):
    from oaviz.models.base import build_model, make_config
    from oaviz.training.checkpoint import save_checkpoint

    torch.manual_seed(3)
    return save_checkpoint(build_model("beta_vae", make_config("beta_vae", "demo", TINY)),
                           tmp_path_factory.mktemp("ck") / "vae")


def test_memo_computes_once_for_eight_threads_at_once_and_retries_after_an_error():
    memo.clear()
    calls = []

    def slow():
        calls.append(1)
        time.sleep(0.2)
        return object()

    got = []
    threads = [threading.Thread(target=lambda: got.append(memo.memoised(("k", 1), slow))) for _ in range(8)]
    [t.start() for t in threads]
    [t.join() for t in threads]
    assert len(calls) == 1 and len(got) == 8 and all(g is got[0] for g in got)
    with pytest.raises(ZeroDivisionError):
        memo.memoised(("k", 2), lambda: 1 / 0)
    assert memo.memoised(("k", 2), lambda: 5) == 5           # a failure is not remembered


def test_memo_forgets_the_least_recently_used_beyond_its_size(monkeypatch):
    memo.clear()
    monkeypatch.setattr(memo, "MAX_ENTRIES", 2)
    memo.memoised("a", lambda: 1)
    memo.memoised("b", lambda: 2)
    memo.memoised("a", lambda: 0)                             # a is used again: b is the oldest now
    memo.memoised("c", lambda: 3)
    assert memo.memoised("a", lambda: -1) == 1 and memo.memoised("b", lambda: -2) == -2


def test_cohort_latents_are_read_once_and_shared_read_only(vae, tiny_cohort, tmp_path, monkeypatch):
    import oaviz.services.kl_probe as kp

    monkeypatch.setenv("OAVIZ_HOME", str(tmp_path))
    c = load_cohort(tiny_cohort)
    Z = kp.cohort_latents(vae, c)
    reads = []
    real = kp.embed_cohort
    monkeypatch.setattr(kp, "embed_cohort", lambda *a, **k: reads.append(1) or real(*a, **k))
    assert kp.cohort_latents(vae, c) is Z and not reads      # from memory: no parquet read
    assert not Z.flags.writeable
    with pytest.raises(ValueError):
        Z[0, 0] = 1.0                                          # a caller cannot change what others read
    monkeypatch.setenv("OAVIZ_HOME", str(tmp_path / "other"))
    np.testing.assert_array_equal(kp.cohort_latents(vae, c), Z)
    assert reads == [1]                                        # another home fills its own disk cache


def test_interpolation_reference_is_measured_once(vae, tiny_cohort, tmp_path, monkeypatch):
    import oaviz.services.interpolation as ip

    monkeypatch.setenv("OAVIZ_HOME", str(tmp_path))
    c = load_cohort(tiny_cohort)
    first = ip.interpolate(vae, c, 0, 5, steps=4)
    monkeypatch.setattr(ip, "manifold_reference", lambda *a: pytest.fail("re-measured the held-out distances"))
    again = ip.interpolate(vae, c, 0, 5, steps=4)
    np.testing.assert_array_equal(again.images, first.images)
    assert again.reference == first.reference


def test_frozen_models_keep_their_images_with_channels_last_deconvs(vae):
    from oaviz.models.checkpoints import load_checkpoint

    plain, frozen = load_checkpoint(vae).model, load_checkpoint(vae, frozen=True).model
    deconvs = [m for m in frozen.modules() if isinstance(m, torch.nn.ConvTranspose2d)]
    assert deconvs and all(m.weight.is_contiguous(memory_format=torch.channels_last) for m in deconvs)
    assert all(m.weight.is_contiguous() for m in plain.modules() if isinstance(m, torch.nn.ConvTranspose2d))
    z = torch.randn(16, TINY["latent_dim"], generator=torch.Generator().manual_seed(0))
    with torch.inference_mode():
        torch.testing.assert_close(frozen.decode(z), plain.decode(z), rtol=0, atol=1e-6)
