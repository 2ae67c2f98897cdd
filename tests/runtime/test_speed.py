"""The accelerations on the Wan twins (CPU): the first-block cache skips transformer calls and
stays close to the uncached video; regional compile gives the same video; the attention choice
falls back to SDPA and says why; a `-fast` entry's LoRA is fused (4 calls per job, no CFG);
every job records what was on."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from i2vkit import request
from i2vkit.errors import ConfigError
from i2vkit.runtime import speed
from i2vkit.runtime.loader import Loader
from i2vkit.runtime.pipelines import FAMILIES
from i2vkit.runtime.pipelines.base import Generation
from i2vkit.runtime.runner import Runner
from i2vkit.speed import CACHE_THRESHOLD, Speed, parse

# How far a cached run may drift from the uncached one: mean absolute difference of the frames,
# on [0, 1]. The twins' weights are random, so this bounds the mechanism, not the quality.
CACHE_DISTANCE = 0.01


def _run(pipe, s, image) -> np.ndarray:
    return FAMILIES["wan"].run(pipe, Generation(s, image))


@pytest.mark.parametrize(("model", "share"), [("wan-demo", 0.3), ("wan-demo-a14b", 0.05)])
def test_the_cache_skips_calls_at_its_default_and_stays_close(app, image, model, share):
    """The TI2V-shaped twin skips at least 30% of its transformer calls at the default
    threshold (the issue's target); the A14B-shaped one skips fewer (each expert's first call
    in each CFG context always computes, and it runs only half the steps): its figure is in
    docs/benchmarks.md, the test holds it above 5%."""
    s = request.make(model, "preview", height=64, width=64, frames=5, seed=2)  # its own steps
    plain = Loader(model, app, device="cpu").get().pipe
    counted = speed.Calls(plain)
    reference = _run(plain, s, image)
    assert counted.skipped == 0 and counted.total == 2 * s.steps  # CFG: two calls a step

    cached = Loader(model, app, device="cpu", options=Speed(cache="fbcache")).get()
    assert cached.options["cache"] == f"first-block cache at {CACHE_THRESHOLD:g}"
    calls = speed.Calls(cached.pipe)
    video = _run(cached.pipe, s, image)
    assert calls.total == 2 * s.steps
    assert calls.skipped >= share * calls.total, (calls.skipped, calls.total)
    distance = np.abs(video.astype(np.float64) - reference).mean() / 255
    assert 0 < distance <= CACHE_DISTANCE  # it did change something, and not much

    strict = Speed(cache="fbcache", cache_threshold=0.001)
    stricter = Loader(model, app, device="cpu", options=strict).get()
    calls = speed.Calls(stricter.pipe)
    _run(stricter.pipe, s, image)
    assert calls.skipped < calls.total * share  # the threshold is what decides


def test_regional_compile_gives_the_same_video(app, image):
    s = request.make("wan-demo", "preview", height=64, width=64, frames=5, steps=3, seed=1)
    reference = _run(Loader("wan-demo", app, device="cpu").get().pipe, s, image)
    compiled = Loader("wan-demo", app, device="cpu", options=Speed(compile=True)).get()
    assert compiled.options["compile"] == "regional (WanTransformerBlock)"
    video = _run(compiled.pipe, s, image)
    assert np.abs(video.astype(np.float64) - reference).mean() / 255 < 1e-3
    # with the cache hook and fp8 storage too (what `all` runs): Dynamo cannot trace their
    # wrappers whole, so the blocks compile with graph breaks there instead of failing
    every = Speed(compile=True, cache="fbcache")
    loaded = Loader("wan-demo", app, device="cpu", memory="fp8", options=every).get()
    assert loaded.options["compile"].endswith("graph breaks at hooks")
    video = _run(loaded.pipe, s, image)
    assert np.abs(video.astype(np.float64) - reference).mean() / 255 <= CACHE_DISTANCE


@pytest.mark.parametrize(
    ("asked", "device", "capability", "have", "chosen", "why"),
    [
        ("auto", "cpu", None, {}, "sdpa", "CPU"),
        ("flash3", "cpu", None, {"flash3": True}, "sdpa", "CPU"),
        ("auto", "cuda:0", (9, 0), {"flash3": True, "sage": True}, "flash3", "sm90"),
        ("auto", "cuda:0", (8, 9), {"flash3": True, "sage": True}, "sage", "sm89"),
        ("auto", "cuda:0", (8, 0), {"flash": True}, "flash", "sm80"),
        ("auto", "cuda:0", (9, 0), {}, "sdpa", "flash_attn_interface"),
        ("auto", "cuda:0", (7, 5), {"flash3": True, "sage": True}, "sdpa", "none suits"),
        ("sage", "cuda:0", (8, 9), {}, "sdpa", "sageattention is not installed"),
        ("sdpa", "cuda:0", (9, 0), {"flash3": True}, "sdpa", "asked for"),
    ],
)
def test_the_attention_kernel_follows_the_gpu_and_falls_back_to_sdpa(
    asked, device, capability, have, chosen, why
):
    name, reason = speed.choose_attention(asked, device, capability, have)
    assert name == chosen and why in reason


def test_on_this_machine_attention_is_sdpa_and_the_record_says_why(app, image, tmp_path):
    runner = Runner(Loader("wan-demo", app, device="cpu", options=Speed(attention="auto")), app)
    s = request.make("wan-demo", "preview", height=64, width=64, frames=5, steps=2)
    result = runner.generate(s, image, tmp_path / "out.mp4")
    assert result.options["attention"] == "sdpa (CPU: torch SDPA)"
    assert set(result.options) == {"memory", "dtype", "attention", "cache", "compile", "lora"}


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        ({"attention": "xformers"}, "--attention 'xformers' is unknown; known: sdpa, auto"),
        ({"cache": "magic"}, "--cache 'magic' is unknown; known: none, fbcache"),
        ({"cache": "fbcache", "cache_threshold": "2"}, "--cache-threshold 2 is out of range"),
    ],
)
def test_bad_acceleration_flags_name_the_value_and_the_choices(flags, message):
    with pytest.raises(ConfigError, match=message.replace("(", r"\(")):
        parse(**flags)


@pytest.mark.parametrize(("fast", "base"), [("wan-demo-a14b-fast", "wan-demo-a14b"),
                                            ("wan-demo-i2v-fast", "wan-demo-i2v")])  # fmt: skip
def test_a_fast_entry_fuses_its_lora_and_runs_four_calls_without_cfg(app, image, fast, base):
    loaded = Loader(fast, app, device="cpu").get()
    plain = Loader(base, app, device="cpu").get().pipe
    assert "fused into transformer" in loaded.options["lora"]
    pipe = loaded.pipe
    assert not [n for n, _ in pipe.transformer.named_modules() if "lora" in n]  # no adapters
    experts = [n for n in ("transformer", "transformer_2") if getattr(pipe, n) is not None]
    for name in experts:  # every expert's weights moved (its own LoRA file)
        fused, original = getattr(pipe, name).blocks[0], getattr(plain, name).blocks[0]
        assert not torch.equal(fused.attn1.to_q.weight, original.attn1.to_q.weight)
        if fused.attn2.add_k_proj is not None:  # Wan 2.1's image keys: converted and fused
            assert not torch.equal(fused.attn2.add_k_proj.weight, original.attn2.add_k_proj.weight)

    s = request.make(fast, "preview", height=64, width=64, frames=5, seed=3)
    assert (s.steps, s.guidance, s.scheduler) == (4, 1.0, "euler")
    per_expert = {name: speed.Calls(_only(pipe, name)) for name in experts}
    video = _run(pipe, s, image)
    assert sum(c.total for c in per_expert.values()) == 4  # one call a step: no CFG
    if len(experts) == 2:  # shift 5 puts two of four steps above A14B's boundary
        assert [per_expert[n].total for n in experts] == [2, 2]
    assert video.shape == (5, 64, 64, 3) and video.std() > 0


class _only:
    """A view of a pipeline with one denoiser, for counting that expert's calls."""

    def __init__(self, pipe, name: str) -> None:
        self.transformer = getattr(pipe, name)
        self.transformer_2 = None
        self.unet = None


def test_a_pipeline_built_in_memory_goes_through_the_same_loader(app, image):
    """bench --random-weights hands the loader a pipeline built in memory (runtime/fullsize.py
    builds the full-size ones): the same strategy, accelerations and record; a -fast entry's
    LoRA is not fused into random weights, and the record says so."""
    from i2vkit.runtime.pipelines import wan

    built: list[str] = []

    def build(dtype: str):
        built.append(dtype)
        return wan.build_tiny(seed=5, twin="a14b")

    loaded = Loader("wan-demo-a14b-fast", app, device="cpu", memory="fp8",
                    options=Speed(cache="fbcache"), build=build).get()  # fmt: skip
    assert built == ["fp32"] and loaded.options["lora"] == "not fused (random weights)"
    assert loaded.options["memory"] == "fp8" and loaded.options["cache"].startswith("first-block")
    s = request.make("wan-demo-a14b-fast", "preview", height=64, width=64, frames=5)
    assert _run(loaded.pipe, s, image).shape == (5, 64, 64, 3)
