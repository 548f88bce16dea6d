"""LLaVA-Bench (in the wild): a judge compares the model's answer with GPT-4's reference answer, as LLaVA does.

Reference: haotian-liu/LLaVA at 181a2f811f1eb0b794c25e87204491d812c05f8d, `llava/eval/eval_gpt_review_bench.py`
(review prompt and score parsing), `llava/eval/table/rule.json` (the `llava_bench_{conv,detail,complex}` rules)
and `llava/eval/summarize_gpt_review.py` (relative score).

- Data layout (liuhaotian/llava-bench-in-the-wild): a folder with `questions.jsonl` ({question_id, image, text,
  category}), `context.jsonl` ({id, image, caption}), `answers_gpt4.jsonl` ({question_id, text}) and `images/`.
  The model is asked the question text as is (LLaVA's `model_vqa.py`).
- Review: system message "You are a helpful and precise assistant for checking the quality of the answer.",
  one user message `[Context] caption [Question] ... [Assistant 1] GPT-4's answer [Assistant 2] the model's
  answer [System] rule prompt`, temperature 0.2, up to 1024 tokens. The caption is used as written: upstream joins
  it with newlines, which for the released file (a caption string, not a list) puts every character on its own
  line; lmms-eval and vlmtune send the sentence.
- Parsing (`parse_score`): the reply's first line, commas read as spaces, split on single spaces; exactly two
  numbers are (reference score, model score), anything else does not parse. vlmtune also refuses NaN/infinity.
- Relative score: mean model score / mean reference score x 100, per category and over all questions. Upstream
  averages an unparsable reply in as (-1, -1); vlmtune leaves it out, counts it (`unparsable`), and also gives the
  figure upstream would print (`relativeUpstream`: means rounded to 3 places, the ratio to 1).
- A question without a prediction is reviewed as an empty answer (it costs a request; the judge scores it low).
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass

from vlmtune import storage
from vlmtune.eval.items import Item, take_per_group
from vlmtune.eval.judge.requests import JudgeRequest

SYSTEM = "You are a helpful and precise assistant for checking the quality of the answer."
ROLE = "Assistant"
CATEGORIES = ("conv", "detail", "complex")
# rule.json's llava_bench_conv, llava_bench_detail and llava_bench_complex prompts (identical text).
RULE = (
    "We would like to request your feedback on the performance of two AI assistants in response to the user "
    "question displayed above. The user asks the question on observing an image. For your reference, the "
    "visual content in the image is represented with a few sentences describing the image. \n"
    "Please rate the helpfulness, relevance, accuracy, level of details of their responses. Each assistant "
    "receives an overall score on a scale of 1 to 10, where a higher score indicates better overall "
    "performance.\n"
    "Please first output a single line containing only two values indicating the scores for Assistant 1 and "
    "2, respectively. The two scores are separated by a space.\n"
    "In the subsequent line, please provide a comprehensive explanation of your evaluation, avoiding any "
    "potential bias and ensuring that the order in which the responses were presented does not affect your "
    "judgment."
)
RULES = {category: RULE for category in CATEGORIES}
TEMPERATURE, MAX_TOKENS = 0.2, 1024
FILES = ("questions.jsonl", "context.jsonl", "answers_gpt4.jsonl")


def review_prompt(context: str, question: str, reference: str, answer: str, category: str) -> str:
    """The user message of one review (reference answer first, as LLaVA's `llavabench.sh` orders them)."""
    return (
        f"[Context]\n{context}\n\n"
        f"[Question]\n{question}\n\n"
        f"[{ROLE} 1]\n{reference}\n\n[End of {ROLE} 1]\n\n"
        f"[{ROLE} 2]\n{answer}\n\n[End of {ROLE} 2]\n\n"
        f"[System]\n{RULES[category]}\n\n"
    )


def parse_score(review: str | None) -> tuple[float, float] | None:
    """(reference score, model score) from the reply's first line, or None when it does not parse."""
    if review is None:
        return None
    parts = review.split("\n")[0].replace(",", " ").split(" ")
    if len(parts) != 2:
        return None
    try:
        pair = (float(parts[0]), float(parts[1]))
    except ValueError:
        return None
    return pair if all(math.isfinite(value) for value in pair) else None


def next_request(item: Item, prediction: str | None, replies: Sequence[str]) -> JudgeRequest | None:
    """One review per question."""
    if replies:
        return None
    user = review_prompt(item.extra["context"], item.question, item.answer, prediction or "", item.group)
    return JudgeRequest(user=user, system=SYSTEM, temperature=TEMPERATURE, max_tokens=MAX_TOKENS)


# ------------------------------------------------------------------------------------------------------ data


def _jsonl(uri: str) -> list[dict]:
    rows = []
    for number, line in enumerate(storage.read_bytes(uri).decode("utf-8").splitlines(), start=1):
        if line.strip():
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError as err:
                raise ValueError(f"{uri} line {number}: not JSON ({err.msg})") from None
    return rows


def _caption(value) -> str:
    return "\n".join(map(str, value)) if isinstance(value, list) else str(value)


def load(uri: str, limit: int | None = None) -> list[Item]:
    """LLaVA-Bench questions with their GPT-4 reference answers and captions; `limit` counts per category."""
    missing = [name for name in FILES if not storage.exists(storage.join(uri, name))]
    if missing:
        raise FileNotFoundError(f"{uri}: no {', '.join(missing)}; give the llava-bench-in-the-wild folder")
    contexts = {row["image"]: _caption(row["caption"]) for row in _jsonl(storage.join(uri, "context.jsonl"))}
    references = {str(row["question_id"]): row["text"] for row in _jsonl(storage.join(uri, "answers_gpt4.jsonl"))}
    items = []
    for row in _jsonl(storage.join(uri, "questions.jsonl")):
        qid, category = str(row["question_id"]), row["category"]
        if category not in RULES:
            raise ValueError(
                f"{uri}/questions.jsonl: question {qid} has category {category!r}; LLaVA's rule.json "
                f"has review prompts for {', '.join(CATEGORIES)}"
            )
        if qid not in references or row["image"] not in contexts:
            raise ValueError(f"{uri}: question {qid} has no reference answer or no context for {row['image']}")
        items.append(
            Item(
                question_id=qid,
                question=row["text"],
                prompt=row["text"],
                image=storage.read_bytes(storage.join(uri, "images", row["image"])),
                answer=references[qid],
                group=category,
                extra={"context": contexts[row["image"]]},
            )
        )
    return take_per_group(items, limit)


# --------------------------------------------------------------------------------------------------- scoring


@dataclass(frozen=True)
class Review:
    category: str
    scores: tuple[float, float] | None
    """(reference, model), or None when the judge's reply did not parse."""


def _summary(reviews: Sequence[Review]) -> dict:
    parsed = [review.scores for review in reviews if review.scores is not None]
    reference = sum(pair[0] for pair in parsed) / len(parsed) if parsed else None
    model = sum(pair[1] for pair in parsed) / len(parsed) if parsed else None
    relative = model / reference if parsed and reference else None
    return {
        "relative": relative,
        "reference": reference,
        "model": model,
        "questions": len(reviews),
        "unparsable": len(reviews) - len(parsed),
        "relativeUpstream": _upstream(reviews),
    }


def _upstream(reviews: Sequence[Review]) -> float | None:
    """What summarize_gpt_review.py prints: (-1, -1) for unparsable replies, means rounded to 3 places, the
    ratio x 100 rounded to 1 place; returned as a fraction like `relative`."""
    pairs = [review.scores or (-1.0, -1.0) for review in reviews]
    if not pairs:
        return None
    reference = round(sum(pair[0] for pair in pairs) / len(pairs), 3)
    model = round(sum(pair[1] for pair in pairs) / len(pairs), 3)
    return round(model / reference * 100, 1) / 100 if reference else None


def score(reviews: Sequence[Review]) -> dict:
    """Relative score per category (in LLaVA's order) and over all questions, and what did not parse."""
    categories = {
        category: _summary([r for r in reviews if r.category == category])
        for category in CATEGORIES
        if any(r.category == category for r in reviews)
    }
    return {**_summary(reviews), "categories": categories}


def score_items(items: Sequence[Item], predictions: Sequence[str | None], reviews: Sequence[Sequence[str]]) -> dict:
    return score(
        [
            Review(item.group, parse_score(replies[-1] if replies else None))
            for item, _, replies in zip(items, predictions, reviews, strict=True)
        ]
    )


def headline(result: dict) -> dict[str, float]:
    return {} if result["relative"] is None else {"llavabench.relative": result["relative"]}


def _percent(value: float | None):
    return "–" if value is None else value * 100


def table(result: dict) -> tuple[list[str], list[list]]:
    rows = [
        [
            name,
            c["questions"],
            c["reference"] if c["reference"] is not None else "–",
            c["model"] if c["model"] is not None else "–",
            _percent(c["relative"]),
            c["unparsable"],
        ]
        for name, c in result["categories"].items()
    ]
    rows.append(
        [
            "**all**",
            result["questions"],
            result["reference"] if result["reference"] is not None else "–",
            result["model"] if result["model"] is not None else "–",
            _percent(result["relative"]),
            result["unparsable"],
        ]
    )
    return [
        "category",
        "questions",
        "reference score (1-10)",
        "model score (1-10)",
        "relative %",
        "unparsable replies",
    ], rows


def bars(result: dict) -> dict[str, float]:
    return {name: c["relative"] for name, c in result["categories"].items() if c["relative"] is not None}
