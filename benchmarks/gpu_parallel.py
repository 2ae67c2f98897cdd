"""Section H of benchmarks/gpu_check.py: one job on one GPU against the same job split over N
GPUs by `--parallel` (runtime/parallel.py), in one run. Each configuration is fresh processes
(one per rank, spawned), building the same random full-size weights (seeded) on each rank, as
the server's workers do: `parallel.init`, load, `parallel.apply`, a 2-step warm-up, then the
timed job. Reports seconds, the speed-up over one GPU, rank 0's peak memory, and how far the
frames are from the one-GPU frames (max abs difference, 0-255).

With --smoke the same code runs the Wan twin on CPU ranks over gloo (the tests run it)."""

from __future__ import annotations

import json
import multiprocessing
import socket
import tempfile
import time
from pathlib import Path
from typing import Any


def _rank(rank: int, world: int, port: int, job: dict[str, Any], out: str) -> None:
    import numpy as np
    import torch

    from i2vkit import request
    from i2vkit.runtime import parallel
    from i2vkit.runtime.bench import _seeded
    from i2vkit.runtime.loader import Loader, torch_dtype
    from i2vkit.runtime.pictures import gradient_picture
    from i2vkit.runtime.pipelines import FAMILIES
    from i2vkit.runtime.pipelines.base import Generation
    from i2vkit.runtime.server.executor import WorkerSpec, prepare
    from i2vkit.settings import resolve

    device = f"cuda:{rank}" if job["cuda"] else "cpu"
    app = resolve({"home": job["home"]}, {}, {})
    model = job["model"]
    if not job["random_weights"]:
        prepare(WorkerSpec(model, app))  # the twin's files, before the group forms
    group = parallel.init(rank, world, port, device) if world > 1 else None
    build = (lambda d: _seeded(model, device, torch_dtype(d))) if job["random_weights"] else None
    loaded = Loader(model, app, device, build=build).get()
    if group is not None:
        parallel.apply(loaded.pipe, job["mode"], group, device)
    s = request.make(model, "preview", **job["settings"])
    picture = gradient_picture(s.height, s.width)
    agree = (lambda: group.agree(False)) if group else (lambda: False)
    run = FAMILIES[loaded.model.family].run
    run(loaded.pipe, Generation(s.replace(steps=2), picture, cancelled=agree))  # warm-up
    if job["cuda"]:
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    started = time.perf_counter()
    frames = run(loaded.pipe, Generation(s, picture, cancelled=agree))
    if job["cuda"]:
        torch.cuda.synchronize()
    seconds = time.perf_counter() - started
    if rank == 0:
        peak = torch.cuda.max_memory_allocated() if job["cuda"] else 0
        np.save(f"{out}.npy", frames)
        Path(f"{out}.json").write_text(json.dumps({"seconds": seconds, "peak_bytes": peak}))


def _spawn(world: int, job: dict[str, Any], out: str) -> dict[str, Any]:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    ctx = multiprocessing.get_context("spawn")
    procs = [ctx.Process(target=_rank, args=(r, world, port, job, out)) for r in range(world)]
    for p in procs:
        p.start()
    try:
        for p in procs:
            p.join(timeout=job["timeout"])
        codes = [p.exitcode for p in procs]
        if codes != [0] * world:
            raise RuntimeError(f"ranks exited with {codes}")
    finally:
        for p in procs:
            if p.is_alive():
                p.kill()
                p.join()
    return dict(json.loads(Path(f"{out}.json").read_text()))


def run(model: str, size: tuple[int, int], frames: int, steps: int, world: int, cuda: bool,
        random_weights: bool, modes: tuple[str, ...] = ("ulysses", "cfg"),
        timeout: float = 600) -> dict[str, Any]:  # fmt: skip
    import numpy as np

    height, width = size
    settings = {"height": height, "width": width, "frames": frames, "steps": steps,
                "guidance": 5.0, "seed": 0, "prompt": "a boat sails at sunset"}  # fmt: skip
    with tempfile.TemporaryDirectory() as tmp:
        job = {"model": model, "settings": settings, "cuda": cuda, "home": tmp,
               "random_weights": random_weights, "mode": "", "timeout": timeout}  # fmt: skip
        one = _spawn(1, job, f"{tmp}/one")
        reference = np.load(f"{tmp}/one.npy").astype(int)
        out: dict[str, Any] = {"model": model, "settings": settings, "gpus": world,
                               "one_gpu": one, "split": {}}  # fmt: skip
        for mode in modes:
            degree = 2 if mode == "cfg" else world
            result = _spawn(degree, {**job, "mode": mode}, f"{tmp}/{mode}")
            frames_diff = np.abs(np.load(f"{tmp}/{mode}.npy").astype(int) - reference).max()
            out["split"][mode] = {**result, "ranks": degree,
                                  "speedup": one["seconds"] / result["seconds"],
                                  "max_frame_diff": int(frames_diff)}  # fmt: skip
    return out
