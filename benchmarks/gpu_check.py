"""What only a GPU can show, in one command, in under 8 minutes on one H100 or H200, as JSON.

    python benchmarks/gpu_check.py --out gpu_check.json          # on the GPU machine
    python benchmarks/gpu_check.py --smoke --out smoke.json       # the same code on a CPU, tiny

Full-size architectures (Wan, then LTX-Video and HunyuanVideo 1.5) with random weights (speed
and memory do not depend on the values; the GPU machines reach no hub), each measured by
`i2vkit bench`'s own code (runtime/bench.py) against the model's diffusers documentation example
in the same run:

  A. Wan 2.1 I2V 14B at 480p, equal steps: the docs example, i2vkit as shipped, i2vkit with every
     acceleration (target: 2x the docs example; LightX2V reports 1.89x on this model).
  B. The few-step entry (4 steps, no CFG) against the docs example at the base's 40 steps with
     CFG, end to end (target: 10x).
  C. Wan 2.2 TI2V-5B at 480p: each acceleration alone, then all (which pay, and how much).
  D. Wan 2.2 TI2V-5B at 720p: the docs example, as shipped, all.
  E. Peak memory of every i2vkit run against the memory planner's estimate (target: within 10%),
     and every run's distance from the FLOP floor.
  F. LTX-Video 2B 0.9.5 at 512x768: the docs example, as shipped, all (the low-memory tier).
  G. HunyuanVideo 1.5 480p step-distilled: the docs example, as shipped, all (its blocks take no
     cache hook: that option is left out with the loader's reason).
  H. One job over the machine's GPUs (`serve --parallel`): Wan 2.2 TI2V-5B at 480p on one GPU,
     then split by Ulysses over all of them and by CFG over two (benchmarks/gpu_parallel.py).
     Needs two GPUs or more; on one it records why it did not run.

Sections run in that order while the time budget lasts; the JSON is rewritten after each one, so
what finished survives a timeout, and a section that fails records its error and the next one
runs. Frame counts are below the presets' to fit the budget; each section says what it ran.

Dependencies on the GPU machine: its python3 holds torch and transformers; diffusers, pydantic,
ftfy and av travel as wheels (benchmarks/gpu_wheels.sh makes the folder, docs/benchmarks.md has
the device command).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import platform
import sys
import time
import traceback
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

BUDGET_SECONDS = 7 * 60  # sections start only while this much has not passed


@dataclasses.dataclass(frozen=True)
class Section:
    key: str
    what: str
    model: str
    size: tuple[int, int]  # height, width
    frames: int
    steps: int | None  # None: the model's preset steps (the -fast entry's 4)
    options: tuple[str, ...] | None  # None: bench's default for the device
    only_all: bool = False  # measure the docs example, as shipped and all, not each alone


FULL = (
    Section("A", "Wan 2.1 I2V 14B at 480p, equal steps: docs vs i2vkit vs all options",
            "wan2.1-i2v-14b-480p", (480, 832), 17, 8, ("attention", "compile", "cache", "fp8"),
            only_all=True),
    Section("B", "few-step entry (4 steps, no CFG) vs the docs example at 40 steps with CFG",
            "wan2.1-i2v-14b-480p-fast", (480, 832), 17, None, (), only_all=True),
    Section("C", "Wan 2.2 TI2V-5B at 480p: each option alone, then all",
            "wan2.2-ti2v-5b", (480, 832), 49, 10, ("attention", "compile", "cache", "fp8")),
    Section("D", "Wan 2.2 TI2V-5B at 720p: docs vs i2vkit vs all options",
            "wan2.2-ti2v-5b", (704, 1280), 49, 10, ("attention", "compile", "cache", "fp8"),
            only_all=True),
    Section("F", "LTX-Video 2B 0.9.5 at 512x768: docs vs i2vkit vs all options",
            "ltx-video-2b-0.9.5", (512, 768), 49, 20, ("attention", "compile", "cache", "fp8"),
            only_all=True),
    Section("G", "HunyuanVideo 1.5 480p step-distilled: docs vs i2vkit vs all options",
            "hunyuan-video-1.5-i2v-480p-fast", (480, 848), 33, None,
            ("attention", "compile", "cache", "fp8"), only_all=True),
)  # fmt: skip
# --smoke: the same sections on the tiny twins, on a CPU, in about a minute (tests run it)
SMOKE = (
    Section("A", "twin, equal steps: docs vs i2vkit vs all", "wan-demo-i2v", (64, 64), 5, 4,
            ("cache", "fp8"), only_all=True),
    Section("B", "twin few-step entry vs its base's docs example", "wan-demo-i2v-fast",
            (64, 64), 5, None, (), only_all=True),
    Section("C", "twin: each option alone, then all", "wan-demo", (64, 64), 5, 6,
            ("cache", "fp8")),
    Section("F", "LTX twin: docs vs i2vkit vs all", "ltx-demo", (64, 96), 9, 4,
            ("cache", "fp8"), only_all=True),
    Section("G", "HunyuanVideo 1.5 twin: docs vs i2vkit vs all (cache refused)", "hunyuan-demo",
            (64, 80), 5, 4, ("cache", "fp8"), only_all=True),
)  # fmt: skip


PARALLEL = {  # section H: model, (height, width), frames, steps
    "full": ("wan2.2-ti2v-5b", (480, 832), 49, 10),
    "smoke": ("wan-demo", (128, 128), 9, 4),
}


def run_parallel(smoke: bool) -> dict[str, Any]:
    import torch

    from benchmarks import gpu_parallel

    model, size, frames, steps = PARALLEL["smoke" if smoke else "full"]
    world = 2 if smoke else torch.cuda.device_count()
    if world < 2:
        return {"what": "one job over several GPUs", "skipped": f"{world} GPU on this machine"}
    return {
        "what": "one job over several GPUs (--parallel)",
        **gpu_parallel.run(model, size, frames, steps, world, not smoke, not smoke),
    }


def environment() -> dict[str, Any]:
    import diffusers
    import torch

    info: dict[str, Any] = {
        "python": platform.python_version(), "torch": torch.__version__,
        "diffusers": diffusers.__version__, "cuda": torch.version.cuda,
        "machine": platform.machine(),
    }  # fmt: skip
    if torch.cuda.is_available():
        props = torch.cuda.get_device_properties(0)
        info |= {"gpu": props.name, "gpu_memory_gib": round(props.total_memory / 2**30, 1),
                 "capability": f"{props.major}.{props.minor}"}  # fmt: skip
    return info


def run_section(section: Section, app: Any, device: str, random_weights: bool) -> dict[str, Any]:
    from i2vkit import catalogue, planner, request
    from i2vkit.runtime import bench
    from i2vkit.runtime.pictures import gradient_picture

    height, width = section.size
    overrides: dict[str, Any] = {"height": height, "width": width, "frames": section.frames}
    if section.steps is not None:
        overrides["steps"] = section.steps
    s = request.make(section.model, "preview", prompt="a boat sails at sunset", **overrides)
    options = section.options
    result = bench.run(app, section.model, s, gradient_picture(height, width), random_weights,
                       device, None, 1, options, each=not section.only_all)  # fmt: skip
    runs = result["runs"]
    docs = runs[0]
    entry = catalogue.model(section.model)
    out: dict[str, Any] = {
        "what": section.what, "model": section.model, "settings": _plain(s),
        "docs_settings": _plain(result["docs_settings"]), "docs_source": result["docs_source"],
        "flops_total": result["flops"]["total"] if result["flops"] else None,
        "job_flops_total": result["job_flops"]["total"] if result["job_flops"] else None,
        "matmul_rate": result["matmul_rate"], "floor_seconds": result["floor_seconds"],
        "notes": result["notes"], "runs": [],
    }  # fmt: skip
    profile = planner.profile_for(section.model, device, result["dtype"], app.home)
    for r in runs:
        row = dataclasses.asdict(r)
        row["vs_docs"] = docs.seconds / r.seconds
        floor = result["floor_seconds"] if r.name == "docs example" else result["job_floor_seconds"]
        if floor:  # each run against its own job's floor (a -fast job has fewer FLOPs)
            row["x_floor"] = r.seconds / floor
        if r.name != "docs example":  # what the planner said this run would peak at
            strategy = planner.strategy(r.options.get("memory", "full"))
            estimate = planner.estimate(s, profile, strategy).peak
            row["planner_estimate_bytes"] = estimate
            row["peak_vs_estimate"] = r.peak_bytes / estimate if estimate else None
        out["runs"].append(row)
    out["best_vs_docs"] = max(row["vs_docs"] for row in out["runs"][1:])
    out["profile_source"] = profile.source
    out["family"] = entry.family
    return out


def _plain(s: Any) -> dict[str, Any]:
    return s.model_dump() if hasattr(s, "model_dump") else dict(vars(s))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("gpu_check.json"))
    parser.add_argument("--smoke", action="store_true", help="tiny twins on a CPU")
    parser.add_argument("--budget", type=float, default=BUDGET_SECONDS)
    parser.add_argument("--only", default="", help="section letters to run, e.g. AC")
    args = parser.parse_args(argv)

    import torch

    from i2vkit.settings import resolve

    started = time.perf_counter()
    device = "cpu" if args.smoke else "cuda:0"
    if not args.smoke and not torch.cuda.is_available():
        print("no CUDA GPU: run with --smoke on a CPU", file=sys.stderr)
        return 2
    app = resolve()
    report: dict[str, Any] = {"environment": environment(), "device": device,
                              "smoke": args.smoke, "sections": {}, "skipped": {}}  # fmt: skip
    for section in SMOKE if args.smoke else FULL:
        if args.only and section.key not in args.only:
            continue
        elapsed = time.perf_counter() - started
        if elapsed > args.budget:
            report["skipped"][section.key] = f"time budget spent ({elapsed:.0f} s)"
            continue
        print(f"[{elapsed:5.0f} s] {section.key}: {section.what}", flush=True)
        try:
            report["sections"][section.key] = run_section(section, app, device, not args.smoke)
        except Exception as error:  # the next section still runs; this one says why it failed
            report["sections"][section.key] = {
                "what": section.what, "error": f"{type(error).__name__}: {error}",
                "traceback": traceback.format_exc()[-4000:],
            }  # fmt: skip
        report["seconds"] = time.perf_counter() - started
        args.out.write_text(json.dumps(report, indent=2, default=str) + "\n")
        _print(section.key, report["sections"][section.key])
    if not args.only or "H" in args.only:
        elapsed = time.perf_counter() - started
        if elapsed > args.budget:
            report["skipped"]["H"] = f"time budget spent ({elapsed:.0f} s)"
        else:
            print(f"[{elapsed:5.0f} s] H: one job over several GPUs", flush=True)
            try:
                report["sections"]["H"] = run_parallel(args.smoke)
            except Exception as error:
                report["sections"]["H"] = {"what": "one job over several GPUs",
                                           "error": f"{type(error).__name__}: {error}",
                                           "traceback": traceback.format_exc()[-4000:]}  # fmt: skip
            print(f"  H: {json.dumps(report['sections']['H'], default=str)[:600]}", flush=True)
    report["seconds"] = time.perf_counter() - started
    args.out.write_text(json.dumps(report, indent=2, default=str) + "\n")
    print(f"wrote {args.out} in {report['seconds']:.0f} s")
    failed = [k for k, v in report["sections"].items() if "error" in v]
    return 1 if failed else 0


def _print(key: str, section: dict[str, Any]) -> None:
    if "error" in section:
        print(f"  {key} failed: {section['error']}", flush=True)
        return
    for r in section["runs"]:
        peak = r.get("peak_vs_estimate")
        print(f"  {r['name']:<13} {r['seconds']:8.2f} s  {r['vs_docs']:5.2f}x docs  "
              f"skipped {(r['calls'] - r['computed'])}/{r['calls']}  peak "
              f"{r['peak_bytes'] / 2**30:6.2f} GiB" + (f" ({peak:.2f} of the planner's)"
                                                       if peak else ""), flush=True)  # fmt: skip


if __name__ == "__main__":
    sys.exit(main())
