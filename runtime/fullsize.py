"""The full-size architectures with random weights, and FLOP counts on the meta device.

Speed and memory do not depend on weight values, so `i2vkit bench --random-weights` measures
the real model where its weights cannot be downloaded. FLOPs are counted by running the real
modules on the meta device under torch's FlopCounterMode: no memory, about a second.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import torch

from i2vkit.request import Request
from i2vkit.runtime.pipelines import i2vgen_xl

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

CONFIGS = Path(__file__).with_name("data") / "fullsize"


def config(family: str) -> dict[str, Any]:
    return tomllib.loads((CONFIGS / f"{family}.toml").read_text())


def build_i2vgen_xl(device: str | torch.device = "cpu", scratch: Path | None = None) -> Any:
    """Full-size I2VGen-XL with random weights, fp32, built directly on `device`."""
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
    tiny = i2vgen_xl.build_tiny(scratch=scratch)  # for its tokenizer and scheduler settings
    with torch.device(device):
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
        tokenizer=tiny.tokenizer,
        feature_extractor=CLIPImageProcessor(crop_size=224, size=224),
        scheduler=DDIMScheduler.from_config(tiny.scheduler.config),
    )


def parameters(pipe: Any) -> dict[str, int]:
    return {
        name: sum(p.numel() for p in part.parameters())
        for name, part in pipe.components.items()
        if hasattr(part, "parameters")
    }


def _meta_copy(module: Any) -> Any:
    """The same architecture on the meta device (no memory) from the module's config."""
    with torch.device("meta"):
        if hasattr(module, "from_config"):
            return type(module).from_config(module.config)
        return type(module)(module.config)


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
