"""The full-size architectures with random weights, and FLOP counts on the meta device.

Speed and memory do not depend on weight values, so `i2vkit bench --random-weights` measures
the real model where its weights cannot be downloaded. FLOPs are counted by running the real
modules on the meta device under torch's FlopCounterMode: no memory, seconds.

The configs are data (data/fullsize/<family>.toml, each part with its source). A Wan model's parts
are found by its repo id, so a distilled `-fast` row gets its base's architecture. The counts of
every full-size model at every preset are stored in i2vkit/data/model_costs.toml, computed, not
measured; `python -m i2vkit.runtime.costs` (runtime/costs.py) writes that file again.
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import torch

from i2vkit import catalogue
from i2vkit.errors import UnknownNameError
from i2vkit.request import Request
from i2vkit.runtime.pipelines import i2vgen_xl, tiny

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

CONFIGS = Path(__file__).with_name("data") / "fullsize"
WAN_TEXT_TOKENS = 512  # the pipeline's max_sequence_length: every prompt is padded to it
I2VGEN_TEXT_TOKENS = 77  # CLIP's context


def config(family: str) -> dict[str, Any]:
    return tomllib.loads((CONFIGS / f"{family}.toml").read_text())


@contextlib.contextmanager
def _building(device: str | torch.device, dtype: torch.dtype) -> Iterator[None]:
    """Modules made in the block are created on `device` in `dtype`, never as an fp32 copy
    first (a 14B transformer in fp32 would not fit where its bf16 weights do)."""
    previous = torch.get_default_dtype()
    torch.set_default_dtype(dtype)
    try:
        with torch.device(device):
            yield
    finally:
        torch.set_default_dtype(previous)


def _as_loaded(model: Any, dtype: torch.dtype) -> Any:
    """Keep in fp32 what `from_pretrained(torch_dtype=dtype)` keeps in fp32: a diffusers model's
    `_keep_in_fp32_modules` at any dtype, a transformers model's only under fp16."""
    from diffusers import ModelMixin

    keep = getattr(model, "_keep_in_fp32_modules", None) or ()
    kept = dtype != torch.float32 and (isinstance(model, ModelMixin) or dtype == torch.float16)
    if not kept:
        return model
    for name, param in model.named_parameters():
        if any(part in keep for part in name.split(".")):
            param.data = param.data.float()
    return model


def build_i2vgen_xl(
    device: str | torch.device = "cpu",
    scratch: Path | None = None,
    dtype: torch.dtype = torch.float32,
) -> Any:
    """Full-size I2VGen-XL with random weights, built directly on `device` in `dtype`."""
    from diffusers import AutoencoderKL, DDIMScheduler, I2VGenXLPipeline
    from diffusers.models.unets import I2VGenXLUNet
    from transformers import (
        CLIPImageProcessor,
        CLIPTextConfig,
        CLIPTextModel,
        CLIPVisionConfig,
        CLIPVisionModelWithProjection,
    )

    cfg = config("i2vgen-xl")
    unet_cfg = {k: v for k, v in cfg["unet"].items() if k != "num_attention_heads"}
    tiny_pipe = i2vgen_xl.build_tiny(scratch=scratch)  # for its tokenizer and scheduler settings
    with _building(device, dtype):
        parts = {
            "unet": I2VGenXLUNet(**unet_cfg),
            "vae": AutoencoderKL(**cfg["vae"]),
            "text_encoder": CLIPTextModel(CLIPTextConfig(**cfg["text_encoder"])),
            "image_encoder": CLIPVisionModelWithProjection(
                CLIPVisionConfig(**cfg["image_encoder"])
            ),
        }
    return I2VGenXLPipeline(
        **parts,
        tokenizer=tiny_pipe.tokenizer,
        feature_extractor=CLIPImageProcessor(crop_size=224, size=224),
        scheduler=DDIMScheduler.from_config(tiny_pipe.scheduler.config),
    )


def wan_parts(model_name: str) -> dict[str, Any]:
    """Which configs make `model_name` (a full-size Wan model of the catalogue): data/fullsize/
    wan.toml's table for its repo."""
    entry = catalogue.model(model_name)
    repos = config("wan")["repo"]
    if entry.family != "wan" or entry.repo_id not in repos:
        known = (m.name for m in catalogue.models() if m.repo_id in repos)
        raise UnknownNameError("full-size Wan model", model_name, known)
    return dict(repos[entry.repo_id])


