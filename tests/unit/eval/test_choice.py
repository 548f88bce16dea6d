"""Multiple choice: VLMEvalKit's letter rules, option rotation, CircularEval, and the MMBench TSV reader."""

from __future__ import annotations

import base64

import pandas as pd
import pytest

from vlmtune.eval import choice
from vlmtune.eval.choice import ChoiceRow, circular_items, extract_option, rotate, score
from vlmtune.eval.layouts import tsv_bytes

CHOICES = {"A": "red", "B": "blue", "C": "green", "D": "dark blue"}


@pytest.mark.parametrize(
    ("prediction", "letter"),
    [
        ("B", "B"),
        ("(C)", "C"),
        ("The answer is D.", "D"),
        ("A. red", "A"),
        ("Answer: [B]", "B"),
        ("green", "C"),  # no letter: the one option whose text the answer contains
        ("It is RED", "A"),  # text matching ignores case
        ("blue", "B"),
        ("dark blue", None),  # contains both 'blue' and 'dark blue': two options, undecidable
        ("B or C", None),  # two letters, and no option text either
        ("A red shape", "A"),  # VLMEvalKit reads a standalone 'A' as the letter, article or not
        ("c", "C"),
        ("d.", "D"),  # vlmtune's departure: a bare lower-case letter (uncased tokenizers)
        ("E", None),
        ("", None),
        (None, None),
        ("Z", None),  # 'none of the options'
        ("Cannot determine the answer; maybe blue", None),
        # The one letter must first appear among the last four words (VLMEvalKit since PR #1175) ...
        ("B because the shape is round", None),  # B is word 1 of 6: not read; no option text in it
        ("so I pick B in the end", "B"),  # word 4 of 7
        ("B because it is blue", "B"),  # word 1 of 5: 1 > 0
        # ... "answer is X" in any case names X, with no word boundary after the letter (VLMEvalKit #1552):
        ("The correct answer is **C** since it has a dark shade", "C"),
        ("the answer is b", "B"),
        ("The answer is a dark shade of green", "A"),  # upstream reads 'a' as the letter, though green is C
        ("Failed to obtain answer via API, red", "A"),  # letters skipped, option text still read
        ("I think that the color of this shape is red", None),  # 43 chars: longer than twice the options' 21
    ],
)
def test_letters_are_extracted_by_the_rules(prediction, letter):
    assert extract_option(prediction, CHOICES) == letter


def test_rotation_moves_the_answer_letter_with_its_option():
    assert rotate(["w", "x", "y", "z"], "C", 1) == (("x", "y", "z", "w"), "B")
    assert rotate(["w", "x", "y", "z"], "A", 1) == (("x", "y", "z", "w"), "D")
    assert rotate(["w", "x", "y"], "B", 2) == (("y", "w", "x"), "C")


def test_circular_items_ask_every_rotation_with_llava_mmbench_prompt():
    items = circular_items(7, "Which?", "A hint.", ["cat", "dog", "cow"], "B", "animals", b"img")
    assert [item.question_id for item in items] == ["7", "1000007", "2000007"]
    assert [item.answer for item in items] == ["B", "A", "C"]
    assert items[1].question == "A hint.\nWhich?\nA. dog\nB. cow\nC. cat"
    assert items[1].prompt == items[1].question + "\nAnswer with the option's letter from the given choices directly."
    assert {item.source_id for item in items} == {"7"} and [item.extra["rotation"] for item in items] == [0, 1, 2]


