"""`invoke doctor` on the hosts of the foundation issue, through the real pynvml.

Each case runs doctor in a fresh process whose LD_LIBRARY_PATH finds the fake libnvidia-ml
(tests/fixtures/fake_nvml.c), described by FAKE_NVML_* variables.
"""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import pytest

from i2vkit.doctor import SCHEMA_PATH
from tests.helpers.invoke import on_fake_host

MIB = 1024**2

RTX_3060 = "NVIDIA GeForce RTX 3060|12288|11800|8.6"
RTX_4090 = "NVIDIA GeForce RTX 4090|24564|24000|8.9"
H100 = "NVIDIA H100 80GB HBM3|81559|80000|9.0"
RTX_5090 = "NVIDIA GeForce RTX 5090|32607|32000|12.0"


def doctor(fake_nvml_dir: Path, *args: str, **fake: str):
    return on_fake_host("doctor", fake_nvml_dir, *args, **fake)


def doctor_json(fake_nvml_dir: Path, *args: str, **fake: str) -> dict:
    result = doctor(fake_nvml_dir, "--json", *args, **fake)
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    jsonschema.validate(data, json.loads(SCHEMA_PATH.read_text()))
    return data


def test_no_library_is_cpu_only_in_one_line(no_nvml_dir):
    result = doctor(no_nvml_dir)
    assert result.returncode == 0, result.stderr
    lines = [line for line in result.stdout.splitlines() if "no NVIDIA driver" in line]
    assert len(lines) == 1, result.stdout
    assert "Traceback" not in result.stdout + result.stderr
    data = doctor_json(no_nvml_dir)
    assert data["nvidia"]["gpus"] == []
    assert data["decisions"]["torch_variant"]["value"] == "cpu"
    assert data["decisions"]["tier"]["value"] == "cpu"
    assert data["decisions"]["tier"]["presets"] == ["preview"]
    assert data["decisions"]["dtype"]["value"] == "fp32"


def test_driver_not_loaded(fake_nvml_dir):
    data = doctor_json(fake_nvml_dir, init_error="9")
    assert "not loaded" in data["nvidia"]["reason"]
    assert data["decisions"]["torch_variant"]["value"] == "cpu"
    facts = data["decisions"]["torch_variant"]["facts"]
    assert any("not loaded" in f["value"] and f["source"] == "nvml" for f in facts)


def test_zero_gpus(fake_nvml_dir):
    data = doctor_json(fake_nvml_dir, gpus="")
    assert data["nvidia"]["driver_version"] == "550.54.14"
    assert "no GPUs" in data["nvidia"]["reason"]
    assert data["decisions"]["tier"]["value"] == "cpu"


def test_lost_gpu_is_a_reason_not_a_traceback(fake_nvml_dir):
    result = doctor(fake_nvml_dir, gpus=RTX_4090, fail="memory:15")
    assert result.returncode == 0, result.stderr
    assert "GPU is lost" in result.stdout
    assert "Traceback" not in result.stdout + result.stderr


def test_12gb_ampere_is_entry(fake_nvml_dir):
    data = doctor_json(fake_nvml_dir, gpus=RTX_3060, driver="535.183.01", cuda="12020")
    gpu = data["nvidia"]["gpus"][0]
    assert gpu["memory_total_bytes"] == 12288 * MIB
    assert gpu["compute_capability"] == "8.6"
    assert gpu["bf16"] is True
    assert data["decisions"]["torch_variant"]["value"].startswith("cu12")
    assert data["decisions"]["tier"]["value"] == "entry"
    assert data["decisions"]["tier"]["presets"] == ["preview", "entry"]


def test_24gb_ada_driver_550_is_cu12x_mainstream_with_reasons(fake_nvml_dir):
    result = doctor(fake_nvml_dir, gpus=RTX_4090, driver="550.54.14", cuda="12040")
    assert result.returncode == 0, result.stderr
    assert "mainstream" in result.stdout
    data = doctor_json(fake_nvml_dir, gpus=RTX_4090, driver="550.54.14", cuda="12040")
    variant = data["decisions"]["torch_variant"]
    assert variant["value"].startswith("cu12")
    assert "550.54.14" in variant["reason"] and "12.4" in variant["reason"]
    assert variant["index_url"].endswith(variant["value"])
    assert {f["source"].split(":")[0] for f in variant["facts"]} >= {"nvml"}
    tier = data["decisions"]["tier"]
    assert tier["value"] == "mainstream"
    assert "24.0 GiB" in tier["reason"]
    assert tier["presets"] == ["preview", "entry", "mainstream"]
    assert data["decisions"]["dtype"]["value"] == "bf16"


