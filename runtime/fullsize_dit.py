"""Full-size LTX-Video, LTX-2 and HunyuanVideo 1.5 with random weights, and their FLOP counts on
the meta device (as runtime/fullsize.py does for Wan and I2VGen-XL; registered there).

Each family's configs are data (data/fullsize/ltx.toml, ltx2.toml, hunyuan-video-1.5.toml): a
repo's parts by name, each part's constructor arguments. `build_parts` makes them: a diffusers
model from its arguments, a transformers model from its config class. FLOPs count what the
stock pipeline runs: the transformer per step (twice under CFG), the encoders once per prompt,
the VAE.
"""

from __future__ import annotations

from typing import Any

import torch

from i2vkit import catalogue
from i2vkit.errors import UnknownNameError
from i2vkit.request import Request
from i2vkit.runtime import fullsize
from i2vkit.runtime.pipelines import hunyuan_video15, tiny

# diffusers or transformers class of each part, and the transformers config class where the
# part is a transformers model
CLASSES = {
    "ltx": {"transformer": ("LTXVideoTransformer3DModel", None),
            "vae": ("AutoencoderKLLTXVideo", None),
            "text_encoder": ("T5EncoderModel", "T5Config")},
    "hunyuan-video-1.5": {"transformer": ("HunyuanVideo15Transformer3DModel", None),
                          "vae": ("AutoencoderKLHunyuanVideo15", None),
                          "text_encoder": ("Qwen2_5_VLTextModel", "Qwen2_5_VLTextConfig"),
                          "text_encoder_2": ("T5EncoderModel", "T5Config"),
                          "image_encoder": ("SiglipVisionModel", "SiglipVisionConfig")},
    "ltx2": {"transformer": ("LTX2VideoTransformer3DModel", None),
             "connectors": ("pipelines.ltx2.LTX2TextConnectors", None),
             "vae": ("AutoencoderKLLTX2Video", None),
             "audio_vae": ("AutoencoderKLLTX2Audio", None),
             "vocoder": ("pipelines.ltx2.vocoder.LTX2Vocoder", None),
             "text_encoder": ("Gemma3ForConditionalGeneration", "Gemma3Config")},
}  # fmt: skip
LTX2_TEXT_TOKENS = 1024  # LTX2ImageToVideoPipeline's max_sequence_length
LTX_TEXT_TOKENS = 256  # LTXConditionPipeline's max_sequence_length: prompts are padded to it
HV15_TEXT_TOKENS = 1000  # the pipeline's tokenizer_max_length, after the template is cropped
HV15_GLYPH_TOKENS = 256  # byT5's max length (zeros, not encoded, when no text is quoted)


def parts_of(model_name: str) -> tuple[str, dict[str, Any]]:
    """(family, {part: config name}) of a full-size model of these families, by its repo."""
    entry = catalogue.model(model_name)
    if entry.family not in CLASSES:
        raise UnknownNameError("full-size LTX, LTX-2 or HunyuanVideo 1.5 model", model_name, ())
    repos = fullsize.config(entry.family)["repo"]
    if entry.repo_id not in repos:
        known = (m.name for m in catalogue.models() if m.repo_id in repos)
        raise UnknownNameError(f"full-size {entry.family} model", model_name, known)
    return entry.family, dict(repos[entry.repo_id])


def build_parts(family: str, spec: dict[str, Any], device: Any, dtype: torch.dtype) -> dict:
    import diffusers
    import transformers

    cfg = fullsize.config(family)
    parts: dict[str, Any] = {}
    with fullsize._building(device, dtype):
        for name, (cls, config_cls) in CLASSES[family].items():
            args = dict(cfg[name][spec[name]])
            if config_cls is None:
                parts[name] = _diffusers_class(diffusers, cls)(**args)
            else:
                config = getattr(transformers, config_cls)(**args)
                parts[name] = getattr(transformers, cls)(config).eval()
    for part in parts.values():
        fullsize._as_loaded(part, dtype)
    return parts


def _diffusers_class(diffusers: Any, name: str) -> Any:
    """A diffusers class by name; a dotted name is a module under diffusers (LTX-2's connectors
    and vocoder live in its pipeline's package)."""
    import importlib

    module, _, cls = name.rpartition(".")
    return getattr(importlib.import_module(f"diffusers.{module}") if module else diffusers, cls)


