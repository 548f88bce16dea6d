"""The Dockerfile's invariants, checked statically (this machine has no Docker daemon; the images are not built
here): the `operator` and `train` targets exist; their entrypoints are the chart's operator command and the first
word of the RayJob entrypoint the operator builds; both run as the chart's non-root user; the Ray pinned is the
RuntimeConfig's; the operator image installs only the `operator` extra, whose dependency closure holds no torch or
Ray; the CPU constraints cannot be combined with a CUDA torch index (the guard is run with /bin/sh); and
.dockerignore lets in exactly what the COPY lines need."""

from __future__ import annotations

import fnmatch
import json
import re
import shlex
import subprocess
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

import pytest
import tomllib
import yaml
from packaging.requirements import Requirement

from vlmtune.spec import load_jobs
from vlmtune_operator.rayjob import build_rayjob
from vlmtune_operator.runtime import RuntimeConfig

REPO = Path(__file__).resolve().parents[3]
DOCKERFILE = REPO / "Dockerfile"
CHART_VALUES = yaml.safe_load((REPO / "charts" / "vlmtune" / "values.yaml").read_text())
PYPROJECT = tomllib.loads((REPO / "pyproject.toml").read_text())
HEAVY = {"torch", "ray", "deepspeed", "transformers"}
"""Distributions the operator image must not hold."""


@dataclass(frozen=True)
class Instruction:
    stage: str
    keyword: str
    arguments: str


def parse(text: str) -> list[Instruction]:
    """Dockerfile instructions with their stage name: continuation lines joined, comments and directives dropped."""
    instructions, stage, pending = [], "", ""
    for line in text.splitlines():
        stripped = line.strip()
        if stripped.startswith("#") or (not stripped and not pending):
            continue  # Docker drops comment lines even inside a continued instruction
        piece = stripped.removesuffix("\\").strip()
        pending = f"{pending} {piece}" if pending else piece
        if stripped.endswith("\\"):
            continue
        keyword, _, arguments = pending.partition(" ")
        pending = ""
        keyword = keyword.upper()
        if keyword == "FROM":
            stage = re.search(r"\bAS\s+(\S+)", arguments, re.IGNORECASE).group(1)
        instructions.append(Instruction(stage, keyword, arguments.strip()))
    return instructions


INSTRUCTIONS = parse(DOCKERFILE.read_text())


def of_stage(stage: str, keyword: str) -> list[str]:
    return [i.arguments for i in INSTRUCTIONS if i.stage == stage and i.keyword == keyword]


def arg_default(name: str) -> str:
    [value] = [
        i.arguments.split("=", 1)[1] for i in INSTRUCTIONS if i.keyword == "ARG" and i.arguments.startswith(f"{name}=")
    ]
    return value


def parent(stage: str) -> str:
    [base] = [i.arguments.split()[0] for i in INSTRUCTIONS if i.keyword == "FROM" and i.stage == stage]
    return base


def ancestry(stage: str) -> list[str]:
    """The stage, the stages it is built FROM, and the stages it COPYs --from, recursively."""
    stages = {i.stage for i in INSTRUCTIONS}
    found, todo = [], [stage]
    while todo:
        current = todo.pop()
        if current in found or current not in stages:
            continue
        found.append(current)
        todo.append(parent(current))
        todo += [re.search(r"--from=(\S+)", c).group(1) for c in of_stage(current, "COPY") if "--from=" in c]
    return found


def pip_installs(stage: str) -> list[list[str]]:
    """Argument lists of every `pip install` in a stage, split like /bin/sh would (variables left as written)."""
    return [shlex.split(run)[2:] for run in of_stage(stage, "RUN") if run.startswith("pip install")]


def test_the_parser_joins_continuations_and_tracks_stages():
    parsed = parse("ARG X=1\nFROM a AS one\n# note\nRUN echo a \\\n# inner\n    && echo b\nFROM one AS two\nUSER 1\n")
    assert parsed == [
        Instruction("", "ARG", "X=1"),
        Instruction("one", "FROM", "a AS one"),
        Instruction("one", "RUN", "echo a && echo b"),
        Instruction("two", "FROM", "one AS two"),
        Instruction("two", "USER", "1"),
    ]


def test_build_targets_train_and_operator():
    stages = [i.stage for i in INSTRUCTIONS if i.keyword == "FROM"]
    assert {"train", "operator"} <= set(stages)
    assert len(stages) == len(set(stages)), "stage names must be unique"
    assert parent("base") == "${PYTHON_IMAGE}" and arg_default("PYTHON_IMAGE").startswith("python:3.11-slim")


