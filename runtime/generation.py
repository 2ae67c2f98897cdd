"""Generation, shaped like a diffusers pipeline: inputs checked first, numbered steps, tensor
shapes in comments, dtype an explicit setting.

I2VGen-XL runs i2vkit's own denoising loop over the pipeline's components: the stock `__call__`
has no per-step callback (so no progress and no cancel) and, under transformers 5, its default
`clip_skip=1` raises AttributeError. SVD runs through its stock `__call__`, whose
`callback_on_step_end` gives both. Each job gets a fresh scheduler made from the pipeline's
config: a scheduler holds per-call state and must never be shared between jobs.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from i2vkit.errors import CancelledError, NaNOutputError
from i2vkit.request import Settings

Progress = Callable[[str, int, int], None]  # (stage, done, total)


def _no_progress(stage: str, done: int, total: int) -> None:
    pass


@dataclass
class Job:
    """What the runtime needs to run one request on a loaded pipeline."""

    settings: Settings
    image: Any  # PIL.Image, RGB
    progress: Progress = _no_progress
    cancelled: Callable[[], bool] = lambda: False


def make_scheduler(pipe: Any, name: str) -> Any:
    from diffusers import DDIMScheduler, DPMSolverMultistepScheduler, EulerDiscreteScheduler

    classes = {
        "ddim": DDIMScheduler,
        "dpm++": DPMSolverMultistepScheduler,
        "euler": EulerDiscreteScheduler,
    }
    return classes[name].from_config(pipe.scheduler.config)


def final_layer_norm(text_encoder: Any) -> Any:
    # transformers < 5 nests the CLIP text transformer under `.text_model`; 5 flattened it onto
    # CLIPTextModel. diffusers' I2VGen-XL still reaches for `.text_model` (the AttributeError).
    return getattr(text_encoder, "text_model", text_encoder).final_layer_norm


def encode_text(pipe: Any, texts: list[str], device: Any, clip_skip: int = 1) -> torch.Tensor:
    """CLIP text conditioning as I2VGen-XL was trained with it: the hidden state `clip_skip`
    layers before the last, through the final layer norm. -> (B, 77, C)"""
    tokens = pipe.tokenizer(
        texts,
        padding="max_length",
        max_length=pipe.tokenizer.model_max_length,
        truncation=True,
        return_tensors="pt",
    )
    out = pipe.text_encoder(tokens.input_ids.to(device), output_hidden_states=True)
    hidden = out.hidden_states[-(clip_skip + 1)]
    return final_layer_norm(pipe.text_encoder)(hidden)


def to_uint8_frames(video: torch.Tensor) -> np.ndarray:
    """(1, C, F, H, W) in [-1, 1] -> (F, H, W, 3) uint8; NaN is an error, not a black video."""
    if torch.isnan(video).any():
        raise NaNOutputError(
            "the model produced NaN: half precision overflowed; try dtype=bf16 or dtype=fp32"
        )
    frames = ((video[0].float() / 2 + 0.5).clamp(0, 1) * 255).round().to(torch.uint8)
    return frames.permute(1, 2, 3, 0).cpu().numpy()  # (F, H, W, C)


def image_conditioning(
    pipe: Any, pixels: torch.Tensor, frames: int, generator: torch.Generator, cfg: bool
) -> torch.Tensor:
    """(1, 3, H, W) -> (B, 4, F, H/8, W/8): the first frame's latent, then a constant mask per
    following frame rising to 1 (I2VGen-XL's position conditioning); doubled for CFG."""
    latent = pipe.vae.encode(pixels).latent_dist.sample(generator) * pipe.vae.config.scaling_factor
    latent = latent.unsqueeze(2)  # (1, 4, 1, h, w)
    masks = [torch.full_like(latent, (k + 1) / (frames - 1)) for k in range(frames - 1)]
    latents = torch.cat([latent, *masks], dim=2)
    return torch.cat([latents] * 2) if cfg else latents


@torch.no_grad()
def run_i2vgen_xl(pipe: Any, job: Job) -> np.ndarray:
    from diffusers.pipelines.deprecated.i2vgen_xl import pipeline_i2vgen_xl as stock
    from diffusers.utils.torch_utils import randn_tensor

    s = job.settings
    device, dtype = pipe.unet.device, pipe.unet.dtype
    generator = torch.Generator("cpu").manual_seed(s.seed)  # same video on any device
    pipe._guidance_scale = s.guidance  # read by the pipeline's helpers; one job at a time
    cfg = s.guidance > 1

    # 1. Text conditioning: (2, 77, C) with classifier-free guidance, (1, 77, C) without
    job.progress("encode", 0, 1)
    texts = [s.negative_prompt, s.prompt] if cfg else [s.prompt]
    prompt_embeds = encode_text(pipe, texts, device).to(dtype)

    # 2. Image conditioning: CLIP image embedding of the centre crop -> (2, 1, C)
    crop = stock._center_crop_wide(job.image, (s.width, s.width))
    size = pipe.feature_extractor.crop_size
    crop = stock._resize_bilinear(crop, (size["width"], size["height"]))
    image_embeddings = pipe._encode_image(crop, device, 1)

    # 3. Image latents, first frame plus position masks: (2, 4, F, H/8, W/8). Not the stock
    #    prepare_image_latents: it samples the VAE posterior from the global RNG, so the same
    #    seed would not give the same video.
    resized = stock._center_crop_wide(job.image, (s.width, s.height))
    pixels = pipe.video_processor.preprocess(resized).to(device=device, dtype=dtype)
    image_latents = image_conditioning(pipe, pixels, s.frames, generator, cfg)
    fps = torch.tensor([s.fps] * (2 if cfg else 1), device=device)
    job.progress("encode", 1, 1)

    # 4. Timesteps on this job's own scheduler
    scheduler = make_scheduler(pipe, s.scheduler)
    scheduler.set_timesteps(s.steps, device=device)

    # 5. Initial noise: (1, 4, F, H/8, W/8)
    scale = pipe.vae_scale_factor
    shape = (1, pipe.unet.config.in_channels, s.frames, s.height // scale, s.width // scale)
    latents = randn_tensor(shape, generator=generator, device=device, dtype=dtype)
    latents = latents * scheduler.init_noise_sigma

    # 6. Denoising loop
    for i, t in enumerate(scheduler.timesteps):
        if job.cancelled():
            raise CancelledError("cancelled")
        model_input = torch.cat([latents] * 2) if cfg else latents
        model_input = scheduler.scale_model_input(model_input, t)
        noise = pipe.unet(
            model_input,
            t,
            encoder_hidden_states=prompt_embeds,
            fps=fps,
            image_latents=image_latents,
            image_embeddings=image_embeddings,
            return_dict=False,
        )[0]
        if cfg:
            uncond, text = noise.chunk(2)
            noise = uncond + s.guidance * (text - uncond)
        # the scheduler steps frames as a batch of images: (F, 4, h, w)
        b, c, f, h, w = latents.shape
        flat = latents.permute(0, 2, 1, 3, 4).reshape(b * f, c, h, w)
        noise = noise.permute(0, 2, 1, 3, 4).reshape(b * f, c, h, w)
        flat = scheduler.step(noise, t, flat).prev_sample
        latents = flat[None].reshape(b, f, c, h, w).permute(0, 2, 1, 3, 4)
        job.progress("denoise", i + 1, s.steps)

    # 7. Decode in chunks of frames: (1, 3, F, H, W)
    job.progress("decode", 0, 1)
    video = pipe.decode_latents(latents, decode_chunk_size=s.decode_chunk)
    job.progress("decode", 1, 1)
    return to_uint8_frames(video)


@torch.no_grad()
def run_svd(pipe: Any, job: Job) -> np.ndarray:
    s = job.settings

    def on_step(_pipe: Any, i: int, _t: Any, tensors: dict[str, Any]) -> dict[str, Any]:
        job.progress("denoise", i + 1, s.steps)
        if job.cancelled():
            raise CancelledError("cancelled")
        return {}

    if job.cancelled():
        raise CancelledError("cancelled")
    job.progress("encode", 0, 1)
    pipe.scheduler = make_scheduler(pipe, s.scheduler)
    out = pipe(
        image=job.image,
        height=s.height,
        width=s.width,
        num_frames=s.frames,
        num_inference_steps=s.steps,
        min_guidance_scale=1.0,
        max_guidance_scale=s.guidance,
        fps=s.fps,
        decode_chunk_size=s.decode_chunk,
        generator=torch.Generator("cpu").manual_seed(s.seed),
        output_type="pt",
        callback_on_step_end=on_step,
    )
    job.progress("decode", 1, 1)
    video = out.frames[:1].permute(0, 2, 1, 3, 4) * 2 - 1  # (1, F, C, H, W) [0,1] -> (1, C, F..)
    return to_uint8_frames(video)


FAMILIES: dict[str, Callable[[Any, Job], np.ndarray]] = {
    "i2vgen-xl": run_i2vgen_xl,
    "svd": run_svd,
}
