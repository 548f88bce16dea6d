"""Offline demo benchmarks: the demo suite's held-out images turned into each benchmark's published layout.

Only the files are demo; the readers, prompts and scorers that run on them are the real ones. Every question is
derived from what the demo task drew (its answer and instruction), so the ground truth is exact:

- MME (lmms-lab/MME Parquet): one yes question and one no question per image, e.g. `shape_name` -> existence
  ("Is there a circle in this image?" Yes / "...a square...?" No). Eight of MME's 14 subtasks have a demo task.
- POPE (lmms-lab/POPE Parquet): `random` and `popular` ask about the single shape of `shape_name` images with a
  random / the most frequent absent shape as the negative; `adversarial` asks `object_existence`'s colour-shape
  questions, whose negatives often share a colour or a shape with what is drawn.
- MMBench TSV: `color_choice` (four colours) and `shape_name` (three shapes) as lettered options.
- Forgetting Parquet: digits (scikit-learn's handwritten digits), shapes, colours, backgrounds as classification.
- Held-out: the suite's held-out annotation file itself.
- LLaVA-Bench, MM-Vet and MMMU: see `demo_open`.
"""

from __future__ import annotations

import json
import random
import re
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa

from vlmtune import storage
from vlmtune.data.demo import COLORS, IMAGE_TOKEN, SHAPES, DemoSuite
from vlmtune.eval.demo_open import write_llava_bench, write_mm_vet, write_mmmu
from vlmtune.eval.layouts import IMAGE_STRUCT, b64, image_struct, parquet_bytes, tsv_bytes
from vlmtune.eval.mme import PERCEPTION

