"""GPUs and the job runner (issue 24, point 2): utils/run.pl gives each --gpu job GPUs of its own and
hides them from the other jobs, on fake GPUs (a stub nvidia-smi on PATH); decoding runs its forward pass
on the CPU unless told otherwise, and the RTF names the device."""
import os
import subprocess
from pathlib import Path

import pytest

from conftest import RECIPE, link_recipe

RUN_PL = RECIPE / "utils/run.pl"
H100 = "NVIDIA H100 80GB HBM3"
# A job that records the GPUs it sees and when it ran: `CUDA_VISIBLE_DEVICES(or unset) START END`.
JOB = """#!/bin/bash
start=$(date +%s.%N)
sleep "${JOB_SECONDS:-0.4}"
echo "${CUDA_VISIBLE_DEVICES-unset} $start $(date +%s.%N)" > "$1"
"""


def fake_gpus(tmp_path, n=None, failing=False, visible=None):
    """The environment of a runner on a machine with n fake GPUs (nvidia-smi -L lists them), none (no
    nvidia-smi on PATH: n None), or a driver-less one (an nvidia-smi that fails); `visible`: the
    runner's own CUDA_VISIBLE_DEVICES (None: unset). Lock files go to tmp_path (TMPDIR)."""
    env = {k: v for k, v in os.environ.items() if k not in ("CUDA_VISIBLE_DEVICES", "CUDA_DEVICE_ORDER",
                                                             "RUN_PL_IN_JOB")}
    path = [d for d in env["PATH"].split(os.pathsep) if d and not (Path(d) / "nvidia-smi").exists()]
    if n is not None or failing:
        bin_dir = tmp_path / "bin"
        bin_dir.mkdir(exist_ok=True)
        stub = bin_dir / "nvidia-smi"
        if failing:
            stub.write_text("#!/bin/sh\necho \"NVIDIA-SMI has failed because it couldn't communicate with the "
                            "NVIDIA driver.\"\nexit 9\n")
        else:
            stub.write_text("#!/bin/sh\n[ \"$1\" = -L ] || exit 2\n" + "".join(
                f"echo 'GPU {i}: {H100} (UUID: GPU-{i:04x}aaaa)'\n" for i in range(n)))
        stub.chmod(0o755)
        path.insert(0, str(bin_dir))
    env["PATH"] = os.pathsep.join(path)
    env["TMPDIR"] = str(tmp_path)
    if visible is not None:
        env["CUDA_VISIBLE_DEVICES"] = visible
    job = tmp_path / "job.sh"
    job.write_text(JOB)
    job.chmod(0o755)
    return env


def run_pl(tmp_path, env, *args, timeout=60):
    return subprocess.run([RUN_PL, *args], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=timeout)


def records(tmp_path, names):
    """{name: (gpus, start, end)} of the jobs' records."""
    out = {}
    for name in names:
        gpus, start, end = (tmp_path / name).read_text().split()
        out[name] = (gpus, float(start), float(end))
    return out


def most_at_once(recs):
    return max(sum(s <= start < e for _, s, e in recs.values()) for _, start, _ in recs.values())


def overlapping(recs):
    items = sorted(recs.items(), key=lambda kv: kv[1][1])
    return [(a, b) for i, (a, (_, sa, ea)) in enumerate(items) for b, (_, sb, eb) in items[i + 1:]
            if sb < ea and sa < eb]


def test_gpu_jobs_get_devices_of_their_own(tmp_path):
    """(a) 4 jobs with --gpu 1 on 2 GPUs: one GPU each, never shared while running, 2 at a time, all done."""
    env = fake_gpus(tmp_path, 2)
    proc = run_pl(tmp_path, env, "--gpu", "1", "JOB=1:4", "log/j.JOB.log", "./job.sh", "out.JOB")
    assert proc.returncode == 0, proc.stderr
    recs = records(tmp_path, [f"out.{j}" for j in range(1, 5)])
    assert all(gpus in ("0", "1") for gpus, _, _ in recs.values()), recs
    assert all(recs[a][0] != recs[b][0] for a, b in overlapping(recs)), recs
    assert most_at_once(recs) == 2, recs
    for j in range(1, 5):
        log = (tmp_path / f"log/j.{j}.log").read_text()
        assert f"# GPUs: {recs[f'out.{j}'][0]}\n" in log and "# Ended (code 0)" in log


