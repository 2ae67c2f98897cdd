"""Wan 2.x image-to-video (Wan-AI; diffusers' WanImageToVideoPipeline), every variant:

- Wan 2.1 I2V 14B (480P, 720P): one transformer, the image also through a CLIP encoder;
- Wan 2.2 I2V A14B: two experts, `transformer` for the high-noise steps and `transformer_2` for
  the rest, switched by the pipeline at `boundary_ratio` x 1000 (each with its own guidance);
- Wan 2.2 TI2V-5B: one transformer over a 16x-compressed VAE, the first frame blended into the
  latents at every step with per-token timesteps (`expand_timesteps`). Its repo is saved as a
  text-to-video WanPipeline; the image-to-video class loads it (PIPELINE below).

Runs the stock `__call__`, whose `callback_on_step_end` gives progress and cancel at every step;
the scheduler is made per job (UniPC or Euler over flow-matching sigmas, with the model's shift)
and the seed drives a CPU generator, so the same seed gives the same video on any device.
"""

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
    fit,
    step_callback,
)

PIPELINE = "WanImageToVideoPipeline"


def make_scheduler(pipe: Any, name: str, shift: float | None) -> Any:
    """A fresh flow-matching scheduler for one job: UniPC (the models' own) or Euler (what the
    few-step distilled LoRAs were trained with), at the model's flow shift."""
    from diffusers import FlowMatchEulerDiscreteScheduler, UniPCMultistepScheduler

    if name == "euler":
        return FlowMatchEulerDiscreteScheduler(shift=shift or 5.0)
    config = dict(pipe.scheduler.config)
    if shift is not None:
        config["flow_shift"] = shift
    return UniPCMultistepScheduler.from_config(
        config, prediction_type="flow_prediction", use_flow_sigmas=True
    )


@torch.no_grad()
def run(pipe: Any, job: Generation) -> np.ndarray:
    s = job.request

    on_step = step_callback(job)

    # 1. Inputs: a cancelled job stops before any work; the image takes the video's aspect
    begin(job)
    image = fit(job.image, s.height, s.width)

    # 2. This job's own scheduler: it holds per-call state, never shared between jobs
    pipe.scheduler = make_scheduler(pipe, s.scheduler, s.shift)
    two_experts = pipe.transformer_2 is not None and pipe.config.boundary_ratio is not None

    # 3. Encode, denoise (the pipeline switches experts at its boundary), decode:
    #    frames (1, F, C, H, W) in [0, 1]
    with EncodeDone(pipe, job):
        out = _call(pipe, s, image, two_experts, on_step)
    return finish(job, out.frames)


def _call(pipe: Any, s: Any, image: Any, two_experts: bool, on_step: Any) -> Any:
    return pipe(
        image=image,
        prompt=s.prompt,
        negative_prompt=s.negative_prompt or None,
        height=s.height,
        width=s.width,
        num_frames=s.frames,
        num_inference_steps=s.steps,
        guidance_scale=s.guidance,
        guidance_scale_2=(s.guidance_2 if s.guidance_2 is not None else s.guidance)
        if two_experts
        else None,
        generator=torch.Generator("cpu").manual_seed(s.seed),
        output_type="pt",
        callback_on_step_end=on_step,
    )


def _vae(kind: str) -> Any:
    from diffusers import AutoencoderKLWan

    if kind == "ti2v":  # Wan 2.2's VAE: 48 channels, 16x spatial compression, patchified input
        return AutoencoderKLWan(
            base_dim=3, z_dim=48, in_channels=12, out_channels=12, is_residual=True,
            patch_size=2, latents_mean=[0.0] * 48, latents_std=[1.0] * 48,
            dim_mult=[1, 1, 1, 1], num_res_blocks=1, scale_factor_spatial=16,
            scale_factor_temporal=4, temperal_downsample=[False, True, True],
        )  # fmt: skip
    return AutoencoderKLWan(
        base_dim=3, z_dim=16, dim_mult=[1, 1, 1, 1], num_res_blocks=1,
        temperal_downsample=[False, True, True],
    )  # fmt: skip


def _transformer(channels: tuple[int, int], image_dim: int | None = None) -> Any:
    from diffusers import WanTransformer3DModel

    return WanTransformer3DModel(
        patch_size=(1, 2, 2), num_attention_heads=2, attention_head_dim=12,
        in_channels=channels[0], out_channels=channels[1], text_dim=32, freq_dim=256,
        ffn_dim=32, num_layers=2, cross_attn_norm=True, qk_norm="rms_norm_across_heads",
        rope_max_seq_len=32, image_dim=image_dim,
        # Wan 2.1 I2V attends to the image tokens through their own key/value projections
        # (added_kv_proj_dim = the inner dim, 5120 at full size); diffusers' test twin omits them
        added_kv_proj_dim=24 if image_dim else None,
    )  # fmt: skip


