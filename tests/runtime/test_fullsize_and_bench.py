"""The full-size architecture on the meta device, `invoke bench`, `invoke calibrate` and
`invoke generate` as a user runs them."""

from __future__ import annotations

import pytest

from i2vkit import planner, request
from i2vkit.runtime import fullsize
from i2vkit.runtime.calibrate import calibrate, save
from i2vkit.runtime.pictures import gradient_picture
from tests.helpers.invoke import run_invoke
from tests.helpers.video import read_mp4


def test_full_size_i2vgen_xl_parameters_and_flops_on_meta():
    pipe = fullsize.build_i2vgen_xl("meta")
    params = fullsize.parameters(pipe)
    assert round(params["unet"] / 1e9, 2) == 1.42
    assert round(params["vae"] / 1e6) == 84
    assert round(params["text_encoder"] / 1e6) == 353
    assert round(params["image_encoder"] / 1e6) == 632
    assert round(sum(params.values()) / 1e9, 2) == 2.49
    flops = fullsize.job_flops(pipe, request.make("i2vgen-xl", "entry", steps=50))
    assert round(flops["unet_step"] / 1e12, 1) == 41.9  # CFG batch 2, 16 frames, 64x64 latents
    assert round(flops["total"] / 1e15, 2) == 2.13


def test_calibrate_fits_a_profile_the_planner_then_uses(app):
    profile = calibrate(
        app.__class__(**{**app.__dict__, "model": "demo"}), gradient_picture(64, 64), "cpu", None
    )
    assert profile.weights_bytes > 1_000_000
    assert profile.unet_bytes_per_position > 0 and profile.source.startswith("calibrated")
    save(profile, app.home)
    assert planner.profile_for("demo", "cpu", "fp32", app.home) == profile


@pytest.mark.slow
def test_invoke_bench_prints_stock_and_tuned_with_ratios(app):
    result = run_invoke(
        "bench",
        "--model",
        "demo",
        "--height",
        "64",
        "--width",
        "64",
        "--frames",
        "4",
        "--steps",
        "3",
        "--device",
        "cpu",
        env={"I2VKIT_HOME": str(app.home), "COLUMNS": "120"},
        timeout=600,
    )
    assert result.returncode == 0, result.stderr
    assert "stock" in result.stdout and "i2vkit" in result.stdout
    assert "faster end to end" in result.stdout and "floor" in result.stdout


def test_invoke_generate_writes_a_playable_mp4(app, tmp_path):
    gradient_picture(96, 128).save(tmp_path / "in.png")
    out = tmp_path / "out.mp4"
    result = run_invoke(
        "generate",
        "--model",
        "demo",
        "--image",
        str(tmp_path / "in.png"),
        "--prompt",
        "a fox",
        "--height",
        "64",
        "--width",
        "64",
        "--frames",
        "5",
        "--steps",
        "3",
        "--out",
        str(out),
        "--device",
        "cpu",
        env={"I2VKIT_HOME": str(app.home), "COLUMNS": "120"},
        timeout=600,
    )
    assert result.returncode == 0, result.stderr
    assert read_mp4(out).shape == (5, 64, 64, 3)
    assert "peak memory" in result.stdout and "denoise" in result.stdout


def test_invoke_generate_refuses_bad_input_with_exit_2(app, tmp_path):
    result = run_invoke(
        "generate",
        "--model",
        "demo",
        "--image",
        str(tmp_path / "none.png"),
        env={"I2VKIT_HOME": str(app.home)},
    )
    assert result.returncode == 2
    assert "cannot read" in result.stderr and "Traceback" not in result.stderr