@pytest.mark.parametrize("opts, expected", [
    ([], ""),                                   # asked for none
    (["--gpu", "0"], ""),
    (["--gpu", "1", "--gpu", "0"], ""),         # the later option wins: cmd.sh's --gpu 1, a script's --gpu 0
    (["--gpu", "0", "--gpu", "1"], "2"),        # ... and the other way round (the first GPU of run.pl's own)
], ids=["no-gpu-option", "gpu-0", "gpu-1-then-0", "gpu-0-then-1"])
def test_jobs_see_only_the_gpus_they_asked_for(tmp_path, opts, expected):
    """(b) run.pl's own CUDA_VISIBLE_DEVICES=2,3 (e.g. a shell given 2 GPUs): a job that asked for no GPU
    sees none (CUDA_VISIBLE_DEVICES empty), whatever nvidia-smi lists."""
    env = fake_gpus(tmp_path, 4, visible="2,3")
    proc = run_pl(tmp_path, env, *opts, "log/b.log", "env", "JOB_SECONDS=0", "./job.sh", "out")
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "out").read_text().split(" ")[0] == expected
    assert f"# GPUs: {expected or 'none'}\n" in (tmp_path / "log/b.log").read_text()


def test_more_gpus_than_the_machine_has_fail_at_once(tmp_path):
    """(c) --gpu 3 on a machine with 2 GPUs: an error that says so, and no job runs."""
    env = fake_gpus(tmp_path, 2)
    proc = run_pl(tmp_path, env, "--gpu", "3", "JOB=1:2", "log/c.JOB.log", "./job.sh", "out.JOB")
    assert proc.returncode == 1
    assert "--gpu 3 but this machine has 2 GPU(s) (0,1, from nvidia-smi -L)" in proc.stderr, proc.stderr
    assert not list(tmp_path.glob("out.*"))


@pytest.mark.parametrize("machine", ["no nvidia-smi", "nvidia-smi fails", "CUDA_VISIBLE_DEVICES empty"])
def test_gpu_jobs_run_without_a_gpu_where_there_is_none(tmp_path, machine):
    """(d) --gpu 1 on a machine without GPUs: the jobs run, without a device, and the runner says so once."""
    env = fake_gpus(tmp_path, failing=machine == "nvidia-smi fails",
                    visible="" if machine == "CUDA_VISIBLE_DEVICES empty" else None)
    proc = run_pl(tmp_path, env, "--gpu", "1", "JOB=1:3", "log/d.JOB.log", "env", "JOB_SECONDS=0", "./job.sh",
                  "out.JOB")
    assert proc.returncode == 0, proc.stderr
    assert [line for line in proc.stderr.splitlines() if "has no GPU" in line] == [proc.stderr.strip()], proc.stderr
    assert "--gpu 1 but this machine has no GPU" in proc.stderr and "run without one" in proc.stderr
    for j in (1, 2, 3):
        assert (tmp_path / f"out.{j}").read_text().split(" ")[0] == ""      # CUDA_VISIBLE_DEVICES empty
        assert "# GPUs: none\n" in (tmp_path / f"log/d.{j}.log").read_text()


