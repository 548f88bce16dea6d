"""Offline demo versions of LLaVA-Bench, MM-Vet and MMMU, in their published layouts, from the demo suite.

As for the other demo benchmarks, only the files are demo: the real readers, prompts, judge requests and scorers
run on them. Every question and reference is derived from what the demo task drew, so the truth is exact.

- LLaVA-Bench (llava-bench-in-the-wild folder): `conv` asks a shape's colour, `detail` asks for a description
  of a dot picture, `complex` asks whether circles outnumber squares and why. The "GPT-4" reference answers and
  the captions are written from the drawn truth.
- MM-Vet (mm-vet.json + images/): recognition (shape), OCR (letters), recognition + math (dots, `3<OR>three`),
  recognition + spatial (position), OCR + math (the digit plus 2).
- MMMU (validation Parquet in subject folders): Math and Computer_Science as open questions (dot count, the
  letters written), Art, Geography and Physics as multiple choice (colour, position, the bigger side).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path

import pyarrow as pa

from vlmtune import storage
from vlmtune.eval.layouts import IMAGE_STRUCT, image_struct, parquet_bytes

DIGITS = {"zero": "0", "one": "1", "two": "2", "three": "3", "four": "4", "five": "5"}
LLAVA_BENCH_FOLDER, MM_VET_FOLDER, MMMU_FOLDER = "llava-bench-in-the-wild", "mm-vet", "mmmu"


def _jsonl(rows: list[dict]) -> bytes:
    return "".join(json.dumps(row) + "\n" for row in rows).encode("utf-8")


# ----------------------------------------------------------------------------------------------- LLaVA-Bench


def _llava_bench_entry(record) -> tuple[str, str, str, str] | None:
    """(category, question, GPT-4-style reference answer, caption) for a record, or None for unused tasks."""
    if record.task == "shape_color":
        return (
            "conv",
            "What color is the shape in the image?",
            f"The shape in the image is {record.answer}.",
            f"A single {record.answer} shape drawn on a light background.",
        )
    if record.task == "dot_count":
        return (
            "detail",
            "Describe the image in detail.",
            f"The image shows {record.answer} dots of one color scattered on a light, slightly noisy "
            "background. There is nothing else in the picture.",
            f"{record.answer.capitalize()} dots of one color on a light background.",
        )
    if record.task == "more_circles":
        verdict = (
            "there are more circles than squares"
            if record.answer == "yes"
            else "there are not more circles than squares"
        )
        return (
            "complex",
            "Are there more circles than squares in this image? Explain how you can tell.",
            f"{record.answer.capitalize()}, {verdict}: counting the round shapes and the shapes with four "
            "straight sides and comparing the two counts settles it.",
            f"Circles and squares in different colors on a light background; {verdict}.",
        )
    return None


def write_llava_bench(records: dict, read_image: Callable[[str], bytes], out_uri: str) -> str:
    """The llava-bench-in-the-wild folder under `out_uri`; returns its URI."""
    folder = storage.join(out_uri, LLAVA_BENCH_FOLDER)
    questions, contexts, answers = [], [], []
    for task_records in records.values():
        for record in task_records:
            entry = _llava_bench_entry(record)
            if entry is None:
                continue
            category, question, reference, caption = entry
            image = f"{record.task}_{Path(record.image).name}"
            qid = len(questions)
            questions.append({"question_id": qid, "image": image, "text": question, "category": category})
            contexts.append({"id": image.rsplit(".", 1)[0], "image": image, "caption": caption})
            answers.append(
                {
                    "question_id": qid,
                    "prompt": question,
                    "text": reference,
                    "answer_id": f"demo-{qid}",
                    "model_id": "vlmtune-demo-reference",
                    "metadata": {},
                }
            )
            storage.write_bytes(storage.join(folder, "images", image), read_image(record.image))
    for name, rows in (("questions.jsonl", questions), ("context.jsonl", contexts), ("answers_gpt4.jsonl", answers)):
        storage.write_bytes(storage.join(folder, name), _jsonl(rows))
    return folder


# ---------------------------------------------------------------------------------------------------- MM-Vet


def _mm_vet_entry(record) -> tuple[list[str], str, str] | None:
    """(capabilities, question, ground truth) for a record, or None for unused tasks."""
    if record.task == "shape_name":
        return ["rec"], "What shape is shown in the image?", record.answer
    if record.task == "text_reading":
        return ["ocr"], "What letters are written in the image?", record.answer
    if record.task == "dot_count":
        return ["rec", "math"], "How many dots are in the image?", f"{DIGITS[record.answer]}<OR>{record.answer}"
    if record.task == "shape_position":
        return ["rec", "spat"], "Where is the shape in the image: left, right, top or bottom?", record.answer
    if record.task == "digit_recognition":
        return ["ocr", "math"], "What is the digit in the image plus 2?", str(int(record.answer) + 2)
    return None


def write_mm_vet(records: dict, read_image: Callable[[str], bytes], out_uri: str) -> str:
    """The mm-vet folder under `out_uri`; returns its URI."""
    folder = storage.join(out_uri, MM_VET_FOLDER)
    data = {}
    for task_records in records.values():
        for record in task_records:
            entry = _mm_vet_entry(record)
            if entry is None:
                continue
            capabilities, question, truth = entry
            qid = f"v1_{len(data)}"
            data[qid] = {"imagename": f"{qid}.png", "capability": capabilities, "question": question, "answer": truth}
            storage.write_bytes(storage.join(folder, "images", f"{qid}.png"), read_image(record.image))
    storage.write_bytes(storage.join(folder, "mm-vet.json"), (json.dumps(data, indent=2) + "\n").encode())
    return folder


# ------------------------------------------------------------------------------------------------------ MMMU


MMMU_SCHEMA = pa.schema(
    [
        ("id", pa.string()),
        ("question", pa.string()),
        ("options", pa.string()),
        ("explanation", pa.string()),
        *[(f"image_{n}", IMAGE_STRUCT) for n in range(1, 8)],
        ("img_type", pa.string()),
        ("answer", pa.string()),
        ("topic_difficulty", pa.string()),
        ("question_type", pa.string()),
        ("subfield", pa.string()),
    ]
)


def _mmmu_entry(record) -> tuple[str, str, list[str], str] | None:
    """(subject, question, options (empty: open), answer) for a record, or None for unused tasks."""
    if record.task == "dot_count":
        return "Math", "How many dots are in <image 1>?", [], DIGITS[record.answer]
    if record.task == "text_reading":
        return "Computer_Science", "Which letters are written in <image 1>?", [], record.answer
    if record.task == "color_choice":
        options = dict(re.findall(r"\(([A-D])\)\s*(\w+)", record.instruction))
        return "Art", "What is the color of the shape in <image 1>?", list(options.values()), record.answer
    if record.task == "shape_position":
        options = ["left", "right", "top", "bottom"]
        return ("Geography", "Where is the shape in <image 1>?", options, "ABCD"[options.index(record.answer)])
    if record.task == "bigger_shape":
        return (
            "Physics",
            "Which of the two shapes in <image 1> is bigger?",
            ["left", "right"],
            "AB"[("left", "right").index(record.answer)],
        )
    return None


def write_mmmu(records: dict, read_image: Callable[[str], bytes], out_uri: str) -> str:
    """The MMMU release layout (one folder per subject, validation split) under `out_uri`; returns its URI."""
    folder = storage.join(out_uri, MMMU_FOLDER)
    subjects: dict[str, list[dict]] = {}
    for task_records in records.values():
        for record in task_records:
            entry = _mmmu_entry(record)
            if entry is None:
                continue
            subject, question, options, answer = entry
            rows = subjects.setdefault(subject, [])
            rows.append(
                {
                    "id": f"validation_{subject}_{len(rows) + 1}",
                    "question": question,
                    "options": str(options),
                    "explanation": "",
                    "image_1": image_struct(read_image(record.image), Path(record.image).name),
                    "img_type": "['Diagrams']",
                    "answer": answer,
                    "topic_difficulty": "Easy",
                    "question_type": "multiple-choice" if options else "open",
                    "subfield": "vlmtune demo",
                }
            )
    for subject, rows in subjects.items():
        uri = storage.join(folder, subject, "validation-00000-of-00001.parquet")
        storage.write_bytes(uri, parquet_bytes(rows, MMMU_SCHEMA))
    return folder
