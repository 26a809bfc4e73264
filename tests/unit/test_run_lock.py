"""Never two runs at once, never a job without its runner (issue 25, point 3): utils/run.pl's local jobs
end with their runner however it ends (SIGKILL, a hang-up of its process group), and run.sh holds a lock
on its recipe dir (exp/.run.lock, utils/stage.sh) that a second run.sh, or a stage script called
directly, refuses to share, naming the first run; a lock whose run was killed does not block.

The runs here stop in their set-up: utils/setup_env.sh is a stub that says it started, then sleeps
($STUB_SETUP_SECONDS) and fails with code 7, so that a run holds the lock cheaply."""
import os
import signal
import subprocess
from pathlib import Path

import pytest

from conftest import RECIPE, RECIPE_ENTRIES, run_script, wait_for

RUN_PL = RECIPE / "utils/run.pl"
STUB_SETUP = """#!/bin/bash
echo started > setup.started
sleep "${STUB_SETUP_SECONDS:-60}"
exit 7
"""


def alive(pid):
    """A process that exists and is not a zombie (an orphan's zombie may wait for a busy init)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False
    except OSError:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        return True


def stop_group(proc):
    """Cleans up a process started in a session of its own, with all it started."""
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    proc.wait(timeout=10)


# ---------------------------------------------------------------- jobs end with their runner
@pytest.mark.parametrize("how", ["SIGKILL of run.pl", "SIGHUP of its process group"])
def test_jobs_end_with_their_runner(tmp_path, how):
    err = tmp_path / "runner.err"   # a file: the jobs of an older run.pl would hold a pipe open
    with err.open("w") as err_file:
        proc = subprocess.Popen([RUN_PL, "JOB=1:2", "log/s.JOB.log", "bash", "-c", "echo $$ > pid.JOB; exec sleep 60"],
                                cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=err_file, start_new_session=True)
    pids = []
    try:
        pid_files = [tmp_path / f"pid.{j}" for j in (1, 2)]
        wait_for(lambda: all(f.is_file() and f.read_text().strip() for f in pid_files), 30, "the jobs to start")
        pids = [int(f.read_text()) for f in pid_files]
        if how.startswith("SIGKILL"):
            os.kill(proc.pid, signal.SIGKILL)
        else:
            os.killpg(proc.pid, signal.SIGHUP)   # what closing the terminal does to run.sh's group
        proc.wait(timeout=30)
        wait_for(lambda: not any(alive(p) for p in pids), 5, "the jobs to end with their runner")
        if how.startswith("SIGKILL"):
            # The watcher says so in the log, which has no footer: the job did not end by itself.
            wait_for(lambda: "ended before this job" in (tmp_path / "log/s.1.log").read_text(), 5, "the note")
            assert "# Ended" not in (tmp_path / "log/s.1.log").read_text()
        else:
            said = err.read_text()
            assert proc.returncode == 129 and "interrupted (SIGHUP)" in said, (proc.returncode, said)
    finally:
        stop_group(proc)
        for pid in pids:   # what an older run.pl left behind
            if alive(pid):
                os.kill(pid, signal.SIGKILL)


def proc_stat(pid):
    """(state, ppid) of a process."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return fields[0], int(fields[1])


def test_a_watcher_holds_none_of_the_runners_descriptors(tmp_path):
    """A watcher outlives its job by up to a poll: it must not hold what the runner holds (its GPU lock,
    the caller's pipe, a descriptor it inherited such as run.sh's recipe lock), or it would hold them up."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "nvidia-smi").write_text("#!/bin/sh\necho 'GPU 0: NVIDIA H100 80GB HBM3 (UUID: GPU-0000aaaa)'\n")
    (bin_dir / "nvidia-smi").chmod(0o755)
    env = {k: v for k, v in os.environ.items() if k not in ("CUDA_VISIBLE_DEVICES", "RUN_PL_IN_JOB")}
    env.update(PATH=f"{bin_dir}{os.pathsep}{env['PATH']}", TMPDIR=str(tmp_path))
    inherited = (tmp_path / "inherited").open("w")
    proc = subprocess.Popen([RUN_PL, "--gpu", "1", "log/w.log", "bash", "-c", "echo $$ > pid; exec sleep 60"],
                            cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                            pass_fds=[inherited.fileno()], start_new_session=True)
    try:
        wait_for(lambda: (tmp_path / "pid").is_file() and (tmp_path / "pid").read_text().strip(), 30, "the job")
        shell = proc_stat(int((tmp_path / "pid").read_text()))[1]   # the job script's bash
        watchers = [p.name for p in Path("/proc").iterdir() if p.name.isdigit() and _child_named(p, shell)]
        assert len(watchers) == 1, f"no watcher beside the job (children of {shell})"
        held = {os.readlink(f) for f in Path(f"/proc/{watchers[0]}/fd").iterdir()}
        runner_out = os.readlink(f"/proc/{proc.pid}/fd/1")
        assert str(tmp_path / "inherited") not in held and runner_out not in held, held
        assert not any("run.pl-gpus" in f for f in held), held
        assert (tmp_path / f"run.pl-gpus-{os.getuid()}/gpu.0").exists()   # the GPU was locked, by the runner
    finally:
        stop_group(proc)
        inherited.close()


def _child_named(proc_dir, parent):
    try:
        return proc_stat(proc_dir.name)[1] == parent and \
            (proc_dir / "cmdline").read_bytes().startswith(b"run.pl: watcher")
    except OSError:
        return False


# ---------------------------------------------------------------- one run at a time in a recipe dir
@pytest.fixture
def stub_recipe(tmp_path):
    """A recipe dir like conftest.link_recipe's, whose utils/setup_env.sh is the stub."""
    for name in RECIPE_ENTRIES:
        if name != "utils":
            (tmp_path / name).symlink_to(RECIPE / name)
    if (RECIPE / ".venv").exists():
        (tmp_path / ".venv").symlink_to(RECIPE / ".venv")
    (tmp_path / "utils").mkdir()
    for f in (RECIPE / "utils").iterdir():
        if f.name != "setup_env.sh":
            (tmp_path / "utils" / f.name).symlink_to(f)
    (tmp_path / "utils/setup_env.sh").write_text(STUB_SETUP)
    (tmp_path / "utils/setup_env.sh").chmod(0o755)
    return tmp_path


