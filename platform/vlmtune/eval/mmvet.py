"""MM-Vet: a judge grades each answer against the ground truth from 0.0 to 1.0, with MM-Vet's few-shot prompt.

Reference: yuweihao/MM-Vet at acde843e02dae30047bb456ee4a8ab28dee7e0ae, `mm-vet_evaluator.py` (grader prompt,
retries, totals per capability and per capability integration).

- Data layout: a folder with `mm-vet.json` ({id: {imagename, capability: [...], question, answer}}) and
  `images/`. The model is asked the question as is (LLaVA-1.5's MM-Vet run).
- Grading: one user message, the few-shot table below plus `question | ground truth | prediction | `, where the
  ground truth's `<AND>`/`<OR>` get spaces around them; temperature 0, 3 tokens. The grade is the reply's first
  space-separated word as a number in [0, 1]. When it does not parse the grader asks again with "Predict the
  correctness of the answer (digit): " appended, at temperature 0, 0.5, 1.0, 1.5; after five replies that do not
  parse the grade is 0.0 (upstream sends a sixth request whose reply it never reads; vlmtune does not send it).
  NaN does not parse here. `ungraded` counts the 0.0s given that way.
- A question without a prediction is graded 0.0 without asking the judge (`missing`).
- Totals: a capability's score is the sum of its questions' grades over their count x 100; the total likewise
  over every question; the same per capability integration (the set of capabilities a question needs; upstream
  names it by joining a Python set, whose order varies between runs: vlmtune sorts the names). One grading run
  (upstream's `--num_run 1` default; the MM-Vet paper averaged 5).
"""

from __future__ import annotations

import json
import math
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

from vlmtune import storage
from vlmtune.eval.items import Item, take_per_group
from vlmtune.eval.judge.requests import JudgeRequest

# mm-vet_evaluator.py's `prompt`, byte for byte (its sha256 is checked in the tests).
PROMPT = (
    "Compare the ground truth and prediction from AI models, to give a correctness score for the "
    "prediction. <AND> in the ground truth means it is totally right only when all elements in the ground"
    " truth are present in the prediction, and <OR> means it is totally right when any one element in the"
    " ground truth is present in the prediction. The correctness score is 0.0 (totally wrong), 0.1, 0.2, "
    "0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, or 1.0 (totally right). Just complete the last space of the "
    "correctness score.\n"
    "\n"
    "Question | Ground truth | Prediction | Correctness\n"
    "--- | --- | --- | ---\n"
    "What is x in the equation? | -1 <AND> -5 | x = 3 | 0.0\n"
    "What is x in the equation? | -1 <AND> -5 | x = -1 | 0.5\n"
    "What is x in the equation? | -1 <AND> -5 | x = -5 | 0.5\n"
    "What is x in the equation? | -1 <AND> -5 | x = -5 or 5 | 0.5\n"
    "What is x in the equation? | -1 <AND> -5 | x = -1 or x = -5 | 1.0\n"
    "Can you explain this meme? | This meme is poking fun at the fact that the names of the countries "
    "Iceland and Greenland are misleading. Despite its name, Iceland is known for its beautiful green "
    "landscapes, while Greenland is mostly covered in ice and snow. The meme is saying that the person "
    "has trust issues because the names of these countries do not accurately represent their landscapes. "
    "| The meme talks about Iceland and Greenland. It's pointing out that despite their names, Iceland is"
    " not very icy and Greenland isn't very green. | 0.4\n"
    "Can you explain this meme? | This meme is poking fun at the fact that the names of the countries "
    "Iceland and Greenland are misleading. Despite its name, Iceland is known for its beautiful green "
    "landscapes, while Greenland is mostly covered in ice and snow. The meme is saying that the person "
    "has trust issues because the names of these countries do not accurately represent their landscapes. "
    "| The meme is using humor to point out the misleading nature of Iceland's and Greenland's names. "
    "Iceland, despite its name, has lush green landscapes while Greenland is mostly covered in ice and "
    "snow. The text 'This is why I have trust issues' is a playful way to suggest that these "
    "contradictions can lead to distrust or confusion. The humor in this meme is derived from the "
    "unexpected contrast between the names of the countries and their actual physical characteristics. | "
    "1.0\n"
)
RETRY_SUFFIX = "\nPredict the correctness of the answer (digit): "
MAX_TOKENS, ATTEMPTS, TEMPERATURE_STEP = 3, 5, 0.5
CAPABILITY_NAMES = {
    "rec": "recognition",
    "ocr": "OCR",
    "know": "knowledge",
    "gen": "language generation",
    "spat": "spatial awareness",
    "math": "math",
}


def grading_prompt(question: str, truth: str, prediction: str) -> str:
    truth = truth.replace("<AND>", " <AND> ").replace("<OR>", " <OR> ")
    return PROMPT + "\n" + " | ".join([question, truth, prediction, ""])


