"""Shared fixtures: the tiny synthetic corpora, generated once per test session, and a scratch
recipe directory laid out like a Kaldi egs dir (symlinks to the recipe's scripts)."""
import os
import shutil
import subprocess
import time
from pathlib import Path

import pytest

# The suite runs the recipe on the embedded backend; the Kaldi tier (marker `kaldi`) passes the
# KALDI_ROOT of the test run to its own scripts only. (kaldi_io also sets KALDI_ROOT, to a made-up
# path, when it is unset: import it here once and undo that too.)
KALDI_ROOT = os.environ.pop("KALDI_ROOT", None)
import kaldi_io  # noqa: E402,F401
os.environ.pop("KALDI_ROOT", None)

RECIPE = Path(__file__).resolve().parent.parent
RECIPE_ENTRIES = ("path.sh", "cmd.sh", "run.sh", "conf", "local", "steps", "utils", "pyscripts")


def transfer_setup(**given):
    """A transfer sweep's Setup (pyscripts/transfer/plan.py) in the recipe's layout (local/layout.sh)."""
    from pyscripts.transfer.plan import Setup
    layout = {"asr_train_data": "data/timit/train", "asr_dev_data": "data/timit/dev",
              "asr_train_targets": "exp/mono_ali/targets", "asr_dev_targets": "exp/mono_ali_dev/targets",
              "ser_folds_dir": "data/iemocap/folds", "ser_targets_dir": "exp/ser/targets"}
    return Setup(**{**layout, **given})


def run_script(args, cwd, check=True, env=None):
    """Runs a recipe script; on failure the assertion shows its output."""
    proc = subprocess.run([str(a) for a in args], cwd=cwd, capture_output=True, text=True,
                          env={**os.environ, **(env or {})})
    if check:
        assert proc.returncode == 0, f"{args} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}"
    return proc


def wait_for(predicate, timeout=60, what="it"):
    """Polls predicate() until it is true; fails after `timeout` seconds naming `what` it waited for."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


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


def link_recipe(path):
    """Makes `path` a working directory holding links to the recipe, as Kaldi's egs dirs link
    steps/ utils/."""
    path.mkdir(parents=True, exist_ok=True)
    for name in RECIPE_ENTRIES:
        (path / name).symlink_to(RECIPE / name)
    if (RECIPE / ".venv").exists():
        (path / ".venv").symlink_to(RECIPE / ".venv")
    return path


@pytest.fixture
def recipe_dir(tmp_path):
    return link_recipe(tmp_path)


def run_tiny_recipe(workdir, corpus_cache, env=None, stop_stage=13):
    """./run.sh --corpus tiny (stages 1..stop_stage) in a fresh recipe dir, on the session's tiny
    corpora. Returns the finished process."""
    return run_script(["./run.sh", "--corpus", "tiny", "--nj", "2", "--skip-setup", "true",
                       "--corpus-dir", corpus_cache, "--stop-stage", stop_stage],
                      cwd=link_recipe(workdir), env=env)


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory, corpus_cache, tiny_timit, tiny_iemocap):
    """The whole recipe on the tiny corpora, embedded backend: (recipe dir, its process); the process's
    `seconds` is how long the run took."""
    workdir = tmp_path_factory.mktemp("tiny_run")
    started = time.monotonic()
    proc = run_tiny_recipe(workdir, corpus_cache)
    proc.seconds = time.monotonic() - started
    return workdir, proc


@pytest.fixture(scope="module")
def one_torch_thread():
    """Small models train fastest on one thread, and two spinning threads stall on a shared 2-core box."""
    import torch
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def pytest_configure(config):
    config.addinivalue_line("markers", "kaldi: needs a Kaldi build (KALDI_ROOT); skipped without one")
    config.addinivalue_line("markers", "sclite: needs NIST's sclite (SCLITE, or on PATH); skipped without one")
    config.addinivalue_line("markers", "slurm: needs a one-node Slurm (Debian's slurmctld, slurmd, slurm-client, "
                            "munge; root); skipped without one")


@pytest.fixture(scope="session")
def kaldi_root():
    """The Kaldi build the Kaldi tier runs against (the test run's KALDI_ROOT); without one the test
    is skipped and says why."""
    if not KALDI_ROOT:
        pytest.skip("Kaldi tier: KALDI_ROOT is not set (point it at a Kaldi build to run these tests)")
    if not (Path(KALDI_ROOT) / "src/bin/ali-to-pdf").is_file():
        pytest.fail(f"KALDI_ROOT={KALDI_ROOT} has no src/bin/ali-to-pdf: not a built Kaldi")
    return Path(KALDI_ROOT)


@pytest.fixture(scope="session")
def sclite():
    """NIST's sclite, the reference the recipe's scoring is tested against: $SCLITE (.ci/run sets it from
    the SCTK build in ../shared/sctk), else the one on PATH or in KALDI_ROOT's tools/sctk/bin; without
    one the test is skipped and says why."""
    in_kaldi = Path(KALDI_ROOT) / "tools/sctk/bin/sclite" if KALDI_ROOT else None
    path = (os.environ.get("SCLITE") or shutil.which("sclite")
            or (str(in_kaldi) if in_kaldi and in_kaldi.is_file() else None))
    if not path:
        pytest.skip("sclite tier: no sclite (set SCLITE to NIST SCTK's bin/sclite, or put it on PATH)")
    if not (Path(path).is_file() and os.access(path, os.X_OK)):
        pytest.fail(f"SCLITE={path}: not an executable file")
    return Path(path)


def run_kaldi(args, kaldi_env, cwd, stderr=False):
    """Runs a Kaldi program (or a pipeline through bash); its stdout, and its stderr where Kaldi logs
    when asked. On failure the assertion shows stderr."""
    proc = subprocess.run([str(a) for a in args], cwd=cwd, env=kaldi_env, capture_output=True, text=True)
    assert proc.returncode == 0, f"{args} failed:\n{proc.stderr[-3000:]}"
    return (proc.stdout, proc.stderr) if stderr else proc.stdout


def int_table(text):
    """{utt: [ints]} from Kaldi text-mode integer vectors (`utt 1 2 3`): alignments, pdfs, word ids."""
    return {u: [int(w) for w in ws] for u, *ws in (line.split() for line in text.splitlines())}


@pytest.fixture(scope="session")
def kaldi_env(kaldi_root):
    """Environment for a Kaldi program called directly (Kaldi's binaries on PATH)."""
    bins = [str(kaldi_root / "src" / d) for d in ("bin", "featbin", "gmmbin", "latbin", "fstbin", "lmbin")]
    return {**os.environ, "KALDI_ROOT": str(kaldi_root), "PATH": os.pathsep.join(bins + [os.environ["PATH"]])}
