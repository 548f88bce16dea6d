"""The vicuna_v1 template: exact tokens, labels masked outside answers, image moved to the front."""

from __future__ import annotations

import pytest

from vlmtune_model import IGNORE_INDEX, normalize_turns, prompt_text, tiny_tokenizer, tokenize_conversation

SYSTEM_TOKENS = [
    "a",
    "chat",
    "between",
    "a",
    "curious",
    "user",
    "and",
    "an",
    "artificial",
    "intelligence",
    "assistant",
    ".",
    "the",
    "assistant",
    "gives",
    "helpful",
    ",",
    "detailed",
    ",",
    "and",
    "polite",
    "answers",
    "to",
    "the",
    "user",
    "'",
    "s",
    "questions",
    ".",
]  # noqa: E501


@pytest.fixture(scope="module")
def tokenizer():
    return tiny_tokenizer()


def conversation():
    return [
        {"from": "human", "value": "What colour is the square?\n<image>"},
        {"from": "gpt", "value": "Red"},
        {"from": "human", "value": "And the circle?"},
        {"from": "gpt", "value": "blue"},
    ]


def test_image_token_moves_to_the_front():
    turns = normalize_turns(conversation())
    assert turns[0].text == "<image>\nWhat colour is the square?"
    assert [t.role for t in turns] == ["human", "gpt", "human", "gpt"]


def test_exact_tokens_and_labels(tokenizer):
    result = tokenize_conversation(normalize_turns(conversation()), tokenizer, image_tokens=3, max_length=512)
    tokens = tokenizer.convert_ids_to_tokens(result.input_ids)
    expected = [
        "[CLS]",
        *SYSTEM_TOKENS,
        "user",
        ":",
        "<image>",
        "<image>",
        "<image>",
        "what",
        "colour",
        "is",
        "the",
        "square",
        "?",
        "assistant",
        ":",
        "red",
        "[SEP]",
        "user",
        ":",
        "and",
        "the",
        "circle",
        "?",
        "assistant",
        ":",
        "blue",
        "[SEP]",
    ]
    assert tokens == expected
    supervised = [tok for tok, label in zip(tokens, result.labels) if label != IGNORE_INDEX]
    assert supervised == ["red", "[SEP]", "blue", "[SEP]"]
    for token_id, label in zip(result.input_ids, result.labels):
        assert label in (IGNORE_INDEX, token_id)
    assert not result.truncated


def test_truncation_is_reported(tokenizer):
    result = tokenize_conversation(normalize_turns(conversation()), tokenizer, image_tokens=3, max_length=20)
    assert len(result.input_ids) == len(result.labels) == 20
    assert result.truncated


def test_text_only_conversation(tokenizer):
    turns = normalize_turns([{"from": "human", "value": "Hi"}, {"from": "gpt", "value": "hello"}])
    result = tokenize_conversation(turns, tokenizer, image_tokens=5, max_length=512)
    assert tokenizer.convert_tokens_to_ids("<image>") not in result.input_ids


def test_prompt_text_for_generation():
    turns = normalize_turns([{"from": "human", "value": "What shape? <image>"}], require_answer=False)
    assert prompt_text(turns).endswith("USER: <image>\nWhat shape? ASSISTANT:")


@pytest.mark.parametrize(
    "conversations, reason",
    [
        ([{"from": "human", "value": "<image> hi"}], "no assistant turn"),
        ([{"from": "gpt", "value": "x"}, {"from": "human", "value": "y"}], "alternate"),
        ([{"from": "human", "value": "<image> a <image>"}, {"from": "gpt", "value": "x"}], "once"),
        ([{"from": "robot", "value": "a"}, {"from": "gpt", "value": "x"}], "unknown speaker"),
    ],
)
def test_unusable_conversations_are_rejected(conversations, reason):
    with pytest.raises(ValueError, match=reason):
        normalize_turns(conversations)


def test_a_batch_of_conversations_tokenizes_as_each_alone():
    from vlmtune_model.template import tokenize_conversations

    tokenizer = tiny_tokenizer()
    conversations = [
        normalize_turns(
            [
                {"from": "human", "value": f"<image>\nQuestion {i}?"},
                {"from": "gpt", "value": "yes " * (8 * i)},
                {"from": "human", "value": "And then?"},
                {"from": "gpt", "value": "no"},
            ]
        )
        for i in range(1, 5)
    ]
    together = tokenize_conversations(conversations, tokenizer, image_tokens=9, max_length=80)
    alone = [tokenize_conversation(turns, tokenizer, image_tokens=9, max_length=80) for turns in conversations]
    assert together == alone and any(t.truncated for t in alone) and not all(t.truncated for t in alone)
