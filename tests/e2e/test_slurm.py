"""The job runners: utils/run.pl's job script, conf mapping and interrupts (always), and the Slurm tier
(marker `slurm`): utils/slurm.pl on a one-node Slurm started from Debian's packages
(tests/slurm_cluster.py), including the tiny recipe's stages 4-10 compared file by file with the local
run. Without the packages or root the tier is skipped and says why."""
import gzip
import json
import os
import signal
import subprocess
import time
from pathlib import Path

import kaldiio
import numpy as np
import pytest
import torch

import slurm_cluster
from conftest import RECIPE, link_recipe, run_script, wait_for

RUN_PL = RECIPE / "utils/run.pl"
SLURM_PL = RECIPE / "utils/slurm.pl"
QUEUE_PL = RECIPE / "utils/queue.pl"


# ---------------------------------------------------------------- the runner without a scheduler
def test_job_sources_path_sh_of_the_submitting_dir(tmp_path):
    (tmp_path / "path.sh").write_text("export RECIPE_MARK=from_path_sh\n")
    run_script([RUN_PL, "JOB=1:2", "log/p.JOB.log", "printenv", "RECIPE_MARK"], cwd=tmp_path,
               env={"RECIPE_MARK": "unset"})
    for j in (1, 2):
        log = (tmp_path / f"log/p.{j}.log").read_text().splitlines()
        assert log[log.index("#") + 1] == "from_path_sh" and log[-1].startswith("# Ended (code 0)")


def test_interrupted_local_runner_stops_its_jobs(tmp_path):
    proc = subprocess.Popen([RUN_PL, "JOB=1:2", "log/s.JOB.log", "bash", "-c", "echo $$ > pid.JOB; sleep 60"],
                            cwd=tmp_path, stderr=subprocess.PIPE, text=True, start_new_session=True)
    wait_for(lambda: all((tmp_path / f"pid.{j}").is_file() and (tmp_path / f"pid.{j}").read_text().strip()
                         for j in (1, 2)), 30, "the jobs to start")
    pids = [int((tmp_path / f"pid.{j}").read_text()) for j in (1, 2)]
    os.killpg(proc.pid, signal.SIGINT)  # what ^C does
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 130 and "interrupted (SIGINT)" in err and "log/s.1.log" in err

    def gone(pid):
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        return False
    wait_for(lambda: all(gone(p) for p in pids), 10, "the jobs to stop")


@pytest.mark.parametrize("runner, conf, args, message", [
    (SLURM_PL, "conf/slurm.conf", ["--foo", "1"], "has no line 'option foo=1' or 'option foo=*'"),
    (QUEUE_PL, "conf/queue.conf", ["--bar", "x"], "has no line 'option bar=x' or 'option bar=*'"),
    (SLURM_PL, "missing.conf", [], "cannot read the conf file missing.conf"),
    (SLURM_PL, "bad.conf", [], "bad.conf line 2: cannot parse 'option gpu'"),
])
def test_conf_errors_name_the_file_and_the_line_to_add(tmp_path, runner, conf, args, message):
    (tmp_path / "bad.conf").write_text("command sbatch\noption gpu\n")
    conf_path = RECIPE / conf if conf.startswith("conf/") else Path(conf)
    proc = run_script([runner, "--config", conf_path, *args, "log/x.log", "true"], cwd=tmp_path, check=False)
    assert proc.returncode == 1 and message in proc.stderr, proc.stderr


def fake_runner(tmp_path):
    """A $cmd that records its options and runs nothing."""
    fake = tmp_path / "fake.pl"
    fake.write_text(f"#!/bin/bash\necho \"$*\" >> {tmp_path}/requests\n")
    fake.chmod(0o755)
    return fake


