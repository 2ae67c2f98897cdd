"""The memory planner, light: estimates from the shipped profiles, the free memory given as a
number (the one runtime/measure.py `device_memory` reads at the device boundary)."""

from __future__ import annotations

import pytest

from i2vkit import catalogue, planner, request
from i2vkit.errors import WontFitError

GIB = 1024**3


def test_planner_refuses_what_cannot_fit_and_names_what_would():
    profile = planner.profile_for("i2vgen-xl", "cuda:0", "fp16")
    job = request.make("i2vgen-xl", "mainstream")  # 768p, 24 frames
    with pytest.raises(WontFitError) as error:
        planner.check(job, profile, free=12 * GIB)
    message = str(error.value)
    assert "768x768, 24 frames" in message and "12.0 GiB is free" in message
    assert "planned into 90% of it" in message  # the margin is said, not hidden
    assert error.value.fits, message
    assert len(set(error.value.fits)) == len(error.value.fits), error.value.fits
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
    assert "memory=offload (group offload)" in error.value.fits  # a leaner strategy fits
    assert any("weights alone do not fit" in f for f in error.value.fits)


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


@pytest.mark.parametrize(
    ("gib", "expected"),
    [(80, "full"), (48, "fp8"), (24, "offload"), (12, "lean")],
)
def test_wan_a14b_gets_the_fastest_strategy_each_card_holds(gib, expected):
    """480p, 81 frames (its mainstream preset) on an H100, an A6000, a 4090 and a 3060."""
    profile = planner.profile_for("wan2.2-i2v-a14b", "cuda:0", "bf16")
    job = request.make("wan2.2-i2v-a14b", "mainstream")
    chosen = planner.choose(job, profile, gib * GIB, "cuda:0")
    assert chosen.strategy.name == expected and chosen.peak <= 0.9 * gib * GIB


def test_wan_a14b_refused_even_lean_names_settings_that_fit_lean():
    """720p, 81 frames on a 6 GiB card: no strategy holds it; what would, under the leanest."""
    profile = planner.profile_for("wan2.2-i2v-a14b", "cuda:0", "bf16")
    job = request.make("wan2.2-i2v-a14b", "pro")
    with pytest.raises(WontFitError) as error:
        planner.choose(job, profile, 6 * GIB, "cuda:0")
    message = str(error.value)
    assert "720x1280, 81 frames" in message and "fp8 storage + group offload" in message
    assert error.value.fits, message
    lean = planner.strategy("lean")
    for label in error.value.fits:
        changes = dict(part.strip().split("=") for part in label.split(","))
        smaller = request.make("wan2.2-i2v-a14b", "pro", **changes)
        assert planner.fits(smaller, profile, 6 * GIB, lean), label


def test_ltx2_counts_cfg_at_guidance_1_as_its_pipeline_runs_it():
    """LTX-2's audio guidance (7 by default) keeps CFG's batch of two on at guidance 1; the
    other batched family (LTX) drops it."""

    def positions(model: str, guidance: float) -> int:
        s = request.make(model, "entry").replace(guidance=guidance)
        return planner.latent_positions(catalogue.model(model), s)

    assert positions("ltx-2-19b", 1.0) == positions("ltx-2-19b", 3.0)
    assert 2 * positions("ltx-video-2b-0.9.5", 1.0) == positions("ltx-video-2b-0.9.5", 3.0)
