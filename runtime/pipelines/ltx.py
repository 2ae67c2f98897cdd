"""LTX-Video 0.9.5+ image-to-video (Lightricks; diffusers' LTXConditionPipeline): the fast,
low-memory family. A 2B or 13B transformer over a VAE that compresses 32x a side and 8 frames
into one latent (frames = 8k+1, sizes multiples of 32), a T5-XXL text encoder; CFG's two passes
run as one batch. The distilled checkpoints run 8 steps at guidance 1 on their own timestep
list (the catalogue's `timesteps`), used when a job asks for exactly that many steps.
The condition pipeline, not LTXImageToVideoPipeline: the 0.9.5+ checkpoints are trained for its
per-token timesteps (the image as frame 0's condition), and only it takes a timestep list.

Runs the stock `__call__`, whose `callback_on_step_end` gives progress and cancel at every step;
each job gets its own flow-matching Euler scheduler from the pipeline's config, and the seed
drives a CPU generator, so the same seed gives the same video on any device.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

from i2vkit import catalogue
from i2vkit.runtime.pipelines import tiny
from i2vkit.runtime.pipelines.base import (
    EncodeDone,
    Family,
    Generation,
    begin,
    finish,
    fit,
    step_callback,
)

PIPELINE = "LTXConditionPipeline"


@torch.no_grad()
def run(pipe: Any, job: Generation) -> np.ndarray:
    from diffusers import FlowMatchEulerDiscreteScheduler

    s = job.request
    entry = catalogue.model(s.model)
    on_step = step_callback(job)

    # 1. Inputs: a cancelled job stops before any work; the image takes the video's aspect
    begin(job)
    image = fit(job.image, s.height, s.width)

    # 2. This job's own scheduler; a distilled checkpoint's own timesteps at its step count
    pipe.scheduler = FlowMatchEulerDiscreteScheduler.from_config(pipe.scheduler.config)
    timesteps = list(entry.timesteps) if len(entry.timesteps) == s.steps else None

    # 3. Encode, denoise, decode (the VAE decodes at the model's decode timestep):
    #    frames (1, F, C, H, W) in [0, 1]
    with EncodeDone(pipe, job):
        out = pipe(
            image=image,
            prompt=s.prompt,
            negative_prompt=s.negative_prompt or None,
            height=s.height,
            width=s.width,
            num_frames=s.frames,
            frame_rate=s.fps,
            num_inference_steps=None if timesteps else s.steps,
            timesteps=timesteps,
            guidance_scale=s.guidance,
            generator=torch.Generator("cpu").manual_seed(s.seed),
            output_type="pt",
            callback_on_step_end=on_step,
            **entry.call,
        )
    return finish(job, out.frames)


def build_tiny(seed: int = 0, scratch: Path | None = None) -> Any:
    """LTX-Video at toy sizes, fp32, on the CPU, with the real model's latent grid: the VAE
    patchifies 4x4 and downsamples three times in space and time (32x a side, 8 frames per
    latent), the transformer's patch is 1, and the decoder is timestep-conditioned."""
    from diffusers import (
        AutoencoderKLLTXVideo,
        FlowMatchEulerDiscreteScheduler,
        LTXConditionPipeline,
        LTXVideoTransformer3DModel,
    )
    from transformers import T5Config, T5EncoderModel

    tokenizer = tiny.t5_tokenizer()
    torch.manual_seed(seed)
    text_encoder = T5EncoderModel(
        T5Config(vocab_size=len(tokenizer), d_model=32, d_kv=8, d_ff=37, num_layers=2,
                 num_heads=4, relative_attention_num_buckets=8)
    ).eval()  # fmt: skip
    transformer = LTXVideoTransformer3DModel(
        in_channels=8, out_channels=8, patch_size=1, patch_size_t=1, num_attention_heads=2,
        attention_head_dim=12, cross_attention_dim=24, num_layers=2, caption_channels=32,
    )  # fmt: skip
    vae = AutoencoderKLLTXVideo(
        in_channels=3, out_channels=3, latent_channels=8, block_out_channels=(8, 8, 8, 8),
        decoder_block_out_channels=(8, 8, 8, 8), layers_per_block=(1, 1, 1, 1, 1),
        decoder_layers_per_block=(1, 1, 1, 1, 1),
        spatio_temporal_scaling=(True, True, True, False),
        decoder_spatio_temporal_scaling=(True, True, True, False),
        decoder_inject_noise=(False,) * 5, upsample_residual=(False,) * 4,
        upsample_factor=(1,) * 4, timestep_conditioning=True, patch_size=4, patch_size_t=1,
        encoder_causal=True, decoder_causal=False,
    )  # fmt: skip
    return LTXConditionPipeline(
        scheduler=FlowMatchEulerDiscreteScheduler(shift=1.0, use_dynamic_shifting=False),
        vae=vae, text_encoder=text_encoder, tokenizer=tokenizer, transformer=transformer,
    )  # fmt: skip


FAMILY = Family("ltx", run, build_tiny, pipeline=PIPELINE, denoiser="LTXVideoTransformer3DModel")
