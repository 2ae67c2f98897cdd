"""A request's settings, checked the same way for every entry point (flags, the API's form)."""

from __future__ import annotations

import re

import pytest

from i2vkit import request
from i2vkit.errors import RequestError


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"height": 100}, "height=100 is not a multiple of 64; try height=128"),
        ({"frames": 500}, "frames=500 is out of range"),
        ({"steps": "many"}, "steps='many' is not a whole number"),
        ({"guidance": 0.5}, "guidance=0.5 is out of range"),
        ({"scheduler": "plms"}, "scheduler 'plms' is unknown for demo; known: ddim, dpm++, euler"),
    ],
)
def test_bad_settings_are_refused_with_the_value(change, message):
    with pytest.raises(RequestError) as error:
        request.make("demo", "preview", **change)
    assert message in str(error.value)


def test_quality_warnings_follow_the_seed_notes():
    warnings = request.quality_warnings(request.make("i2vgen-xl", "entry", guidance=12))
    assert any("below 50 DDIM steps" in w for w in warnings)
    assert any("oversaturates" in w for w in warnings)
    assert request.quality_warnings(request.make("i2vgen-xl", "entry", steps=50)) == []


def test_the_overrides_model_carries_the_limits_of_presets_toml():
    schema = request.overrides_model().model_json_schema()["properties"]
    height = next(s for s in schema["height"]["anyOf"] if s.get("type") == "integer")
    assert (height["minimum"], height["maximum"]) == (64, 1536)
    assert set(schema) >= {"frames", "steps", "guidance", "seed", "scheduler", "prompt"}


def test_numbers_as_text_are_taken_as_the_cli_and_the_form_send_them():
    s = request.make("demo", "preview", height="128", guidance="7.5", seed="3")
    assert (s.height, s.guidance, s.seed) == (128, 7.5, 3)
    with pytest.raises(RequestError, match="unknown setting 'colour'"):
        request.make("demo", "preview", colour="red")


@pytest.mark.parametrize(
    ("model", "change", "message"),
    [
        ("wan-demo", {"frames": 8}, "frames=8 does not fit wan-demo (frames = 4k+1"),
        ("wan-demo", {"height": 144}, "height=144 is not a multiple of 32; try height=128"),
        ("wan-demo-a14b", {"height": 144}, None),  # 16 is its grid: 144 is fine
        (
            "wan-demo",
            {"scheduler": "ddim"},
            "scheduler 'ddim' is unknown for wan-demo; known: unipc",
        ),
        ("demo", {"scheduler": "unipc"}, "scheduler 'unipc' is unknown for demo"),
        ("demo", {"height": 144}, "height=144 is not a multiple of 64; try height=128"),
        ("ltx-demo", {"frames": 13}, "frames=13 does not fit ltx-demo (frames = 8k+1"),
        ("ltx-video-2b-0.9.5", {"width": 720}, "width=720 is not a multiple of 32; try width=704"),
        ("hunyuan-video-1.5-i2v-480p", {"frames": 161},
         "frames=161 is more than hunyuan-video-1.5-i2v-480p makes (at most 129); try frames=129"),
        ("hunyuan-video-1.5-i2v-480p", {"scheduler": "unipc"}, "known: euler"),
    ],
)  # fmt: skip
def test_each_model_s_own_rules(model, change, message):
    if message is None:
        assert request.make(model, "preview", **change).height == change["height"]
        return
    with pytest.raises(RequestError, match=re.escape(message)):
        request.make(model, "preview", **change)


def test_a_model_s_own_numbers_for_a_preset_and_its_defaults():
    s = request.make("wan2.2-i2v-a14b", "mainstream")
    assert (s.height, s.width, s.frames, s.steps) == (480, 832, 81, 40)
    assert (s.guidance, s.guidance_2, s.shift, s.scheduler, s.fps) == (3.5, 3.5, 5.0, "unipc", 16)
    assert request.make("wan2.2-ti2v-5b", "pro").frames == 121
    assert request.make("demo", "mainstream").frames == 24  # the generic preset