@pytest.mark.parametrize("opts, request_", [
    ([], "--num-threads 1 "),                                      # auto: cuda_cmd (cmd.sh) decides
    (["--device", "cpu"], "--num-threads 1 --gpu 0 "),
    (["--device", "cuda"], "--num-threads 1 --gpu 1 "),
    (["--device", "cpu", "--num-gpus", "2", "--num-threads", "3"], "--num-threads 6 --gpu 0 "),
    (["--num-gpus", "2"], "--num-threads 2 --gpu 2 "),
])
def test_training_job_requests_follow_the_device(tmp_path, opts, request_):
    d = link_recipe(tmp_path / "r")
    for f in ("train/feats.scp", "dev/feats.scp", "ttr/targets.scp", "ttr/num_targets", "tdv/targets.scp",
              "tdv/num_targets"):
        (d / f).parent.mkdir(exist_ok=True)
        (d / f).touch()
    run_script(["steps/train_convnet.sh", "--cmd", fake_runner(tmp_path), *opts, "train", "dev", "ttr", "tdv",
                "exp"], cwd=d)
    assert (tmp_path / "requests").read_text().startswith(request_ + "exp/log/train.log ")


# ---------------------------------------------------------------- the Slurm tier
@pytest.fixture(scope="session")
def slurm(tmp_path_factory):
    """A one-node Slurm (tests/slurm_cluster.py) for the session: its environment (SLURM_CONF)."""
    reason = slurm_cluster.why_not()
    if reason:
        pytest.skip(reason)
    cluster = slurm_cluster.Cluster(tmp_path_factory.mktemp("slurm"))
    try:
        cluster.start()
    except (RuntimeError, OSError, subprocess.CalledProcessError) as err:
        cluster.stop()
        pytest.skip(f"Slurm tier: cannot start a one-node Slurm here: {err}")
    yield cluster
    cluster.stop()


def slurm_env(cluster):
    return {"SLURM_CONF": str(cluster.conf)}


def slurm_pl(cluster, cwd, *args, check=True):
    return run_script([SLURM_PL, "--config", RECIPE / "conf/slurm.conf", *args], cwd=cwd, check=check,
                      env=slurm_env(cluster))


@pytest.mark.slurm
def test_slurm_array_job_with_resources(slurm, tmp_path):
    (tmp_path / "path.sh").write_text("export RECIPE_MARK=from_path_sh\n")
    proc = slurm_pl(slurm, tmp_path, "--num-threads", "2", "--gpu", "1", "--mem", "100M", "JOB=1:3",
                    "log/a.JOB.log", "echo", "job", "JOB", "$RECIPE_MARK", "cpus=$SLURM_CPUS_PER_TASK",
                    "gpus=$CUDA_VISIBLE_DEVICES")
    assert proc.stdout == "" and proc.stderr == ""   # no "Submitted batch job" chatter
    for j in (1, 2, 3):
        log = (tmp_path / f"log/a.{j}.log").read_text()
        assert f"job {j} from_path_sh cpus=2 gpus=0" in log and "Ended (code 0)" in log
    job_id = (tmp_path / "log/q/a.submit").read_text().split("\n", 1)[1].split(";")[0].strip()
    wait_for(lambda: slurm.jobcomp.read_text().count(f"ArrayJobId={job_id} ") == 3, 30,
             "the job-completion log")                # one array job of three tasks
    assert sorted(p.name for p in (tmp_path / "log/q").glob("*.out")) == ["a.1.out", "a.2.out", "a.3.out"]


@pytest.mark.slurm
def test_slurm_failed_job_names_its_log(slurm, tmp_path):
    proc = slurm_pl(slurm, tmp_path, "JOB=1:3", "log/t.JOB.log", "test", "JOB", "-ne", "2", check=False)
    assert proc.returncode == 1
    assert "1 / 3 failed (JOB=1:3)" in proc.stderr and "JOB=2: exit code 1, see log/t.2.log" in proc.stderr


@pytest.mark.slurm
def test_slurm_refused_submission_says_why(slurm, tmp_path):
    proc = slurm_pl(slurm, tmp_path, "--gpu", "8", "log/g.log", "true", check=False)
    assert proc.returncode == 1
    assert "sbatch refused the job" in proc.stderr and "--gres=gpu:8" in proc.stderr
    assert "Requested node configuration is not available" in proc.stderr