def build_wan(
    model_name: str, device: str | torch.device = "cpu", dtype: torch.dtype = torch.bfloat16
) -> Any:
    """A full-size Wan model of the catalogue with random weights, as a WanImageToVideoPipeline
    built directly on `device` in `dtype`. The tokenizer is the tiny twins' (its ids are all
    below UMT5's vocabulary); the scheduler is the repos' UniPC over flow sigmas."""
    from diffusers import (
        AutoencoderKLWan,
        UniPCMultistepScheduler,
        WanImageToVideoPipeline,
        WanTransformer3DModel,
    )
    from transformers import (
        CLIPImageProcessor,
        CLIPVisionConfig,
        CLIPVisionModel,
        UMT5Config,
        UMT5EncoderModel,
    )

    cfg, spec = config("wan"), wan_parts(model_name)
    parts: dict[str, Any] = {}
    with _building(device, dtype):
        parts["text_encoder"] = UMT5EncoderModel(
            UMT5Config(**cfg["text_encoder"][spec["text_encoder"]])
        ).eval()
        parts["vae"] = AutoencoderKLWan(**cfg["vae"][spec["vae"]])
        for name in ("transformer", "transformer_2"):
            if name in spec:
                parts[name] = WanTransformer3DModel(**cfg["transformer"][spec[name]])
        if "image_encoder" in spec:
            vision = CLIPVisionConfig(**cfg["image_encoder"][spec["image_encoder"]])
            parts["image_encoder"] = CLIPVisionModel(vision).eval()
            parts["image_processor"] = CLIPImageProcessor(
                crop_size=vision.image_size, size=vision.image_size
            )
    for part in parts.values():
        if isinstance(part, torch.nn.Module):
            _as_loaded(part, dtype)
    scheduler = UniPCMultistepScheduler(
        prediction_type="flow_prediction", use_flow_sigmas=True, num_train_timesteps=1000,
        flow_shift=catalogue.model(model_name).shift or 5.0,
    )  # fmt: skip
    return WanImageToVideoPipeline(
        **parts,
        tokenizer=tiny.t5_tokenizer(),
        scheduler=scheduler,
        boundary_ratio=spec.get("boundary_ratio"),
        expand_timesteps=spec.get("expand_timesteps", False),
    )


BUILDERS: dict[str, Callable[[str, str | torch.device, torch.dtype], Any]] = {
    "i2vgen-xl": lambda _name, device, dtype: build_i2vgen_xl(device, dtype=dtype),
    "wan": build_wan,
}


def build(
    model_name: str, device: str | torch.device = "cpu", dtype: torch.dtype | None = None
) -> Any:
    """Any full-size model of the catalogue with random weights (dtype None: the family's own
    default, fp32 for I2VGen-XL as its docs run it, bf16 for Wan)."""
    known = full_size_models()
    if model_name not in known:
        raise UnknownNameError("full-size model", model_name, known)
    family = catalogue.model(model_name).family
    default = torch.float32 if family == "i2vgen-xl" else torch.bfloat16
    return builders()[family](model_name, device, dtype or default)


def full_size_models() -> list[str]:
    """The catalogue's models with a full-size architecture here, by name (a transformer
    family's model by its repo in data/fullsize/<family>.toml: the distilled `-fast` rows share
    their base's)."""
    have = builders()
    repos: dict[str, dict[str, Any] | None] = {f: config(f).get("repo") for f in have}

    def has(m: catalogue.Model) -> bool:
        known = repos.get(m.family)
        return m.family in have and (known is None or m.repo_id in known)

    return sorted(m.name for m in catalogue.models() if not m.local and has(m))


def builders() -> dict[str, Callable[[str, str | torch.device, torch.dtype], Any]]:
    """Every family's full-size builder: this module's, and runtime/fullsize_dit.py's (imported
    here, not at the top: it builds on this module)."""
    from i2vkit.runtime import fullsize_dit

    return BUILDERS | fullsize_dit.BUILDERS


def parameters(pipe: Any) -> dict[str, int]:
    return {
        name: sum(p.numel() for p in part.parameters())
        for name, part in pipe.components.items()
        if hasattr(part, "parameters")
    }


def _meta_copy(module: Any) -> Any:
    """The same architecture on the meta device (no memory) from the module's config, in fp32
    whatever the module's dtype (the FLOP counts' inputs are fp32)."""
    with _building("meta", torch.float32):
        if hasattr(module, "from_config"):
            return type(module).from_config(module.config)
        return type(module)(module.config)


