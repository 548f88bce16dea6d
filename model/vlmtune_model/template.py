"""The vicuna_v1 chat template and LLaVA-1.5's supervised tokenization.

Loss is taken only on assistant answers and the end token that closes them; everything else
(system prompt, user turns, image tokens, role tags) is masked with -100, as in LLaVA's
`preprocess_v1`. Each piece is tokenized on its own and concatenated, so the masked span is exact
by construction instead of being re-derived from token counts afterwards.
"""

from __future__ import annotations

from dataclasses import dataclass

from transformers import PreTrainedTokenizerBase

from vlmtune_model.tokenizer import IGNORE_INDEX, IMAGE_TOKEN

SYSTEM_VICUNA_V1 = (
    "A chat between a curious user and an artificial intelligence assistant. "
    "The assistant gives helpful, detailed, and polite answers to the user's questions."
)
USER, ASSISTANT = "USER", "ASSISTANT"


@dataclass(frozen=True)
class Turn:
    role: str  # "human" or "gpt", as in LLaVA / Vision-Flan records
    text: str


@dataclass(frozen=True)
class Tokenized:
    input_ids: list[int]
    labels: list[int]
    truncated: bool


def normalize_turns(conversations: list[dict], require_answer: bool = True) -> list[Turn]:
    """Vision-Flan/LLaVA turns -> Turn list, `<image>` moved to the front of the first human turn.

    `require_answer=False` accepts a prompt that ends on a human turn (for generation).

    Raises:
        ValueError: when there is no assistant answer, roles do not alternate, or `<image>` is misplaced.
    """
    turns = [Turn(_role(c.get("from")), str(c.get("value", ""))) for c in conversations]
    if not turns or (require_answer and not any(t.role == "gpt" and t.text.strip() for t in turns)):
        raise ValueError("no assistant turn")
    if turns[0].role != "human" or any(a.role == b.role for a, b in zip(turns, turns[1:])):
        raise ValueError("turns must alternate human/gpt, starting with human")
    image_turns = [i for i, turn in enumerate(turns) if IMAGE_TOKEN in turn.text]
    images = sum(turn.text.count(IMAGE_TOKEN) for turn in turns)
    if images > 1 or (image_turns and turns[image_turns[0]].role != "human"):
        raise ValueError(f"{IMAGE_TOKEN} must appear once, in a human turn")
    if image_turns:
        # LLaVA-1.5 feeds the image first, wherever the record placed the token.
        turns = [Turn(t.role, t.text.replace(IMAGE_TOKEN, "").strip()) for t in turns]
        turns[0] = Turn("human", f"{IMAGE_TOKEN}\n{turns[0].text}")
    return turns


def prompt_text(turns: list[Turn], system: str = SYSTEM_VICUNA_V1, eos: str = "</s>") -> str:
    """The vicuna_v1 prompt for generation: history plus an open assistant turn.

    Args:
        turns: normalized turns, ending on a human turn.
        system: the system prompt.
        eos: the text of the tokenizer's eos token, which closes earlier answers (training's end token).
    """
    text = system + " "
    for turn in turns:
        if turn.role == "human":
            text += f"{USER}: {turn.text} {ASSISTANT}:"
        else:
            text += f" {turn.text}{eos}"
    return text


def tokenize_conversation(
    turns: list[Turn],
    tokenizer: PreTrainedTokenizerBase,
    *,
    image_tokens: int,
    max_length: int,
    system: str = SYSTEM_VICUNA_V1,
) -> Tokenized:
    """Token ids and labels for supervised training on `turns`.

    Args:
        turns: normalized turns (see `normalize_turns`).
        tokenizer: tokenizer with `<image>` registered.
        image_tokens: how many placeholder tokens one image expands to (vision tower patches).
        max_length: truncate to this many tokens.

    Returns:
        ids, labels (-100 outside answers) and whether truncation cut the sample.
    """
    return tokenize_conversations([turns], tokenizer, image_tokens=image_tokens, max_length=max_length, system=system)[
        0
    ]


def tokenize_conversations(
    conversations: list[list[Turn]],
    tokenizer: PreTrainedTokenizerBase,
    *,
    image_tokens: int,
    max_length: int,
    system: str = SYSTEM_VICUNA_V1,
) -> list[Tokenized]:
    """`tokenize_conversation` for many conversations with one tokenizer call.

    Each piece (a human turn with its template text, or an answer) is still tokenized on its own; one
    call for a whole batch only saves the per-call bookkeeping, which on short Vision-Flan prompts costs
    as much as the encoding itself.
    """
    image_id = tokenizer.convert_tokens_to_ids(IMAGE_TOKEN)
    texts = [text for turns in conversations for text in _piece_texts(turns, system)]
    pieces = iter(tokenizer(texts, add_special_tokens=False).input_ids) if texts else iter(())
    results = []
    for turns in conversations:
        ids, labels = [tokenizer.bos_token_id], [IGNORE_INDEX]
        for turn in turns:
            piece = _expand(next(pieces), image_id, image_tokens)
            if turn.role == "human":
                ids += piece
                labels += [IGNORE_INDEX] * len(piece)
            else:
                piece = piece + [tokenizer.eos_token_id]
                ids += piece
                labels += piece
        results.append(Tokenized(ids[:max_length], labels[:max_length], len(ids) > max_length))
    return results


def _piece_texts(turns: list[Turn], system: str) -> list[str]:
    texts, prefix = [], system + " "
    for turn in turns:
        if turn.role == "human":
            texts.append(f"{prefix}{USER}: {turn.text} {ASSISTANT}:")
            prefix = ""
        else:
            texts.append(turn.text)
    return texts


def _expand(ids: list[int], image_id: int, image_tokens: int) -> list[int]:
    if image_id not in ids:
        return ids
    expanded = []
    for token in ids:
        expanded.extend([image_id] * image_tokens if token == image_id else [token])
    return expanded


def _role(value: object) -> str:
    if value in ("human", "user"):
        return "human"
    if value in ("gpt", "assistant"):
        return "gpt"
    raise ValueError(f"unknown speaker {value!r} (expected human/gpt)")
