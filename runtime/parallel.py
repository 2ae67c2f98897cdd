"""One job across several GPUs of a node (`serve --parallel N`): a worker is a group of N
processes, one per device, that run every job together.

- `ulysses` (the default): diffusers' context parallelism (`enable_parallelism` with
  `ContextParallelConfig(ulysses_degree=N)`): each rank holds the whole model and attends over
  1/N of the video's tokens, exchanged by all-to-all. For Wan, whose transformer carries the
  split plan (`_cp_plan`); the heads (40 for 14B, 24 for 5B) and the job's video tokens must
  divide by N.
- `cfg`: the two branches of classifier-free guidance on two ranks at once (diffusers has no
  CFG-parallel of its own: `_modeling_parallel.py` lists it as to do): rank 1 runs the
  unconditional branch while rank 0 runs the conditional one, and one all-gather gives both to
  both ranks. N = 2; a job without guidance (the distilled presets) runs whole on each rank.

Every rank runs the same pipeline call with the same seed; rank 0's frames are the job's. Ring
attention is not offered: it needs an attention backend that returns the log-sum-exp (flash,
cuDNN), which the default (PyTorch's SDPA) does not.
"""

from __future__ import annotations

import contextlib
import datetime
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from i2vkit import catalogue
from i2vkit.errors import ConfigError

MODES = ("ulysses", "cfg")
FAMILIES = ("wan",)  # those whose denoiser diffusers can split (a `_cp_plan`)
# an idle worker waits for its next job inside a broadcast (on the control group): it must not
# time out. Inside a job the ranks move in step: a collective that waits this long means a
# rank is gone or stuck, and the failure restarts the group.
IDLE = datetime.timedelta(days=365)
STEP = datetime.timedelta(minutes=10)


def check(model: str, degree: int, mode: str) -> None:
    """Refuse, before anything loads, a --parallel that cannot apply."""
    if degree == 1:
        return
    if mode not in MODES:
        raise ConfigError(f"--parallel-mode {mode!r} is unknown; known: {', '.join(MODES)}")
    if not 2 <= degree <= 16:
        raise ConfigError(f"--parallel {degree} is out of range; allowed: 1 to 16")
    if mode == "cfg" and degree != 2:
        raise ConfigError(f"--parallel-mode cfg splits a job in two: use --parallel 2, "
                          f"not {degree}")  # fmt: skip
    family = catalogue.model(model).family
    if family not in FAMILIES:
        raise ConfigError(
            f"--parallel splits Wan's transformer (diffusers' context-parallel plan); "
            f"{model} is {family}: serve it with --parallel 1, a worker per GPU"
        )


@dataclass
class Group:
    """This process's place in its worker's group, and the group's control channel (gloo,
    also beside NCCL: job messages are Python objects)."""

    rank: int
    world: int
    control: Any

    def broadcast(self, message: Any) -> Any:
        """Rank 0's `message`, on every rank."""
        import torch.distributed as dist

        box = [message]
        dist.broadcast_object_list(box, src=0, group=self.control)
        return box[0]

    def agree(self, flag: bool) -> bool:
        """True on every rank when rank 0 says so: a cancel stops every rank at the same step
        (a rank that stopped alone would leave the others waiting in a collective)."""
        import torch
        import torch.distributed as dist

        value = torch.tensor([int(flag and self.rank == 0)])
        dist.all_reduce(value, op=dist.ReduceOp.MAX, group=self.control)
        return bool(value.item())


def init(rank: int, world: int, port: int, device: str) -> Group:
    import torch
    import torch.distributed as dist

    if device.startswith("cuda"):
        torch.cuda.set_device(device)
    backend = "nccl" if device.startswith("cuda") else "gloo"
    dist.init_process_group(backend, init_method=f"tcp://127.0.0.1:{port}", rank=rank,
                            world_size=world, timeout=STEP)  # fmt: skip
    control = dist.new_group(backend="gloo", timeout=IDLE)
    return Group(rank, world, control)


def apply(pipe: Any, mode: str, group: Group, device: str) -> str:
    """Split the pipeline's denoiser(s) over the group; what was done, for the job record."""
    denoisers = [m for m in (pipe.transformer, getattr(pipe, "transformer_2", None)) if m]
    if mode == "ulysses":
        from diffusers import ContextParallelConfig

        for module in denoisers:  # one config each: enable_parallelism keeps its mesh on it
            with _cpu_device_count(device):
                module.enable_parallelism(config=ContextParallelConfig(ulysses_degree=group.world))
    else:
        _cfg_parallel(pipe, denoisers, group)
    return f"{mode} x{group.world}"


@contextlib.contextmanager
def _cpu_device_count(device: str) -> Iterator[None]:
    """diffusers 0.42 places each rank on `rank % torch.accelerator.device_count()`
    (modeling_utils.py `enable_parallelism`), a division by zero where torch sees no
    accelerator. On the CPU (the tests' gloo groups) count one device while it runs."""
    import torch

    if device.startswith("cuda"):
        yield
        return
    count = torch.accelerator.device_count
    torch.accelerator.device_count = lambda: 1
    try:
        yield
    finally:
        torch.accelerator.device_count = count


def _cfg_parallel(pipe: Any, denoisers: list[Any], group: Group) -> None:
    """Rank 1 computes the unconditional branch during the pipeline's conditional call; the
    pipeline's own unconditional call then returns it without computing. The negative prompt's
    embeddings are the pipeline's own (its encode_prompt, wrapped to keep them)."""
    import torch
    import torch.distributed as dist

    state: dict[str, Any] = {"negative": None, "uncond": None}
    encode = pipe.encode_prompt

    def encode_prompt(*args: Any, **kwargs: Any) -> Any:
        out = encode(*args, **kwargs)
        state["negative"], state["uncond"] = out[1], None
        return out

    pipe.encode_prompt = encode_prompt
    for module in denoisers:
        forward = module.forward

        def split(*args: Any, _forward: Any = forward, **kwargs: Any) -> Any:
            if not pipe.do_classifier_free_guidance:
                return _forward(*args, **kwargs)
            if state["uncond"] is not None:  # the pipeline's unconditional call: done already
                uncond, state["uncond"] = state["uncond"], None
                return (uncond,)
            if group.rank == 1:
                kwargs["encoder_hidden_states"] = state["negative"]
            mine = _forward(*args, **kwargs)[0].contiguous()
            both = [torch.empty_like(mine) for _ in range(2)]
            dist.all_gather(both, mine)
            state["uncond"] = both[1]
            return (both[0],)

        module.forward = split
