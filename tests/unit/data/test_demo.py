"""Tests for the deterministic Vision-Flan-schema demo suite."""

from __future__ import annotations

import hashlib
import json
import re
from collections import Counter, defaultdict
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from scipy import ndimage

from vlmtune.data.demo import (
    DEMO_TASKS,
    FORMAT_TASKS,
    IMAGE_TOKEN,
    NUMBER_WORDS,
    TASK_SPECS,
    DemoSuite,
    digit_indices,
    ensure_demo_suite,
    image_dims,
    nearest_color,
    write_demo_suite,
)

PER_TASK, HELDOUT, SEED, SIZE = 64, 16, 0, 64


@pytest.fixture(scope="module")
def suite(tmp_path_factory: pytest.TempPathFactory) -> DemoSuite:
    return write_demo_suite(
        tmp_path_factory.mktemp("demo"), per_task=PER_TASK, heldout_per_task=HELDOUT, seed=SEED, image_size=SIZE
    )


@pytest.fixture(scope="module")
def records(suite: DemoSuite) -> dict[str, list[dict]]:
    return {
        "train": json.loads(suite.train_annotations.read_text(encoding="utf-8")),
        "heldout": json.loads(suite.heldout_annotations.read_text(encoding="utf-8")),
    }


def _human(record: dict) -> str:
    return record["conversations"][0]["value"]


def _answer(record: dict) -> str:
    return record["conversations"][1]["value"]


def _instruction(record: dict) -> str:
    return _human(record).replace(IMAGE_TOKEN, "").strip("\n")


def _by_task(recs: list[dict]) -> dict[str, list[dict]]:
    out: dict[str, list[dict]] = defaultdict(list)
    for r in recs:
        out[r["task_name"]].append(r)
    return out


def _pixels(root: Path, record: dict) -> np.ndarray:
    with Image.open(root / record["image"]) as im:
        return np.asarray(im.convert("RGB"), dtype=np.int32)


def _foreground(arr: np.ndarray) -> np.ndarray:
    """Pixels far from the (lightly noisy) background, estimated from the image border."""
    border = np.concatenate([arr[0], arr[-1], arr[:, 0], arr[:, -1]])
    bg = np.median(border, axis=0)
    return np.abs(arr - bg).sum(axis=-1) > 60


def _components(arr: np.ndarray) -> list[np.ndarray]:
    labels, n = ndimage.label(_foreground(arr))
    return [labels == k for k in range(1, n + 1)]


# ---------------------------------------------------------------- layout and schema


def test_suite_description(suite: DemoSuite) -> None:
    assert len(DEMO_TASKS) >= 13 and "digit_recognition" in DEMO_TASKS
    assert suite.tasks == DEMO_TASKS
    assert suite.n_train == PER_TASK * len(DEMO_TASKS)
    assert suite.n_heldout == HELDOUT * len(DEMO_TASKS)
    meta = json.loads((suite.root / "suite.json").read_text())
    assert meta["params"] == {
        "format_version": 2,
        "per_task": PER_TASK,
        "heldout_per_task": HELDOUT,
        "seed": SEED,
        "image_size": SIZE,
        "tasks": list(DEMO_TASKS),
    }
    assert meta["counts"] == {"train": suite.n_train, "heldout": suite.n_heldout}


@pytest.mark.parametrize("split", ["train", "heldout"])
def test_record_schema(records: dict[str, list[dict]], split: str) -> None:
    recs = records[split]
    assert len(recs) == (PER_TASK if split == "train" else HELDOUT) * len(DEMO_TASKS)
    for r in recs:
        assert list(r) == ["id", "image", "task_name", "conversations"]
        assert isinstance(r["id"], str) and r["id"].isdigit()
        assert r["task_name"] in DEMO_TASKS
        assert r["image"].startswith(f"images/{r['task_name']}/") and r["image"].endswith(".png")
        human, gpt = r["conversations"]
        assert list(human) == ["from", "value"] and list(gpt) == ["from", "value"]
        assert human["from"] == "human" and gpt["from"] == "gpt"
        assert human["value"].count(IMAGE_TOKEN) == 1
        if TASK_SPECS[r["task_name"]].image_first:
            assert human["value"].startswith(IMAGE_TOKEN + "\n")
        else:
            assert human["value"].endswith("\n" + IMAGE_TOKEN)
        assert isinstance(gpt["value"], str) and gpt["value"] and IMAGE_TOKEN not in gpt["value"]


def test_image_token_placement_is_mixed() -> None:
    placements = {spec.image_first for spec in TASK_SPECS.values()}
    assert placements == {True, False}