def start_first_run(recipe):
    """./run.sh --corpus tiny, held in its set-up (it has the lock by then)."""
    proc = subprocess.Popen(["./run.sh", "--corpus", "tiny"], cwd=recipe, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, start_new_session=True,
                            env={**os.environ, "STUB_SETUP_SECONDS": "60"})
    wait_for(lambda: (recipe / "setup.started").is_file() or proc.poll() is not None, 30, "the first run's set-up")
    assert proc.poll() is None, f"the first run ended ({proc.returncode})"
    (recipe / "setup.started").unlink()
    return proc


def second_run(recipe, *args):
    """Another run; without the lock it would pass its (instant) set-up and fail there with code 7."""
    return run_script(args or ["./run.sh", "--corpus", "tiny"], cwd=recipe, check=False,
                      env={"STUB_SETUP_SECONDS": "0"})


def test_a_second_run_refuses_naming_the_first(stub_recipe):
    first = start_first_run(stub_recipe)
    try:
        for args in (["./run.sh", "--corpus", "tiny"],
                     ["local/run_joint.sh", "--stage", "5", "--stop-stage", "5", "exp/joint"]):  # a stage script
            proc = second_run(stub_recipe, *args)
            assert proc.returncode == 1, (args, proc.returncode, proc.stdout, proc.stderr)
            assert f"another run is going on in this directory: PID {first.pid}" in proc.stderr, proc.stderr
            assert "./run.sh --corpus tiny" in proc.stderr and f"kill {first.pid}" in proc.stderr, proc.stderr
            assert not (stub_recipe / "setup.started").exists()   # refused before its set-up
        # --help and option errors need no lock.
        helped = second_run(stub_recipe, "./run.sh", "--help")
        assert helped.returncode == 0 and "./run.sh --corpus tiny" in helped.stderr, helped.stderr
        bad = second_run(stub_recipe, "./run.sh", "--stage", "99")
        assert bad.returncode == 1 and "no such stage" in bad.stderr, bad.stderr
    finally:
        stop_group(first)


def test_a_lock_left_by_a_killed_run_does_not_block(stub_recipe):
    first = start_first_run(stub_recipe)
    stop_group(first)   # kill -9 of the whole run
    proc = subprocess.run(["./run.sh", "--corpus", "tiny"], cwd=stub_recipe, capture_output=True, text=True,
                          env={**os.environ, "STUB_SETUP_SECONDS": "0"}, timeout=60)
    assert proc.returncode == 7, (proc.returncode, proc.stderr)   # through the lock, into its set-up
    assert "another run" not in proc.stderr
    pid, _, command = (stub_recipe / "exp/.run.lock").read_text().rstrip("\n").split("\t")
    assert command == "./run.sh --corpus tiny" and pid != str(first.pid)


def test_processes_of_a_killed_run_keep_the_lock_and_are_named(stub_recipe):
    """kill -9 of run.sh alone: what it started (here its set-up) goes on and holds the lock."""
    first = start_first_run(stub_recipe)
    try:
        os.kill(first.pid, signal.SIGKILL)
        first.wait(timeout=10)
        proc = second_run(stub_recipe)
        assert proc.returncode == 1, (proc.returncode, proc.stderr)
        assert f"as PID {first.pid}" in proc.stderr and "has ended, but processes it started still hold" in \
            proc.stderr and "utils/setup_env.sh" in proc.stderr, proc.stderr
    finally:
        stop_group(first)
