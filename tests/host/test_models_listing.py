"""`invoke models`: every family with its licence, size and presets, and which presets fit this
host under which memory strategy; on hosts made by the fake libnvidia-ml under the real pynvml."""

from __future__ import annotations

import json
from pathlib import Path

from i2vkit import catalogue
from tests.helpers.invoke import on_fake_host

RTX_4090 = "NVIDIA GeForce RTX 4090|24564|24000|8.9"
H100 = "NVIDIA H100 80GB HBM3|81559|80000|9.0"
FAMILIES = {"i2vgen-xl", "svd", "wan", "ltx", "ltx2", "hunyuan-video-1.5"}


def models(lib_dir: Path, *args: str, **fake: str):
    return on_fake_host("models", lib_dir, *args, **fake)


def _listing(lib_dir: Path, *args: str, **fake: str) -> dict:
    done = models(lib_dir, "--json", *args, **fake)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def _fits(data: dict, model: str) -> dict[str, str | None]:
    entry = next(m for m in data["models"] if m["name"] == model)
    return {r["preset"]: r["strategy"] if r["fits"] else None for r in entry["here"]}


def test_every_family_is_listed_with_licence_size_and_presets(fake_nvml_dir):
    data = _listing(fake_nvml_dir, gpus=RTX_4090, driver="570.124.06", cuda="12080")
    assert {m["family"] for m in data["models"]} == FAMILIES
    assert len(data["models"]) == len(catalogue.models())
    hunyuan = next(m for m in data["models"] if m["name"] == "hunyuan-video-1.5-i2v-480p")
    assert "not licensed in the EU, the UK or South Korea" in hunyuan["license"]
    assert hunyuan["params"] == 17_303_744_483 and hunyuan["download_bytes"] > 50e9
    assert [p["preset"] for p in hunyuan["presets"]] == [p.name for p in catalogue.presets()]
    assert hunyuan["presets"][2] == {"preset": "mainstream", "height": 480, "width": 848,
                                     "frames": 121, "steps": 50}  # fmt: skip
    legacy = {m["name"] for m in data["models"] if m["legacy"]}
    assert legacy == {"i2vgen-xl"}


def test_what_fits_a_24gb_card_and_an_80gb_card_and_how(fake_nvml_dir):
    """By the planner's estimates: on a 4090 the 2B LTX runs its presets with the weights
    resident or the transformer streamed, the 8.3B HunyuanVideo 1.5 only with everything
    streamed (lean); an H100 holds both whole."""
    small = _listing(fake_nvml_dir, gpus=RTX_4090, driver="570.124.06", cuda="12080")
    big = _listing(fake_nvml_dir, gpus=H100, driver="570.124.06", cuda="12080")
    assert set(_fits(big, "ltx-video-2b-0.9.5").values()) == {"full"}
    assert set(_fits(big, "hunyuan-video-1.5-i2v-480p").values()) == {"full"}
    assert _fits(small, "hunyuan-video-1.5-i2v-480p")["mainstream"] == "lean"
    assert all(_fits(small, "ltx-video-2b-0.9.5").values())  # every preset fits somehow
    text = models(fake_nvml_dir, "--family", "ltx", gpus=RTX_4090, driver="570.124.06",
                  cuda="12080").stdout  # fmt: skip
    assert "family ltx" in text and "family wan" not in text and "cuda:0:" in text


def test_without_a_gpu_the_twins_run_and_the_rest_need_one(no_nvml_dir):
    data = _listing(no_nvml_dir)
    twin = next(m for m in data["models"] if m["name"] == "ltx-demo")["here"]
    assert [r["fits"] for r in twin] == [True] * len(catalogue.presets())
    assert {r["device"] for r in twin} == {"cpu"}
    needs = next(m for m in data["models"] if m["name"] == "ltx-video-2b-0.9.5")["here"]
    assert {r["why"] for r in needs} == {"needs a GPU"} and not any(r["fits"] for r in needs)


def test_an_unknown_family_is_refused_naming_the_known_ones(no_nvml_dir):
    done = models(no_nvml_dir, "--family", "sora")
    assert done.returncode == 2
    assert "sora" in done.stderr and "hunyuan-video-1.5" in done.stderr
