"""utils/setup_env.sh chooses the torch build by the machine: on one whose NVIDIA driver lists a GPU, a
CPU build is not left in place without a word."""
import os
import stat
import subprocess

import pytest
import torch

from conftest import RECIPE, run_script

pytestmark = pytest.mark.skipif(torch.version.cuda is not None, reason="the venv holds a CUDA build of torch")


def fake_nvidia_smi(bin_dir):
    bin_dir.mkdir()
    tool = bin_dir / "nvidia-smi"
    tool.write_text("#!/bin/sh\necho 'GPU 0: NVIDIA H100 80GB HBM3 (UUID: GPU-0000)'\n")
    tool.chmod(tool.stat().st_mode | stat.S_IEXEC)


def setup_env(env):
    return subprocess.run([RECIPE / "utils/setup_env.sh"], cwd=RECIPE, env=env, capture_output=True, text=True)


def test_a_gpu_machine_with_a_cpu_torch_gets_the_cuda_build_or_a_clear_error(tmp_path):
    fake_nvidia_smi(tmp_path / "bin")
    # pip sees no package source but the (empty) CUDA index: every requirement is installed already, and
    # the CUDA build, found nowhere, fails before pip touches the venv's torch.
    env = {k: v for k, v in os.environ.items() if k not in ("PIP_FIND_LINKS", "PIP_EXTRA_INDEX_URL")}
    env.update(PATH=f"{tmp_path / 'bin'}:{env['PATH']}", PIP_CONFIG_FILE=os.devnull,
               TORCH_CUDA_INDEX=f"file://{tmp_path}/no-index")
    try:
        proc = setup_env(env)
        out = proc.stdout + proc.stderr
        assert proc.returncode == 1, out
        assert "this machine has an NVIDIA GPU but pip installed the CPU build of torch" in out
        assert f"no CUDA build of torch==2.13.0 from file://{tmp_path}/no-index" in out
        assert "TORCH_BUILD=cpu utils/setup_env.sh" in out
        forced = setup_env({**env, "TORCH_BUILD": "cpu"})
        assert forced.returncode == 0 and "the CPU build (TORCH_BUILD=cpu" in forced.stdout + forced.stderr
    finally:  # the venv's stamp as the suite found it
        run_script([RECIPE / "utils/setup_env.sh"], cwd=RECIPE)
