"""A one-node Slurm cluster from Debian's packages (slurmctld, slurmd, slurm-client, munge), for the
Slurm test tier. It installs nothing: it starts munged (unless running), slurmctld and slurmd with a
slurm.conf generated in a scratch dir (SLURM_CONF points there; /etc/slurm is not touched), with two
fake GPUs (gres on character devices, as ../shared/notes/cluster-schedulers.md says), and stops what
it started. `why_not()` says why it cannot start here (None when it can).

By hand:  python3 tests/slurm_cluster.py DIR   starts it, prints `export SLURM_CONF=...`, waits for ^C.
"""
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

BINARIES = ("slurmctld", "slurmd", "sbatch", "squeue", "scancel", "scontrol", "sinfo", "munged", "munge")
INSTALL_HINT = ("apt-get install slurmctld slurmd slurm-client munge (.ci/run does it)")


def why_not():
    """The reason a one-node Slurm cannot be started on this machine, or None."""
    missing = [b for b in BINARIES if shutil.which(b) is None and not Path("/usr/sbin", b).exists()]
    if missing:
        return f"Slurm tier: {', '.join(missing)} not installed ({INSTALL_HINT})"
    if os.geteuid() != 0:
        return "Slurm tier: needs root (slurmd runs the jobs, munged runs as the munge user)"
    if not Path("/etc/munge/munge.key").exists():
        return "Slurm tier: no /etc/munge/munge.key (reinstall munge, or run mungekey --create as root)"
    return None


def _which(name):
    return shutil.which(name) or str(Path("/usr/sbin", name))


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _mem_mb():
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemTotal:"):
            return int(line.split()[1]) // 1024
    return 4000


class Cluster:
    def __init__(self, root):
        self.root = Path(root)
        self.procs = []
        self.munged_pid = None
        self.conf = self.root / "slurm.conf"
        self.jobcomp = self.root / "jobcomp.txt"
        self.host = socket.gethostname().split(".")[0]
        self.cpus = os.cpu_count() or 1
        self.env = {**os.environ, "SLURM_CONF": str(self.conf)}

    def _write_conf(self):
        r = self.root
        for d in ("state", "spool", "log"):
            (r / d).mkdir(parents=True, exist_ok=True)
        gpus = [r / "dev" / f"nvidia{i}" for i in range(2)]
        gpus[0].parent.mkdir(exist_ok=True)
        for g in gpus:  # character devices (like /dev/null): a regular file would drain the node
            if not g.exists():
                os.mknod(g, 0o666 | 0o020000, os.makedev(1, 3))
        self.conf.write_text("\n".join([
            "ClusterName=ci", f"SlurmctldHost={self.host}(127.0.0.1)", "SlurmUser=root",
            f"SlurmctldPort={_free_port()}", f"SlurmdPort={_free_port()}",
            "AuthType=auth/munge", "MpiDefault=none", "ProctrackType=proctrack/linuxproc",
            "TaskPlugin=task/none", "SelectType=select/cons_tres", "SelectTypeParameters=CR_Core_Memory",
            "JobAcctGatherType=jobacct_gather/none", "AccountingStorageType=accounting_storage/none",
            "JobCompType=jobcomp/filetxt", f"JobCompLoc={self.jobcomp}", "ReturnToService=2", "DefMemPerCPU=1000",
            f"StateSaveLocation={r}/state", f"SlurmdSpoolDir={r}/spool",
            f"SlurmctldPidFile={r}/slurmctld.pid", f"SlurmdPidFile={r}/slurmd.pid",
            f"SlurmctldLogFile={r}/log/slurmctld.log", f"SlurmdLogFile={r}/log/slurmd.log",
            "GresTypes=gpu",
            f"NodeName={self.host} NodeAddr=127.0.0.1 CPUs={self.cpus} RealMemory={int(_mem_mb() * 0.8)} "
            f"Gres=gpu:2 State=UNKNOWN",
            "PartitionName=debug Nodes=ALL Default=YES MaxTime=INFINITE State=UP", ""]))
        (r / "gres.conf").write_text(f"NodeName={self.host} Name=gpu File={r}/dev/nvidia[0-1]\n")

    def _start_munge(self):
        check = subprocess.run("munge -n | unmunge", shell=True, capture_output=True)
        if check.returncode == 0:
            return  # already running: leave it alone
        Path("/run/munge").mkdir(parents=True, exist_ok=True)
        shutil.chown("/run/munge", "munge")
        subprocess.run(["runuser", "-u", "munge", "--", _which("munged")], check=True, capture_output=True)
        pidfile = Path("/run/munge/munged.pid")
        if pidfile.exists():
            self.munged_pid = int(pidfile.read_text().split()[0])

    def start(self, timeout=60):
        """Starts the daemons and waits until the node is idle; raises RuntimeError with the logs' tail."""
        self._write_conf()
        self._start_munge()
        for cmd in ([_which("slurmctld"), "-D", "-i"], [_which("slurmd"), "-D"]):
            log = open(self.root / "log" / (Path(cmd[0]).name + ".out"), "w")
            self.procs.append(subprocess.Popen(cmd, env=self.env, stdout=log, stderr=subprocess.STDOUT,
                                               start_new_session=True))
            time.sleep(1)
        deadline = time.time() + timeout
        state = ""
        while time.time() < deadline:
            for p in self.procs:
                if p.poll() is not None:
                    raise RuntimeError(f"{p.args[0]} exited ({p.returncode}):\n{self.log_tail()}")
            state = subprocess.run(["sinfo", "-h", "-o", "%T %E"], env=self.env, capture_output=True,
                                   text=True).stdout.strip()
            if state.startswith("idle"):
                return self
            time.sleep(1)
        raise RuntimeError(f"the node is not idle after {timeout} s (sinfo: {state!r}):\n{self.log_tail()}")

    def log_tail(self, lines=15):
        out = []
        for f in sorted((self.root / "log").glob("*")):
            text = f.read_text(errors="replace").splitlines()[-lines:]
            out.append(f"--- {f}\n" + "\n".join(text))
        return "\n".join(out)

    def stop(self):
        for p in self.procs:
            if p.poll() is None:
                os.killpg(p.pid, signal.SIGTERM)
        for p in self.procs:
            try:
                p.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(p.pid, signal.SIGKILL)
                p.wait()
        self.procs = []
        if self.munged_pid:
            try:
                os.kill(self.munged_pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
            self.munged_pid = None


if __name__ == "__main__":
    reason = why_not()
    if reason:
        sys.exit(reason)
    cluster = Cluster(Path(sys.argv[1]).resolve()).start()
    print(f"export SLURM_CONF={cluster.conf}", flush=True)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    try:
        signal.pause()
    except KeyboardInterrupt:
        pass
    finally:
        cluster.stop()