@pytest.mark.slurm
def test_slurm_job_given_a_gpu_torch_cannot_see_stops(slurm, tmp_path):
    """Slurm gives the job a GPU (gres: CUDA_VISIBLE_DEVICES); this torch cannot use it (a CPU build here):
    the training stops at once naming the build instead of training on the CPU."""
    proc = slurm_pl(slurm, tmp_path, "--gpu", "1", "log/t.log", "python3", "-m", "pyscripts.nnet.train",
                    "--config", RECIPE / "conf/convnet_asr.yaml", "--device", "auto", "train", "dev", "tt", "td",
                    "exp", check=False)
    assert proc.returncode == 1 and "exit code 1, see log/t.log" in proc.stderr
    log = (tmp_path / "log/t.log").read_text()
    assert "this job was given GPU 0 (CUDA_VISIBLE_DEVICES)" in log and "torch.version.cuda" in log


def start_sleeping_job(cluster, tmp_path, name):
    proc = subprocess.Popen([SLURM_PL, "--config", RECIPE / "conf/slurm.conf", f"log/{name}.log", "sleep", "120"],
                            cwd=tmp_path, env={**os.environ, **slurm_env(cluster)}, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, start_new_session=True)
    wait_for(lambda: (tmp_path / f"log/{name}.log").is_file(), 60, "the job to start")
    job_id = (tmp_path / "log/q" / f"{name}.submit").read_text().split("\n", 1)[1].split(";")[0].strip()
    return proc, job_id


def queued(cluster, job_id):
    return subprocess.run(["squeue", "-h", "-j", job_id], env={**os.environ, **slurm_env(cluster)},
                          capture_output=True, text=True).stdout.strip()


@pytest.mark.slurm
def test_slurm_cancelled_job_fails_with_the_reason(slurm, tmp_path):
    proc, job_id = start_sleeping_job(slurm, tmp_path, "c")
    subprocess.run(["scancel", job_id], env={**os.environ, **slurm_env(slurm)}, check=True)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 1, err
    assert "1 / 1 failed" in err and "the '# Ended' line in log/c.log" in err
    assert "CANCELLED" in err and "log/q/c.1.out" in err