def test_circular_eval_needs_every_rotation_right():
    opts4, opts3 = ("a", "b", "c", "d"), ("x", "y", "z")
    rows = [
        ChoiceRow("1", "cat1", "A", "A", opts4, 0),
        ChoiceRow("1", "cat1", "D", "D", opts4, 1),
        ChoiceRow("1", "cat1", "C", "c", opts4, 2),
        ChoiceRow("1", "cat1", "B", "b", opts4, 3),
        ChoiceRow("2", "cat1", "B", "B", opts3, 0),
        ChoiceRow("2", "cat1", "A", "A", opts3, 1),
        ChoiceRow("2", "cat1", "C", "A", opts3, 2),  # one rotation wrong: fails CircularEval
        ChoiceRow("3", "cat2", "A", "B", opts3, 0),
        ChoiceRow("3", "cat2", "C", None, opts3, 1),
        ChoiceRow("3", "cat2", "B", "B", opts3, 2),
    ]
    result = score(rows)
    assert (result["circularAccuracy"], result["singleAccuracy"], result["questions"]) == (1 / 3, 2 / 3, 3)
    assert result["categories"]["cat1"] == {"circularAccuracy": 0.5, "singleAccuracy": 1.0, "questions": 2}
    assert result["categories"]["cat2"] == {"circularAccuracy": 0.0, "singleAccuracy": 0.0, "questions": 1}
    assert result["askedQuestions"] == 10


def _tsv(tmp_path, rows):
    columns = [
        "index",
        "question",
        "hint",
        "A",
        "B",
        "C",
        "D",
        "answer",
        "category",
        "image",
        "source",
        "l2-category",
        "comment",
        "split",
    ]
    path = tmp_path / "MMBench_DEV_EN.tsv"
    path.write_bytes(tsv_bytes([{key: row.get(key, "") for key in columns} for row in rows], columns))
    return path


def test_mmbench_tsv_round_trip_with_pandas_and_the_reader(tmp_path):
    image = base64.b64encode(b"\x89PNG fake").decode()
    rows = [
        {
            "index": 10,
            "question": 'Say "hi"\tthen pick',
            "hint": "",
            "A": "one",
            "B": "two",
            "C": "three",
            "D": "",
            "answer": "C",
            "category": "count",
            "image": image,
        },
        {
            "index": 11,
            "question": "Which\ncolour?",
            "hint": "Look closely.",
            "A": "red",
            "B": "None",
            "C": "blue",
            "answer": "A",
            "category": "color",
            "image": image,
        },
        {"index": 12, "question": "Third", "A": "x", "B": "y", "answer": "B", "category": "count", "image": image},
    ]
    path = _tsv(tmp_path, rows)
    frame = pd.read_csv(path, sep="\t")  # what VLMEvalKit does with the file
    assert frame.loc[0, "question"] == 'Say "hi"\tthen pick' and pd.isna(frame.loc[0, "D"])
    assert pd.isna(frame.loc[1, "B"]) and pd.isna(frame.loc[0, "hint"])  # 'None' and '' are NaN to pandas
    items = choice.load(str(path), limit=1)
    assert [item.question_id for item in items] == ["10", "1000010", "2000010", "11"]
    assert items[0].options == ("one", "two", "three") and items[0].image == b"\x89PNG fake"
    assert items[3].options == ("red",) and items[3].question == "Look closely.\nWhich\ncolour?\nA. red"


def test_a_tsv_already_holding_circular_copies_is_not_rotated_again(tmp_path):
    rows = [
        {"index": 5, "question": "Q", "A": "p", "B": "q", "answer": "A", "category": "c"},
        {"index": 1000005, "question": "Q", "A": "q", "B": "p", "answer": "B", "category": "c"},
    ]
    items = choice.load(str(_tsv(tmp_path, rows)))
    assert [(item.question_id, item.source_id, item.answer, item.extra["rotation"]) for item in items] == [
        ("5", "5", "A", 0),
        ("1000005", "5", "B", 1),
    ]
    result = choice.score_items(items, ["A", "A"])
    assert (result["circularAccuracy"], result["singleAccuracy"]) == (0.0, 1.0)


def test_a_tsv_without_answers_cannot_be_scored(tmp_path):
    path = tmp_path / "test.tsv"
    path.write_bytes(tsv_bytes([{"index": 1, "question": "Q", "A": "a", "B": "b"}], ["index", "question", "A", "B"]))
    with pytest.raises(ValueError, match="no `answer` column"):
        choice.load(str(path))


def test_extraction_is_always_the_same_function_of_the_answer_and_the_choices():
    # The rules look at the letters of the options given: with three options, D is no letter.
    assert extract_option("D", {"A": "x", "B": "y", "C": "z"}) is None
    assert extract_option("The answer is D", {"A": "x", "B": "y", "C": "z"}) is None
