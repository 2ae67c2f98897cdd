"""The memory planner and out-of-memory handling, on the tiny real pipelines.

Free memory is given to the planner at the device boundary (the number `device_memory` would
read); out-of-memory is raised by a forward hook on the real UNet, as CUDA would raise it.
"""

from __future__ import annotations

import pytest
import torch

from i2vkit import planner, request
from i2vkit.errors import NaNOutputError, OutOfMemoryError, WontFitError
from i2vkit.runtime import calibrate
from i2vkit.runtime.loader import Loader
from i2vkit.runtime.runner import Runner
from tests.helpers.video import read_mp4

GIB = 1024**3


def test_planner_refuses_what_cannot_fit_and_names_what_would():
    profile = planner.profile_for("i2vgen-xl", "cuda:0", "fp16")
    job = request.make("i2vgen-xl", "mainstream")  # 768p, 24 frames
    with pytest.raises(WontFitError) as error:
        planner.check(job, profile, free=12 * GIB)
    message = str(error.value)
    assert "768x768, 24 frames" in message and "12.0 GiB is free" in message
    assert error.value.fits, message
    # every suggested setting really fits by the same model
    for label in error.value.fits:
        changes = dict(part.strip().split("=") for part in label.split(","))
        smaller = request.make("i2vgen-xl", "mainstream", **changes)
        assert planner.fits(smaller, profile, 12 * GIB), label


def test_planner_accepts_what_fits_and_weights_alone_are_named():
    profile = planner.profile_for("i2vgen-xl", "cuda:0", "fp16")
    job = request.make("i2vgen-xl", "entry")
    assert planner.check(job, profile, free=24 * GIB).peak < 24 * GIB
    with pytest.raises(WontFitError) as error:
        planner.check(request.make("i2vgen-xl", "preview"), profile, free=4 * GIB)
    assert any("CPU offload" in f for f in error.value.fits)


def test_estimates_grow_with_every_dimension_and_rescale_by_dtype():
    fp16 = planner.profile_for("i2vgen-xl", "cuda:0", "fp16")
    fp32 = planner.profile_for("i2vgen-xl", "cuda:0", "fp32")
    assert fp32.weights_bytes == 2 * fp16.weights_bytes and "rescaled" in fp32.source
    base = request.make("i2vgen-xl", "entry")
    peak = planner.estimate(base, fp16).peak
    for change in ({"height": 768}, {"frames": 32}, {"decode_chunk": 32}):
        assert planner.estimate(base.replace(**change), fp16).peak >= peak, change


def test_presets_that_fit_replace_the_tier_thresholds():
    fits = dict(
        (name, ok) for name, ok, _ in planner.preset_fits("i2vgen-xl", "cuda:0", "fp16", 12 * GIB)
    )
    assert fits["preview"] and fits["entry"] and not fits["pro"]
    fits = dict(
        (name, ok) for name, ok, _ in planner.preset_fits("i2vgen-xl", "cuda:0", "fp16", 80 * GIB)
    )
    assert all(fits.values())


class OomOnUnet:
    """Raise torch.OutOfMemoryError from the real UNet's forward, `times` times."""

    def __init__(self, unet, times: int) -> None:
        self.left = times
        self.handle = unet.register_forward_pre_hook(self)

    def __call__(self, module, args):
        if self.left > 0:
            self.left -= 1
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")


SMALL = dict(height=64, width=64, frames=4, steps=3, decode_chunk=4)


def test_an_oom_mid_job_is_retried_once_with_safer_settings(app, image, tmp_path):
    runner = Runner(Loader("demo", app), app)
    hook = OomOnUnet(runner.setup().pipe.unet, times=1)
    result = runner.generate(request.make("demo", **SMALL), image, tmp_path / "a.mp4")
    hook.handle.remove()
    assert result.retried and result.request.decode_chunk == 1
    assert read_mp4(tmp_path / "a.mp4").shape[0] == 4


def test_a_second_oom_fails_the_job_cleanly_and_the_runtime_stays_healthy(app, image, tmp_path):
    runner = Runner(Loader("demo", app), app)
    hook = OomOnUnet(runner.setup().pipe.unet, times=2)
    with pytest.raises(OutOfMemoryError) as error:
        runner.generate(request.make("demo", **SMALL), image, tmp_path / "b.mp4")
    assert "lower the resolution or the frame count" in str(error.value)
    assert not (tmp_path / "b.mp4").exists()
    hook.handle.remove()
    assert runner.loader.loads == 1
    runner.generate(request.make("demo", **SMALL), image, tmp_path / "c.mp4")  # still works
    assert not runner.setup().pipe.vae.use_tiling  # the retry's tiling was undone


def test_nan_output_is_an_error_not_a_black_video(app, image, tmp_path):
    runner = Runner(Loader("demo", app), app)
    decoder = runner.setup().pipe.vae.decoder
    handle = decoder.register_forward_hook(lambda _m, _i, out: out * float("nan"))
    with pytest.raises(NaNOutputError) as error:
        runner.generate(request.make("demo", **SMALL), image, tmp_path / "n.mp4")
    handle.remove()
    assert "bf16" in str(error.value)
    assert not (tmp_path / "n.mp4").exists()


def test_the_runtime_refuses_before_running_when_cpu_memory_is_short(app, image, tmp_path):
    """A calibrated row in the home (as `invoke calibrate` writes it) that says the demo costs
    1 TB per frame position: no host has that, so the job is refused before it runs."""
    greedy = planner.Profile(
        model="demo", device="cpu", dtype="fp32", weights_bytes=10**6,
        unet_bytes_per_position=1e12, vae_bytes_per_pixel=1.0, fixed_bytes=0,
        source="calibrated: a test's host that is always short of memory",
    )  # fmt: skip
    calibrate.save(greedy, app.home)
    runner = Runner(Loader("demo", app, device="cpu"), app)
    runner.setup()
    job = request.make("demo", "preview", height=64, width=64, frames=2, steps=1)
    with pytest.raises(WontFitError, match="needs about"):
        runner.generate(job, image, tmp_path / "big.mp4")
    assert not (tmp_path / "big.mp4").exists()