def test_two_runners_share_one_gpu_through_the_lock(tmp_path):
    """(e) two run.pl processes at once (two stages, two recipes), --gpu 1 each, on a machine with 1 GPU:
    their jobs take turns."""
    env = fake_gpus(tmp_path, 1)
    procs = [subprocess.Popen([RUN_PL, "--gpu", "1", "JOB=1:2", f"log/{r}.JOB.log", "./job.sh", f"out.{r}.JOB"],
                              cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for r in ("x", "y")]
    for p in procs:
        _, err = p.communicate(timeout=60)
        assert p.returncode == 0, err
    recs = records(tmp_path, [f"out.{r}.{j}" for r in ("x", "y") for j in (1, 2)])
    assert {gpus for gpus, _, _ in recs.values()} == {"0"}, recs
    assert overlapping(recs) == [], recs


def test_a_runner_inside_a_gpu_job_shares_out_that_jobs_gpu(tmp_path):
    """A run.pl inside a --gpu 1 job (local/run_ser.sh's fold jobs run steps/train_convnet.sh's run.pl):
    its jobs get the enclosing job's GPU (without --gpu, as the job's own commands; with --gpu 1, without
    waiting for the lock the outer runner holds), and none with --gpu 0."""
    env = fake_gpus(tmp_path, 2)
    inner = (f"{RUN_PL} log/in.JOB.log env JOB_SECONDS=0 ./job.sh out.in.JOB && "
             f"{RUN_PL} --gpu 1 log/in1.JOB.log env JOB_SECONDS=0 ./job.sh out.in1.JOB && "
             f"{RUN_PL} --gpu 0 log/in0.JOB.log env JOB_SECONDS=0 ./job.sh out.in0.JOB && "
             "echo $CUDA_VISIBLE_DEVICES > out.JOB")
    proc = run_pl(tmp_path, env, "--gpu", "1", "JOB=1:2", "log/o.JOB.log", "bash", "-c", inner, timeout=30)
    assert proc.returncode == 0, proc.stderr
    for j in (1, 2):
        outer = (tmp_path / f"out.{j}").read_text().strip()
        assert outer in ("0", "1")
        assert (tmp_path / f"out.in.{j}").read_text().split()[0] == outer
        assert (tmp_path / f"out.in1.{j}").read_text().split()[0] == outer
        assert (tmp_path / f"out.in0.{j}").read_text().split(" ")[0] == ""


@pytest.mark.parametrize("runner", ["slurm.pl", "queue.pl"])
@pytest.mark.parametrize("opts, expected", [([], ""), (["--gpu", "0"], ""), (["--gpu", "1"], "0,1")],
                         ids=["no-gpu-option", "gpu-0", "gpu-1"])
def test_cluster_job_without_a_gpu_sees_none(tmp_path, runner, opts, expected):
    """On a cluster node that does not confine devices (CUDA_VISIBLE_DEVICES=0,1 here stands for the
    node's GPUs), a job that asked for no GPU runs with CUDA_VISIBLE_DEVICES empty; a --gpu job keeps
    what the scheduler set. The job script, run as the scheduler would (the submit command is a stub)."""
    env = fake_gpus(tmp_path, 2)
    (tmp_path / "stub.conf").write_text("command false\noption gpu=* --gres=gpu:$0\noption gpu=0\n")
    proc = subprocess.run([RECIPE / "utils" / runner, "--config", "stub.conf", *opts, "JOB=1:2", "log/c.JOB.log",
                           "env", "JOB_SECONDS=0", "./job.sh", "out.JOB"], cwd=tmp_path, env=env, capture_output=True,
                          text=True)
    assert proc.returncode == 1 and "false refused the job" in proc.stderr   # nothing submitted
    subprocess.run(["bash", "log/q/c.sh", "2"], cwd=tmp_path, env={**env, "CUDA_VISIBLE_DEVICES": "0,1"}, check=True)
    assert (tmp_path / "out.2").read_text().split(" ")[0] == expected
    assert f"# GPUs: {expected or 'none'}\n" in (tmp_path / "log/c.2.log").read_text()


# ---------------------------------------------------------------- decoding on the CPU
def fake_runner(tmp_path):
    """A $cmd that records its arguments and fails, so that the script stops at its first job."""
    fake = tmp_path / "fake.pl"
    fake.write_text(f"#!/bin/bash\necho \"$*\" >> {tmp_path}/requests\nexit 1\n")
    fake.chmod(0o755)
    return fake


@pytest.mark.parametrize("opts, gpu, device", [([], "--gpu 0", "--device cpu"),
                                               (["--device", "cuda"], "--gpu 1", "--device cuda")],
                         ids=["default", "cuda"])
def test_decode_forward_pass_runs_on_the_cpu_unless_told(tmp_path, opts, gpu, device):
    """(f) steps/decode_hybrid.sh: the forward jobs run with --device cpu and ask the runner for no GPU;
    --device cuda asks for one GPU per job."""
    d = link_recipe(tmp_path / "r")
    for f in ("graph/HCLG.fst", "graph/words.txt", "final.mdl", "exp/final.pt"):
        (d / f).parent.mkdir(parents=True, exist_ok=True)
        (d / f).touch()
    data = d / "data"
    data.mkdir()
    (data / "text").write_text("s1_u1 a\ns2_u1 b\n")
    (data / "feats.scp").write_text("s1_u1 x.ark:1\ns2_u1 x.ark:2\n")
    (data / "utt2spk").write_text("s1_u1 s1\ns2_u1 s2\n")
    (data / "spk2utt").write_text("s1 s1_u1\ns2 s2_u1\n")
    proc = subprocess.run(["steps/decode_hybrid.sh", "--cmd", fake_runner(tmp_path), "--nj", "2", "--trans-mdl",
                           "final.mdl", *opts, "graph", "data", "exp/decode"], cwd=d, capture_output=True, text=True)
    assert proc.returncode != 0   # the fake runner stops it after the forward pass's request
    request = (tmp_path / "requests").read_text().splitlines()[0]
    assert request.startswith(f"{gpu} JOB=1:2 exp/decode/log/forward.JOB.log "), request
    assert f" {device} " in request and "pyscripts.asr.hybrid loglikes" in request


def test_forward_pass_defaults_to_the_cpu():
    from pyscripts.asr.hybrid import ForwardOptions
    assert ForwardOptions().device == "cpu"


@pytest.mark.parametrize("device, forward", [
    (f"cuda:0 ({H100})", f"RTF 1-gpu 0.0400, RTF wall (nj=2) 0.0600; device=cuda:0 ({H100}) threads=1"),
    ("cpu", "RTF 1-thread 0.0400, RTF wall (nj=2) 0.0600; device=cpu threads=1"),
], ids=["gpu", "cpu"])
def test_rtf_names_the_device(tmp_path, device, forward):
    """The rtf file says where the forward pass ran (a GPU's name may hold spaces), and the results
    table shows the same figures from the result record: a GPU figure is labelled as one."""
    from pyscripts.asr.hybrid import summarize_rtf
    from pyscripts.asr.result import rtf_record
    from pyscripts.asr.scoring import _rtf_cells
    t = tmp_path / "timing"
    t.mkdir()
    for j in (1, 2):
        (t / f"forward.{j}").write_text(f"frames=5000 seconds=2.0000 utts=5 threads=1 device={device}\n")
        (t / f"decode.{j}").write_text("frames=5000 seconds=5.0000 utts=5 threads=1 decoder=lattice\n")
    (t / "forward.wall").write_text("seconds=6.000 nj=2\n")
    (t / "decode.wall").write_text("seconds=7.000 nj=2\n")
    summarize_rtf(tmp_path)
    lines = (tmp_path / "rtf").read_text().splitlines()
    assert lines == [f"forward: audio 100.0 s, {forward}",
                     "decode: audio 100.0 s, RTF 1-thread 0.1000, RTF wall (nj=2) 0.0700; device=cpu threads=1"]
    cells = _rtf_cells(rtf_record(tmp_path))
    assert cells["forward"] == ("0.0400 (1-gpu)" if device != "cpu" else "0.0400") + " / 0.0600 (nj=2)"
    assert cells["decode"] == "0.1000 / 0.0700 (nj=2)"