def test_two_different_gpus_are_both_listed(fake_nvml_dir):
    data = doctor_json(fake_nvml_dir, gpus=f"{RTX_3060};{RTX_4090}")
    names = [g["name"] for g in data["nvidia"]["gpus"]]
    assert names == ["NVIDIA GeForce RTX 3060", "NVIDIA GeForce RTX 4090"]
    assert len({g["uuid"] for g in data["nvidia"]["gpus"]}) == 2
    tier = data["decisions"]["tier"]
    assert tier["value"] == "mainstream"  # the best GPU decides; each GPU runs its own jobs
    fits = {(f["gpu"], f["preset"]): f["fits"] for f in tier["fits"]}
    assert fits[(0, "entry")] and not fits[(0, "mainstream")]
    assert fits[(1, "mainstream")] and not fits[(1, "pro")]
    # one wheel must serve both cards
    assert data["decisions"]["torch_variant"]["value"].startswith("cu12")


def test_80gb_hopper_is_pro(fake_nvml_dir):
    data = doctor_json(fake_nvml_dir, gpus=H100, driver="570.124.06", cuda="12080")
    assert data["decisions"]["tier"]["value"] == "pro"
    assert data["decisions"]["tier"]["presets"][-1] == "pro"
    # torch 2.13 ships cu126, cu129, cu130 (+cu132): cu126 is the newest CUDA 12.8 runs natively
    assert data["decisions"]["torch_variant"]["value"] == "cu126"
    assert "natively" in data["decisions"]["torch_variant"]["reason"]


def test_blackwell_with_old_driver_says_upgrade_plainly(fake_nvml_dir):
    result = doctor(fake_nvml_dir, gpus=RTX_5090, driver="550.54.14", cuda="12040")
    assert result.returncode == 0, result.stderr
    data = doctor_json(fake_nvml_dir, gpus=RTX_5090, driver="550.54.14", cuda="12040")
    variant = data["decisions"]["torch_variant"]
    assert variant["value"] == "cpu"
    assert "upgrade the driver" in variant["reason"]
    assert "12.0" in variant["reason"]
    # memory still puts the card in a tier: once the driver is upgraded it runs 'mainstream'
    assert data["decisions"]["tier"]["value"] == "mainstream"


def test_blackwell_with_new_driver_gets_a_wheel_with_sm120(fake_nvml_dir):
    data = doctor_json(fake_nvml_dir, gpus=RTX_5090, driver="575.57.08", cuda="12090")
    value = data["decisions"]["torch_variant"]["value"]
    assert value in {"cu128", "cu129"}


def test_driver_too_old_for_any_cuda_wheel(fake_nvml_dir):
    data = doctor_json(fake_nvml_dir, gpus=RTX_3060, driver="470.256.02", cuda="11040")
    variant = data["decisions"]["torch_variant"]
    assert variant["value"] == "cpu"
    assert "upgrade the driver" in variant["reason"]
    assert "470.256.02" in variant["reason"]


A6000 = "NVIDIA RTX A6000|49140|48000|8.6"


@pytest.mark.parametrize(
    ("gpus", "expected"),
    [
        # by the planner's (uncalibrated) estimates: a 24 GB card streams the experts in (group
        # offload), a 48 GB one stores them in fp8 (and offloads at 720p), an 80 GB one holds
        # both in bf16
        (RTX_4090, {"entry": "offload", "mainstream": "offload", "pro": "offload"}),
        (A6000, {"entry": "fp8", "mainstream": "fp8", "pro": "offload"}),
        (H100, {"entry": "full", "mainstream": "full", "pro": "full"}),
    ],
)
def test_doctor_says_the_memory_strategy_per_preset_for_wan_a14b(fake_nvml_dir, gpus, expected):
    # exit 1 where the HF cache's disk has less than the 126 GB the model needs: still a report
    done = doctor(fake_nvml_dir, "--json", "--model", "wan2.2-i2v-a14b", gpus=gpus,
                  driver="570.124.06", cuda="12080")  # fmt: skip
    data = json.loads(done.stdout)
    jsonschema.validate(data, json.loads(SCHEMA_PATH.read_text()))
    strategies = {f["preset"]: f["strategy"] for f in data["decisions"]["tier"]["fits"]}
    assert {k: strategies[k] for k in expected} == expected
    text = doctor(fake_nvml_dir, "--model", "wan2.2-i2v-a14b", gpus=gpus, driver="570.124.06",
                  cuda="12080").stdout  # fmt: skip
    assert f"mainstream ({expected['mainstream']})" in text
