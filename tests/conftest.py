"""Shared fixtures: the tiny synthetic corpora, generated once per test session, and a scratch
recipe directory laid out like a Kaldi egs dir (symlinks to the recipe's scripts)."""
import os
import subprocess
from pathlib import Path

import pytest

# kaldi_io sets KALDI_ROOT to a made-up path when it is unset, which would send the recipe's scripts
# to a Kaldi that does not exist: import it here once and undo that.
_kaldi_root = os.environ.get("KALDI_ROOT")
import kaldi_io  # noqa: E402,F401
if _kaldi_root is None:
    os.environ.pop("KALDI_ROOT", None)

RECIPE = Path(__file__).resolve().parent.parent
RECIPE_ENTRIES = ("path.sh", "cmd.sh", "run.sh", "conf", "local", "steps", "utils", "pyscripts")


def run_script(args, cwd, check=True, env=None):
    """Runs a recipe script; on failure the assertion shows its output."""
    proc = subprocess.run([str(a) for a in args], cwd=cwd, capture_output=True, text=True,
                          env={**os.environ, **(env or {})})
    if check:
        assert proc.returncode == 0, f"{args} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}"
    return proc


@pytest.fixture(scope="session")
def corpus_cache(tmp_path_factory):
    return tmp_path_factory.mktemp("corpora")


@pytest.fixture(scope="session")
def tiny_timit(corpus_cache):
    out = corpus_cache / "tiny" / "timit"
    run_script([RECIPE / "local/make_demo_timit.sh", "--size", "tiny", out], cwd=RECIPE)
    return out


@pytest.fixture(scope="session")
def tiny_iemocap(corpus_cache):
    out = corpus_cache / "tiny" / "iemocap"
    run_script([RECIPE / "local/make_demo_iemocap.sh", "--size", "tiny", out], cwd=RECIPE)
    return out


@pytest.fixture
def recipe_dir(tmp_path):
    """A fresh working directory holding links to the recipe, as Kaldi's egs dirs link steps/ utils/."""
    for name in RECIPE_ENTRIES:
        (tmp_path / name).symlink_to(RECIPE / name)
    if (RECIPE / ".venv").exists():
        (tmp_path / ".venv").symlink_to(RECIPE / ".venv")
    return tmp_path