def build_ltx(model_name: str, device: Any = "cpu", dtype: torch.dtype = torch.bfloat16) -> Any:
    """A full-size LTX-Video model of the catalogue with random weights, as the family loads it
    (LTXConditionPipeline), built directly on `device` in `dtype`."""
    from diffusers import FlowMatchEulerDiscreteScheduler, LTXConditionPipeline

    family, spec = parts_of(model_name)
    parts = build_parts(family, spec, device, dtype)
    scheduler = FlowMatchEulerDiscreteScheduler(shift=1.0, use_dynamic_shifting=False,
                                                shift_terminal=0.1)  # fmt: skip
    return LTXConditionPipeline(**parts, tokenizer=tiny.t5_tokenizer(), scheduler=scheduler)


def build_hunyuan(model_name: str, device: Any = "cpu", dtype: torch.dtype = torch.bfloat16) -> Any:
    """A full-size HunyuanVideo 1.5 I2V model of the catalogue with random weights."""
    import tempfile
    from pathlib import Path

    from diffusers import (
        ClassifierFreeGuidance,
        FlowMatchEulerDiscreteScheduler,
        HunyuanVideo15ImageToVideoPipeline,
    )
    from transformers import ByT5Tokenizer, SiglipImageProcessor

    family, spec = parts_of(model_name)
    entry = catalogue.model(model_name)
    parts = build_parts(family, spec, device, dtype)
    with tempfile.TemporaryDirectory() as tmp:
        tokenizer = hunyuan_video15.qwen_tokenizer(Path(tmp))
    size = parts["image_encoder"].config.image_size
    return HunyuanVideo15ImageToVideoPipeline(
        **parts, tokenizer=tokenizer, tokenizer_2=ByT5Tokenizer(),
        scheduler=FlowMatchEulerDiscreteScheduler(shift=entry.shift or 5.0),
        guider=ClassifierFreeGuidance(guidance_scale=entry.guidance),
        feature_extractor=SiglipImageProcessor(size={"height": size, "width": size}),
    )  # fmt: skip


def build_ltx2(model_name: str, device: Any = "cpu", dtype: torch.dtype = torch.bfloat16) -> Any:
    """A full-size LTX-2 model of the catalogue with random weights (the tokenizer: the twin's,
    its ids all inside Gemma's vocabulary)."""
    from diffusers import FlowMatchEulerDiscreteScheduler, LTX2ImageToVideoPipeline

    from i2vkit.runtime.pipelines import ltx2

    family, spec = parts_of(model_name)
    parts = build_parts(family, spec, device, dtype)
    scheduler = FlowMatchEulerDiscreteScheduler(
        use_dynamic_shifting=True, base_shift=0.95, max_shift=2.05, base_image_seq_len=1024,
        max_image_seq_len=4096, shift_terminal=0.1,
    )  # fmt: skip
    return LTX2ImageToVideoPipeline(**parts, tokenizer=ltx2.gemma_tokenizer(), scheduler=scheduler)


def _latents(pipe: Any, s: Request) -> tuple[int, int, int]:
    """(frames, height, width) of the latents."""
    temporal, spatial = pipe.vae.temporal_compression_ratio, pipe.vae.spatial_compression_ratio
    return (s.frames - 1) // temporal + 1, s.height // spatial, s.width // spatial