def test_one_instruction_template_per_task(records: dict[str, list[dict]]) -> None:
    for task, recs in _by_task(records["train"] + records["heldout"]).items():
        template = TASK_SPECS[task].template
        pattern = re.escape(template)
        pattern = re.sub(r"\\\{\w+\\\}", "(.+?)", pattern)
        prefix, suffix = template.split("{")[0], template.rsplit("}", 1)[-1]
        assert prefix or (task in FORMAT_TASKS and suffix)  # a format task's fixed part is its answer format
        instructions = {_instruction(r) for r in recs}
        for text in instructions:
            assert text.startswith(prefix) and text.endswith(suffix) and re.fullmatch(pattern, text, re.S), (task, text)
        if "{" not in template:
            assert instructions == {template}
    # Per-instance fields really vary where the task has them.
    by_task = _by_task(records["train"])
    for task in ("object_existence", "color_choice", "color_count_compare", *FORMAT_TASKS):
        assert len({_instruction(r) for r in by_task[task]}) > 1


def test_ids_are_per_task_counters(records: dict[str, list[dict]]) -> None:
    for recs in records.values():
        for task_recs in _by_task(recs).values():
            assert [r["id"] for r in task_recs] == [str(i) for i in range(len(task_recs))]
        assert max(Counter(r["id"] for r in recs).values()) == len(DEMO_TASKS)
        assert len({(r["task_name"], r["image"]) for r in recs}) == len(recs)


def test_images_exist_rgb_and_sized(suite: DemoSuite, records: dict[str, list[dict]]) -> None:
    sizes = set()
    for r in records["train"] + records["heldout"]:
        with Image.open(suite.root / r["image"]) as im:
            assert im.format == "PNG" and im.mode == "RGB"
            assert im.size == image_dims(r["task_name"], SIZE)
            sizes.add(im.size)
    assert (SIZE, SIZE) in sizes and len(sizes) >= 2  # some non-square tasks for pad-to-square
    n_files = sum(1 for _ in (suite.root / "images").rglob("*.png"))
    assert n_files == suite.n_train + suite.n_heldout


def test_heldout_disjoint_from_train(suite: DemoSuite, records: dict[str, list[dict]]) -> None:
    train_paths = {r["image"] for r in records["train"]}
    assert not train_paths & {r["image"] for r in records["heldout"]}

    def digest(r: dict) -> tuple[str, str]:
        return r["task_name"], hashlib.sha256(_pixels(suite.root, r).tobytes()).hexdigest()

    train_hashes = {digest(r) for r in records["train"]}
    assert not train_hashes & {digest(r) for r in records["heldout"]}
    train_idx, held_idx = digit_indices(SEED, PER_TASK, HELDOUT)
    assert not set(train_idx) & set(held_idx)


# ---------------------------------------------------------------- determinism and caching


