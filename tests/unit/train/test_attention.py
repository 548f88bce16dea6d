"""Which attention kernel runs: padded rows keep SDPA, packed rows get a kernel that follows sample boundaries."""

from __future__ import annotations

import pytest
from lever_helpers import tiny_model

from vlmtune.train.attention import choose_attention, set_language_attention


@pytest.mark.parametrize(
    ("packed", "device", "flash", "expected"),
    [
        (False, "cuda", True, "sdpa"),
        (False, "cpu", False, "sdpa"),
        (True, "cuda", True, "flash_attention_2"),
        (True, "cuda", False, "flex_attention"),
        (True, "cpu", False, "sdpa"),
    ],
)
def test_auto(packed, device, flash, expected):
    assert choose_attention("auto", packed, device, flash_installed=flash) == expected


def test_a_named_kernel_is_kept():
    assert choose_attention("sdpa", True, "cuda", flash_installed=True) == "sdpa"
    assert choose_attention("flex_attention", False, "cpu", flash_installed=False) == "flex_attention"


@pytest.mark.parametrize(("device", "flash"), [("cuda", False), ("cpu", True)])
def test_flash_attention_where_it_cannot_run_names_the_field(device, flash):
    with pytest.raises(ValueError, match=r"spec.training.attention: flash_attention_2 needs a GPU .* attention: auto"):
        choose_attention("flash_attention_2", True, device, flash_installed=flash)


def test_only_the_language_model_switches():
    model = tiny_model()
    set_language_attention(model, "eager")
    assert model.config.text_config._attn_implementation == "eager"
    assert model.config.vision_config._attn_implementation == "sdpa"
