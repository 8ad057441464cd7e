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


def test_frozen_models_keep_their_images_in_serving_layouts(vae):
    from oaviz.models.checkpoints import load_checkpoint
    from oaviz.models.serving import SubpixelDeconv

    plain, frozen = load_checkpoint(vae).model, load_checkpoint(vae, frozen=True).model
    deconvs = [m for m in frozen.modules() if isinstance(m, torch.nn.ConvTranspose2d)]
    assert deconvs and all(m.weight.is_contiguous(memory_format=torch.channels_last) for m in deconvs)
    assert all(m.weight.is_contiguous() for m in plain.modules() if isinstance(m, torch.nn.ConvTranspose2d))
    # the one-channel output layer runs in its sub-pixel form; the plain model keeps its transposed conv
    assert isinstance(frozen.decoder.deconv[-1], SubpixelDeconv)
    assert not any(isinstance(m, SubpixelDeconv) for m in plain.modules())
    assert frozen.serving and not getattr(plain, "serving", False)
    z = torch.randn(16, TINY["latent_dim"], generator=torch.Generator().manual_seed(0))
    with torch.inference_mode():   # the same sums in another order
        torch.testing.assert_close(frozen.decode(z), plain.decode(z), rtol=0, atol=1e-5)


@pytest.mark.parametrize("cin,cout,bias", [(16, 1, True), (8, 3, False), (5, 4, True)])
def test_subpixel_form_equals_the_transposed_conv(cin, cout, bias):
    from oaviz.models.serving import SubpixelDeconv

    g = torch.Generator().manual_seed(cin)
    deconv = torch.nn.ConvTranspose2d(cin, cout, 4, stride=2, padding=1, bias=bias)
    with torch.no_grad():
        deconv.weight.copy_(torch.randn(deconv.weight.shape, generator=g))
    x = torch.randn(3, cin, 7, 9, generator=g)     # odd, non-square: the phases and borders must line up
    with torch.inference_mode():
        torch.testing.assert_close(SubpixelDeconv(deconv)(x), deconv(x), rtol=0, atol=1e-4)


def test_only_the_layers_it_can_rewrite_are_rewritten():
    from oaviz.models.serving import SubpixelDeconv, is_subpixel_candidate

    assert not is_subpixel_candidate(torch.nn.ConvTranspose2d(16, 8, 4, stride=2, padding=1))  # wide: oneDNN's
    assert not is_subpixel_candidate(torch.nn.ConvTranspose2d(16, 1, 3, stride=2, padding=0))  # KECAE's kind
    with pytest.raises(ValueError, match="4×4 stride-2"):
        SubpixelDeconv(torch.nn.ConvTranspose2d(16, 1, 3, stride=2))


def test_served_models_decode_at_the_fast_precision_and_encode_at_fp32(vae, monkeypatch):
    from oaviz.models.checkpoints import load_checkpoint
    from oaviz.services import model_io
    from oaviz.training import device

    seen = []
    real = device.serving_autocast
    monkeypatch.setattr(model_io, "serving_autocast", lambda dev: seen.append(dev) or real(dev))
    plain, served = load_checkpoint(vae).model, load_checkpoint(vae, frozen=True).model
    Z = np.random.default_rng(0).standard_normal((4, TINY["latent_dim"])).astype(np.float32)
    a, b = model_io.decode(plain, Z), model_io.decode(served, Z)
    assert len(seen) == 1                     # the served model only; training-side decodes stay fp32
    assert b.dtype == np.float32 and np.abs(a - b).max() < 0.02   # bf16 where the CPU has it: ~1 grey level
    x = torch.rand(2, 1, 64, 64, generator=torch.Generator().manual_seed(1))
    np.testing.assert_allclose(model_io.encode(served, x), model_io.encode(plain, x), rtol=0, atol=1e-5)


def test_native_bf16_can_be_turned_off(monkeypatch):
    from oaviz.training import device

    device.cpu_has_native_bf16.cache_clear()
    monkeypatch.setenv("OAVIZ_SERVE_FP32", "1")
    try:
        assert device.cpu_has_native_bf16() is False
        assert not isinstance(device.serving_autocast(torch.device("cpu")), torch.autocast)
    finally:
        device.cpu_has_native_bf16.cache_clear()


def test_interpolation_reads_row_latents_from_the_shared_cohort_latents(vae, tiny_cohort, monkeypatch):
    from oaviz.services import interpolation as ip
    from oaviz.services import model_io
    from oaviz.services.kl_probe import cohort_latents

    c = load_cohort(tiny_cohort)
    Z = cohort_latents(vae, c)
    monkeypatch.setattr(model_io, "encode", lambda *a, **k: pytest.fail("re-encoded a cohort row"))
    r = ip.interpolate(vae, c, 0, 5, steps=4)
    np.testing.assert_allclose(r.Z[0], Z[0], atol=1e-6)
    np.testing.assert_allclose(r.Z[-1], Z[5], atol=1e-6)
