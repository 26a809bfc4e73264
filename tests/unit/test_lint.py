"""The code's own hygiene: ruff (ruff.toml) and mypy (mypy.ini) on the Python, shellcheck on the shell
scripts. Each is skipped, saying why, where its tool is not installed (CI installs them all:
requirements-dev.txt, Debian's shellcheck)."""
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import RECIPE

SHELL_SCRIPTS = ["run.sh", "path.sh", "cmd.sh", "tests/run.sh", ".ci/run"] + sorted(
    str(p.relative_to(RECIPE)) for d in ("steps", "utils", "local") for p in (RECIPE / d).glob("*.sh"))


def tool(name):
    found = shutil.which(name) or shutil.which(name, path=str(Path(sys.executable).parent))
    if not found:
        pytest.skip(f"{name} is not installed (CI installs it; see .ci/run)")
    return found


def test_python_is_ruff_clean():
    proc = subprocess.run([tool("ruff"), "check", "--output-format", "concise", "pyscripts", "tests"],
                          cwd=RECIPE, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_python_type_checks_clean():
    # The packages and settings are mypy.ini's (its cache, .mypy_cache/, ignores itself for git).
    proc = subprocess.run([tool("mypy"), "--config-file", "mypy.ini"], cwd=RECIPE, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_shell_scripts_are_shellcheck_clean():
    proc = subprocess.run([tool("shellcheck"), "-x", "-S", "warning", *SHELL_SCRIPTS], cwd=RECIPE,
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr
