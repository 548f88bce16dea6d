"""MMMU's answer parsing: `parse_multi_choice_response`, `parse_open_response`, `eval_open` and `normalize_str`
of MMMU-Benchmark/MMMU at bb0b95a945998d91dfef37e969e07d49d1139438 (`mmmu/utils/eval_utils.py`), rule for rule.

When a multiple-choice answer names no option, MMMU picks one at random (`random.choice` after a global
`random.seed(42)`, so the pick depends on the order questions are scored in). vlmtune also picks at random, but from
a generator seeded with 42 and the question id: the same answer always gets the same pick, whatever else is scored.
"""

from __future__ import annotations

import random
import re
from collections.abc import Sequence

GUESS_SEED = 42
_EDGE_PUNCTUATION = (",", ".", "!", "?", ";", ":", "'")
_KEY_INDICATORS = ("could be ", "so ", "is ", "thus ", "therefore ", "final ", "answer ", "result ")
_NUMBER_WITH_COMMAS = re.compile(r"-?\b\d{1,3}(?:,\d{3})+\b")
_NUMBER_SCIENTIFIC = re.compile(r"-?\d+(?:\.\d+)?[eE][+-]?\d+")
_NUMBER_SIMPLE = re.compile(r"-?(?:\d+\.\d+|\.\d+|\d+\b)(?![eE][+-]?\d+)(?![,\d])")


def parse_multiple_choice(
    response: str, letters: Sequence[str], options: dict[str, str], question_id: str
) -> tuple[str, bool]:
    """(letter, guessed) as MMMU's `parse_multi_choice_response` reads `response`.

    Edge punctuation is stripped one character kind after another; then `(A)`-style letters, else letters
    standing between spaces, else (for answers longer than five words) option texts the answer contains; with
    several candidates the one whose mention comes last wins. With none, a seeded random letter (`guessed`).
    """
    for char in _EDGE_PUNCTUATION:
        response = response.strip(char)
    padded = f" {response} "
    candidates = [letter for letter in letters if f"({letter})" in padded]
    marker = "({})" if candidates else " {} "
    if not candidates:
        candidates = [letter for letter in letters if f" {letter} " in padded]
    by_text = False
    if not candidates and len(padded.split()) > 5:
        candidates = [letter for letter, text in options.items() if text.lower() in padded.lower()]
        by_text = bool(candidates)
    if not candidates:
        return random.Random(f"{GUESS_SEED}/{question_id}").choice(list(letters)), True
    if len(candidates) == 1:
        return candidates[0], False
    if by_text:
        positions = [padded.lower().rfind(options[letter].lower()) for letter in candidates]
    else:
        positions = [padded.rfind(marker.format(letter)) for letter in candidates]
    return candidates[positions.index(max(positions))], False  # first of equal maxima, as numpy's argmax


def _is_number(text: str) -> bool:
    try:
        float(text.replace(",", ""))
    except ValueError:
        return False
    return True


def normalize(text: str) -> list:
    """MMMU's `normalize_str`: a number rounded to 2 decimals, else lower-case text (a single character padded
    with a space on either side, so that it only matches as a word edge)."""
    text = text.strip()
    if _is_number(text):
        return [round(float(text.replace(",", "")), 2)]
    text = text.lower()
    return [f" {text}", f"{text} "] if len(text) == 1 else [text]


def _key_responses(response: str) -> list[str]:
    """The tails of each line after its last answer indicator ("is ", "so ", ...), shortest first found.

    As upstream, the text is lower-cased before it is split on `. ` followed by a capital letter, so only line
    breaks split it; `=` counts as an indicator in the last line only.
    """
    response = response.strip().strip(".").lower()
    lines = re.split(r"\.\s(?=[A-Z])|\n", response)
    keys = []
    for index, line in enumerate(lines):
        indicators = _KEY_INDICATORS + (("=",) if index == len(lines) - 1 else ())
        shortest = None
        for indicator in indicators:
            if indicator in line:
                tail = line.split(indicator)[-1].strip()
                if not shortest or len(tail) < len(shortest):
                    shortest = tail
        if shortest and shortest.strip() not in _EDGE_PUNCTUATION:
            keys.append(shortest)
    return keys or [response]


def extract_numbers(text: str) -> list[str]:
    """Numbers written with thousands commas, in scientific notation, or plainly, in that order."""
    return [*_NUMBER_WITH_COMMAS.findall(text), *_NUMBER_SCIENTIFIC.findall(text), *_NUMBER_SIMPLE.findall(text)]


def parse_open(response: str) -> list:
    """MMMU's `parse_open_response`: the key tails and every number in them, normalized, without duplicates."""
    keys = _key_responses(response)
    candidates = [*keys, *(number for key in keys for number in extract_numbers(key))]
    return list(dict.fromkeys(value for candidate in candidates for value in normalize(candidate)))


def is_right_open(gold: str | list[str], parsed: list) -> bool:
    """MMMU's `eval_open`: a text answer is right when a normalized gold text occurs in it; a number when it
    equals a normalized gold number."""
    golds = [value for answer in (gold if isinstance(gold, list) else [gold]) for value in normalize(str(answer))]
    for value in parsed:
        if isinstance(value, str):
            if any(isinstance(answer, str) and answer in value for answer in golds):
                return True
        elif value in golds:
            return True
    return False