def _count(run: Callable[[], Any]) -> int:
    from torch.utils.flop_counter import FlopCounterMode

    with FlopCounterMode(display=False) as counter:
        run()
    return int(counter.get_total_flops())


def job_flops(pipe: Any, s: Request) -> dict[str, float]:
    """FLOPs of one I2VGen-XL job: UNet forwards (CFG batch) x steps, and the VAE decode."""
    from torch.utils.flop_counter import FlopCounterMode

    cfg_batch = 2 if s.guidance > 1 else 1
    scale = pipe.vae_scale_factor
    h, w = s.height // scale, s.width // scale
    unet, vae = _meta_copy(pipe.unet), _meta_copy(pipe.vae)
    cross = pipe.unet.config.cross_attention_dim
    with torch.device("meta"), torch.no_grad():
        latents = torch.randn(cfg_batch, 4, s.frames, h, w)
        with FlopCounterMode(display=False) as unet_count:
            unet(
                latents,
                torch.tensor(999),
                encoder_hidden_states=torch.randn(cfg_batch, 77, cross),
                fps=torch.tensor([s.fps] * cfg_batch),
                image_latents=torch.randn(cfg_batch, 4, s.frames, h, w),
                image_embeddings=torch.randn(cfg_batch, 1, cross),
                return_dict=False,
            )
        with FlopCounterMode(display=False) as vae_count:
            vae.decode(torch.randn(1, 4, h, w))
    unet_step = float(unet_count.get_total_flops())
    decode = float(vae_count.get_total_flops()) * s.frames
    return {"unet_step": unet_step, "denoise": unet_step * s.steps, "decode": decode,
            "total": unet_step * s.steps + decode}  # fmt: skip


def _i2vgen_job_flops(pipe: Any, s: Request) -> dict[str, int]:
    """job_flops with the encoders: the prompt (and the negative under CFG) through CLIP's text
    tower, the image through CLIP's vision tower at 224 px and through the VAE at full size."""
    base = job_flops(pipe, s)
    passes = 2 if s.guidance > 1 else 1
    text, vision, vae = (_meta_copy(m) for m in (pipe.text_encoder, pipe.image_encoder, pipe.vae))
    size = vision.config.image_size
    with torch.device("meta"), torch.no_grad():
        ids = torch.zeros(1, I2VGEN_TEXT_TOKENS, dtype=torch.long)
        encode = passes * _count(lambda: text(input_ids=ids))
        encode += _count(lambda: vision(pixel_values=torch.randn(1, 3, size, size)))
        encode += _count(lambda: vae.encode(torch.randn(1, 3, s.height, s.width)))
    step, decode = int(base["unet_step"]), int(base["decode"])
    return _totals(step, s.steps, encode, decode)


def _totals(step: int, steps: int, encode: int, decode: int) -> dict[str, int]:
    denoise = step * steps
    return {"step": step, "denoise": denoise, "encode": encode, "decode": decode,
            "total": denoise + encode + decode}  # fmt: skip


def _wan_latents(pipe: Any, s: Request) -> tuple[int, int, int]:
    """(frames, height, width) of the latents: 4 frames to one after the first, 8x (Wan 2.1's
    VAE) or 16x (Wan 2.2's) fewer pixels a side (the pipeline's prepare_latents)."""
    vae = pipe.vae.config
    spatial = vae.scale_factor_spatial
    return (s.frames - 1) // vae.scale_factor_temporal + 1, s.height // spatial, s.width // spatial