def parse_grade(reply: str | None) -> float | None:
    """The grade in a reply: its first space-separated word as a number from 0 to 1, else None."""
    if reply is None:
        return None
    try:
        grade = float(reply.split(" ")[0].strip())
    except ValueError:
        return None
    return grade if math.isfinite(grade) and 0.0 <= grade <= 1.0 else None


def next_request(item: Item, prediction: str | None, replies: Sequence[str]) -> JudgeRequest | None:
    """Ask until a grade parses, at most `ATTEMPTS` times; a missing prediction is never asked about."""
    if prediction is None or len(replies) >= ATTEMPTS or (replies and parse_grade(replies[-1]) is not None):
        return None
    prompt = grading_prompt(item.question, item.answer, prediction)
    if not replies:
        return JudgeRequest(user=prompt, temperature=0.0, max_tokens=MAX_TOKENS)
    return JudgeRequest(
        user=prompt + RETRY_SUFFIX, temperature=TEMPERATURE_STEP * (len(replies) - 1), max_tokens=MAX_TOKENS
    )


# ------------------------------------------------------------------------------------------------------ data


def integration(capabilities: Sequence[str]) -> str:
    return "_".join(sorted(set(capabilities)))


def load(uri: str, limit: int | None = None) -> list[Item]:
    """MM-Vet questions; `limit` counts questions per capability integration."""
    metadata = storage.join(uri, "mm-vet.json")
    if not storage.exists(metadata):
        raise FileNotFoundError(f"{uri}: no mm-vet.json; give the unzipped mm-vet folder")
    try:
        data = json.loads(storage.read_bytes(metadata))
    except ValueError as err:
        raise ValueError(f"{metadata}: not JSON ({err})") from None
    items = []
    for qid, entry in data.items():
        capabilities = list(entry["capability"])
        items.append(
            Item(
                question_id=str(qid),
                question=entry["question"],
                prompt=entry["question"],
                image=storage.read_bytes(storage.join(uri, "images", entry["imagename"])),
                answer=entry["answer"],
                group=integration(capabilities),
                extra={"capabilities": capabilities},
            )
        )
    return take_per_group(items, limit)


# --------------------------------------------------------------------------------------------------- scoring


@dataclass(frozen=True)
class Grade:
    capabilities: tuple[str, ...]
    grade: float
    status: str
    """graded, ungraded (no reply parsed: 0.0) or missing (no prediction: 0.0)."""


def grade_of(prediction: str | None, replies: Sequence[str]) -> tuple[float, str]:
    if prediction is None:
        return 0.0, "missing"
    for reply in replies:
        grade = parse_grade(reply)
        if grade is not None:
            return grade, "graded"
    return 0.0, "ungraded"


def score(grades: Sequence[Grade]) -> dict:
    """Total, per capability (most frequent first) and per capability integration, as fractions of 1."""
    counts = Counter(cap for g in grades for cap in dict.fromkeys(g.capabilities))
    capabilities = {
        cap: sum(g.grade for g in grades if cap in g.capabilities) / count for cap, count in counts.most_common()
    }
    sets = Counter(integration(g.capabilities) for g in grades)
    integrations = {
        name: sum(g.grade for g in grades if integration(g.capabilities) == name) / count
        for name, count in sets.most_common()
    }
    return {
        "total": sum(g.grade for g in grades) / len(grades) if grades else 0.0,
        "questions": len(grades),
        "ungraded": sum(g.status == "ungraded" for g in grades),
        "missing": sum(g.status == "missing" for g in grades),
        "capabilities": {cap: {"score": value, "questions": counts[cap]} for cap, value in capabilities.items()},
        "integrations": {name: {"score": value, "questions": sets[name]} for name, value in integrations.items()},
    }


def score_items(items: Sequence[Item], predictions: Sequence[str | None], reviews: Sequence[Sequence[str]]) -> dict:
    grades = []
    for item, prediction, replies in zip(items, predictions, reviews, strict=True):
        value, status = grade_of(prediction, replies)
        grades.append(Grade(tuple(item.extra["capabilities"]), value, status))
    return score(grades)


def headline(result: dict) -> dict[str, float]:
    return {"mmvet.total": result["total"]}


def table(result: dict) -> tuple[list[str], list[list]]:
    rows = [
        [f"{cap} ({CAPABILITY_NAMES.get(cap, cap)})", c["questions"], c["score"] * 100]
        for cap, c in result["capabilities"].items()
    ]
    rows += [[f"integration {name}", c["questions"], c["score"] * 100] for name, c in result["integrations"].items()]
    rows.append(["**total**", result["questions"], result["total"] * 100])
    return ["capability", "questions", "score (0-100)"], rows


def bars(result: dict) -> dict[str, float]:
    return {cap: c["score"] for cap, c in result["capabilities"].items()}
