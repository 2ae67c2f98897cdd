"""One job across two processes (runtime/parallel.py) on the CPU over gloo: the Wan twins'
frames from a group of two equal one process's within one level of 255, and the work really is
split (Ulysses: each rank's transformer blocks see half the video's tokens; CFG-parallel: each
rank runs one forward a step instead of two).

The two ranks are real processes (multiprocessing spawn) with a real torch.distributed group,
made by the same `parallel.init` and `executor.load` the server's workers use."""

from __future__ import annotations

import multiprocessing
import socket
from pathlib import Path

import numpy as np
import pytest

from i2vkit import request
from i2vkit.errors import ConfigError
from i2vkit.runtime import parallel
from i2vkit.runtime.pipelines import FAMILIES
from i2vkit.runtime.pipelines.base import Generation
from i2vkit.runtime.server import executor
from i2vkit.runtime.server.executor import WorkerSpec
from i2vkit.settings import Settings

SETTINGS = {"height": 128, "width": 128, "frames": 9, "steps": 4, "guidance": 5.0, "seed": 42,
            "prompt": "a cat walking on the grass", "negative_prompt": "blurry"}  # fmt: skip


def _job(model: str) -> request.Request:
    return request.make(model, "preview", **SETTINGS)


def _picture():
    from i2vkit.runtime.pictures import gradient_picture

    return gradient_picture(128, 128)


def _rank(rank: int, port: int, spec: WorkerSpec, out: str) -> None:
    """One rank: load as a worker does, run the job, save rank 0's frames and what each
    rank's transformer saw."""
    import torch

    torch.set_num_threads(1)
    executor.prepare(spec)
    group = parallel.init(rank, 2, port, "cpu")
    runner = executor.load(spec, group)
    pipe = runner.loader.get().pipe
    tokens: list[int] = []
    computed: list[int] = []
    pipe.transformer.blocks[1].register_forward_hook(
        lambda _m, args, _out: tokens.append(int(args[0].shape[1]))
    )
    pipe.transformer.proj_out.register_forward_hook(lambda *_: computed.append(1))
    job = Generation(_job(spec.model), _picture(), cancelled=lambda: group.agree(False))
    frames = FAMILIES["wan"].run(pipe, job)
    np.savez(f"{out}-{rank}.npz", frames=frames, tokens=np.array(tokens),
             computed=np.array([len(computed)]))  # fmt: skip


def _group(app: Settings, model: str, mode: str, tmp_path: Path) -> list[dict[str, np.ndarray]]:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    spec = WorkerSpec(model, app, "cpu", warmup=False, parallel=2, parallel_mode=mode)
    ctx = multiprocessing.get_context("spawn")
    out = str(tmp_path / mode)
    procs = [ctx.Process(target=_rank, args=(r, port, spec, out)) for r in range(2)]
    for p in procs:
        p.start()
    try:
        for p in procs:
            p.join(timeout=240)
        assert [p.exitcode for p in procs] == [0, 0]
    finally:
        for p in procs:  # stopped by their own handles, even after a failure
            if p.is_alive():
                p.kill()
                p.join()
    return [dict(np.load(f"{out}-{r}.npz")) for r in range(2)]


def _single(app: Settings, model: str) -> tuple[np.ndarray, list[int]]:
    runner = executor.load(WorkerSpec(model, app, "cpu", warmup=False))
    pipe = runner.loader.get().pipe
    tokens: list[int] = []
    pipe.transformer.blocks[1].register_forward_hook(
        lambda _m, args, _out: tokens.append(int(args[0].shape[1]))
    )
    return FAMILIES["wan"].run(pipe, Generation(_job(model), _picture())), tokens


@pytest.mark.parametrize("mode", parallel.MODES)
@pytest.mark.parametrize("model", ["wan-demo", "wan-demo-a14b"])
def test_two_ranks_make_one_process_s_frames(app, tmp_path, model, mode):
    frames, tokens = _single(app, model)
    ranks = _group(app, model, mode, tmp_path)
    diff = np.abs(ranks[0]["frames"].astype(int) - frames.astype(int))
    assert ranks[0]["frames"].shape == frames.shape
    assert diff.max() <= 1, f"{mode}: frames differ by up to {diff.max()} levels"
    assert np.array_equal(ranks[0]["frames"], ranks[1]["frames"])
    if mode == "ulysses":  # each rank's blocks see half the tokens a single process sees
        assert set(ranks[0]["tokens"].tolist()) == {tokens[0] // 2}
    else:  # each rank computes one branch a step: half the single process's forwards
        assert int(ranks[0]["computed"][0]) == len(tokens) // 2


def test_parallel_is_refused_where_it_cannot_apply():
    with pytest.raises(ConfigError, match="demo is i2vgen-xl"):
        parallel.check("demo", 2, "ulysses")
    with pytest.raises(ConfigError, match="use --parallel 2, not 4"):
        parallel.check("wan-demo", 4, "cfg")
    with pytest.raises(ConfigError, match="--parallel-mode 'ring' is unknown; known: ulysses"):
        parallel.check("wan-demo", 2, "ring")
    parallel.check("demo", 1, "ring")  # one process: nothing to split, nothing refused