def ltx_job_flops(pipe: Any, s: Request) -> dict[str, int]:
    """FLOPs of one LTX job as LTXConditionPipeline computes it: the transformer over the
    latent tokens with per-token timesteps, CFG batched (one forward of batch 2); T5 once per
    prompt; the image through the VAE encoder; the latents through the decoder."""
    passes = 2 if s.guidance > 1 else 1
    net, text, vae = (
        fullsize._meta_copy(m) for m in (pipe.transformer, pipe.text_encoder, pipe.vae)
    )
    frames, h, w = _latents(pipe, s)
    tokens = frames * h * w
    with torch.device("meta"), torch.no_grad():
        ids = torch.zeros(1, LTX_TEXT_TOKENS, dtype=torch.long)
        encode = passes * fullsize._count(lambda: text(input_ids=ids))
        encode += fullsize._count(lambda: vae.encode(torch.randn(1, 3, 1, s.height, s.width)))
        coords = torch.zeros(passes, 3, tokens)
        step = fullsize._count(lambda: net(
            hidden_states=torch.randn(passes, tokens, net.config.in_channels),
            encoder_hidden_states=torch.randn(passes, LTX_TEXT_TOKENS, net.config.caption_channels),
            timestep=torch.full((passes, tokens), 999.0),
            encoder_attention_mask=torch.ones(passes, LTX_TEXT_TOKENS),
            video_coords=coords, return_dict=False,
        ))  # fmt: skip
        latents = torch.randn(1, vae.config.latent_channels, frames, h, w)
        decode = fullsize._count(lambda: vae.decode(latents, temb=torch.zeros(1)))
    return fullsize._totals(step, s.steps, encode, decode)


