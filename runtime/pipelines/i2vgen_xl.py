"""I2VGen-XL (ali-vilab; diffusers' I2VGen-XLPipeline, deprecated there since 0.42).

i2vkit runs its own denoising loop over the pipeline's components: the stock `__call__` has no
per-step callback (so no progress and no cancel) and, under transformers 5, its default
`clip_skip=1` raises AttributeError. The tiny twin follows diffusers' own
`get_dummy_components`, scaled so that the VAE downsamples by 8 like the real one.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import torch

from i2vkit.errors import CancelledError
from i2vkit.runtime.pipelines import tiny
from i2vkit.runtime.pipelines.base import Family, Generation, make_scheduler, to_uint8_frames


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
def run(pipe: Any, job: Generation) -> np.ndarray:
    from diffusers.pipelines.deprecated.i2vgen_xl import pipeline_i2vgen_xl as stock
    from diffusers.utils.torch_utils import randn_tensor

    s = job.request
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


def build_tiny(seed: int = 0, scratch: Path | None = None) -> Any:
    """A tiny I2VGen-XL pipeline (about 2 M parameters), fp32, on the CPU."""
    import torch
    from diffusers import AutoencoderKL, DDIMScheduler, I2VGenXLPipeline
    from diffusers.models.unets import I2VGenXLUNet
    from transformers import (
        CLIPImageProcessor,
        CLIPTextConfig,
        CLIPTextModel,
    )

    with tempfile.TemporaryDirectory() as tmp:
        tokenizer = tiny.clip_tokenizer(Path(scratch or tmp) / "tokenizer")
    vocab = tokenizer.get_vocab()
    torch.manual_seed(seed)
    unet = I2VGenXLUNet(
        block_out_channels=(32, 64),
        layers_per_block=1,
        sample_size=32,
        in_channels=4,
        out_channels=4,
        down_block_types=("CrossAttnDownBlock3D", "DownBlock3D"),
        up_block_types=("UpBlock3D", "CrossAttnUpBlock3D"),
        cross_attention_dim=32,
        attention_head_dim=8,
        num_attention_heads=None,
        norm_num_groups=8,
    )
    vae = AutoencoderKL(
        block_out_channels=(16, 16, 32, 32),  # four blocks: downsamples by 8, as the real VAE
        in_channels=3,
        out_channels=3,
        down_block_types=["DownEncoderBlock2D"] * 4,
        up_block_types=["UpDecoderBlock2D"] * 4,
        latent_channels=4,
        sample_size=256,
        norm_num_groups=8,
    )
    text_encoder = CLIPTextModel(
        CLIPTextConfig(
            bos_token_id=vocab["<|startoftext|>"],
            eos_token_id=vocab["<|endoftext|>"],
            pad_token_id=vocab["<|endoftext|>"],
            hidden_size=32,
            intermediate_size=64,
            num_attention_heads=4,
            num_hidden_layers=3,
            vocab_size=len(vocab),
            max_position_embeddings=77,
            projection_dim=32,
        )
    )
    image_encoder = tiny.image_encoder(image_size=32, patch_size=4)
    scheduler = DDIMScheduler(
        beta_start=0.00085,
        beta_end=0.012,
        beta_schedule="scaled_linear",
        clip_sample=False,
        set_alpha_to_one=False,
        steps_offset=1,
        rescale_betas_zero_snr=True,
        timestep_spacing="leading",
    )
    return I2VGenXLPipeline(
        vae=vae,
        text_encoder=text_encoder,
        tokenizer=tokenizer,
        image_encoder=image_encoder,
        feature_extractor=CLIPImageProcessor(crop_size=32, size=32),
        unet=unet,
        scheduler=scheduler,
    )


FAMILY = Family("i2vgen-xl", run, build_tiny, denoiser="I2VGenXLUNet")
