"""LTX-Video, LTX-2 and HunyuanVideo 1.5 on their tiny twins, through the same loader and runner
as every family: the asked size and frames, seeds, progress and cancel, what guidance and a
distilled schedule change, LTX-2's sound track, accelerations a denoiser cannot take refused
before loading; and the full-size architectures on the meta device (parameters equal to the
catalogue's, FLOPs)."""

from __future__ import annotations

import numpy as np
import pytest

from i2vkit import catalogue, request
from i2vkit.errors import CancelledError, ConfigError
from i2vkit.runtime import fullsize, speed
from i2vkit.runtime.loader import Loader
from i2vkit.runtime.pipelines import FAMILIES
from i2vkit.runtime.pipelines.base import Generation
from i2vkit.runtime.runner import Runner
from i2vkit.speed import Speed
from tests.helpers.video import read_mp4

# (twin, a small job it takes: LTX sizes are multiples of 32 and frames 8k+1; HunyuanVideo
# 1.5's multiples of 16 and 4k+1)
TWINS = {"ltx-demo": {"height": 64, "width": 96, "frames": 9, "steps": 4},
         "ltx2-demo": {"height": 64, "width": 96, "frames": 9, "steps": 4},
         "hunyuan-demo": {"height": 64, "width": 80, "frames": 5, "steps": 4}}  # fmt: skip
DIT = ("ltx", "ltx2", "hunyuan-video-1.5")


def small(model: str, **changes):
    return request.make(model, "preview", **{**TWINS[model], **changes})


def _forwards(pipe):
    """Counts the transformer's forwards and the batch each ran with."""
    batches: list[int] = []

    def count(_module, args, kwargs):
        hidden = kwargs.get("hidden_states", args[0] if args else None)
        batches.append(int(hidden.shape[0]))

    return batches, pipe.transformer.register_forward_pre_hook(count, with_kwargs=True)


@pytest.mark.parametrize("model", list(TWINS))
def test_each_twin_makes_the_asked_video_and_the_seed_decides_it(app, image, model):
    """The asked size, not the stock call's choice (HunyuanVideo 1.5 picks a bucket by the
    image's aspect; the 96x128 image is 4:3, the job 64x80)."""
    loaded = Loader(model, app, device="cpu").get()
    run = FAMILIES[catalogue.model(model).family].run
    s = small(model, seed=3)
    first = run(loaded.pipe, Generation(s, image))
    assert first.shape == (s.frames, s.height, s.width, 3) and first.dtype == np.uint8
    assert first.std() > 0
    assert np.array_equal(first, run(loaded.pipe, Generation(small(model, seed=3), image)))
    assert not np.array_equal(first, run(loaded.pipe, Generation(small(model, seed=4), image)))


@pytest.mark.parametrize("model", list(TWINS))
def test_progress_every_step_and_cancel_at_the_next(app, image, tmp_path, model):
    runner = Runner(Loader(model, app, device="cpu"), app)
    seen: list[tuple[str, int, int]] = []
    s = small(model, steps=5)
    result = runner.generate(s, image, tmp_path / "a.mp4", lambda *p: seen.append(p))
    assert [d for stage, d, _ in seen if stage == "denoise"] == [0, 1, 2, 3, 4, 5]
    assert [d for stage, d, _ in seen if stage == "encode"] == [0, 1]
    assert [d for stage, d, _ in seen if stage == "decode"] == [0, 1]
    assert read_mp4(tmp_path / "a.mp4").shape == (s.frames, s.height, s.width, 3)
    assert result.frames == s.frames
    asked = {"n": 0}

    def cancelled() -> bool:
        asked["n"] += 1
        return asked["n"] > 3

    with pytest.raises(CancelledError):
        runner.generate(small(model, steps=40), image, tmp_path / "b.mp4", None, cancelled)
    assert not (tmp_path / "b.mp4").exists()
    assert asked["n"] <= 5  # stopped within a step of the cancel, not after 40