def _entrypoint(stage: str) -> list[str]:
    [entry] = of_stage(stage, "ENTRYPOINT")
    return json.loads(entry)  # exec form: no shell between the kubelet and the process


def test_operator_entrypoint_is_the_charts_operator_command():
    helm = pytest.importorskip("helm_python", reason="helm-python-sdk renders the chart")
    manifests = helm.Chart.load(REPO / "charts" / "vlmtune").render({}, name="vlmtune", namespace="ns", is_install=True)
    deployment = next(
        doc
        for path, text in manifests.items()
        if not path.endswith("NOTES.txt")
        for doc in yaml.safe_load_all(text)
        if doc and doc["kind"] == "Deployment"
    )
    [container] = deployment["spec"]["template"]["spec"]["containers"]
    assert _entrypoint("operator") == container["command"] == ["vlmtune-operator"]
    assert "vlmtune-operator" in PYPROJECT["project"]["scripts"]


def test_train_entrypoint_is_the_program_of_the_rayjob_entrypoint():
    [job] = load_jobs([REPO / "jobs" / "smoke.yaml"])
    command = shlex.split(build_rayjob(job, RuntimeConfig())["spec"]["entrypoint"])
    assert command[:3] == ["vlmtune", "run", "--spec-json"]
    assert _entrypoint("train") == command[:1]
    assert "vlmtune" in PYPROJECT["project"]["scripts"]


@pytest.mark.parametrize("stage", ["operator", "train"])
def test_final_images_run_as_the_charts_non_root_user(stage):
    uid, gid = CHART_VALUES["operator"]["runAsUser"], CHART_VALUES["operator"]["runAsGroup"]
    assert uid > 0 and gid > 0
    [user] = of_stage(stage, "USER")
    assert user == f"{uid}:{gid}"  # numeric: runAsNonRoot can only verify a numeric USER
    assert int(arg_default("APP_UID")) == uid  # the user created in `base` is that uid
    last_user = [i for i in INSTRUCTIONS if i.stage == stage][-1]
    assert last_user.keyword == "ENTRYPOINT" and _after_user_only_metadata(stage)


def _after_user_only_metadata(stage: str) -> bool:
    """Nothing runs as root after USER (a later RUN would; a later USER could switch back)."""
    keywords = [i.keyword for i in INSTRUCTIONS if i.stage == stage]
    return all(
        k in ("WORKDIR", "ENV", "ENTRYPOINT", "CMD", "LABEL", "EXPOSE") for k in keywords[keywords.index("USER") + 1 :]
    )


def test_ray_version_is_the_runtime_configs():
    assert arg_default("RAY_VERSION") == RuntimeConfig().ray_version == CHART_VALUES["runtime"]["rayVersion"]
    [install] = pip_installs("train-build")
    assert "ray[default,data,train]==${RAY_VERSION}" in install


def test_train_image_installs_the_train_extra_with_constraints():
    [install] = pip_installs("train-build")
    assert ".[train]" in install and install[install.index("-c") + 1] == "${TORCH_CONSTRAINTS}"
    assert install[install.index("--extra-index-url") + 1] == "${TORCH_INDEX_URL}"
    assert arg_default("TORCH_CONSTRAINTS") == "constraints/cpu.txt"
    assert arg_default("TORCH_INDEX_URL") == "https://download.pytorch.org/whl/cpu"


def test_operator_image_installs_only_the_operator_extra():
    assert set(ancestry("operator")) == {"operator", "operator-build", "source", "base"}
    assert "train-build" not in ancestry("operator")
    installs = [args for stage in ancestry("operator") for args in pip_installs(stage)]
    assert installs == [["--prefix=/install", ".[operator]"]]
    assert not of_stage("operator", "RUN")  # nothing else is added to the final operator image


def _closure(name: str, extras: set[str]) -> set[str]:
    """Distribution names `name[extras]` pulls in, from the installed metadata (markers evaluated here)."""
    seen: set[str] = set()
    todo = [(name, frozenset(extras))]
    while todo:
        dist, wanted = todo.pop()
        for text in metadata.requires(dist) or []:
            requirement = Requirement(text)
            if requirement.marker and not any(requirement.marker.evaluate({"extra": e}) for e in wanted or {""}):
                continue
            key = requirement.name.lower().replace("_", "-")
            if key == "vlmtune":  # the test extra names vlmtune[operator]
                continue
            if key not in seen:
                seen.add(key)
                try:
                    metadata.distribution(key)
                except metadata.PackageNotFoundError:
                    continue  # not installed here: nothing further to follow
                todo.append((key, frozenset(requirement.extras)))
    return seen