YES_NO = " Please answer yes or no."  # how every MME question ends
POSITIONS = ("left", "right", "top", "bottom")
MMBENCH_COLUMNS = [
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
OPEN_WRITERS = {"llavabench": write_llava_bench, "mmvet": write_mm_vet, "mmmu": write_mmmu}
FILES = {
    "mme": "mme/test-00000-of-00001.parquet",
    "pope": "pope/test-00000-of-00001.parquet",
    "mc": "mmbench/mmbench_demo_dev_en.tsv",
    "forgetting": "forgetting/test-00000-of-00001.parquet",
}


@dataclass(frozen=True)
class DemoRecord:
    task: str
    index: int
    image: str
    """Image path relative to the suite root."""
    instruction: str
    answer: str


def demo_records(suite: DemoSuite) -> dict[str, list[DemoRecord]]:
    """The suite's held-out instances by task, in file order."""
    raw = json.loads(Path(suite.heldout_annotations).read_text(encoding="utf-8"))
    by_task: dict[str, list[DemoRecord]] = {}
    for record in raw:
        human, answer = record["conversations"][0]["value"], record["conversations"][1]["value"]
        by_task.setdefault(record["task_name"], []).append(
            DemoRecord(
                record["task_name"], int(record["id"]), record["image"], human.replace(IMAGE_TOKEN, "").strip(), answer
            )
        )
    return by_task


def _other(rng: random.Random, choices, *not_these) -> str:
    return rng.choice([choice for choice in choices if choice not in not_these])


def _mme_pair(record: DemoRecord, rng: random.Random) -> tuple[str, str, str] | None:
    """(category, question answered Yes, question answered No) for a record, or None for unused tasks."""
    a = record.answer
    if record.task == "shape_name":
        return "existence", f"Is there a {a} in this image?", f"Is there a {_other(rng, SHAPES, a)} in this image?"
    if record.task == "dot_count":
        n = ("zero", "one", "two", "three", "four", "five").index(a)
        q = "Are there {} dots in this image?"
        return "count", q.format(n), q.format(n + 1 if n < 5 else n - 1)
    if record.task == "shape_position":
        q = "Is the shape at the {} of this image?"
        return "position", q.format(a), q.format(_other(rng, POSITIONS, a))
    if record.task == "shape_color":
        q = "Is the shape in this image {}?"
        return "color", q.format(a), q.format(_other(rng, COLORS, a))
    if record.task == "background_color":
        q = "Is the background of this image {}?"
        return "scene", q.format(a), q.format(_other(rng, COLORS, a))
    if record.task == "text_reading":
        wrong = _other(rng, "ABCDEFGHIJKLMNOPQRSTUVWXYZ", a[0]) + a[1:]
        q = 'Is the text "{}" written in this image?'
        return "OCR", q.format(a), q.format(wrong)
    if record.task == "more_circles":
        circles, squares = (
            "Are there more circles than squares in this image?",
            "Are there more squares than circles in this image?",
        )
        yes, no = (circles, squares) if a == "yes" else (squares, circles)
        return "commonsense_reasoning", yes, no
    if record.task == "digit_recognition":
        d, k = int(a), rng.randint(1, 9)
        q = "Is the digit in this image plus {} equal to {}?"
        return "numerical_calculation", q.format(k, d + k), q.format(k, d + k + 1)
    return None


def mme_rows(records: dict[str, list[DemoRecord]], read_image: Callable[[str], bytes]) -> list[dict]:
    """MME rows (question_id, image, question, answer, category): the Yes question of an image, then its No."""
    rows = []
    for task, task_records in records.items():
        for record in task_records:
            pair = _mme_pair(record, random.Random(f"mme/{task}/{record.index}"))
            if pair is None:
                continue
            category, yes, no = pair
            question_id = f"{category}/{Path(record.image).name}"
            image = image_struct(read_image(record.image), Path(record.image).name)
            rows += [
                {
                    "question_id": question_id,
                    "image": image,
                    "question": yes + YES_NO,
                    "answer": "Yes",
                    "category": category,
                },
                {
                    "question_id": question_id,
                    "image": image,
                    "question": no + YES_NO,
                    "answer": "No",
                    "category": category,
                },
            ]
    order = {name: i for i, name in enumerate(PERCEPTION)}
    return sorted(rows, key=lambda row: order.get(row["category"], len(order)))  # stable: pairs stay together


MME_SCHEMA = pa.schema(
    [
        ("question_id", pa.string()),
        ("image", IMAGE_STRUCT),
        ("question", pa.string()),
        ("answer", pa.string()),
        ("category", pa.string()),
    ]
)


def pope_rows(records: dict[str, list[DemoRecord]], read_image: Callable[[str], bytes]) -> list[dict]:
    """POPE rows (id, question_id, question, answer, image_source, image, category), splits in POPE's order."""
    shapes = records.get("shape_name", [])
    frequency = Counter(record.answer for record in shapes)
    popular = sorted(SHAPES, key=lambda shape: (-frequency[shape], SHAPES.index(shape)))
    questions = []  # (split, record, question, answer)
    for split in ("random", "popular"):
        for record in shapes:
            rng = random.Random(f"pope/{split}/{record.index}")
            negative = (
                _other(rng, SHAPES, record.answer)
                if split == "random"
                else next(shape for shape in popular if shape != record.answer)
            )
            questions += [
                (split, record, f"Is there a {record.answer} in the image?", "yes"),
                (split, record, f"Is there a {negative} in the image?", "no"),
            ]
    for record in records.get("object_existence", []):
        question = re.search(r"Question:\s*(.*\?)", record.instruction).group(1)
        questions.append(("adversarial", record, question, record.answer))
    rows = []
    for number, (split, record, question, answer) in enumerate(questions):
        rows.append(
            {
                "id": str(number),
                "question_id": str(number + 1),
                "question": question,
                "answer": answer,
                "image_source": Path(record.image).stem,
                "category": split,
                "image": image_struct(read_image(record.image), Path(record.image).name),
            }
        )
    return rows


POPE_SCHEMA = pa.schema(
    [
        ("id", pa.string()),
        ("question_id", pa.string()),
        ("question", pa.string()),
        ("answer", pa.string()),
        ("image_source", pa.string()),
        ("image", IMAGE_STRUCT),
        ("category", pa.string()),
    ]
)


def mmbench_rows(records: dict[str, list[DemoRecord]], read_image: Callable[[str], bytes]) -> list[dict]:
    """MMBench TSV rows: colour choice with the task's own four options, and shape naming with three."""
    rows = []
    for record in records.get("color_choice", []):
        options = dict(re.findall(r"\(([A-D])\)\s*(\w+)", record.instruction))
        rows.append(
            _mmbench_row(
                len(rows),
                "What is the color of the shape in the image?",
                "",
                options,
                record.answer,
                "color",
                read_image(record.image),
            )
        )
    for record in records.get("shape_name", []):
        options = dict(zip("ABC", SHAPES))
        answer = "ABC"[SHAPES.index(record.answer)]
        rows.append(
            _mmbench_row(
                len(rows),
                "Which shape is shown in the image?",
                "The image shows one geometric shape.",
                options,
                answer,
                "shape",
                read_image(record.image),
            )
        )
    return rows


def _mmbench_row(
    index: int, question: str, hint: str, options: dict[str, str], answer: str, category: str, image: bytes
) -> dict:
    return {
        "index": index,
        "question": question,
        "hint": hint,
        **{letter: options.get(letter, "") for letter in "ABCD"},
        "answer": answer,
        "category": category,
        "image": b64(image),
        "source": "vlmtune-demo",
        "l2-category": "perception",
        "comment": "",
        "split": "dev",
    }


FORGETTING_SETS = {  # set name -> (demo task, question stem)
    "digits": ("digit_recognition", "Which digit is shown in the image?"),
    "shapes": ("shape_name", "Which shape is shown in the image?"),
    "colors": ("shape_color", "What is the color of the shape in the image?"),
    "backgrounds": ("background_color", "What is the background color of the image?"),
}


def forgetting_rows(records: dict[str, list[DemoRecord]], read_image: Callable[[str], bytes]) -> list[dict]:
    rows = []
    for name, (task, question) in FORGETTING_SETS.items():
        for record in records.get(task, []):
            rows.append(
                {
                    "question_id": f"{name}/{record.index}",
                    "set": name,
                    "question": question,
                    "image": image_struct(read_image(record.image), Path(record.image).name),
                    "label": record.answer,
                }
            )
    return rows


FORGETTING_SCHEMA = pa.schema(
    [
        ("question_id", pa.string()),
        ("set", pa.string()),
        ("question", pa.string()),
        ("image", IMAGE_STRUCT),
        ("label", pa.string()),
    ]
)


def demo_file(name: str, suite: DemoSuite) -> bytes:
    """The demo version of benchmark `name` (not heldout) as the bytes of its published file."""
    records = demo_records(suite)

    def read_image(path: str) -> bytes:
        return (Path(suite.root) / path).read_bytes()

    if name == "mme":
        return parquet_bytes(mme_rows(records, read_image), MME_SCHEMA)
    if name == "pope":
        return parquet_bytes(pope_rows(records, read_image), POPE_SCHEMA)
    if name == "mc":
        return tsv_bytes(mmbench_rows(records, read_image), MMBENCH_COLUMNS)
    if name == "forgetting":
        return parquet_bytes(forgetting_rows(records, read_image), FORGETTING_SCHEMA)
    raise ValueError(f"no demo file for benchmark {name!r}")


def write_demo_benchmark(name: str, suite: DemoSuite, out_uri: str) -> str:
    """Write benchmark `name`'s demo data under `out_uri` and return the URI its reader takes."""
    if name == "heldout":
        return str(suite.heldout_annotations)
    if name in OPEN_WRITERS:
        return OPEN_WRITERS[name](demo_records(suite), lambda path: (Path(suite.root) / path).read_bytes(), out_uri)
    uri = storage.join(out_uri, FILES[name])
    storage.write_bytes(uri, demo_file(name, suite))
    return uri.rsplit("/", 1)[0] if name in ("mme", "pope") else uri