def test_ltx_batches_cfg_and_drops_it_at_guidance_1(app, image):
    pipe = Loader("ltx-demo", app, device="cpu").get().pipe
    run = FAMILIES["ltx"].run
    batches, hook = _forwards(pipe)
    try:
        run(pipe, Generation(small("ltx-demo", guidance=3.0), image))
        with_cfg = list(batches)
        batches.clear()
        run(pipe, Generation(small("ltx-demo", guidance=1.0), image))
    finally:
        hook.remove()
    assert with_cfg == [2] * 4 and batches == [1] * 4  # one forward per step, CFG in its batch


def test_the_distilled_ltx_entry_runs_its_own_timesteps_without_cfg(app, image):
    """ltx-demo-fast: the 0.9.8 distilled recipe (8 steps on its timestep list, guidance 1) on
    the twin's weights; asked for another step count, it runs the default schedule."""
    entry = catalogue.model("ltx-demo-fast")
    loaded = Loader("ltx-demo-fast", app, device="cpu").get()
    batches, hook = _forwards(loaded.pipe)
    try:
        s = request.make("ltx-demo-fast", "preview", height=64, width=96, frames=9)
        assert (s.steps, s.guidance) == (8, 1.0)
        FAMILIES["ltx"].run(loaded.pipe, Generation(s, image))
        ran = [float(t) for t in loaded.pipe.scheduler.timesteps]
        FAMILIES["ltx"].run(loaded.pipe, Generation(s.replace(steps=5), image))
    finally:
        hook.remove()
    assert batches == [1] * 13
    assert ran == pytest.approx(list(entry.timesteps), abs=0.01)
    assert len(loaded.pipe.scheduler.timesteps) == 5


def test_hunyuan_runs_cfg_as_two_forwards_and_one_at_guidance_1(app, image):
    pipe = Loader("hunyuan-demo", app, device="cpu").get().pipe
    run = FAMILIES["hunyuan-video-1.5"].run
    batches, hook = _forwards(pipe)
    try:
        s = small("hunyuan-demo", prompt="a red boat")  # differs from the empty negative
        first = run(pipe, Generation(s.replace(guidance=6.0), image))
        with_cfg = list(batches)
        batches.clear()
        other = run(pipe, Generation(s.replace(guidance=1.0), image))
    finally:
        hook.remove()
    assert with_cfg == [1] * 8 and batches == [1] * 4
    assert not np.array_equal(first, other)  # the job's guidance reached the guider


@pytest.mark.parametrize(
    ("model", "options", "words"),
    [
        ("hunyuan-demo", Speed(cache="fbcache"),
         "HunyuanVideo15TransformerBlock is not registered with diffusers' cache hooks"),
        ("demo", Speed(cache="fbcache"), "I2VGenXLUNet has no cache hooks"),
        ("demo-svd", Speed(compile=True), "names no repeated blocks"),
    ],
)  # fmt: skip
def test_an_option_the_denoiser_cannot_take_is_refused_before_loading(tmp_path, model, options,
                                                                     words):  # fmt: skip
    """In a home without the twin: refused before anything is built or loaded."""
    from i2vkit.settings import resolve

    empty = resolve({"home": str(tmp_path / "home"), "hub_cache": str(tmp_path / "hub")}, {}, {})
    with pytest.raises(ConfigError) as refused:
        Loader(model, empty, device="cpu", options=options)
    message = str(refused.value)
    assert words in message and model in message
    assert ("use --cache none" if options.cache != "none" else "leave --compile off") in message
    assert not (tmp_path / "home" / "models").exists()  # the twin was never built
    assert Loader(model, empty, device="cpu").loads == 0  # without the option: accepted


def test_the_cache_hook_runs_on_ltx(app, image):
    """LTX's blocks are registered with diffusers' hooks: the cache loads and skips steps."""
    loaded = Loader("ltx-demo", app, device="cpu",
                    options=Speed(cache="fbcache", cache_threshold=0.5)).get()  # fmt: skip
    assert loaded.options["cache"] == "first-block cache at 0.5"
    calls = speed.Calls(loaded.pipe)
    try:
        FAMILIES["ltx"].run(loaded.pipe, Generation(small("ltx-demo", steps=10), image))
    finally:
        calls.close()
    assert calls.total == 10 and calls.skipped > 0


