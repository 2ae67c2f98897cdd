"""A request's settings, checked the same way for every entry point (flags, the API's form)."""

from __future__ import annotations

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
        ({"scheduler": "plms"}, "scheduler 'plms' is unknown; known: ddim, dpm++, euler"),
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
    assert (height["minimum"], height["maximum"], height["multipleOf"]) == (64, 1536, 64)
    assert set(schema) >= {"frames", "steps", "guidance", "seed", "scheduler", "prompt"}


def test_numbers_as_text_are_taken_as_the_cli_and_the_form_send_them():
    s = request.make("demo", "preview", height="128", guidance="7.5", seed="3")
    assert (s.height, s.guidance, s.seed) == (128, 7.5, 3)
    with pytest.raises(RequestError, match="unknown setting 'colour'"):
        request.make("demo", "preview", colour="red")
