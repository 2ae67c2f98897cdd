"""benchmarks/gpu_check.py, the one command a lent GPU runs, kept working on a CPU: its --smoke
mode runs the same sections through the same code on the tiny twins."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from tests.helpers.invoke import ROOT


def test_the_gpu_check_runs_every_section_and_writes_its_figures(app, tmp_path):
    out = tmp_path / "smoke.json"
    done = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "gpu_check.py"), "--smoke", "--out", str(out)],
        env={**os.environ, "I2VKIT_HOME": str(app.home)}, capture_output=True, text=True,
        timeout=600,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]
    report = json.loads(out.read_text())
    assert set(report["sections"]) == {"A", "B", "C", "F", "G", "H"} and not report["skipped"]
    a, b, c = (report["sections"][k] for k in "ABC")
    assert [r["name"] for r in a["runs"]] == ["docs example", "i2vkit", "all"]
    assert [r["name"] for r in c["runs"]] == ["docs example", "i2vkit", "+cache", "+fp8", "all"]
    # B: the few-step entry (4 calls, no CFG) against its base's docs example at full steps
    docs, fast = b["runs"]
    assert fast["calls"] == 4 and docs["calls"] == 2 * b["docs_settings"]["steps"] > 4
    assert fast["vs_docs"] > 1
    for row in (r for s in (a, b, c) for r in s["runs"][1:]):
        assert row["planner_estimate_bytes"] > 0 and row["x_floor"] > 0
    # F, G: the LTX and HunyuanVideo 1.5 twins; HunyuanVideo 1.5's cache option is left out
    f, g = report["sections"]["F"], report["sections"]["G"]
    assert [r["name"] for r in f["runs"]] == ["docs example", "i2vkit", "all"]
    assert f["runs"][2]["options"]["cache"].startswith("first-block cache")
    assert [r["name"] for r in g["runs"]] == ["docs example", "i2vkit", "all"]
    assert g["runs"][2]["options"]["cache"] == "off"
    assert any("+cache not run" in note for note in g["notes"])
    # H: one job over two ranks (CPU, gloo): both ways, the one-rank frames within one level
    h = report["sections"]["H"]
    assert set(h["split"]) == {"ulysses", "cfg"}, h
    for split in h["split"].values():
        assert split["ranks"] == 2 and split["max_frame_diff"] <= 1 and split["seconds"] > 0
