"""The README's two commands stay what CI and newcomers run."""

from __future__ import annotations

import re


def commands(readme: str) -> list[str]:
    return re.findall(r"```bash\n(.+?)\n```", readme)


def test_readme_has_two_setup_commands_and_ci_runs_the_test_one(repo):
    quickstart, tests = commands((repo / "README.md").read_text())[:2]
    assert quickstart.endswith("vlmtune run jobs/quickstart.yaml")
    assert tests in (repo / ".ci" / "run").read_text()
    for command in (quickstart, tests):
        # torch alone from PyTorch's CPU index, then everything else from PyPI with the version pinned
        assert "pip install --no-deps -r constraints/torch-cpu.txt && pip install -c constraints/cpu.txt" in command
    assert "torch==2.13.0" in (repo / "constraints" / "cpu.txt").read_text()


def test_cpu_torch_comes_from_pytorchs_cpu_index_with_the_pinned_version(repo):
    lines = [
        line
        for line in (repo / "constraints" / "torch-cpu.txt").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    assert lines == ["--index-url https://download.pytorch.org/whl/cpu", "-c cpu.txt", "torch"]
    pins = [line for line in (repo / "constraints" / "cpu.txt").read_text().splitlines() if not line.startswith("#")]
    assert pins == ["torch==2.13.0"]  # no index here: the second install must not ask PyTorch's index for everything
