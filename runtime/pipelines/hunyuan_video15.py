"""HunyuanVideo 1.5 image-to-video (Tencent; diffusers' HunyuanVideo15ImageToVideoPipeline): an
8.3B transformer over a VAE that compresses 16x a side and 4 frames into one latent (frames =
4k+1), two text encoders (Qwen2.5-VL-7B's language model, and byT5 for quoted text drawn in
the video), a SigLIP image encoder. CFG's two passes run one after the other (diffusers'
guider), each job at its own guidance.

The stock `__call__` has no step callback and picks the video's size itself (the bucket
nearest the image's aspect at the model's target size). So, per job: the scheduler is a fresh
one whose `step` reports progress and checks cancel (it stops at the next step); the image is
cropped to the asked size and the pipeline's size choice is pinned to it. The seed drives a
CPU generator: the same seed gives the same video on any device.
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
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

PIPELINE = "HunyuanVideo15ImageToVideoPipeline"


def stepping_scheduler(pipe: Any, shift: float | None, on_step: Any) -> Any:
    """A fresh flow-matching Euler scheduler for one job, at the model's shift, whose `step`
    calls `on_step` after each denoising step (the pipeline offers no callback of its own)."""
    from diffusers import FlowMatchEulerDiscreteScheduler

    config = dict(pipe.scheduler.config)
    if shift is not None:
        config["shift"] = shift
    scheduler = FlowMatchEulerDiscreteScheduler.from_config(config)
    step = scheduler.step
    done = 0

    def counted(*args: Any, **kwargs: Any) -> Any:
        nonlocal done
        out = step(*args, **kwargs)
        on_step(pipe, done, None, {})
        done += 1
        return out

    scheduler.step = counted
    return scheduler


@contextmanager
def sized(pipe: Any, height: int, width: int) -> Iterator[None]:
    """The pipeline's own size choice (nearest bucket at its target size) pinned to the job's."""
    processor = pipe.video_processor
    processor.calculate_default_height_width = lambda **_: (height, width)
    try:
        yield
    finally:
        del processor.calculate_default_height_width


@torch.no_grad()
def run(pipe: Any, job: Generation) -> np.ndarray:
    s = job.request

    # 1. Inputs: a cancelled job stops before any work; the image takes the video's size
    begin(job)
    image = fit(job.image, s.height, s.width)

    # 2. This job's scheduler (progress and cancel at each step) and guidance
    pipe.scheduler = stepping_scheduler(pipe, s.shift, step_callback(job))
    pipe.guider = pipe.guider.new(guidance_scale=s.guidance)

    # 3. Encode, denoise, decode: frames (1, F, C, H, W) in [0, 1]
    with EncodeDone(pipe, job), sized(pipe, s.height, s.width):
        out = pipe(
            image=image,
            prompt=s.prompt,
            negative_prompt=s.negative_prompt or None,
            num_frames=s.frames,
            num_inference_steps=s.steps,
            generator=torch.Generator("cpu").manual_seed(s.seed),
            output_type="pt",
        )
    return finish(job, out.frames)


# Qwen's chat template (tokenizer_config.json of Qwen2.5-VL), without the vision parts: the
# pipeline applies it to a system message and the prompt.
CHAT_TEMPLATE = (
    "{% for message in messages %}{{'<|im_start|>' + message['role'] + '\n' + message['content']"
    " + '<|im_end|>' + '\n'}}{% endfor %}{% if add_generation_prompt %}"
    "{{ '<|im_start|>assistant\n' }}{% endif %}"
)
SPECIAL = ("<|im_start|>", "<|im_end|>", "<|endoftext|>")


def qwen_tokenizer(folder: Path) -> Any:
    """A Qwen2 tokenizer with a byte-level vocabulary and no merges (every byte a token), Qwen's
    special tokens and chat template: written locally, the hub being unreachable here."""
    from transformers import Qwen2Tokenizer

    tiny.write_tokenizer(folder)
    vocab = json.loads((folder / "vocab.json").read_text())
    for token in SPECIAL:  # the CLIP alphabet has <|endoftext|> already
        vocab.setdefault(token, len(vocab))
    (folder / "vocab.json").write_text(json.dumps(vocab))
    specials: dict[str, Any] = {"unk_token": None, "bos_token": None}
    specials |= {"eos_token": "<|im_end|>", "pad_token": "<|endoftext|>"}
    tokenizer = Qwen2Tokenizer(str(folder / "vocab.json"), str(folder / "merges.txt"), **specials)
    tokenizer.chat_template = CHAT_TEMPLATE
    return tokenizer


def build_tiny(seed: int = 0, scratch: Path | None = None) -> Any:
    """HunyuanVideo 1.5 I2V at toy sizes, fp32, on the CPU, with the real latent grid (16x a
    side, 4 frames per latent, patch 1) and every component the real one has."""
    from diffusers import (
        AutoencoderKLHunyuanVideo15,
        ClassifierFreeGuidance,
        FlowMatchEulerDiscreteScheduler,
        HunyuanVideo15ImageToVideoPipeline,
        HunyuanVideo15Transformer3DModel,
    )
    from transformers import (
        ByT5Tokenizer,
        Qwen2_5_VLTextConfig,
        Qwen2_5_VLTextModel,
        SiglipImageProcessor,
        SiglipVisionConfig,
        SiglipVisionModel,
        T5Config,
        T5EncoderModel,
    )

    with tempfile.TemporaryDirectory() as tmp:
        tokenizer = qwen_tokenizer(Path(scratch or tmp) / "qwen-tokenizer")
    byt5 = ByT5Tokenizer()
    ids = tokenizer.convert_tokens_to_ids(list(SPECIAL))
    torch.manual_seed(seed)
    text_encoder = Qwen2_5_VLTextModel(Qwen2_5_VLTextConfig(
        vocab_size=len(tokenizer), hidden_size=32, intermediate_size=37, num_hidden_layers=3,
        num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=2048,
        rope_parameters={"rope_type": "default", "mrope_section": [1, 1, 2], "rope_theta": 1e6},
        bos_token_id=ids[2], eos_token_id=ids[1], pad_token_id=ids[2],
    )).eval()  # fmt: skip
    text_encoder_2 = T5EncoderModel(
        T5Config(vocab_size=len(byt5), d_model=32, d_kv=8, d_ff=37, num_layers=2, num_heads=4,
                 relative_attention_num_buckets=8)
    ).eval()  # fmt: skip
    image_encoder = SiglipVisionModel(SiglipVisionConfig(
        hidden_size=32, intermediate_size=37, num_hidden_layers=2, num_attention_heads=4,
        image_size=32, patch_size=8,
    )).eval()  # fmt: skip
    transformer = HunyuanVideo15Transformer3DModel(
        in_channels=9, out_channels=4, num_attention_heads=2, attention_head_dim=16,
        num_layers=2, num_refiner_layers=1, mlp_ratio=2.0, text_embed_dim=32,
        text_embed_2_dim=32, image_embed_dim=32, rope_axes_dim=(4, 6, 6), target_size=128,
    )  # fmt: skip
    vae = AutoencoderKLHunyuanVideo15(
        latent_channels=4, block_out_channels=(16, 16, 16, 16, 16), layers_per_block=1,
        spatial_compression_ratio=16, temporal_compression_ratio=4,
    )  # fmt: skip
    return HunyuanVideo15ImageToVideoPipeline(
        text_encoder=text_encoder, tokenizer=tokenizer, transformer=transformer, vae=vae,
        scheduler=FlowMatchEulerDiscreteScheduler(shift=5.0), text_encoder_2=text_encoder_2,
        tokenizer_2=byt5, guider=ClassifierFreeGuidance(guidance_scale=6.0),
        image_encoder=image_encoder,
        feature_extractor=SiglipImageProcessor(size={"height": 32, "width": 32}),
    )  # fmt: skip


FAMILY = Family(
    "hunyuan-video-1.5",
    run,
    build_tiny,
    pipeline=PIPELINE,
    denoiser="HunyuanVideo15Transformer3DModel",
)