def build_tiny(seed: int = 0, scratch: Path | None = None, twin: str = "ti2v") -> Any:
    """Wan at toy sizes (diffusers' own test components), fp32, on the CPU. `twin` picks the
    variant: 'ti2v' (Wan 2.2 TI2V-5B's shape), 'a14b' (Wan 2.2 I2V A14B's two experts) or 'i2v'
    (Wan 2.1 I2V, with a CLIP image encoder)."""
    from diffusers import UniPCMultistepScheduler, WanImageToVideoPipeline
    from transformers import CLIPImageProcessor

    if twin not in ("ti2v", "a14b", "i2v"):
        raise ValueError(f"Wan twin {twin!r} is unknown; known: ti2v, a14b, i2v")
    tokenizer = tiny.t5_tokenizer()
    torch.manual_seed(seed)
    parts: dict[str, Any] = {
        "tokenizer": tokenizer,
        "text_encoder": tiny.umt5_encoder(len(tokenizer)),
        "vae": _vae(twin),
        "scheduler": UniPCMultistepScheduler(
            prediction_type="flow_prediction", use_flow_sigmas=True, flow_shift=5.0
        ),
    }
    if twin == "ti2v":
        parts |= {"transformer": _transformer((48, 48)), "expand_timesteps": True}
    elif twin == "a14b":
        parts |= {"transformer": _transformer((36, 16)), "transformer_2": _transformer((36, 16)),
                  "boundary_ratio": 0.875}  # fmt: skip
    else:
        parts |= {"transformer": _transformer((36, 16), image_dim=32),
                  "image_encoder": tiny.image_encoder(image_size=32, patch_size=4),
                  "image_processor": CLIPImageProcessor(crop_size=32, size=32)}  # fmt: skip
    return WanImageToVideoPipeline(**parts)


def build_lora(twin: str, seed: int = 0, rank: int = 4) -> dict[str, dict[str, torch.Tensor]]:
    """A random LoRA for a tiny twin in LightX2V's own key format (`diffusion_model.blocks.N.
    self_attn.q.lora_down.weight`, `.alpha`; the image keys `k_img`/`v_img` for a 2.1 I2V
    twin), so loading it runs diffusers' converter for the real files. File names follow the
    releases: one per expert for A14B (Wan2.2-Lightning), one otherwise. Small (std 0.05):
    it moves the output without swamping it."""
    pipe = build_tiny(seed=seed, twin=twin)
    generator = torch.Generator().manual_seed(seed + 1)
    names = {"attn1": "self_attn", "attn2": "cross_attn"}
    projections = {"to_q": "q", "to_k": "k", "to_v": "v", "to_out.0": "o",
                   "add_k_proj": "k_img", "add_v_proj": "v_img"}  # fmt: skip

    def lora_for(transformer: Any) -> dict[str, torch.Tensor]:
        state: dict[str, torch.Tensor] = {}
        for i, block in enumerate(transformer.blocks):
            for attn, original in names.items():
                for proj, short in projections.items():
                    if not _has(block, attn, proj):
                        continue
                    layer = block.get_submodule(f"{attn}.{proj}")
                    key = f"diffusion_model.blocks.{i}.{original}.{short}"
                    down = torch.randn(rank, layer.in_features, generator=generator) * 0.05
                    up = torch.randn(layer.out_features, rank, generator=generator) * 0.05
                    state |= {f"{key}.lora_down.weight": down, f"{key}.lora_up.weight": up,
                              f"{key}.alpha": torch.tensor(float(rank))}  # fmt: skip
        return state

    if pipe.transformer_2 is not None:
        return {"high_noise_model.safetensors": lora_for(pipe.transformer),
                "low_noise_model.safetensors": lora_for(pipe.transformer_2)}  # fmt: skip
    return {"lora.safetensors": lora_for(pipe.transformer)}


def _has(block: Any, attn: str, proj: str) -> bool:
    try:
        return block.get_submodule(f"{attn}.{proj}") is not None
    except AttributeError:
        return False


FAMILY = Family(
    "wan",
    run,
    build_tiny,
    pipeline=PIPELINE,
    build_lora=build_lora,
    denoiser="WanTransformer3DModel",
)
