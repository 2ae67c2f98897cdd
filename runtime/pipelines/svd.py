"""Stable Video Diffusion (stabilityai; diffusers' StableVideoDiffusionPipeline), through its
stock `__call__`, whose `callback_on_step_end` gives progress and cancel at every step."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

from i2vkit.runtime.pipelines import tiny
from i2vkit.runtime.pipelines.base import (
    EncodeDone,
    Family,
    Generation,
    begin,
    finish,
    make_scheduler,
    step_callback,
)


@torch.no_grad()
def run(pipe: Any, job: Generation) -> np.ndarray:
    s = job.request

    on_step = step_callback(job)

    begin(job)
    pipe.scheduler = make_scheduler(pipe, s.scheduler)
    with EncodeDone(pipe, job):
        out = _call(pipe, s, job.image, on_step)
    return finish(job, out.frames)


def _call(pipe: Any, s: Any, image: Any, on_step: Any) -> Any:
    return pipe(
        image=image,
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


def build_tiny(seed: int = 0, scratch: Path | None = None) -> Any:
    """A tiny Stable Video Diffusion pipeline (the SVD family's twin of `demo`)."""
    import torch
    from diffusers import (
        AutoencoderKLTemporalDecoder,
        EulerDiscreteScheduler,
        StableVideoDiffusionPipeline,
        UNetSpatioTemporalConditionModel,
    )
    from transformers import CLIPImageProcessor

    torch.manual_seed(seed)
    unet = UNetSpatioTemporalConditionModel(
        block_out_channels=(32, 64),
        layers_per_block=1,
        sample_size=32,
        in_channels=8,
        out_channels=4,
        down_block_types=("CrossAttnDownBlockSpatioTemporal", "DownBlockSpatioTemporal"),
        up_block_types=("UpBlockSpatioTemporal", "CrossAttnUpBlockSpatioTemporal"),
        cross_attention_dim=32,
        num_attention_heads=4,
        projection_class_embeddings_input_dim=96,
        addition_time_embed_dim=32,
    )
    vae = AutoencoderKLTemporalDecoder(
        block_out_channels=[32, 32, 64, 64],  # its GroupNorms use 32 groups
        in_channels=3,
        out_channels=3,
        down_block_types=["DownEncoderBlock2D"] * 4,
        latent_channels=4,
    )
    # the SVD pipeline resizes its conditioning image to 224 itself
    image_encoder = tiny.image_encoder(image_size=224, patch_size=32)
    scheduler = EulerDiscreteScheduler(
        beta_start=0.00085,
        beta_end=0.012,
        beta_schedule="scaled_linear",
        interpolation_type="linear",
        num_train_timesteps=1000,
        prediction_type="v_prediction",
        sigma_max=700.0,
        sigma_min=0.002,
        steps_offset=1,
        timestep_spacing="leading",
        timestep_type="continuous",
        use_karras_sigmas=True,
    )
    return StableVideoDiffusionPipeline(
        vae=vae,
        image_encoder=image_encoder,
        unet=unet,
        scheduler=scheduler,
        feature_extractor=CLIPImageProcessor(crop_size=32, size=32),
    )


FAMILY = Family("svd", run, build_tiny, denoiser="UNetSpatioTemporalConditionModel")
