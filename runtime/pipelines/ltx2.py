"""LTX-2 image-to-video (Lightricks; diffusers' LTX2ImageToVideoPipeline): video and its sound in
one model. A 19B transformer denoises video and audio latents together (the audio branch cannot
be switched off: it is about 11% of a forward), over a 32x / 8-frame VAE (sizes multiples of 32,
frames 8k+1); a Gemma 3 12B text encoder through text connectors; the audio decoded by an audio
VAE and a vocoder. Each step runs CFG as a batch of two, plus one spatio-temporal-guidance pass
and one modality-isolation pass (the pipeline's defaults).

Runs the stock `__call__` (its `callback_on_step_end` gives progress and cancel at every step);
each job gets its own scheduler and a CPU generator. The audio goes to `job.audio`, which the
runner muxes into the mp4 as an AAC track.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

from i2vkit import catalogue
from i2vkit.runtime.pipelines.base import (
    Audio,
    EncodeDone,
    Family,
    Generation,
    begin,
    finish,
    fit,
    step_callback,
)

PIPELINE = "LTX2ImageToVideoPipeline"


@torch.no_grad()
def run(pipe: Any, job: Generation) -> np.ndarray:
    from diffusers import FlowMatchEulerDiscreteScheduler

    s = job.request
    entry = catalogue.model(s.model)
    on_step = step_callback(job)

    # 1. Inputs: a cancelled job stops before any work; the image takes the video's aspect
    begin(job)
    image = fit(job.image, s.height, s.width)

    # 2. This job's own scheduler
    pipe.scheduler = FlowMatchEulerDiscreteScheduler.from_config(pipe.scheduler.config)

    # 3. Encode, denoise video and audio together, decode both: frames (1, F, C, H, W) in
    #    [0, 1], audio (1, channels, samples)
    with EncodeDone(pipe, job):
        out = pipe(
            image=image,
            prompt=s.prompt,
            negative_prompt=s.negative_prompt or None,
            height=s.height,
            width=s.width,
            num_frames=s.frames,
            frame_rate=float(s.fps),
            num_inference_steps=s.steps,
            guidance_scale=s.guidance,
            generator=torch.Generator("cpu").manual_seed(s.seed),
            output_type="pt",
            callback_on_step_end=on_step,
            **entry.call,
        )
    sound = out.audio[0].float().cpu().numpy()  # (channels, samples)
    job.audio = Audio(sound, int(pipe.vocoder.config.output_sampling_rate))
    return finish(job, out.frames)


SPECIAL = ("<pad>", "<eos>", "<bos>", "<unk>", "<mask>", "<start_of_image>", "<end_of_image>",
           "<image_soft_token>")  # fmt: skip


def gemma_tokenizer() -> Any:
    """A Gemma tokenizer built in code: Gemma's special tokens, 256 byte-fallback tokens, the
    printable ASCII characters and "▁" for spaces (no merges needed); the hub is not reachable
    where the twins build."""
    from transformers import GemmaTokenizer

    vocab = {token: i for i, token in enumerate(SPECIAL)}
    vocab |= {f"<0x{b:02X}>": len(SPECIAL) + b for b in range(256)}
    for ch in ["▁"] + [chr(c) for c in range(33, 127)]:
        vocab.setdefault(ch, len(vocab))
    tokenizer = GemmaTokenizer(vocab=vocab, merges=[], model_max_length=1024,
                                   add_bos_token=True)  # fmt: skip
    tokenizer.padding_side = "left"  # as the LTX-2 pipeline pads Gemma's prompts
    return tokenizer


def _text_encoder(tokenizer: Any) -> Any:
    from transformers import Gemma3Config, Gemma3ForConditionalGeneration

    ids = {name: tokenizer.convert_tokens_to_ids(name) for name in SPECIAL}
    text = {"vocab_size": len(tokenizer), "hidden_size": 32, "intermediate_size": 64,
            "num_hidden_layers": 2, "num_attention_heads": 2, "num_key_value_heads": 1,
            "head_dim": 16, "query_pre_attn_scalar": 16, "max_position_embeddings": 2048,
            "sliding_window": 64, "layer_types": ["sliding_attention", "full_attention"],
            "pad_token_id": ids["<pad>"], "eos_token_id": ids["<eos>"],
            "bos_token_id": ids["<bos>"]}  # fmt: skip
    vision = {"hidden_size": 16, "intermediate_size": 32, "num_hidden_layers": 1,
              "num_attention_heads": 2, "image_size": 8, "patch_size": 2,
              "vision_use_head": False}  # fmt: skip
    config = Gemma3Config(text_config=text, vision_config=vision, mm_tokens_per_image=4,
                          boi_token_index=ids["<start_of_image>"],
                          eoi_token_index=ids["<end_of_image>"],
                          image_token_index=ids["<image_soft_token>"])  # fmt: skip
    return Gemma3ForConditionalGeneration(config).eval()


def build_tiny(seed: int = 0, scratch: Path | None = None) -> Any:
    """LTX-2 (2.0's layout) at toy sizes, fp32, on the CPU, with the real model's grids: the
    video VAE's 32x a side and 8 frames per latent, the audio VAE's 16 kHz mel (hop 160) and a
    vocoder that upsamples 240x to 24 kHz stereo. After diffusers' own test components."""
    from diffusers import (
        AutoencoderKLLTX2Audio,
        AutoencoderKLLTX2Video,
        FlowMatchEulerDiscreteScheduler,
        LTX2ImageToVideoPipeline,
        LTX2VideoTransformer3DModel,
    )
    from diffusers.pipelines.ltx2 import LTX2TextConnectors
    from diffusers.pipelines.ltx2.vocoder import LTX2Vocoder

    torch.manual_seed(seed)
    tokenizer = gemma_tokenizer()
    text_encoder = _text_encoder(tokenizer)
    mel_bins, audio_latent = 16, 2
    audio_in = audio_latent * (mel_bins // 4)  # a packed audio token's width
    transformer = LTX2VideoTransformer3DModel(
        in_channels=8, out_channels=8, patch_size=1, patch_size_t=1, num_attention_heads=2,
        attention_head_dim=8, cross_attention_dim=16, vae_scale_factors=(8, 32, 32),
        audio_in_channels=audio_in, audio_out_channels=audio_in, audio_num_attention_heads=2,
        audio_attention_head_dim=4, audio_cross_attention_dim=8, num_layers=2,
        qk_norm="rms_norm_across_heads", caption_channels=32, rope_double_precision=True,
        rope_type="split", use_prompt_embeddings=True,
    )  # fmt: skip
    connectors = LTX2TextConnectors(
        caption_channels=32, text_proj_in_factor=3, video_connector_num_layers=1,
        video_connector_num_learnable_registers=8, audio_connector_num_layers=1,
        audio_connector_num_learnable_registers=8, connector_rope_base_seq_len=64,
        rope_theta=10000.0, rope_double_precision=True, causal_temporal_positioning=False,
        rope_type="split", video_connector_num_attention_heads=4,
        video_connector_attention_head_dim=8, audio_connector_num_attention_heads=4,
        audio_connector_attention_head_dim=8, per_modality_projections=False,
    )  # fmt: skip
    vae = AutoencoderKLLTX2Video(
        in_channels=3, out_channels=3, latent_channels=8, block_out_channels=(8, 16, 32, 32),
        down_block_types=("LTX2VideoDownBlock3D",) * 4, decoder_block_out_channels=(8, 16, 32),
        layers_per_block=(1, 1, 1, 1, 1), decoder_layers_per_block=(1, 1, 1, 1),
        spatio_temporal_scaling=(True, True, True, True),
        decoder_spatio_temporal_scaling=(True, True, True),
        decoder_inject_noise=(False, False, False, False),
        downsample_type=("spatial", "temporal", "spatiotemporal", "spatiotemporal"),
        upsample_type=("spatiotemporal",) * 3, upsample_residual=(True, True, True),
        upsample_factor=(2, 2, 2), timestep_conditioning=False, patch_size=4, patch_size_t=1,
        encoder_causal=True, decoder_causal=False, spatial_compression_ratio=32,
        temporal_compression_ratio=8,
    )  # fmt: skip
    audio_vae = AutoencoderKLLTX2Audio(
        base_channels=audio_in, output_channels=2, ch_mult=(1, 2, 4), num_res_blocks=1,
        attn_resolutions=None, in_channels=2, resolution=32, latent_channels=audio_latent,
        norm_type="pixel", causality_axis="height", dropout=0.0, mid_block_add_attention=False,
        sample_rate=16000, mel_hop_length=160, is_causal=True, mel_bins=mel_bins, double_z=True,
    )  # fmt: skip
    vocoder = LTX2Vocoder(
        in_channels=2 * mel_bins, hidden_channels=64, out_channels=2,
        upsample_kernel_sizes=[12, 10, 4, 4, 4], upsample_factors=[6, 5, 2, 2, 2],
        resnet_kernel_sizes=[3], resnet_dilations=[[1, 3, 5]], leaky_relu_negative_slope=0.1,
        output_sampling_rate=24000,
    )  # fmt: skip
    scheduler = FlowMatchEulerDiscreteScheduler(
        use_dynamic_shifting=True, base_shift=0.95, max_shift=2.05, base_image_seq_len=1024,
        max_image_seq_len=4096, shift_terminal=0.1,
    )  # fmt: skip
    return LTX2ImageToVideoPipeline(
        scheduler=scheduler, vae=vae, audio_vae=audio_vae, text_encoder=text_encoder,
        tokenizer=tokenizer, connectors=connectors, transformer=transformer, vocoder=vocoder,
    )  # fmt: skip


FAMILY = Family("ltx2", run, build_tiny, pipeline=PIPELINE, denoiser="LTX2VideoTransformer3DModel")