def hunyuan_job_flops(pipe: Any, s: Request) -> dict[str, int]:
    """FLOPs of one HunyuanVideo 1.5 I2V job: the transformer over (noise + image latents +
    mask) with 1,000 prompt tokens, 256 glyph tokens and SigLIP's 729 image tokens, once per
    guidance pass; Qwen once per prompt; SigLIP and the VAE encoder on the image; the decode."""
    passes = 2 if s.guidance > 1 else 1
    net, text, vae, vision = (fullsize._meta_copy(m) for m in (
        pipe.transformer, pipe.text_encoder, pipe.vae, pipe.image_encoder))  # fmt: skip
    frames, h, w = _latents(pipe, s)
    size = vision.config.image_size
    image_tokens = (size // vision.config.patch_size) ** 2
    with torch.device("meta"), torch.no_grad():
        ids = torch.zeros(1, HV15_TEXT_TOKENS + 108, dtype=torch.long)
        encode = passes * fullsize._count(lambda: text(input_ids=ids))
        encode += fullsize._count(lambda: vision(pixel_values=torch.randn(1, 3, size, size)))
        encode += fullsize._count(lambda: vae.encode(torch.randn(1, 3, 1, s.height, s.width)))
        forward = _hunyuan_forward(net, frames, h, w, image_tokens)
        latents = torch.randn(1, vae.config.latent_channels, frames, h, w)
        decode = fullsize._count(lambda: vae.decode(latents))
    return fullsize._totals(passes * forward, s.steps, encode, decode)


def ltx2_passes(pipe: Any, s: Request) -> tuple[bool, bool, bool]:
    """Which guidance passes LTX2ImageToVideoPipeline runs each step: (CFG, as a batch of two
    when the video's or the audio's guidance is above 1; a spatio-temporal guidance pass; a
    modality-isolation pass), each on when its scale is (the pipeline's defaults unless the
    catalogue's `call` sets them)."""
    import inspect

    asked = {**{k: p.default for k, p in inspect.signature(type(pipe).__call__).parameters.items()},
             **catalogue.model(s.model).call, "guidance_scale": s.guidance}  # fmt: skip
    cfg = asked["guidance_scale"] > 1 or asked["audio_guidance_scale"] > 1
    stg = asked["stg_scale"] > 0 or asked["audio_stg_scale"] > 0
    modality = asked["modality_scale"] > 1 or asked["audio_modality_scale"] > 1
    return cfg, stg, modality


def ltx2_job_flops(pipe: Any, s: Request) -> dict[str, int]:
    """FLOPs of one LTX-2 job: the transformer over the video tokens and the audio tokens (the
    job's duration at the audio VAE's rate) with 1,024 prompt tokens, once per batch-1 pass of a
    step (ltx2_passes: 4 with the defaults); Gemma once per prompt (twice under CFG) and the
    connectors; the image through the video VAE's encoder; the video decode. The audio decode
    (audio VAE and vocoder, about 0.1 B parameters over a few hundred latent frames) is left
    out."""
    with_cfg, stg, modality = ltx2_passes(pipe, s)
    cfg = 2 if with_cfg else 1
    passes = cfg + int(stg) + int(modality)  # batch-1 forwards per step
    net, text, vae = (
        fullsize._meta_copy(m) for m in (pipe.transformer, pipe.text_encoder, pipe.vae)
    )
    connectors = fullsize._meta_copy(pipe.connectors)
    frames, h, w = _latents(pipe, s)
    audio_vae = pipe.audio_vae.config
    per_second = audio_vae.sample_rate / audio_vae.mel_hop_length / 4  # mel frames / latent
    audio_tokens = round(s.frames / s.fps * per_second)
    width = net.config.caption_channels
    with torch.device("meta"), torch.no_grad():
        ids = torch.zeros(1, LTX2_TEXT_TOKENS, dtype=torch.long)
        encode = cfg * fullsize._count(lambda: text(input_ids=ids, output_hidden_states=True))
        layers = text.config.text_config.num_hidden_layers + 1
        stacked = torch.randn(1, LTX2_TEXT_TOKENS, width * layers)
        mask = torch.ones(1, LTX2_TEXT_TOKENS)
        encode += cfg * fullsize._count(lambda: connectors(stacked, mask))
        encode += fullsize._count(lambda: vae.encode(torch.randn(1, 3, 1, s.height, s.width)))
        forward = fullsize._count(lambda: net(
            hidden_states=torch.randn(1, frames * h * w, net.config.in_channels),
            audio_hidden_states=torch.randn(1, audio_tokens, net.config.audio_in_channels),
            encoder_hidden_states=torch.randn(1, LTX2_TEXT_TOKENS, width),
            audio_encoder_hidden_states=torch.randn(1, LTX2_TEXT_TOKENS, width),
            timestep=torch.full((1, frames * h * w), 999.0), audio_timestep=torch.full((1,), 999.0),
            sigma=torch.ones(1), audio_sigma=torch.ones(1), encoder_attention_mask=mask,
            audio_encoder_attention_mask=mask, num_frames=frames, height=h, width=w,
            fps=float(s.fps), audio_num_frames=audio_tokens, return_dict=False,
        ))  # fmt: skip
        decode = fullsize._count(lambda: vae.decode(
            torch.randn(1, vae.config.latent_channels, frames, h, w)))  # fmt: skip
    return fullsize._totals(passes * forward, s.steps, encode, decode)


def _hunyuan_forward(net: Any, frames: int, h: int, w: int, image_tokens: int) -> int:
    """FLOPs of one HunyuanVideo 1.5 transformer forward. Its forward regroups the context
    tokens by their masks' values (boolean indexing: data the meta device does not have), so
    the parts are counted one by one: the prompt's token refiner, the patch embedding, the 54
    double-stream blocks over the video tokens with the joint context (the prompt's 1,000,
    byT5's 256 and SigLIP's tokens: all attended, every block the same), the output layer.
    The small embedders of timestep, glyphs and image are left out (under 0.1%)."""
    inner = net.config.num_attention_heads * net.config.attention_head_dim
    context = HV15_TEXT_TOKENS + HV15_GLYPH_TOKENS + image_tokens
    tokens = frames * h * w
    latents = torch.randn(1, net.config.in_channels, frames, h, w)
    prompt = torch.randn(1, HV15_TEXT_TOKENS, net.config.text_embed_dim)
    timestep = torch.full((1,), 999.0)
    rope = net.rope(latents)
    refiner = fullsize._count(
        lambda: net.context_embedder(prompt, timestep, torch.ones(1, HV15_TEXT_TOKENS))
    )
    embed = fullsize._count(lambda: net.x_embedder(latents))
    block = fullsize._count(lambda: net.transformer_blocks[0](
        torch.randn(1, tokens, inner), torch.randn(1, context, inner), torch.randn(1, inner),
        torch.ones(1, context, dtype=torch.bool), freqs_cis=rope,
    ))  # fmt: skip
    out = fullsize._count(lambda: net.proj_out(torch.randn(1, tokens, inner)))
    return refiner + embed + block * len(net.transformer_blocks) + out


BUILDERS = {"ltx": build_ltx, "ltx2": build_ltx2, "hunyuan-video-1.5": build_hunyuan}
FLOPS = {"ltx": ltx_job_flops, "ltx2": ltx2_job_flops, "hunyuan-video-1.5": hunyuan_job_flops}
