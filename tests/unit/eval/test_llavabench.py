"""LLaVA-Bench (in the wild): LLaVA's review prompt and score parsing, the relative score, on hand-computed cases."""

from __future__ import annotations

import json

import pytest

from vlmtune.eval import llavabench
from vlmtune.eval.items import Item
from vlmtune.eval.llavabench import Review, parse_score, review_prompt, score


@pytest.mark.parametrize(
    ("reply", "scores"),
    [
        ("8 6\nAssistant 1 gave a detailed answer...", (8.0, 6.0)),
        ("9.5 7.5\n", (9.5, 7.5)),
        ("8,6", (8.0, 6.0)),  # commas read as spaces
        ("8, 6", None),  # ... then "8  6" splits into three parts: upstream rejects it too
        (" 8 6", None),
        ("Scores: 8 6", None),
        ("8 six", None),
        ("", None),
        (None, None),
        ("8\n6", None),  # only the first line counts
        ("nan 5", None),
        ("inf 5", None),  # vlmtune's departure: non-finite scores do not parse
    ],
)
def test_scores_are_parsed_as_llavas_review_script(reply, scores):
    assert parse_score(reply) == scores


def test_relative_score_per_category_overall_and_as_upstream_prints_it():
    reviews = [Review("conv", (8, 6)), Review("conv", (10, 5)), Review("detail", (7, 7)), Review("detail", None)]
    result = score(reviews)
    conv, detail = result["categories"]["conv"], result["categories"]["detail"]
    assert (conv["reference"], conv["model"], conv["relative"]) == (9.0, 5.5, pytest.approx(5.5 / 9))
    assert (detail["relative"], detail["unparsable"], detail["questions"]) == (1.0, 1, 2)
    # All parsed replies: reference (8 + 10 + 7) / 3, model (6 + 5 + 7) / 3 -> 18 / 25.
    assert result["relative"] == pytest.approx(18 / 25) and result["unparsable"] == 1
    # summarize_gpt_review.py averages the unparsable reply in as (-1, -1): 4.25 / 6.0 -> 70.8.
    assert result["relativeUpstream"] == pytest.approx(0.708)
    assert list(result["categories"]) == ["conv", "detail"]
    assert llavabench.headline(result) == {"llavabench.relative": pytest.approx(0.72)}


def test_nothing_parsed_gives_no_figure_rather_than_100_percent():
    result = score([Review("complex", None), Review("complex", None)])
    assert result["relative"] is None and llavabench.headline(result) == {}
    assert result["relativeUpstream"] == 1.0  # (-1)/(-1): what upstream would print, and why it is not the headline


def test_the_review_request_is_llavas():
    item = Item(
        "3",
        "What is unusual?",
        "What is unusual?",
        b"",
        "A man irons on a taxi.",
        "complex",
        extra={"context": "A man ironing clothes on the back of a taxi."},
    )
    request = llavabench.next_request(item, "A man and a taxi.", [])
    assert request.system == "You are a helpful and precise assistant for checking the quality of the answer."
    assert (request.temperature, request.max_tokens) == (0.2, 1024)
    assert request.user == review_prompt(
        "A man ironing clothes on the back of a taxi.",
        "What is unusual?",
        "A man irons on a taxi.",
        "A man and a taxi.",
        "complex",
    )
    assert request.user.startswith(
        "[Context]\nA man ironing clothes on the back of a taxi.\n\n[Question]\n"
        "What is unusual?\n\n[Assistant 1]\nA man irons on a taxi.\n\n[End of Assistant 1]"
        "\n\n[Assistant 2]\nA man and a taxi.\n\n[End of Assistant 2]\n\n[System]\n"
        "We would like to request your feedback"
    )
    assert request.user.endswith("does not affect your judgment.\n\n")
    assert llavabench.next_request(item, "x", ["8 6"]) is None  # one review per question
    assert "[Assistant 2]\n\n\n[End of Assistant 2]" in llavabench.next_request(item, None, []).user  # missing


def test_reader_takes_the_published_folder(tmp_path):
    folder = tmp_path / "llava-bench-in-the-wild"
    (folder / "images").mkdir(parents=True)
    (folder / "images" / "001.jpg").write_bytes(b"jpg")
    lines = {
        "questions.jsonl": [
            {"question_id": 0, "image": "001.jpg", "text": "Q0", "category": "conv"},
            {"question_id": 1, "image": "001.jpg", "text": "Q1", "category": "detail"},
        ],
        "context.jsonl": [{"id": "001", "image": "001.jpg", "caption": "An aerial view of Diamond Head."}],
        "answers_gpt4.jsonl": [{"question_id": 0, "text": "R0"}, {"question_id": 1, "text": "R1"}],
    }
    for name, rows in lines.items():
        (folder / name).write_text("".join(json.dumps(row) + "\n" for row in rows))
    items = llavabench.load(str(folder))
    assert [(i.question_id, i.group, i.answer, i.prompt, i.image) for i in items] == [
        ("0", "conv", "R0", "Q0", b"jpg"),
        ("1", "detail", "R1", "Q1", b"jpg"),
    ]
    assert items[0].extra["context"] == "An aerial view of Diamond Head."  # the sentence, not one char per line
    (folder / "questions.jsonl").write_text(
        json.dumps({"question_id": 5, "image": "001.jpg", "text": "Q", "category": "poetry"}) + "\n"
    )
    with pytest.raises(ValueError, match="category 'poetry'; LLaVA's rule.json has review prompts for conv"):
        llavabench.load(str(folder))
    (folder / "context.jsonl").unlink()
    with pytest.raises(FileNotFoundError, match="no context.jsonl"):
        llavabench.load(str(folder))
