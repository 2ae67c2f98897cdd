"""The full-size architecture on the meta device, `invoke bench`, `invoke calibrate` and
`invoke generate` as a user runs them."""

from __future__ import annotations

import json

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


@pytest.mark.parametrize(("model", "weights"), [("demo", 1_000_000), ("wan-demo", 100_000)])
def test_calibrate_fits_a_profile_the_planner_then_uses(app, model, weights):
    """Each family at sizes it takes (Wan: multiples of 32, 4k+1 frames). The Wan twin's
    transformer sees 192 tokens at 256x256: its activations are below what sampling the CPU
    process's RSS resolves, so only the decoder's slope is certain to show."""
    profile = calibrate(
        app.__class__(**{**app.__dict__, "model": model}), gradient_picture(64, 64), "cpu", None
    )
    assert profile.weights_bytes > weights and profile.source.startswith("calibrated")
    assert profile.vae_bytes_per_pixel > 0 and profile.unet_bytes_per_position >= 0
    if model == "demo":
        assert profile.unet_bytes_per_position > 0
    save(profile, app.home)
    assert planner.profile_for(model, "cpu", "fp32", app.home) == profile


@pytest.mark.slow
def test_invoke_bench_measures_the_docs_example_and_each_option_on_the_wan_twin(app, tmp_path):
    """The docs example (bf16, its VAE in fp32) against i2vkit on the same job, then with the
    cache hook and with fp8 storage: what each changes, in figures."""
    out = tmp_path / "bench.json"
    result = run_invoke(
        "bench", "--model", "wan-demo", "--height", "64", "--width", "64", "--frames", "5",
        "--dtype", "bf16", "--device", "cpu", "--repeat", "1", "--json", str(out),
        env={"I2VKIT_HOME": str(app.home), "COLUMNS": "160"}, timeout=600,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "i2vkit vs the docs example" in result.stdout and "floor" in result.stdout
    figures = json.loads(out.read_text())
    runs = {r["name"]: r for r in figures["runs"]}
    assert list(runs) == ["docs example", "i2vkit", "+cache", "+fp8", "all"]
    docs, plain, cache, fp8 = (runs[n] for n in ("docs example", "i2vkit", "+cache", "+fp8"))
    assert docs["dtype"] == "bf16" and plain["dtype"] == "bf16"
    assert docs["calls"] == plain["calls"] == 2 * plain["steps"]  # the same job: CFG, 2 a step
    assert (cache["calls"] - cache["computed"]) >= 0.3 * cache["calls"]  # skipped
    assert plain["computed"] == plain["calls"] and 0 < cache["distance"] <= 0.01
    # fp8 storage halves the blocks' bf16 weights (their norms stay in fp32); the twin's
    # embeddings, outside the blocks, are most of its bytes, a full-size model's are 1%
    assert fp8["block_bytes"] <= 0.55 * plain["block_bytes"]
    assert fp8["weight_bytes"] < plain["weight_bytes"]
    assert fp8["options"]["memory"] == "fp8" and runs["all"]["options"]["cache"] != "off"
    assert figures["flops"]["total"] > 0 and figures["floor_seconds"] > 0


@pytest.mark.slow
def test_invoke_bench_runs_the_i2vgen_xl_docs_example_too(app):
    result = run_invoke(
        "bench", "--model", "demo", "--height", "64", "--width", "64", "--frames", "4",
        "--steps", "3", "--device", "cpu", "--repeat", "1", "--options", "fp8",
        env={"I2VKIT_HOME": str(app.home), "COLUMNS": "160"}, timeout=600,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "docs example" in result.stdout and "+fp8" in result.stdout
    assert "enable_model_cpu_offload() left out: it needs a GPU" in result.stdout


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


@pytest.mark.slow
def test_invoke_bench_all_families_draws_one_row_per_family(app, tmp_path):
    """One tiny twin per family, each against its docs example, then one table: s/step, end
    to end, peak memory, the planner's estimate, the distance from the FLOP floor."""
    out = tmp_path / "families.json"
    result = run_invoke(
        "bench", "--all-families", "--steps", "3", "--device", "cpu", "--repeat", "1",
        "--json", str(out), env={"I2VKIT_HOME": str(app.home), "COLUMNS": "200"}, timeout=900,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    table = result.stdout[result.stdout.index("every family, tiny twins") :]
    for family in ("i2vgen-xl", "svd", "wan", "ltx", "ltx2", "hunyuan-video-1.5"):
        assert f"│ {family} " in table, family
    figures = json.loads(out.read_text())["families"]
    assert [f["model"] for f in figures] == ["demo", "demo-svd", "wan-demo", "ltx-demo",
                                            "hunyuan-demo", "ltx2-demo"]  # fmt: skip
    for f in figures:
        docs, mine = f["runs"]
        assert docs["name"] == "docs example" and mine["name"] == "i2vkit"
        assert mine["steps"] == docs["steps"] == 3 and mine["seconds"] > 0
        assert (f["job_floor_seconds"] is None) == (f["model"] == "demo-svd")  # SVD: no count


def test_bench_all_families_refuses_what_it_cannot_apply(app):
    result = run_invoke("bench", "--all-families", "--height", "64", "--random-weights",
                        env={"I2VKIT_HOME": str(app.home)})  # fmt: skip
    assert result.returncode == 2
    assert "--random-weights, --height cannot apply; drop it" in result.stderr
