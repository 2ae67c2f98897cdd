"""The full-size Wan architectures on the meta device: their parameters against the catalogue,
their FLOPs against the analytic count, and model_costs.toml against a fresh count."""

from __future__ import annotations

import sys
from functools import cache
from typing import Any

import pytest
import torch

from i2vkit import catalogue, request
from i2vkit.runtime import costs, fullsize

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

WAN = [m.name for m in catalogue.models() if m.family == "wan" and not m.local]


@cache
def meta(name: str) -> Any:
    return fullsize.build(name, "meta")


@cache
def stored() -> dict[str, Any]:
    return tomllib.loads(costs.COSTS.read_text())["model"]


@pytest.mark.parametrize("name", WAN)
def test_each_wan_model_has_the_catalogues_parameters_per_component(name):
    assert fullsize.parameters(meta(name)) == catalogue.model(name).components


def test_build_wan_makes_the_pipeline_on_the_device_in_the_dtype_asked():
    pipe = fullsize.build_wan("wan2.2-ti2v-5b", "meta")
    assert type(pipe).__name__ == "WanImageToVideoPipeline" and pipe.config.expand_timesteps
    assert fullsize.parameters(pipe) == catalogue.model("wan2.2-ti2v-5b").components
    assert torch.get_default_dtype() == torch.float32  # restored after building
    plain = [*pipe.vae.parameters(), *pipe.text_encoder.parameters()]
    assert all(p.is_meta for p in [*plain, *pipe.transformer.parameters()])
    assert {p.dtype for p in plain} == {torch.bfloat16}
    # as from_pretrained loads it: the norms, modulation and time embedding stay in fp32
    assert pipe.transformer.scale_shift_table.dtype == torch.float32
    assert pipe.transformer.blocks[0].attn1.to_q.weight.dtype == torch.bfloat16
    assert max(pipe.tokenizer("a fox").input_ids) < pipe.text_encoder.config.vocab_size
    experts = fullsize.build_wan("wan2.2-i2v-a14b", "meta")
    assert experts.config.boundary_ratio == 0.9 and experts.transformer_2 is not None


def test_model_costs_cover_every_full_size_wan_model_at_the_catalogues_presets():
    table = stored()
    assert set(WAN) <= set(table) and set(table) == set(fullsize.full_size_models())
    for name, entry in table.items():
        assert entry["parameters"] == fullsize.parameters(meta(name))
        assert entry["total_parameters"] == sum(entry["parameters"].values())
        for preset in catalogue.presets():
            s, row = request.make(name, preset.name), entry["preset"][preset.name]
            assert (row["height"], row["width"], row["frames"], row["steps"], row["guidance"]) == (
                s.height, s.width, s.frames, s.steps, s.guidance,
            )  # fmt: skip
            assert row["denoise"] == row["step"] * row["steps"]
            assert row["total"] == row["denoise"] + row["encode"] + row["decode"]


def test_model_costs_match_a_fresh_count():
    name = "wan2.2-i2v-a14b-fast"  # no CFG, small preview: the quickest full count
    s = request.make(name, "preview")
    fresh = fullsize.job_flops_for(name, s, meta(name))
    assert {k: stored()[name]["preset"]["preview"][k] for k in fresh} == fresh


def analytic_forward(config: Any, tokens: int, context: int) -> float:
    """2 x the per-token weights x tokens, plus attention: 4 x tokens^2 x width for the
    self-attention, 4 x tokens x context x width for the cross-attention, per layer."""
    width = config.num_attention_heads * config.attention_head_dim
    per_token = 4 * width**2 + 2 * width**2 + 2 * width * config.ffn_dim  # self, cross q/o, FFN
    layer = 2 * per_token * tokens + 4 * tokens**2 * width + 4 * tokens * context * width
    return config.num_layers * layer


@pytest.mark.parametrize("name", ["wan2.2-ti2v-5b", "wan2.2-i2v-a14b", "wan2.1-i2v-14b-480p"])
def test_one_forward_is_within_ten_percent_of_the_analytic_count(name):
    pipe, s = meta(name), request.make(name, "entry")
    frames = (s.frames - 1) // 4 + 1
    pixels_per_token = pipe.vae.config.scale_factor_spatial * 2  # the VAE, then the 2x2 patch
    tokens = frames * (s.height // pixels_per_token) * (s.width // pixels_per_token)
    context = 512 + (257 if pipe.transformer.config.image_dim else 0)  # text (+ CLIP image)
    forward = fullsize.wan_step_flops(pipe, s) / (2 if s.guidance > 1 else 1)
    assert forward == pytest.approx(
        analytic_forward(pipe.transformer.config, tokens, context), rel=0.1
    )


def test_a_step_costs_more_than_twice_as_much_at_720p_as_at_480p():
    name = "wan2.1-i2v-14b-720p"
    at_480p, at_720p = request.make(name, "entry", frames=81), request.make(name, "pro")
    assert (at_720p.height, at_720p.width, at_720p.frames) == (720, 1280, 81)
    more = (at_720p.height * at_720p.width) / (at_480p.height * at_480p.width)  # 2.31x tokens
    ratio = fullsize.wan_step_flops(meta(name), at_720p) / fullsize.wan_step_flops(
        meta(name), at_480p
    )
    assert (
        2 < more < ratio < more**2
    )  # the linear layers scale with tokens, attention with its square
