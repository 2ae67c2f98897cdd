"""The Wan tiny twins through `invoke generate` as a user runs it (a fresh interpreter, the
checkout's tasks): the mp4 at the asked size and frame count and the model's frame rate, the
summary naming the memory strategy and dtype it ran with, and refusals with exit 2 that name a
value that works. And the progress every stage reports, which the CLI's bars and the page show."""

from __future__ import annotations

import pytest

from i2vkit import request
from i2vkit.runtime.loader import Loader
from i2vkit.runtime.pictures import gradient_picture
from i2vkit.runtime.runner import Runner
from tests.helpers.invoke import run_invoke
from tests.helpers.video import frame_rate, read_mp4


@pytest.mark.parametrize(
    ("model", "size", "fps", "flags", "memory", "dtype"),
    [
        ("wan-demo", (64, 96), 24, (), "full", "fp32"),  # 96: a multiple of its 32, not of 64
        # the two experts stored in fp8, computed in bf16: the planner's strategy by name
        ("wan-demo-a14b", (64, 80), 16, ("--memory", "fp8", "--dtype", "bf16"), "fp8", "bf16"),
        ("wan-demo-i2v", (80, 64), 16, (), "full", "fp32"),  # 80: a multiple of its 16
    ],
)
def test_invoke_generate_makes_each_wan_twin_s_video(app, tmp_path, model, size, fps, flags,
                                                     memory, dtype):  # fmt: skip
    gradient_picture(96, 128).save(tmp_path / "in.png")
    out = tmp_path / "out.mp4"
    height, width = size
    done = run_invoke(
        "generate", "--model", model, "--image", str(tmp_path / "in.png"),
        "--prompt", "a kite climbs", "--height", str(height), "--width", str(width),
        "--frames", "5", "--steps", "3", "--out", str(out), "--device", "cpu", *flags,
        env={"I2VKIT_HOME": str(app.home), "COLUMNS": "120"}, timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert read_mp4(out).shape == (5, height, width, 3)
    assert frame_rate(out) == fps
    assert f"loaded {model} on cpu in {dtype}" in done.stdout
    assert f"fps {fps}" in done.stdout and "3/3" in done.stdout  # the denoise bar's end
    options = done.stdout.split("options: ", 1)[1]
    assert f"memory {memory}" in options and f"dtype {dtype}" in options
    # the planner's choice, and why, in words
    why = " ".join(done.stdout.split("memory: ", 1)[1].split())
    assert why.startswith(f"{model} on ") and "GiB free (cpu)" in why
    assert ("(asked for)" if flags else "(the fastest that fits)") in why


def test_invoke_generate_refuses_what_wan_cannot_take_naming_what_it_can(app, tmp_path):
    gradient_picture(64, 64).save(tmp_path / "in.png")
    out = tmp_path / "out.mp4"
    done = run_invoke(
        "generate", "--model", "wan-demo", "--image", str(tmp_path / "in.png"),
        "--height", "100", "--frames", "8", "--scheduler", "ddim", "--out", str(out),
        "--device", "cpu", env={"I2VKIT_HOME": str(app.home)},
    )  # fmt: skip
    assert done.returncode == 2, done.stderr
    for sentence in (
        "height=100 is not a multiple of 32; try height=96",
        "frames=8 does not fit wan-demo (frames = 4k+1",
        "try frames=9",
        "scheduler 'ddim' is unknown for wan-demo; known: unipc, euler",
    ):
        assert sentence in done.stderr
    assert "Traceback" not in done.stderr and not out.exists()


@pytest.mark.parametrize("model", ["demo", "wan-demo"])  # demo: the family that does it
def test_every_stage_a_wan_job_starts_reaches_its_total(app, tmp_path, model):
    """The CLI draws a bar per stage and the page a share of its bar: a stage left at 0/1
    shows as a step that never finished (`invoke generate` ends with `encode 0/1` and an
    empty bar for Wan; the demo model's encode goes 0/1, then 1/1)."""
    runner = Runner(Loader(model, app, device="cpu"), app)
    seen: list[tuple[str, int, int]] = []
    s = request.make(model, "preview", height=64, width=64, frames=5, steps=3)
    runner.generate(s, gradient_picture(64, 64), tmp_path / "v.mp4", lambda *p: seen.append(p))
    last = {stage: (done, total) for stage, done, total in seen}
    assert set(last) == {"encode", "denoise", "decode", "write"}
    assert {stage: done == total for stage, (done, total) in last.items()} == dict.fromkeys(
        last, True
    ), seen
