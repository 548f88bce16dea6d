"""The operator imports without torch or Ray, and from vlmtune only `vlmtune.spec`."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

# Block torch and ray outright (as if not installed), then report what got imported.
PROBE = """
import importlib, json, sys
class Block:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in ("torch", "ray"):
            raise ImportError(f"{name} is not installed here")
sys.meta_path.insert(0, Block())
for module in sys.argv[1:]:
    importlib.import_module(module)
print(json.dumps(sorted(sys.modules)))
"""


@pytest.mark.parametrize(
    "modules",
    [
        ["vlmtune_operator"],
        ["vlmtune_operator.handlers", "vlmtune_operator.client", "vlmtune_operator.__main__"],
    ],
)
def test_operator_imports_without_torch_ray_or_the_rest_of_vlmtune(modules):
    result = subprocess.run([sys.executable, "-c", PROBE, *modules], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    loaded = json.loads(result.stdout)
    assert not [m for m in loaded if m.split(".")[0] in ("torch", "ray", "deepspeed", "transformers", "pyarrow")]
    ours = [m for m in loaded if m.split(".")[0] == "vlmtune"]
    assert ours and all(m in ("vlmtune", "vlmtune.spec") or m.startswith("vlmtune.spec.") for m in ours), ours
