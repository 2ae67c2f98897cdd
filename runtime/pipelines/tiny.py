"""Parts the families' tiny twins share: a CLIP tokenizer written locally (the hub is not
reachable where the twins must build) and a tiny CLIP image encoder."""

from __future__ import annotations

import json
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


def clip_tokenizer(folder: Path) -> Any:
    from transformers import CLIPTokenizer

    write_tokenizer(folder)
    return CLIPTokenizer(
        str(folder / "vocab.json"), str(folder / "merges.txt"), model_max_length=77
    )


def image_encoder(image_size: int, patch_size: int) -> Any:
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


def t5_tokenizer() -> Any:
    """A T5/UMT5-style fast tokenizer, one token per printable ASCII character (the tokenizers
    package's WordLevel model over single characters): different prompts give different tokens,
    with no vocabulary to download."""
    from tokenizers import Regex, Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    vocab = {"<pad>": 0, "</s>": 1, "<unk>": 2}
    vocab |= {chr(c): 3 + i for i, c in enumerate(range(32, 127))}
    model = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<unk>"))  # noqa: S106 - a token
    model.pre_tokenizer = pre_tokenizers.Split(Regex("."), behavior="isolated")
    specials = {"pad_token": "<pad>", "eos_token": "</s>", "unk_token": "<unk>"}
    return PreTrainedTokenizerFast(tokenizer_object=model, model_max_length=512, **specials)


def umt5_encoder(vocab_size: int, d_model: int = 32) -> Any:
    """A tiny UMT5 text encoder (Wan's family uses UMT5-XXL), in eval mode: dropout off, so the
    same prompt always gives the same embedding."""
    from transformers import UMT5Config, UMT5EncoderModel

    config = UMT5Config(vocab_size=vocab_size, d_model=d_model, d_kv=8, d_ff=37, num_layers=2,
                        num_heads=4, relative_attention_num_buckets=8)  # fmt: skip
    return UMT5EncoderModel(config).eval()
