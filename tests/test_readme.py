"""The README's two commands stay what CI and newcomers run."""

from __future__ import annotations

import re


def commands(readme: str) -> list[str]:
    return re.findall(r"```bash\n(.+?)\n```", readme)


def test_readme_has_two_setup_commands_and_ci_runs_the_test_one(repo):
    quickstart, tests = commands((repo / "README.md").read_text())[:2]
    assert quickstart.endswith("vlmtune run jobs/quickstart.yaml")
    assert "torch" not in quickstart and "-c constraints/cpu.txt" in quickstart
    assert tests in (repo / ".ci" / "run").read_text()
    assert "torch==2.13.0" in (repo / "constraints" / "cpu.txt").read_text()
