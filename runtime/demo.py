"""The `demo` model: a tiny I2VGen-XL-shaped pipeline with random weights, built locally.

It runs the whole path (setup, serve, generate) on any machine, with no GPU and no hub. The
shapes follow diffusers' own `get_dummy_components`, scaled so that the VAE downsamples by 8
like the real one (latents are 1/8 of the frame): the runtime's code paths and the memory
model see the same structure as the full-size model. A tiny SVD twin serves the SVD family.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from pathlib import Path
from typing import Any

# The byte-level alphabet GPT-2/CLIP tokenizers use: printable bytes map to themselves, the
# rest to code points above 255 (the same table as transformers' bytes_to_unicode).
_PRINTABLE = [*range(33, 127), *range(161, 173), *range(174, 256)]


def _byte_alphabet() -> list[str]:
    extra = [b for b in range(256) if b not in _PRINTABLE]
    return [chr(b) for b in _PRINTABLE] + [chr(256 + i) for i in range(len(extra))]


def write_tokenizer(folder: Path) -> None:
    """A CLIP tokenizer with a byte-level vocabulary and no merges: every byte is a token.

    Written locally because the hub is not reachable where the demo must run."""
    folder.mkdir(parents=True, exist_ok=True)
    alphabet = _byte_alphabet()
    tokens = [*alphabet, *(c + "</w>" for c in alphabet), "<|startoftext|>", "<|endoftext|>"]
    (folder / "vocab.json").write_text(json.dumps({t: i for i, t in enumerate(tokens)}))
    (folder / "merges.txt").write_text("#version: 0.2\n")


def _tokenizer(folder: Path) -> Any:
    from transformers import CLIPTokenizer

    write_tokenizer(folder)
    return CLIPTokenizer(
        str(folder / "vocab.json"), str(folder / "merges.txt"), model_max_length=77
    )


def _image_encoder(image_size: int, patch_size: int) -> Any:
    from transformers import CLIPVisionConfig, CLIPVisionModelWithProjection

    return CLIPVisionModelWithProjection(
        CLIPVisionConfig(
            hidden_size=32,
            projection_dim=32,
            num_hidden_layers=2,
            num_attention_heads=4,
            image_size=image_size,
            intermediate_size=64,
            patch_size=patch_size,
        )
    )


def build_i2vgen_xl(seed: int = 0, scratch: Path | None = None) -> Any:
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
        tokenizer = _tokenizer(Path(scratch or tmp) / "tokenizer")
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
    image_encoder = _image_encoder(image_size=32, patch_size=4)
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


def build_svd(seed: int = 0) -> Any:
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
    image_encoder = _image_encoder(image_size=224, patch_size=32)
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


BUILDERS = {"i2vgen-xl": build_i2vgen_xl, "svd": build_svd}


def save(folder: Path, family: str = "i2vgen-xl", seed: int = 0) -> Path:
    """Build the tiny model of `family` and save it to `folder` atomically (temp + rename)."""
    folder = Path(folder)
    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{folder.name}.", dir=folder.parent))
    try:
        BUILDERS[family](seed=seed).save_pretrained(tmp)
        if folder.exists():
            shutil.rmtree(folder)
        tmp.rename(folder)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return folder
