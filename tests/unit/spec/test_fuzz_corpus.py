"""A corpus of several hundred malformed job files, generated here from the files in jobs/ (none is stored in the
repository): wrong types, unknown keys, deep nesting, alias bombs, huge values, bad UTF-8, duplicate keys,
truncation, tabs, non-finite and boolean numbers. Every one must be refused with exit code 1, exactly one line
per problem naming the file and line or a field path, no traceback, within a time bound.
"""

from __future__ import annotations

import random
import re
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml

from vlmtune.cli import main

PER_MUTATION = 30
SEED = 20240914
BOUND_S = 10.0  # a file takes milliseconds (a 10 MB one about a second); the bound is for a loaded 2-core box
# One problem per line: `FILE[:LINE][ (document N)]: [PATH: ]MESSAGE[; fix: FIX]`.
PROBLEM = re.compile(r"^  \S.*?(:\d+)?( \(document \d+\))?: .+")
FIELD_OR_LINE = re.compile(r"^  --set |^  \S+?:\d+|: [A-Za-z][\w.\[\]/-]*: ")


def _leaves(node, path=()):
    if isinstance(node, dict):
        for key, value in node.items():
            yield from _leaves(value, (*path, key))
    elif isinstance(node, list):
        for index, value in enumerate(node):
            yield from _leaves(value, (*path, index))
    else:
        yield path, node


def _mappings(node, path=()):
    if isinstance(node, dict):
        yield path
        for key, value in node.items():
            yield from _mappings(value, (*path, key))
    elif isinstance(node, list):
        for index, value in enumerate(node):
            yield from _mappings(value, (*path, index))


def _set(document, path, value):
    for key in path[:-1]:
        document = document[key]
    document[path[-1]] = value


def _spec_leaf(rng, document):
    leaves = [(p, v) for p, v in _leaves(document) if p and p[0] == "spec"]
    return rng.choice(leaves)


def wrong_type(rng, text):
    document = yaml.safe_load(text)
    path, value = _spec_leaf(rng, document)
    bad = (
        rng.choice([True, "text", [1, 2]])
        if isinstance(value, (int, float)) and not isinstance(value, bool)
        else {"a": {"b": 1}}
    )
    _set(document, path, bad)
    return yaml.safe_dump(document)


def unknown_key(rng, text):
    document = yaml.safe_load(text)
    path = rng.choice([p for p in _mappings(document) if p])
    node = document
    for key in path:
        node = node[key]
    node[f"zz{rng.randrange(10**6)}"] = {"nested": {"value": 1}}
    return yaml.safe_dump(document)


def deep_nesting(rng, text):
    depth = rng.choice([60, 1000, 20_000]) + rng.randrange(50)
    return text + f"\nzzDeep{rng.randrange(10**6)}: " + "[" * depth + "]" * depth + "\n"


def alias_bomb(rng, text):
    width = rng.randint(8, 12)
    lines = ["bombA: &a [" + ", ".join(['"lol"'] * width) + "]"]
    for level in range(1, 8):
        lines.append(
            f"bomb{level}: &l{level} [" + ", ".join([f"*{'a' if level == 1 else f'l{level - 1}'}"] * width) + "]"
        )
    return "\n".join(lines) + "\n" + text.replace("\nspec:", "\nzzBomb: *l7\nspec:", 1)


def huge_value(rng, text):
    """A megabyte-sized value where text is not allowed (a number, a boolean) or is bounded (the name)."""
    document = yaml.safe_load(text)
    fields = [p for p, v in _leaves(document) if p and p[0] == "spec" and not isinstance(v, str)]
    path = rng.choice([*fields, ("metadata", "name")])
    _set(document, path, "HUGE-VALUE")  # put in after dumping: PyYAML's emitter is slow on megabytes
    return yaml.safe_dump(document).replace("HUGE-VALUE", "x" * rng.choice([100_000, 1_000_000, 10_000_000]), 1)


def bad_utf8(rng, text):
    data = text.encode()
    at = rng.randrange(len(data))
    return data[:at] + rng.choice([b"\xff", b"\xc3\x28", b"\xed\xa0\x80", b"\x80\x80"]) + data[at:]


def duplicate_key(rng, text):
    lines = text.splitlines(keepends=True)
    keyed = [
        i
        for i, line in enumerate(lines)
        if re.match(r"^\s*[A-Za-z][\w-]*:", line) and not line.lstrip().startswith("-")
    ]
    index = rng.choice(keyed)
    return "".join(lines[: index + 1] + [lines[index]] + lines[index + 1 :])


