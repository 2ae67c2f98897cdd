"""Out-of-memory handling and the planner's refusal in the runtime, on the tiny real pipelines:
out-of-memory is raised by a forward hook on the real UNet, as CUDA would raise it."""

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
    runner = Runner(Loader("demo", app, device="cpu"), app)
    hook = OomOnUnet(runner.setup().pipe.unet, times=1)
    result = runner.generate(request.make("demo", **SMALL), image, tmp_path / "a.mp4")
    hook.handle.remove()
    assert result.retried and result.request.decode_chunk == 1
    assert read_mp4(tmp_path / "a.mp4").shape[0] == 4


def test_a_second_oom_fails_the_job_cleanly_and_the_runtime_stays_healthy(app, image, tmp_path):
    runner = Runner(Loader("demo", app, device="cpu"), app)
    hook = OomOnUnet(runner.setup().pipe.unet, times=2)
    with pytest.raises(OutOfMemoryError) as error:
        runner.generate(request.make("demo", **SMALL), image, tmp_path / "b.mp4")
    assert "lower the resolution or the frame count" in str(error.value)
    assert not (tmp_path / "b.mp4").exists()
    hook.handle.remove()
    assert runner.loader.loads == 1
    runner.generate(request.make("demo", **SMALL), image, tmp_path / "c.mp4")  # still works
    assert not runner.setup().pipe.vae.use_tiling  # the retry's tiling was undone


def test_a_vae_the_load_tiled_stays_tiled_after_an_oom_retry(app, image, tmp_path):
    """LTX (like LTX-2 and HunyuanVideo 1.5) always tiles its VAE, and the planner counts on it:
    the retry's own tiling must not switch it off for the jobs after."""
    runner = Runner(Loader("ltx-demo", app, device="cpu"), app)
    pipe = runner.setup().pipe
    assert pipe.vae.use_tiling
    hook = OomOnUnet(pipe.transformer, times=1)
    s = request.make("ltx-demo", height=64, width=96, frames=9, steps=2)
    assert runner.generate(s, image, tmp_path / "a.mp4").retried
    hook.handle.remove()
    assert pipe.vae.use_tiling


def test_nan_output_is_an_error_not_a_black_video(app, image, tmp_path):
    runner = Runner(Loader("demo", app, device="cpu"), app)
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