def _tree_bytes(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_same_seed_is_byte_identical_and_seeds_differ(tmp_path: Path) -> None:
    kwargs = dict(per_task=4, heldout_per_task=2, image_size=32)
    a = _tree_bytes(write_demo_suite(tmp_path / "a", seed=7, **kwargs).root)
    b = _tree_bytes(write_demo_suite(tmp_path / "b", seed=7, **kwargs).root)
    c = _tree_bytes(write_demo_suite(tmp_path / "c", seed=8, **kwargs).root)
    assert a == b
    assert a.keys() == c.keys()
    assert a["annotations_train.json"] != c["annotations_train.json"]
    assert a["annotations_heldout.json"] != c["annotations_heldout.json"]
    images = [k for k in a if k.endswith(".png")]
    assert all(a[k] != c[k] for k in images)


def test_ensure_reuses_matching_suite_and_rewrites_otherwise(tmp_path: Path) -> None:
    root = tmp_path / "suite"
    kwargs = dict(per_task=6, heldout_per_task=2, seed=1, image_size=32)
    first = ensure_demo_suite(root, **kwargs)
    watched = [
        root / "suite.json",
        first.train_annotations,
        first.heldout_annotations,
        root / "images" / "shape_name" / "train_00005.png",
    ]
    before = [p.stat().st_mtime_ns for p in watched]
    again = ensure_demo_suite(root, **kwargs)
    assert again == first
    assert [p.stat().st_mtime_ns for p in watched] == before

    changed = ensure_demo_suite(root, **{**kwargs, "per_task": 3})
    assert changed.n_train == 3 * len(DEMO_TASKS)
    assert json.loads((root / "suite.json").read_text())["params"]["per_task"] == 3
    assert not watched[-1].exists()  # stale images from the previous suite are gone
    assert len(json.loads(changed.train_annotations.read_text())) == changed.n_train


def test_ensure_rewrites_incomplete_suite(tmp_path: Path) -> None:
    kwargs = dict(per_task=2, heldout_per_task=0, seed=0, image_size=16)
    first = write_demo_suite(tmp_path, **kwargs)
    (tmp_path / "suite.json").unlink()
    assert ensure_demo_suite(tmp_path, **kwargs) == first
    assert (tmp_path / "suite.json").is_file()
    assert first.n_heldout == 0
    assert json.loads(first.heldout_annotations.read_text()) == []


@pytest.mark.parametrize("fn", [write_demo_suite, ensure_demo_suite])
@pytest.mark.parametrize("bad", [{"per_task": 0}, {"heldout_per_task": -1}, {"image_size": 15}, {"per_task": 2.5}])
def test_rejects_bad_arguments(tmp_path: Path, fn, bad: dict) -> None:
    (name,) = bad
    with pytest.raises(ValueError, match=name):
        fn(tmp_path, **bad)
    assert not (tmp_path / "suite.json").exists()


# ---------------------------------------------------------------- answers follow from the image


def test_digits_match_sklearn(suite: DemoSuite, records: dict[str, list[dict]]) -> None:
    from sklearn.datasets import load_digits

    digits = load_digits()
    train_idx, held_idx = digit_indices(SEED, PER_TASK, HELDOUT)
    for split, indices in (("train", train_idx), ("heldout", held_idx)):
        recs = _by_task(records[split])["digit_recognition"]
        for r, k in zip(recs, indices, strict=True):
            assert _answer(r) == str(digits.target[k])
            with Image.open(suite.root / r["image"]) as im:
                small = np.asarray(im.convert("L").resize((8, 8), Image.Resampling.BOX), float)
            expected = 255 - digits.images[k] * 255 / 16
            assert np.corrcoef(small.ravel(), expected.ravel())[0, 1] > 0.9


def test_count_and_color_answers(suite: DemoSuite, records: dict[str, list[dict]]) -> None:
    tasks = _by_task(records["train"] + records["heldout"])
    for r in tasks["dot_count"]:
        assert len(_components(_pixels(suite.root, r))) == NUMBER_WORDS.index(_answer(r))
    for r in tasks["background_color"]:
        arr = _pixels(suite.root, r)
        assert nearest_color(np.median(arr.reshape(-1, 3), axis=0)) == _answer(r)
    for r in tasks["shape_color"]:
        arr = _pixels(suite.root, r)
        assert nearest_color(np.median(arr[_foreground(arr)], axis=0)) == _answer(r)
    for r in tasks["color_choice"]:
        arr = _pixels(suite.root, r)
        options = dict(re.findall(r"\(([A-D])\) (\w+)", _instruction(r)))
        assert len(options) == 4
        assert options[_answer(r)] == nearest_color(np.median(arr[_foreground(arr)], axis=0))
    for r in tasks["color_count_compare"]:
        arr = _pixels(suite.root, r)
        counts = Counter(nearest_color(arr[m].mean(axis=0)) for m in _components(arr))
        first, second = re.search(r"dots in the image, (\w+) or (\w+)\?", _instruction(r)).groups()
        assert set(counts) == {first, second}
        assert _answer(r) == counts.most_common(1)[0][0] and counts[first] != counts[second]


def test_geometry_answers(suite: DemoSuite, records: dict[str, list[dict]]) -> None:
    tasks = _by_task(records["train"] + records["heldout"])
    for r in tasks["shape_position"]:
        arr = _pixels(suite.root, r)
        ys, xs = np.nonzero(_foreground(arr))
        h, w = arr.shape[:2]
        cx, cy = xs.mean() / w, ys.mean() / h
        derived = (
            ("left" if cx < 0.5 else "right") if abs(cx - 0.5) > abs(cy - 0.5) else ("top" if cy < 0.5 else "bottom")
        )
        assert derived == _answer(r)
    for r in tasks["bigger_shape"]:
        parts = sorted(_components(_pixels(suite.root, r)), key=lambda m: np.nonzero(m)[1].mean())
        assert len(parts) == 2
        assert ("left" if parts[0].sum() > parts[1].sum() else "right") == _answer(r)
    for r in tasks["line_orientation"]:
        ys, xs = np.nonzero(_foreground(_pixels(suite.root, r)))
        width, height = np.ptp(xs) + 1, np.ptp(ys) + 1
        derived = "horizontal" if height * 3 < width else "vertical" if width * 3 < height else "diagonal"
        assert derived == _answer(r)
    for r in tasks["more_circles"]:
        kinds = Counter()
        for m in _components(_pixels(suite.root, r)):
            ys, xs = np.nonzero(m)
            fill = m.sum() / ((np.ptp(xs) + 1) * (np.ptp(ys) + 1))  # square ~1.0, circle ~0.8
            kinds["square" if fill > 0.92 else "circle"] += 1
        assert ("yes" if kinds["circle"] > kinds["square"] else "no") == _answer(r)


def test_yes_no_tasks_are_balanced(records: dict[str, list[dict]]) -> None:
    tasks = _by_task(records["train"])
    for task in ("object_existence", "more_circles"):
        counts = Counter(_answer(r) for r in tasks[task])
        assert counts == {"yes": PER_TASK // 2, "no": PER_TASK // 2}


def test_other_answers_are_well_formed(records: dict[str, list[dict]]) -> None:
    tasks = _by_task(records["train"])
    assert {_answer(r) for r in tasks["shape_name"]} == {"circle", "square", "triangle"}
    assert all(re.fullmatch(r"[A-Z]{2,4}", _answer(r)) for r in tasks["text_reading"])
    assert len({_answer(r) for r in tasks["text_reading"]}) > PER_TASK // 2
    assert {_answer(r) for r in tasks["digit_recognition"]} <= set("0123456789")


def _shape_kind(mask: np.ndarray) -> str:
    """circle / square / triangle from how much of its bounding box a shape fills (~0.79 / 1.0 / 0.5)."""
    ys, xs = np.nonzero(mask)
    fill = mask.sum() / ((np.ptp(xs) + 1) * (np.ptp(ys) + 1))
    return "square" if fill > 0.92 else "circle" if fill > 0.65 else "triangle"


SINGLE_SHAPE_TASKS = ("shape_name", "shape_color", "color_choice") + FORMAT_TASKS


def test_single_shapes_are_large_and_near_the_centre(suite: DemoSuite, records: dict[str, list[dict]]) -> None:
    tasks = _by_task(records["train"] + records["heldout"])
    for task in SINGLE_SHAPE_TASKS:
        for r in tasks[task]:
            arr = _pixels(suite.root, r)
            ys, xs = np.nonzero(_foreground(arr))
            h, w = arr.shape[:2]
            assert abs((xs.min() + xs.max()) / 2 - w / 2) <= w / 16 + 1.5, (task, r["id"])
            assert abs((ys.min() + ys.max()) / 2 - h / 2) <= h / 16 + 1.5, (task, r["id"])
            assert np.ptp(xs) + 1 >= 0.55 * min(w, h)  # diameter >= 0.6 of the side, less anti-aliasing
    for r in tasks["shape_name"]:
        assert _shape_kind(_foreground(_pixels(suite.root, r))) == _answer(r)


def test_format_tasks_end_as_the_benchmarks_prompts_do(records: dict[str, list[dict]]) -> None:
    tasks = _by_task(records["train"])
    endings = {
        "yes_no_question": "? Please answer yes or no.",
        "short_answer_question": "?\nAnswer the question using a single word or phrase.",
        "option_letter_question": "\nAnswer with the option's letter from the given choices directly.",
    }
    for task, ending in endings.items():
        assert all(_instruction(r).endswith(ending) for r in tasks[task]), task


def test_format_task_answers_follow_from_the_pixels(suite: DemoSuite, records: dict[str, list[dict]]) -> None:
    for r in _by_task(records["train"] + records["heldout"])["yes_no_question"]:
        drawn = _drawn(suite, r)
        asked = re.fullmatch(
            r".*(?:Is there a (\w+) in the image|Is the shape in the image (\w+))\? Please .*", _instruction(r), re.S
        ).groups()
        truth = drawn[0] == asked[0] if asked[0] else drawn[1] == asked[1]
        assert _answer(r) == ("yes" if truth else "no")
    for r in _by_task(records["train"] + records["heldout"])["short_answer_question"]:
        kind, color = _drawn(suite, r)
        question = _instruction(r).split("\n")[0]
        existence = re.fullmatch(r"Is there a (\w+) in the image\?", question)
        expected = (
            ("yes" if existence.group(1) == kind else "no") if existence else color if "color" in question else kind
        )
        assert _answer(r) == expected, question
    for r in _by_task(records["train"] + records["heldout"])["option_letter_question"]:
        kind, color = _drawn(suite, r)
        options = dict(re.findall(r"^([A-D])\. (\w+)$", _instruction(r), re.M))
        assert options[_answer(r)] == (kind if _instruction(r).startswith("Which shape") else color)


def _drawn(suite: DemoSuite, record: dict) -> tuple[str, str]:
    arr = _pixels(suite.root, record)
    mask = _foreground(arr)
    return _shape_kind(mask), nearest_color(np.median(arr[mask], axis=0))


def test_format_tasks_balance_yes_and_no(records: dict[str, list[dict]]) -> None:
    tasks = _by_task(records["train"])
    assert Counter(_answer(r) for r in tasks["yes_no_question"]) == {"yes": PER_TASK // 2, "no": PER_TASK // 2}
    short = Counter(_answer(r) for r in tasks["short_answer_question"])
    assert short["yes"] == short["no"] == PER_TASK // 4
    assert Counter(_answer(r) for r in tasks["option_letter_question"]).keys() <= set("ABCD")