def wan_step_flops(pipe: Any, s: Request) -> int:
    """FLOPs of one Wan denoising step: the transformer over (noise [+ mask + condition]), once
    for the prompt and once more for the negative prompt when guidance > 1 (the pipeline runs
    them as two forwards, not one batch). The A14B experts share one architecture, so either
    gives the step."""
    passes = 2 if s.guidance > 1 else 1  # the pipeline's do_classifier_free_guidance
    net = _meta_copy(pipe.transformer if pipe.transformer is not None else pipe.transformer_2)
    frames, h, w = _wan_latents(pipe, s)
    _, patch_h, patch_w = net.config.patch_size
    tokens = frames * (h // patch_h) * (w // patch_w)
    with torch.device("meta"), torch.no_grad():
        latents = torch.randn(1, net.config.in_channels, frames, h, w)
        # TI2V-5B (expand_timesteps) gives every token its own timestep: (1, tokens)
        timestep = torch.full((1, tokens) if pipe.config.expand_timesteps else (1,), 999.0)
        prompt = torch.randn(1, WAN_TEXT_TOKENS, net.config.text_dim)
        image = None
        if net.config.image_dim is not None:  # Wan 2.1: CLIP's penultimate states, (1, 257, 1280)
            vision = pipe.image_encoder.config
            image_tokens = (vision.image_size // vision.patch_size) ** 2 + 1
            image = torch.randn(1, image_tokens, vision.hidden_size)
        forward = _count(
            lambda: net(hidden_states=latents, timestep=timestep, encoder_hidden_states=prompt,
                        encoder_hidden_states_image=image, return_dict=False)
        )  # fmt: skip
    return passes * forward


def wan_job_flops(pipe: Any, s: Request) -> dict[str, int]:
    """FLOPs of one Wan job as diffusers' WanImageToVideoPipeline computes it: `step` as
    wan_step_flops; `encode` the text encoder per prompt, the CLIP image encoder (Wan 2.1) and
    the VAE encode of the conditioning video; `decode` the VAE decode of the latents."""
    passes = 2 if s.guidance > 1 else 1
    vae, text = _meta_copy(pipe.vae), _meta_copy(pipe.text_encoder)
    net = pipe.transformer if pipe.transformer is not None else pipe.transformer_2
    with_image = net.config.image_dim is not None  # what the pipeline checks
    frames, h, w = _wan_latents(pipe, s)
    with torch.device("meta"), torch.no_grad():
        # 1. Encode: the prompt, and the negative prompt under CFG, each padded to 512 tokens
        #    (no attention mask here: it changes no FLOP, and masks on meta cannot be inspected)
        ids = torch.zeros(1, WAN_TEXT_TOKENS, dtype=torch.long)
        encode = passes * _count(lambda: text(input_ids=ids))
        if with_image:  # Wan 2.1: the image once through CLIP at 224 px
            vision = _meta_copy(pipe.image_encoder)
            size = vision.config.image_size
            pixels = torch.randn(1, 3, size, size)
            encode += _count(lambda: vision(pixel_values=pixels, output_hidden_states=True))
        # the conditioning video through the VAE: the image then zeros, (1, 3, F, H, W); TI2V-5B
        # (expand_timesteps) encodes the image alone, (1, 3, 1, H, W)
        length = 1 if pipe.config.expand_timesteps else s.frames
        video = torch.randn(1, 3, length, s.height, s.width)
        encode += _count(lambda: vae.encode(video))
        # 2. Decode: latents (1, z_dim, F', H', W') -> video (1, 3, F, H, W)
        latents = torch.randn(1, vae.config.z_dim, frames, h, w)
        decode = _count(lambda: vae.decode(latents))
    return _totals(wan_step_flops(pipe, s), s.steps, encode, decode)


FLOPS: dict[str, Callable[[Any, Request], dict[str, int]]] = {
    "i2vgen-xl": _i2vgen_job_flops,
    "wan": wan_job_flops,
}


def job_flops_for(model_name: str, s: Request, pipe: Any = None) -> dict[str, int]:
    """FLOPs of one job of a full-size model (step, denoise, encode, decode, total), counted on
    the meta device; `pipe` is the model already built (on any device), else built on meta."""
    from i2vkit.runtime import fullsize_dit

    family = catalogue.model(model_name).family
    counts = FLOPS | fullsize_dit.FLOPS
    if family not in counts:
        raise UnknownNameError("model family with a FLOP count", family, counts)
    if pipe is None:
        pipe = build(model_name, "meta")
    return counts[family](pipe, s)


def matmul_rate(device: str, dtype: torch.dtype, seconds: float = 1.0) -> float:
    """Measured peak matrix-multiply rate (FLOP/s) of this device at `dtype`: the floor's
    denominator, measured in the same run as the benchmark it judges."""
    import time

    n = 8192 if device.startswith("cuda") else 1024
    a = torch.randn(n, n, device=device, dtype=dtype)
    b = torch.randn(n, n, device=device, dtype=dtype)
    sync = torch.cuda.synchronize if device.startswith("cuda") else (lambda: None)
    for _ in range(3):
        a @ b
    sync()
    count, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        a @ b
        count += 1
        if count % 8 == 0:
            sync()
    sync()
    return 2 * n**3 * count / (time.perf_counter() - start)
