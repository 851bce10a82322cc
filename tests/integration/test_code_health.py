"""The layering and the code's health, checked by the tools rather than by eye: ruff, the
import-linter contracts in pyproject.toml (api over workers over services over the public
package lookups; plugins import only lookups) and mypy over lookups and services."""

import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent


@pytest.mark.parametrize("command", [
    ["ruff", "check", "."],
    ["lint-imports"],
    ["mypy"],
], ids=["ruff", "import-linter", "mypy"])
def test_tool_passes(command):
    done = subprocess.run([str(BIN / command[0]), *command[1:]], cwd=REPO, capture_output=True, text=True,
                          timeout=600)
    assert done.returncode == 0, f"{' '.join(command)} failed:\n{done.stdout}\n{done.stderr}"