def truncated(rng, text):
    body = text.split("\nspec:", 1)
    cut = rng.randrange(1, max(2, len(body[-1]) // 2))
    return body[0] + "\nspec:" + body[-1][:cut] + rng.choice(["[", "{a: ", "'open", ": : :", "\t- x"])


def tab_indent(rng, text):
    lines = text.splitlines(keepends=True)
    indented = [i for i, line in enumerate(lines) if line.startswith("  ") and line.strip()]
    index = rng.choice(indented)
    lines[index] = "\t" + lines[index].lstrip(" ")
    return "".join(lines)


def bad_number(rng, text):
    document = yaml.safe_load(text)
    numbers = [
        (p, v)
        for p, v in _leaves(document)
        if p and p[0] == "spec" and isinstance(v, (int, float)) and not isinstance(v, bool)
    ]
    path, _ = rng.choice(numbers)
    _set(document, path, rng.choice([float("inf"), float("-inf"), float("nan"), True, False, 2**40, "12"]))
    return yaml.safe_dump(document)


def bad_header(rng, text):
    return text.replace(
        "kind: ",
        rng.choice(["kind: [", "kind: ['TuningJob'] #", "kind: {a: 1} #", "kind: Tuningjob #", "kind: 7 #"]),
        1,
    )


def missing_required(rng, text):
    document = yaml.safe_load(text)
    spec = document["spec"]
    del spec[rng.choice([key for key in ("output", "model", "data", "stages", "base", "benchmarks") if key in spec])]
    return yaml.safe_dump(document)


MUTATIONS: list[Callable] = [
    wrong_type,
    unknown_key,
    deep_nesting,
    alias_bomb,
    huge_value,
    bad_utf8,
    duplicate_key,
    truncated,
    tab_indent,
    bad_number,
    bad_header,
    missing_required,
]


def _single_documents(repo: Path) -> list[str]:
    """Every document of every shipped job file, as its own file's text (references resolve within one file)."""
    texts = []
    for path in sorted((repo / "jobs").glob("*.yaml")):
        documents = list(yaml.safe_load_all(path.read_text()))
        if len(documents) == 1:
            texts.append(path.read_text())
        else:
            texts.extend(yaml.safe_dump(d) for d in documents if "from" not in d["spec"].get("model", {}))
    return texts


@pytest.fixture(scope="module")
def corpus(repo, tmp_path_factory) -> list[Path]:
    rng = random.Random(SEED)
    sources = _single_documents(repo)
    folder = tmp_path_factory.mktemp("corpus")
    files, seen = [], set()
    for mutation in MUTATIONS:
        for index in range(PER_MUTATION):
            for _ in range(50):  # a few mutations have few variants: draw until this one is new
                content = mutation(rng, rng.choice(sources))
                content = content if isinstance(content, bytes) else content.encode()
                if content not in seen:
                    break
            seen.add(content)
            path = folder / f"{mutation.__name__}-{index:03d}.yaml"
            path.write_bytes(content)
            files.append(path)
    return files


def test_the_corpus_is_large_and_generated(corpus):
    assert len(corpus) >= 300 and len({path.read_bytes() for path in corpus}) >= 0.95 * len(corpus)


def test_every_malformed_file_is_refused_one_line_per_problem(corpus, capsys):
    slow, bad = [], []
    for path in corpus:
        started = time.monotonic()
        code = main(["validate", str(path)])
        elapsed = time.monotonic() - started
        err = capsys.readouterr().err
        header, *lines = err.splitlines() or [""]
        count = re.match(r"^(\d+) problem\(s\) found:$", header)
        ok = (
            code == 1
            and count
            and int(count.group(1)) == len(lines) > 0
            and all(PROBLEM.match(line) and FIELD_OR_LINE.search(line) for line in lines)
            and "Traceback" not in err
            and all(len(line) < 1200 for line in lines)
        )
        if not ok:
            bad.append(f"{path.name}: rc={code}\n{err[:600]}")
        if elapsed > BOUND_S:
            slow.append(f"{path.name}: {elapsed:.1f}s")
    assert not bad, f"{len(bad)} of {len(corpus)} files:\n" + "\n".join(bad[:10])
    assert not slow, slow


@pytest.mark.parametrize("command", ["validate", "run"])
def test_the_command_line_refuses_samples_of_the_corpus_without_a_traceback(corpus, command, repo, tmp_path):
    """Through real processes (the entry point, argument parsing, exit status); `run` refuses before Ray starts."""
    rng = random.Random(SEED + 1)
    for mutation in MUTATIONS[::3]:
        path = rng.choice([p for p in corpus if p.name.startswith(mutation.__name__)])
        started = time.monotonic()
        done = subprocess.run(
            [sys.executable, "-m", "vlmtune.cli", command, str(path)],
            capture_output=True,
            text=True,
            timeout=60,
            cwd=tmp_path,
        )
        assert done.returncode == 1, (path.name, done.stderr[-800:])
        assert "Traceback" not in done.stderr and done.stderr.strip(), (path.name, done.stderr[-800:])
        assert time.monotonic() - started < 30
