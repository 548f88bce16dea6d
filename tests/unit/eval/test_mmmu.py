"""MMMU: answer parsing and scoring as MMMU's eval_utils.py does, on hand-computed cases; the release layout."""

from __future__ import annotations

import pyarrow as pa
import pytest

from vlmtune.eval import mmmu
from vlmtune.eval.layouts import IMAGE_STRUCT, parquet_bytes
from vlmtune.eval.mmmu import MMMURow, prompt, score
from vlmtune.eval.mmmu_parse import is_right_open, parse_multiple_choice, parse_open

LETTERS = ["A", "B", "C", "D"]
OPTIONS = {"A": "red", "B": "blue", "C": "green", "D": "dark blue"}


@pytest.mark.parametrize(
    ("response", "letter"),
    [
        ("(B)", "B"),
        ("The answer is (A) or maybe (C).", "C"),  # two bracketed letters: the last mentioned
        ("B", "B"),
        ("B.", "B"),
        ("A and B are close but B", "B"),  # spaced letters: the last mention wins
        ("I think it is the second option which is blue", "B"),  # no letter, more than 5 words: option text
        ("red or blue, but mostly blue really", "B"),  # several texts: the one mentioned last
        ("green", None),  # one word: text is not read -> a guess
        (".,B", None),  # strip(',') then strip('.'): ",B" remains -> a guess
        ("b", None),  # letters are case-sensitive -> a guess
    ],
)
def test_multiple_choice_parsing(response, letter):
    parsed, guessed = parse_multiple_choice(response, LETTERS, OPTIONS, "validation_Art_1")
    if letter is None:
        assert guessed and parsed in LETTERS
    else:
        assert (parsed, guessed) == (letter, False)


def test_a_guess_is_the_same_for_the_same_question_whatever_was_scored_before():
    picks = {parse_multiple_choice("", LETTERS, OPTIONS, f"validation_Art_{n}")[0] for n in range(40)}
    assert len(picks) > 1  # really random across questions ...
    again = [parse_multiple_choice("", LETTERS, OPTIONS, "validation_Art_7") for _ in range(3)]
    assert len(set(again)) == 1  # ... and fixed for one


@pytest.mark.parametrize(
    ("response", "gold", "right"),
    [
        ("The answer is 42.", "42", True),  # tail after "is ", a number: 42.0 == 42.0
        ("The answer is 42.", "4", False),  # numbers compare as numbers, not substrings
        ("3,000 apples", "3000", True),  # "3,000" -> 3000.0
        ("a", "a", True),
        ("banana", "a", False),  # one-letter gold must stand at a word edge
        ("x = 5\ny = 7", "7", True),
        ("x = 5\ny = 7", "5", False),  # '=' only counts on the last line
        ("It is a cat. So it is red", "red", True),  # lower-cased before splitting on '. [A-Z]': one line
        ("It is a cat. So it is red", "cat", False),
        ("about 2.5 meters", ["2.5", "2.50"], True),  # a list of acceptable answers
        ("", "7", False),
    ],
)
def test_open_answers(response, gold, right):
    assert is_right_open(gold, parse_open(response)) is right


def test_parse_open_keeps_key_tails_and_their_numbers():
    # MMMU's comma pattern stops at the decimal point: "1,234.5" yields 1234 and 234.5, never 1234.5.
    assert sorted(map(str, parse_open("The total is 1,234.5 dollars"))) == sorted(
        ["1,234.5 dollars", "1234.0", "234.5"]
    )


def test_accuracy_per_subject_discipline_and_overall():
    rows = [
        MMMURow("validation_Art_1", "Art", "A", "(A)", ("x", "y")),
        MMMURow("validation_Art_2", "Art", "B", "A", ("x", "y")),
        MMMURow("validation_Math_1", "Math", "12", "It is 12", ()),
        MMMURow("validation_Physics_1", "Physics", "C", None, ("p", "q", "r")),
    ]  # missing: wrong, no guess
    result = score(rows)
    assert result["accuracy"] == 0.5 and result["questions"] == 4 and result["guessed"] == 0
    assert result["disciplines"] == {
        "Art and Design": {"accuracy": 0.5, "questions": 2},
        "Science": {"accuracy": 0.5, "questions": 2},
    }
    assert list(result["subjects"]) == ["Art", "Math", "Physics"]


def test_prompts_follow_llava_15s_mmmu_config():
    assert prompt("What is shown in <image 1>?", ["cat", "dog"]) == (
        "What is shown in <image 1>?\n(A) cat\n(B) dog\n\nAnswer with the option's letter from the given choices "
        "directly."
    )
    assert prompt("How many?", []) == "How many?\nAnswer the question using a single word or phrase."


def _release(tmp_path):
    schema = pa.schema(
        [
            ("id", pa.string()),
            ("question", pa.string()),
            ("options", pa.string()),
            ("image_1", IMAGE_STRUCT),
            ("image_2", IMAGE_STRUCT),
            ("answer", pa.string()),
            ("question_type", pa.string()),
        ]
    )
    image = {"bytes": b"png", "path": "x.png"}
    for subject, split, rows in (
        (
            "Art",
            "validation",
            [
                ("validation_Art_1", "['cat', 'dog']", "B", "multiple-choice"),
                ("validation_Art_2", "[]", "['7', 'seven']", "open"),
            ],
        ),
        ("Art", "dev", [("dev_Art_1", "['a', 'b']", "A", "multiple-choice")]),
        ("Math", "validation", [("validation_Math_1", "[]", "3", "open")]),
    ):
        folder = tmp_path / "MMMU" / subject
        folder.mkdir(parents=True, exist_ok=True)
        data = [
            {
                "id": i,
                "question": f"Q {i} <image 1>",
                "options": o,
                "image_1": None if i.endswith("2") else image,
                "image_2": image,
                "answer": a,
                "question_type": t,
            }
            for i, o, a, t in rows
        ]
        (folder / f"{split}-00000-of-00001.parquet").write_bytes(parquet_bytes(data, schema))
    return tmp_path / "MMMU"


def test_reader_takes_only_the_validation_split_of_each_subject(tmp_path):
    items = mmmu.load(str(_release(tmp_path)))
    assert [item.question_id for item in items] == ["validation_Art_1", "validation_Art_2", "validation_Math_1"]
    art = items[0]
    assert art.options == ("cat", "dog") and art.answer == "B" and art.group == "Art" and art.image == b"png"
    assert items[1].options == () and items[1].extra["gold"] == ["7", "seven"]  # a list literal answer
    assert items[1].image == b"png"  # no image_1: the first image there is
    assert mmmu.score_items(items, ["B", "seven", "3"])["accuracy"] == 1.0
    assert len(mmmu.load(str(tmp_path / "MMMU" / "Math"))) == 1  # one subject folder
    with pytest.raises(FileNotFoundError, match="no validation-\\*.parquet"):
        mmmu.load(str(tmp_path))
