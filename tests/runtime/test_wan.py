"""Wan on its tiny twins (TI2V-5B-, A14B- and 2.1-I2V-shaped): shapes, seeds, the A14B expert
switch at its boundary, progress and cancel, through the same runner as every family."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from i2vkit import request
from i2vkit.errors import CancelledError, UnknownNameError
from i2vkit.runtime import memory
from i2vkit.runtime.loader import Loader
from i2vkit.runtime.pipelines import FAMILIES, base
from i2vkit.runtime.pipelines.base import Generation
from i2vkit.runtime.runner import Runner
from tests.helpers.video import read_mp4

TWINS = ["wan-demo", "wan-demo-a14b", "wan-demo-i2v"]


def small(model: str, **changes):
    return request.make(model, "preview", **{"height": 64, "width": 64, "frames": 5,
                                             "steps": 4, **changes})  # fmt: skip


@pytest.mark.parametrize("model", TWINS)
def test_each_twin_makes_the_asked_video_and_the_seed_decides_it(app, image, model):
    loaded = Loader(model, app, device="cpu").get()
    run = FAMILIES["wan"].run
    first = run(loaded.pipe, Generation(small(model, seed=3), image))
    assert first.shape == (5, 64, 64, 3) and first.dtype == np.uint8 and first.std() > 0
    assert np.array_equal(first, run(loaded.pipe, Generation(small(model, seed=3), image)))
    assert not np.array_equal(first, run(loaded.pipe, Generation(small(model, seed=4), image)))


def test_the_a14b_experts_switch_at_the_boundary_step(app, image):
    """transformer runs the high-noise steps (t >= 0.875 x 1000), transformer_2 the rest; with
    guidance > 1 each step calls its expert twice (cond, then uncond)."""
    pipe = Loader("wan-demo-a14b", app, device="cpu").get().pipe
    calls: list[str] = []
    hooks = [getattr(pipe, name).register_forward_pre_hook(lambda *_, n=name: calls.append(n))
             for name in ("transformer", "transformer_2")]  # fmt: skip
    steps: list[float] = []
    try:
        s = small("wan-demo-a14b", steps=10)
        FAMILIES["wan"].run(pipe, Generation(s, image, lambda stage, done, total: None))
        steps = [float(t) for t in pipe.scheduler.timesteps]
    finally:
        for hook in hooks:
            hook.remove()
    high = sum(t >= 0.875 * 1000 for t in steps)
    assert 0 < high < 10, steps
    assert calls == ["transformer"] * (2 * high) + ["transformer_2"] * (2 * (10 - high))


def test_progress_every_step_and_cancel_at_the_next(app, image, tmp_path):
    runner = Runner(Loader("wan-demo", app, device="cpu"), app)
    seen: list[tuple[str, int, int]] = []
    result = runner.generate(small("wan-demo", steps=5), image, tmp_path / "a.mp4",
                             lambda *p: seen.append(p))  # fmt: skip
    # denoise 0/5 when the first step starts (encoding is done then: 1/1), then every step
    assert [d for stage, d, _ in seen if stage == "denoise"] == [0, 1, 2, 3, 4, 5]
    assert [d for stage, d, _ in seen if stage == "encode"] == [0, 1]
    assert read_mp4(tmp_path / "a.mp4").shape == (5, 64, 64, 3) and result.frames == 5
    asked = {"n": 0}

    def cancelled() -> bool:
        asked["n"] += 1
        return asked["n"] > 3

    with pytest.raises(CancelledError):
        runner.generate(small("wan-demo", steps=20), image, tmp_path / "b.mp4", None, cancelled)
    assert not (tmp_path / "b.mp4").exists()


def test_the_image_keeps_its_aspect(app):
    """The video takes the image's centre at the video's aspect (the pipeline would stretch)."""
    from PIL import Image

    wide = Image.new("RGB", (300, 100), (255, 0, 0))
    wide.paste((0, 0, 255), (0, 0, 100, 100))  # a blue left third a stretch would keep
    loaded = Loader("wan-demo", app, device="cpu").get()
    fitted = base.fit(wide, 64, 64)
    assert fitted.size == (64, 64) and fitted.getpixel((32, 32)) == (255, 0, 0)
    assert fitted.getpixel((2, 32))[2] < 128  # the blue edge was cropped away
    assert loaded.pipe.config.expand_timesteps is True  # the TI2V twin's conditioning


@pytest.mark.parametrize("dtype", ["bf16", "fp16"])
def test_half_precision_on_cpu_stays_finite(app, image, dtype):
    loaded = Loader("wan-demo-a14b", app, device="cpu", dtype=dtype).get()
    assert loaded.pipe.transformer.dtype == {"bf16": torch.bfloat16, "fp16": torch.float16}[dtype]
    frames = FAMILIES["wan"].run(loaded.pipe, Generation(small("wan-demo-a14b"), image))
    assert frames.shape == (5, 64, 64, 3)


def test_fp8_storage_halves_the_experts_block_weights_and_still_makes_a_video(app, image):
    """The planner's fp8 strategy (layerwise casting): the experts' block weights stored in
    float8 (half their bf16 bytes), computed in bf16; diffusers keeps embeddings and norms in
    their dtype (a few per cent of a full-size expert, more of a tiny one). On the CPU too."""
    plain = Loader("wan-demo-a14b", app, device="cpu", dtype="bf16", memory="full").get()
    fp8 = Loader("wan-demo-a14b", app, device="cpu", dtype="bf16", memory="fp8").get()
    assert fp8.strategy.name == "fp8" and plain.strategy.name == "full"
    for expert in ("transformer", "transformer_2"):
        before = dict(getattr(plain.pipe, expert).named_parameters())
        after = dict(getattr(fp8.pipe, expert).named_parameters())
        cast = [n for n, p in after.items() if p.dtype == torch.float8_e4m3fn]
        assert all(n.startswith("blocks.") for n in cast) and len(cast) > 10
        linear = [n for n in before if n.startswith("blocks.") and "norm" not in n and
                  n.endswith(".weight") and before[n].dim() == 2]  # fmt: skip
        assert set(linear) <= set(cast)
        halves = {after[n].numel() * after[n].element_size() * 2 ==
                  before[n].numel() * before[n].element_size() for n in cast}  # fmt: skip
        assert halves == {True}
    bytes_before, bytes_after = memory.weight_bytes(plain.pipe), memory.weight_bytes(fp8.pipe)
    assert bytes_after["vae"] == bytes_before["vae"]  # only the denoisers change
    assert bytes_after["text_encoder"] == bytes_before["text_encoder"]
    frames = FAMILIES["wan"].run(fp8.pipe, Generation(small("wan-demo-a14b"), image))
    assert frames.shape == (5, 64, 64, 3) and frames.std() > 0


def test_an_unknown_memory_strategy_is_refused_with_the_known_ones(app):
    with pytest.raises(UnknownNameError, match="memory strategy 'tiny' is unknown; known: auto"):
        Loader("wan-demo", app, device="cpu", memory="tiny")
