"""What only a CUDA GPU exercises: every memory strategy's hooks (group offload with streams,
model CPU offload, the lean strategy's streamed encoders) and the attention choice, on the Wan
twins. Skipped where torch sees no CUDA GPU (the `gpu` marker: the only skip allowed)."""

from __future__ import annotations

import numpy as np
import pytest

from i2vkit import planner, request
from i2vkit.runtime.loader import Loader
from i2vkit.runtime.pipelines import FAMILIES
from i2vkit.runtime.pipelines.base import Generation
from i2vkit.speed import Speed

pytestmark = pytest.mark.gpu


@pytest.mark.parametrize("strategy", [s.name for s in planner.STRATEGIES])
@pytest.mark.parametrize("model", ["wan-demo-a14b", "wan-demo-i2v"])
def test_every_memory_strategy_runs_on_the_gpu_and_gives_the_same_video(app, image, model,
                                                                        strategy):  # fmt: skip
    s = request.make(model, "preview", height=64, width=64, frames=5, steps=3, seed=1)
    reference = FAMILIES["wan"].run(
        Loader(model, app, device="cuda:0", dtype="bf16").get().pipe, Generation(s, image)
    )
    loaded = Loader(model, app, device="cuda:0", dtype="bf16", memory=strategy).get()
    assert loaded.options["memory"] == strategy
    video = FAMILIES["wan"].run(loaded.pipe, Generation(s, image))
    assert video.shape == (5, 64, 64, 3)
    # placement changes no arithmetic; fp8 storage rounds the block weights
    limit = 0.05 if planner.strategy(strategy).fp8 else 0.01
    assert np.abs(video.astype(np.float64) - reference).mean() / 255 < limit


def test_attention_auto_names_its_choice_on_the_gpu(app, image):
    loaded = Loader("wan-demo", app, device="cuda:0", options=Speed(attention="auto")).get()
    assert loaded.options["attention"].startswith(("flash3 ", "sage ", "flash ", "sdpa ("))
    s = request.make("wan-demo", "preview", height=64, width=64, frames=5, steps=2)
    assert FAMILIES["wan"].run(loaded.pipe, Generation(s, image)).std() > 0