def test_ltx2_makes_a_sound_track_and_the_mp4_carries_it(app, image, tmp_path):
    """Video and audio from one model: the audio (24 kHz stereo, as long as the video within
    the causal decoder's few frames) goes into the mp4 as an AAC track. Each step runs CFG as a
    batch of two, then the guidance passes (spatio-temporal, modality): three forwards."""
    import av

    runner = Runner(Loader("ltx2-demo", app, device="cpu"), app)
    batches, hook = _forwards(runner.loader.get().pipe)
    try:
        s = small("ltx2-demo", steps=3)
        runner.generate(s, image, tmp_path / "a.mp4")
    finally:
        hook.remove()
    assert batches == [2, 1, 1] * 3
    with av.open(str(tmp_path / "a.mp4")) as container:
        kinds = {stream.type: stream for stream in container.streams}
        assert set(kinds) == {"video", "audio"}
        audio = kinds["audio"].codec_context
        assert (audio.name, audio.sample_rate, audio.channels) == ("aac", 24000, 2)
        seconds = float(container.duration) / 1e6
    assert seconds == pytest.approx(s.frames / s.fps, abs=0.05)
    assert read_mp4(tmp_path / "a.mp4").shape == (9, 64, 96, 3)


FULL = [m for m in fullsize.full_size_models() if catalogue.model(m).family in DIT]


def test_every_ltx_ltx2_and_hunyuan_model_has_a_full_size_architecture():
    assert set(FULL) == {m.name for m in catalogue.models()
                         if m.family in DIT and not m.local}  # fmt: skip


@pytest.mark.parametrize("model", FULL)
def test_full_size_parameters_equal_the_catalogue(model):
    pipe = fullsize.build(model, "meta")
    entry = catalogue.model(model)
    assert fullsize.parameters(pipe) == entry.components
    assert sum(entry.components.values()) == entry.params


@pytest.mark.parametrize("model", ["ltx-video-2b-0.9.5", "hunyuan-video-1.5-i2v-480p"])
def test_full_size_flops_double_with_cfg_and_grow_with_the_frames(model):
    pipe = fullsize.build(model, "meta")
    s = request.make(model, "preview")
    with_cfg = fullsize.job_flops_for(model, s, pipe)
    without = fullsize.job_flops_for(model, s.replace(guidance=1.0), pipe)
    longer = fullsize.job_flops_for(model, s.replace(frames=s.frames * 2 - 1), pipe)
    assert with_cfg["step"] == 2 * without["step"]
    assert longer["step"] > 1.9 * with_cfg["step"]
    # about 2 FLOPs per denoiser parameter per latent token (HunyuanVideo 1.5's context stream
    # runs over its context only: about half), plus attention
    vae = pipe.vae
    frames = (s.frames - 1) // vae.temporal_compression_ratio + 1
    tokens = (
        frames
        * (s.height // vae.spatial_compression_ratio)
        * (s.width // vae.spatial_compression_ratio)
    )
    floor = 2 * catalogue.model(model).components["transformer"] * tokens
    assert floor / 2 < without["step"] < 4 * floor


def test_ltx2_runs_four_batch_one_forwards_a_step_with_its_defaults():
    """CFG (a batch of two: on while the audio's guidance, 7 by default, is above 1, even at
    guidance 1), the spatio-temporal guidance pass and the modality pass."""
    from i2vkit.runtime import fullsize_dit

    pipe = fullsize.build("ltx-2-19b", "meta")
    s = request.make("ltx-2-19b", "preview")
    assert fullsize_dit.ltx2_passes(pipe, s) == (True, True, True)
    assert fullsize_dit.ltx2_passes(pipe, s.replace(guidance=1.0)) == (True, True, True)
    flops = fullsize.job_flops_for("ltx-2-19b", s, pipe)
    assert flops["step"] % 4 == 0 and flops["denoise"] == flops["step"] * s.steps
