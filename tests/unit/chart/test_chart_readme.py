"""The chart README's values table is generated from values.yaml's `# --` comments and never drifts."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[3]
CHART = REPO / "charts" / "vlmtune"
TOOL = REPO / "tests" / "tools" / "chart_values_doc.py"
sys.path.insert(0, str(TOOL.parent))

from chart_values_doc import rows  # noqa: E402


def test_the_values_table_matches_values_yaml():
    check = subprocess.run([sys.executable, str(TOOL), "--check", str(CHART)], capture_output=True, text=True)
    assert check.returncode == 0, check.stderr


def test_every_top_level_value_is_documented():
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    documented = {row.key.split(".")[0].split("[")[0] for row in rows((CHART / "values.yaml").read_text())}
    assert set(values) <= documented


def test_list_items_and_defaults_are_read_as_helm_docs_does():
    text = """
# -- Pools.
# @default -- one pool
pools:
  - # -- Pool name.
    name: gpu
    # -- Its taints.
    taints:
      - key: a
# -- Flag.
flag: true
"""
    table = {row.key: (row.type, row.default, row.description) for row in rows(text)}
    assert table == {
        "pools": ("list", "one pool", "Pools."),
        "pools[0].name": ("string", '`"gpu"`', "Pool name."),
        "pools[0].taints": ("list", '`[{"key":"a"}]`', "Its taints."),
        "flag": ("bool", "`true`", "Flag."),
    }


def test_a_stale_table_is_caught(tmp_path):
    for name in ("README.md", "values.yaml"):
        (tmp_path / name).write_text((CHART / name).read_text())
    values = (tmp_path / "values.yaml").read_text().replace("# -- Override the chart name", "# -- Rename the chart")
    (tmp_path / "values.yaml").write_text(values)
    check = subprocess.run([sys.executable, str(TOOL), "--check", str(tmp_path)], capture_output=True, text=True)
    assert check.returncode == 1 and "stale" in check.stderr