def test_the_operator_extra_pulls_in_no_torch_or_ray():
    operator = _closure("vlmtune", {"operator"})
    assert {"kopf", "kubernetes", "pydantic", "pyyaml"} <= operator
    assert not operator & HEAVY, operator & HEAVY
    assert _closure("vlmtune", {"train"}) >= HEAVY  # the check sees them where they are


def _guard() -> str:
    [guard] = [run for run in of_stage("train-build", "RUN") if run.startswith("case ")]
    return guard


@pytest.mark.parametrize(
    "index, constraints, ok",
    [
        ("https://download.pytorch.org/whl/cpu", "constraints/cpu.txt", True),
        ("https://download.pytorch.org/whl/cpu/", "constraints/cpu.txt", True),
        ("https://download.pytorch.org/whl/cu128", "constraints/gpu.txt", True),
        ("https://download.pytorch.org/whl/cu128", "constraints/cpu.txt", False),
        ("https://download.pytorch.org/whl/cpu", "constraints/gpu.txt", False),
    ],
)
def test_cpu_constraints_never_go_with_a_cuda_index(index, constraints, ok):
    # The guard RUN, executed as Docker's RUN would (/bin/sh -c) with the build args as environment.
    result = subprocess.run(
        ["/bin/sh", "-c", _guard()],
        env={"TORCH_INDEX_URL": index, "TORCH_CONSTRAINTS": constraints},
        capture_output=True,
        text=True,
        check=False,
    )
    assert (result.returncode == 0) is ok, result.stderr
    if not ok:
        assert "TORCH_CONSTRAINTS" in result.stderr


def test_gpu_constraints_pin_the_same_torch_as_the_cpu_ones():
    def pins(name: str) -> dict[str, str]:
        lines = (REPO / "constraints" / name).read_text().splitlines()
        return dict(line.split("==") for line in lines if line and not line.startswith("#"))

    assert pins("gpu.txt") == pins("cpu.txt") and "torch" in pins("cpu.txt")


def _ignored(path: str, patterns: list[str]) -> bool:
    """Docker's .dockerignore: the last pattern that matches the path or one of its parent folders decides."""
    parts = path.strip("/").split("/")
    prefixes = ["/".join(parts[:n]) for n in range(1, len(parts) + 1)]
    ignored = False
    for pattern in patterns:
        negated, glob = pattern.startswith("!"), pattern.lstrip("!").strip("/")
        if any(fnmatch.fnmatchcase(prefix, glob) for prefix in prefixes) or (
            glob.startswith("**/") and any(fnmatch.fnmatchcase(part, glob[3:]) for part in parts)
        ):
            ignored = not negated
    return ignored


def test_dockerignore_admits_what_copy_needs_and_nothing_else():
    patterns = [
        line.strip()
        for line in (REPO / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    sources = [
        src
        for stage in {i.stage for i in INSTRUCTIONS}
        for copy in of_stage(stage, "COPY")
        if "--from=" not in copy
        for src in copy.split()[:-1]
    ]
    assert sources and all((REPO / src).exists() for src in sources)
    assert [src for src in sources if _ignored(src, patterns)] == []
    assert not _ignored("platform/vlmtune/spec/resources.py", patterns)
    for kept_out in (
        ".venv/bin/python",
        ".git/HEAD",
        "tests/unit/chart/conftest.py",
        "runs/x/model.safetensors",
        "charts/vlmtune/values.yaml",
        "platform/vlmtune/__pycache__/x.pyc",
        "build/lib/x.py",
    ):
        assert _ignored(kept_out, patterns), kept_out


def test_no_secrets_or_remote_adds_in_the_dockerfile():
    assert not [i for i in INSTRUCTIONS if i.keyword == "ADD"]  # COPY only: no remote URLs or auto-extraction
    names = [i.arguments.split("=", 1)[0] for i in INSTRUCTIONS if i.keyword in ("ARG", "ENV")]
    assert not [n for n in names if re.search(r"SECRET|PASSWORD|TOKEN|KEY", n, re.IGNORECASE)]
