"""One model load per process: the first caller builds the pipeline, the others wait for it.

Where the files come from: `demo` models are built locally (runtime/twins.py) into i2vkit's
home; hub models are read from the Hugging Face cache with `local_files_only=True` (setup put
them there; nothing is downloaded at start-up). Precision is explicit: bf16 on GPUs with bf16
tensor cores (compute >= 8.0), fp16 on older GPUs, fp32 on CPU, unless overridden. Where the
weights live is the memory planner's choice (the fastest strategy under which a job of the
size the runner expects fits the device's free memory), or the one asked for.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from i2vkit import catalogue, planner, request
from i2vkit.catalogue import Model
from i2vkit.errors import ConfigError, ModelLoadError, ModelNotReadyError, WontFitError
from i2vkit.planner import Strategy
from i2vkit.request import Request
from i2vkit.runtime import memory, speed, twins
from i2vkit.settings import Settings
from i2vkit.speed import Speed

DTYPES = ("fp32", "fp16", "bf16")


@dataclass(frozen=True)
class Loaded:
    pipe: Any
    model: Model
    device: str  # "cuda:0", "cpu"
    dtype: str  # one of DTYPES
    seconds: float  # load time
    strategy: Strategy = planner.FULL  # where the weights live (runtime/memory.py)
    why: str = ""  # the planner's reason for `strategy`, in words
    options: dict[str, str] = field(default_factory=dict)  # what is on, for every job's record


def torch_dtype(name: str) -> Any:
    import torch

    if name not in DTYPES:
        raise ConfigError(f"dtype {name!r} is unknown; known: {', '.join(DTYPES)}")
    return {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}[name]


def choose_device(device: str | None) -> str:
    import torch

    if device:
        if device.startswith("cuda") and not torch.cuda.is_available():
            raise ConfigError(f"device {device!r} asked for but torch sees no CUDA GPU; use cpu")
        return device
    return "cuda:0" if torch.cuda.is_available() else "cpu"


def choose_dtype(device: str, dtype: str | None) -> str:
    import torch

    if dtype:
        torch_dtype(dtype)  # validates the name
        return dtype
    if not device.startswith("cuda"):
        return "fp32"  # half precision is slower than fp32 on most CPUs
    return "bf16" if torch.cuda.is_bf16_supported(including_emulation=False) else "fp16"


def local_folder(model: Model, settings: Settings) -> Path:
    """Where a tiny twin (or a twin's LoRA) is built when no source served it: one folder per
    set of weights (a `-fast` entry shares its base's)."""
    return settings.home / "models" / (model.base or model.name)


def model_folder(model: Model, settings: Settings) -> Path:
    """The local folder of the model's files (of its LoRA, for catalogue.lora_files' view);
    builds a tiny twin's on first use."""
    folder = catalogue.snapshot(model, settings)
    if folder is not None:
        return folder
    if model.local:  # no endpoint served it to setup: built here by the runtime's own code
        from filelock import FileLock  # huggingface_hub's own dependency

        models = settings.home / "models"
        models.mkdir(parents=True, exist_ok=True)
        # one builder at a time: the workers of one server (or a --parallel group's ranks)
        # start together, and a second build would replace the folder the first one reads
        with FileLock(str(models / f".{model.base or model.name}.lock")):
            if model.kind == "lora":
                folder = models / model.name
                if not folder.exists():
                    twins.save_lora(folder, model.family, twin=model.twin)
                return folder
            folder = local_folder(model, settings)
            if not (folder / "model_index.json").exists():
                twins.save(folder, model.family, twin=model.twin)
            return folder
    raise ModelNotReadyError(
        f"model {model.name!r} ({model.repo_id}) is not in {settings.hub_cache}: "
        f"run `i2vkit setup --model {model.name}` first"
    )


def quiet_libraries() -> None:
    # Their per-file loading bars and deprecation notes drown i2vkit's own progress; errors
    # still surface as exceptions.
    import diffusers
    import transformers

    diffusers.utils.logging.disable_progress_bar()
    diffusers.utils.logging.set_verbosity_error()
    transformers.utils.logging.disable_progress_bar()
    transformers.utils.logging.set_verbosity_error()


def _dtype_keyword() -> str:
    # diffusers 0.42 deprecates `torch_dtype=` for `dtype=`; older releases silently ignore
    # `dtype=` (so `load` asserts every component's dtype after loading either way).
    from importlib.metadata import version

    from packaging.version import Version

    return "dtype" if Version(version("diffusers")) >= Version("0.40") else "torch_dtype"


def choose_strategy(
    model: Model, settings: Settings, device: str, dtype: str, asked: str, sized: Request | None
) -> tuple[Strategy, str]:
    """The planner's strategy for jobs the size of `sized` (default: the model's preview) on
    this device's free memory now, and why, in words. A strategy asked for by name must fit;
    with 'auto', a job nothing fits gets the leanest strategy, and the runner refuses each job
    that does not fit."""
    from i2vkit.runtime.measure import device_memory

    s = sized or request.make(model.name, "preview")
    profile = planner.profile_for(model.name, device, dtype, settings.home)
    free, _ = device_memory(device)
    size = f"{s.height}x{s.width}, {s.frames} frames"
    where = f"{model.name} on {free / planner.GIB:.1f} GiB free ({device})"
    source = profile.source.split(":")[0]
    try:
        est = planner.choose(s, profile, free, device, asked)
    except WontFitError:
        if asked != "auto":
            raise
        leanest = planner.candidates(device)[-1]
        return leanest, f"{where}: nothing fits {size}; {leanest.describe()}, the leanest"
    how = "asked for" if asked != "auto" else "the fastest that fits"
    return est.strategy, (f"{where}: {est.strategy.describe()} ({how}), about "
                          f"{est.peak / planner.GIB:.1f} GiB at {size} ({source})")  # fmt: skip


def fuse_lora(pipe: Any, model: Model, settings: Settings) -> str:
    """Load the model's few-step LoRA into its denoiser(s), fuse it into their weights and drop
    the adapters: the distilled model at the base model's speed per step."""
    assert model.lora is not None
    lora = model.lora
    folder = str(model_folder(catalogue.lora_files(model), settings))
    pipe.load_lora_weights(folder, weight_name=lora.transformer, adapter_name="fast")
    components = ["transformer"]
    if lora.transformer_2:
        pipe.load_lora_weights(folder, weight_name=lora.transformer_2, adapter_name="fast_2",
                               load_into_transformer_2=True)  # fmt: skip
        components.append("transformer_2")
    pipe.fuse_lora(components=components, lora_scale=lora.scale)
    pipe.unload_lora_weights()  # the fused weights stay; the adapter layers go
    return f"{lora.repo_id} fused into {' and '.join(components)} (scale {lora.scale:g})"


def load(
    model: Model, settings: Settings, device: str | None, dtype: str | None,
    asked: str = "auto", sized: Request | None = None, options: Speed | None = None,
    build: Callable[[str], Any] | None = None,
) -> Loaded:  # fmt: skip
    import diffusers

    from i2vkit.runtime.pipelines import family

    quiet_libraries()
    started = time.perf_counter()
    device = choose_device(device)
    dtype = choose_dtype(device, dtype)
    plan, why = choose_strategy(model, settings, device, dtype, asked, sized)
    if build is not None:  # the bench's full-size architecture with random weights
        pipe = build(dtype)
    else:
        kwargs: dict[str, Any] = {_dtype_keyword(): torch_dtype(dtype)}
        if model.variant and dtype != "fp32":
            kwargs["variant"] = model.variant
        cls = getattr(diffusers, family(model.family).pipeline or "DiffusionPipeline")
        pipe = cls.from_pretrained(model_folder(model, settings), **kwargs)
    pipe.set_progress_bar_config(disable=True)
    fp8 = set(memory.denoisers(pipe)) if plan.fp8 else set()
    wrong = {
        name: str(part.dtype)
        for name, part in pipe.components.items()
        if hasattr(part, "dtype") and name not in fp8 and part.dtype != torch_dtype(dtype)
    }
    if wrong:  # some diffusers releases ignore the dtype argument: never run a silent fp32
        raise ModelLoadError(f"after loading, components have the wrong dtype: {wrong}")
    lora = "none"
    if model.lora and build is None:
        lora = fuse_lora(pipe, model, settings)
    elif model.lora:
        lora = "not fused (random weights)"
    memory.apply(pipe, plan, device, torch_dtype(dtype), tiling=model.vae_tiling)
    done = speed.apply(pipe, options or Speed(), device)
    record = {"memory": plan.name, "dtype": dtype, **done, "lora": lora}
    return Loaded(pipe, model, device, dtype, time.perf_counter() - started, plan, why, record)


class Loader:
    """Holds the process's one pipeline; `get()` is safe from any number of threads."""

    def __init__(
        self, model: str, settings: Settings, device: str | None = None, dtype: str | None = None,
        memory: str = "auto", sized: Request | None = None, options: Speed | None = None,
        build: Callable[[str], Any] | None = None,
    ) -> None:  # fmt: skip
        self.model = catalogue.model(model)
        self.options = options or Speed()  # the accelerations (i2vkit/speed.py)
        self.build = build  # dtype -> pipeline, instead of the files (bench --random-weights)
        if memory != "auto":
            planner.strategy(memory)  # an unknown name is refused before anything loads
        refused = speed.refusals(model, self.options)
        if refused:  # an option that cannot apply is refused before anything loads
            raise ConfigError("; ".join(refused))
        self.settings = settings
        self.device = device
        self.dtype = dtype
        self.memory = memory  # 'auto' or a strategy's name (i2vkit/planner.py STRATEGIES)
        self.sized = sized  # the job size the strategy is chosen for
        self.loads = 0  # how many times a pipeline was built: 1 in a healthy process
        self._lock = threading.Lock()
        self._loaded: Loaded | None = None

    def get(self) -> Loaded:
        loaded = self._loaded
        if loaded is not None:
            return loaded
        with self._lock:  # one caller loads; the others block here, then find it loaded
            if self._loaded is None:
                self._loaded = load(self.model, self.settings, self.device, self.dtype,
                                    self.memory, self.sized, self.options, self.build)  # fmt: skip
                self.loads += 1
            return self._loaded
