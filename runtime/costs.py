"""i2vkit/data/model_costs.toml: every full-size model's parameters per component and, at each
preset, its FLOPs per step and per job, counted on the meta device by runtime/fullsize.py.
Computed, not measured; `python -m i2vkit.runtime.costs` writes the file again."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import torch

from i2vkit import catalogue, request
from i2vkit.files import write_text
from i2vkit.runtime.fullsize import build, full_size_models, job_flops_for, parameters

COSTS = catalogue.DATA / "model_costs.toml"


def costs(model_name: str) -> dict[str, Any]:
    """A model's parameters per component and, per preset, its settings and FLOPs."""
    pipe = build(model_name, "meta")
    presets = {}
    for preset in catalogue.presets():
        s = request.make(model_name, preset.name)
        settings = {"height": s.height, "width": s.width, "frames": s.frames, "steps": s.steps,
                    "guidance": s.guidance}  # fmt: skip
        presets[preset.name] = settings | job_flops_for(model_name, s, pipe)
    params = dict(sorted(parameters(pipe).items()))
    return {"family": catalogue.model(model_name).family, "parameters": params,
            "total_parameters": sum(params.values()), "preset": presets}  # fmt: skip


def _int(n: int) -> str:
    return f"{n:_}"


def costs_toml(table: dict[str, dict[str, Any]]) -> str:
    """model_costs.toml's text: models by name, presets in the catalogue's order."""
    import diffusers
    import transformers

    versions = (f"torch {torch.__version__}, diffusers {diffusers.__version__}, "
                f"transformers {transformers.__version__}")  # fmt: skip
    lines = [
        "# Parameters and FLOPs of the full-size models: data computed, not measured (no timing,",
        "# no hardware). torch's FlopCounterMode ran the real modules, built on the meta device",
        "# from the architectures in runtime/data/fullsize/, at the catalogue's presets",
        "# (request.make(model, preset)). Written by",
        "#   python -m i2vkit.runtime.costs",
        f"# with {versions}; do not edit by hand.",
        "# FLOPs of one job: `step` = every denoiser forward of one step (two under CFG, when",
        "# guidance > 1); `denoise` = step x steps; `encode` = the text encoder per prompt, the",
        "# image encoder and the VAE encode of the conditioning image or video; `decode` = the VAE",
        "# decode; `total` = denoise + encode + decode. One multiply-add counts as 2 FLOPs.",
        "",
        "schema = 1",
    ]
    for name in sorted(table):
        entry = table[name]
        lines += ["", f'[model."{name}"]', f'family = "{entry["family"]}"',
                  f"total_parameters = {_int(entry['total_parameters'])}", "",
                  f'[model."{name}".parameters]']  # fmt: skip
        lines += [f"{part} = {_int(n)}" for part, n in entry["parameters"].items()]
        for preset, row in entry["preset"].items():
            lines += ["", f'[model."{name}".preset.{preset}]']
            for key, value in row.items():
                if isinstance(value, float):
                    lines.append(f"{key} = {value!r}")
                elif key in ("step", "denoise", "encode", "decode", "total"):
                    lines.append(f"{key} = {_int(value)}  # {value / 1e12:,.1f} TFLOP")
                else:
                    lines.append(f"{key} = {value}")
    return "\n".join(lines) + "\n"


def write_costs(target: Path = COSTS) -> Path:
    return write_text(target, costs_toml({name: costs(name) for name in full_size_models()}))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m i2vkit.runtime.costs",
        description="Write the parameters and FLOPs of every full-size model, counted on the "
        "meta device (about 2.5 minutes on 2 cores).",
    )
    parser.add_argument("--out", type=Path, default=COSTS, help=f"default: {COSTS}")
    print(write_costs(parser.parse_args(argv).out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
