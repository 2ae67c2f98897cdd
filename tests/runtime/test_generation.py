"""Generation on the tiny real pipelines: shapes, ranges, determinism, mp4 output."""

from __future__ import annotations

import threading

import numpy as np
import pytest
import torch

from i2vkit import request
from i2vkit.errors import CancelledError
from i2vkit.runtime.loader import Loader
from i2vkit.runtime.pipelines import FAMILIES
from i2vkit.runtime.pipelines.base import Generation
from i2vkit.runtime.pipelines.i2vgen_xl import encode_text
from i2vkit.runtime.runner import Runner
from tests.helpers.video import read_mp4

SMALL = dict(height=64, width=64, frames=4, steps=3, decode_chunk=2)


def settings(model: str = "demo", **changes):
    return request.make(model, "preview", **{**SMALL, **changes})


@pytest.mark.parametrize("model", ["demo", "demo-svd"])
def test_output_shape_range_and_no_nan(app, image, model):
    loaded = Loader(model, app, device="cpu").get()
    frames = FAMILIES[loaded.model.family].run(loaded.pipe, Generation(settings(model), image))
    assert frames.shape == (4, 64, 64, 3)
    assert frames.dtype == np.uint8
    assert frames.std() > 0  # not a constant (black) video


@pytest.mark.parametrize("model", ["demo", "demo-svd"])
def test_same_seed_same_video_other_seed_other_video(app, image, model):
    loaded = Loader(model, app, device="cpu").get()
    run = FAMILIES[loaded.model.family].run
    first = run(loaded.pipe, Generation(settings(model, seed=7), image))
    again = run(loaded.pipe, Generation(settings(model, seed=7), image))
    other = run(loaded.pipe, Generation(settings(model, seed=8), image))
    assert np.array_equal(first, again)
    assert not np.array_equal(first, other)


def test_mp4_decodes_to_the_requested_frames_with_progress(app, image, tmp_path):
    seen: list[tuple[str, int, int]] = []
    runner = Runner(Loader("demo", app, device="cpu"), app)
    out = tmp_path / "out" / "video.mp4"
    result = runner.generate(settings(frames=6, steps=4), image, out, lambda *p: seen.append(p))
    video = read_mp4(out)
    assert video.shape == (6, 64, 64, 3)
    assert result.frames == 6
    steps = [done for stage, done, total in seen if stage == "denoise"]
    assert steps == [1, 2, 3, 4]
    assert {"encode", "denoise", "decode", "write", "total"} <= set(result.seconds)
    assert result.peak_bytes > 0
    assert list(out.parent.iterdir()) == [out]  # no temp file left behind


def test_the_loader_builds_once_for_many_concurrent_callers(app):
    loader = Loader("demo", app, device="cpu")
    barrier = threading.Barrier(8)
    got = []

    def call():
        barrier.wait()
        got.append(loader.get())

    threads = [threading.Thread(target=call) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert loader.loads == 1
    assert len({id(g.pipe) for g in got}) == 1


@pytest.mark.parametrize(
    ("dtype", "expected"),
    [("fp32", torch.float32), ("bf16", torch.bfloat16), ("fp16", torch.float16)],
)
def test_every_component_has_the_asked_dtype(app, dtype, expected):
    loaded = Loader("demo", app, device="cpu", dtype=dtype).get()
    dtypes = {n: c.dtype for n, c in loaded.pipe.components.items() if hasattr(c, "dtype")}
    assert set(dtypes) == {"vae", "text_encoder", "image_encoder", "unet"}
    assert set(dtypes.values()) == {expected}


def test_bf16_on_cpu_runs_and_stays_finite(app, image):
    loaded = Loader("demo", app, device="cpu", dtype="bf16").get()
    frames = FAMILIES["i2vgen-xl"].run(loaded.pipe, Generation(settings(), image))
    assert frames.shape == (4, 64, 64, 3)


def test_cpu_defaults_to_fp32(app):
    assert Loader("demo", app, device="cpu").get().dtype == "fp32"


def test_clip_skip_shim_matches_the_reference_computation(app):
    """I2VGen-XL conditions on the penultimate CLIP layer through the final layer norm. The
    reference captures the penultimate layer's output with a hook during a plain forward."""
    pipe = Loader("demo", app, device="cpu").get().pipe
    encoder = pipe.text_encoder
    layers = (
        encoder.text_model.encoder.layers
        if hasattr(encoder, "text_model")
        else (encoder.encoder.layers)
    )
    captured = {}
    handle = layers[-2].register_forward_hook(
        lambda _m, _i, out: captured.setdefault("h", out[0] if isinstance(out, tuple) else out)
    )
    ids = pipe.tokenizer(
        ["a red fox"],
        padding="max_length",
        max_length=pipe.tokenizer.model_max_length,
        return_tensors="pt",
    ).input_ids
    with torch.no_grad():
        encoder(ids)
        handle.remove()
        norm = getattr(encoder, "text_model", encoder).final_layer_norm
        reference = norm(captured["h"])
        shim = encode_text(pipe, ["a red fox"], "cpu", clip_skip=1)
    assert torch.equal(shim, reference)
    # and it is not simply the last layer's output
    with torch.no_grad():
        last = encoder(ids).last_hidden_state
    assert not torch.allclose(shim, last)


def test_cancel_stops_at_the_next_step_and_writes_nothing(app, image, tmp_path):
    runner = Runner(Loader("demo", app, device="cpu"), app)
    steps: list[int] = []
    out = tmp_path / "out" / "video.mp4"
    with pytest.raises(CancelledError):
        runner.generate(
            settings(steps=10),
            image,
            out,
            lambda stage, done, total: steps.append(done) if stage == "denoise" else None,
            cancelled=lambda: len(steps) >= 2,
        )
    assert steps == [1, 2]
    assert not out.exists()


def test_the_same_seed_gives_the_same_frames_digest(app, image, tmp_path):
    """The job's `frames_sha256` is the digest of the frames as generated: the same seed and
    settings, the same digest; another seed, another. (The mp4's bytes are not the proof: in a
    process that has imported torch, libx264 now and then encodes the same frames differently,
    single-threaded and with every input byte written.)"""
    runner = Runner(Loader("demo", app, device="cpu"), app)
    s = request.make("demo", **SMALL, seed=5)
    first = runner.generate(s, image, tmp_path / "a.mp4")
    again = runner.generate(s, image, tmp_path / "b.mp4")
    other = runner.generate(s.replace(seed=6), image, tmp_path / "c.mp4")
    assert len(first.frames_sha256) == 64
    assert first.frames_sha256 == again.frames_sha256 != other.frames_sha256