@pytest.mark.slurm
def test_interrupted_slurm_runner_cancels_its_job(slurm, tmp_path):
    proc, job_id = start_sleeping_job(slurm, tmp_path, "i")
    assert queued(slurm, job_id)
    os.killpg(proc.pid, signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130 and f"cancelled Slurm job {job_id}" in err
    wait_for(lambda: not queued(slurm, job_id), 30, f"Slurm job {job_id} to leave the queue")


# ---------------------------------------------------------------- the tiny recipe through Slurm
# The test cluster's GPUs are fake (gres on character devices): a training given one stops (see
# test_slurm_job_given_a_gpu_torch_cannot_see_stops), so the recipe runs as on a CPU-only partition.
SLURM_CMD_SH = """# cmd.sh as a user of a Slurm cluster edits it
export train_cmd="slurm.pl --mem 1G"
export decode_cmd="slurm.pl --mem 1G"
export cuda_cmd="slurm.pl --mem 2G --gpu 0"
"""
SKIP_PARTS = {"log", "q", "timing"}              # logs, job scripts, timings: differ by nature
SKIP_NAMES = {"rtf", "RESULTS.md", "history.tsv", "train_summary", "digest_cache.json",  # hold times
              "stage_times.tsv", ".run.lock"}
LATER_STAGES = ("exp/ser/", "exp/transfer/", "exp/report/", "data/iemocap/folds/", "exp/joint/",  # 11-13
                "exp/stamps/stage11", "exp/stamps/stage12", "exp/stamps/stage13")


def compare_runs(a, b):
    """Files under data/ and exp/ of two recipe dirs that differ (or exist in one only), with why."""
    diffs = []
    files = {p.relative_to(a) for top in ("data", "exp") for p in (a / top).rglob("*") if p.is_file()}
    files |= {p.relative_to(b) for top in ("data", "exp") for p in (b / top).rglob("*") if p.is_file()}
    files = {f for f in files if not str(f).startswith(LATER_STAGES)}
    compared = 0
    for rel in sorted(files):
        # (splitN/: the jobs' data splits, made again by later stages with what exists by then)
        if SKIP_PARTS & set(rel.parts[:-1]) or any(p.startswith("split") for p in rel.parts[:-1]) \
                or rel.name in SKIP_NAMES or rel.suffix == ".log":
            continue
        fa, fb = a / rel, b / rel
        if not (fa.is_file() and fb.is_file()):
            diffs.append(f"{rel}: only in {'the local run' if fa.is_file() else 'the Slurm run'}")
            continue
        compared += 1
        if rel.suffix == ".pt":
            sa = torch.load(fa, weights_only=True)["state_dict"]
            sb = torch.load(fb, weights_only=True)["state_dict"]
            if sa.keys() != sb.keys() or not all(torch.equal(sa[k], sb[k]) for k in sa):
                diffs.append(f"{rel}: model weights differ")
        elif rel.name == "result.json":  # the scoring's record: all but the measured real-time factors
            ra, rb = (dict(json.loads(f.read_text().replace(str(d), "DIR")), rtf=None) for f, d in ((fa, a), (fb, b)))
            if ra != rb:
                diffs.append(f"{rel}: differs")
        elif rel.suffix == ".gz":
            if gzip.decompress(fa.read_bytes()) != gzip.decompress(fb.read_bytes()):
                diffs.append(f"{rel}: content differs")
        else:  # text files name their recipe dir (feats.scp, ...): compare with it taken out
            ba = fa.read_bytes().replace(str(a).encode(), b"DIR")
            bb = fb.read_bytes().replace(str(b).encode(), b"DIR")
            if rel.parts[:2] == ("exp", "stamps") or rel.suffix == ".stamp":  # a model's checksum covers
                # its history's times (a stage's `input MODEL.pt`, a decode.stamp's `model`)
                ba, bb = (b"".join(x for x in t.splitlines(True) if b".pt\t" not in x and not x.startswith(b"model\t"))
                          for t in (ba, bb))
            if ba != bb:
                diffs.append(f"{rel}: differs")
    return compared, diffs


@pytest.mark.slurm
def test_tiny_recipe_stages_4_to_10_through_slurm_match_the_local_run(slurm, tiny_run, corpus_cache, tmp_path):
    local_dir, _ = tiny_run
    d = link_recipe(tmp_path / "slurm_run")
    (d / "cmd.sh").unlink()
    (d / "cmd.sh").write_text(SLURM_CMD_SH)
    common = ["./run.sh", "--corpus", "tiny", "--nj", "2", "--skip-setup", "true", "--corpus-dir", corpus_cache]
    run_script([*common, "--stop-stage", "3"], cwd=d)
    times = {}
    for stage in range(4, 11):
        t0 = time.time()
        proc = run_script([*common, "--stage", stage, "--stop-stage", stage], cwd=d, env=slurm_env(slurm))
        times[stage] = round(time.time() - t0, 1)
        assert "Submitted batch job" not in proc.stdout + proc.stderr
    print(f"\nstages 4-10 through Slurm, seconds per stage: {times}, total {sum(times.values()):.0f}")
    # Every job went through Slurm: its log footer and its q/*.out file, and the job-completion log.
    assert "--gres" not in (d / "exp/convnet_asr/log/q/train.submit").read_text()  # cuda_cmd's --gpu 0
    jobcomp = slurm.jobcomp.read_text()
    assert "Name=train " in jobcomp and "Name=forward " in jobcomp and "Name=make_fbank_train " in jobcomp
    compared, diffs = compare_runs(local_dir, d)
    assert compared > 500 and not diffs, "\n".join(diffs)
    for name in ("train", "dev", "test"):   # the features, value by value
        fa = kaldiio.load_scp(str(local_dir / f"data/timit/{name}/feats.scp"))
        fb = kaldiio.load_scp(str(d / f"data/timit/{name}/feats.scp"))
        assert fa.keys() == fb.keys() and all(np.array_equal(fa[k], fb[k]) for k in fa)
