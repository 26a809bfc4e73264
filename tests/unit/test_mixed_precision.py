"""Where training runs and in what arithmetic (pyscripts/nnet/device.py): training.amp per device, the
GPU a job was given, determinism."""
import pytest
import torch

from pyscripts.errors import DataError
from pyscripts.nnet import device as nnet_device


def test_native_bf16_is_read_from_the_cpu_flags(tmp_path):
    for flags, native in (("fpu sse2 avx2 avx512f", False), ("fpu avx512f avx512_bf16", True),
                          ("fpu amx_tile amx_bf16 amx_int8", True)):
        cpuinfo = tmp_path / "cpuinfo"
        cpuinfo.write_text(f"processor\t: 0\nflags\t\t: {flags}\n\nprocessor\t: 1\nflags\t\t: {flags}\n")
        assert nnet_device.cpu_has_native_bf16(cpuinfo) is native
    assert nnet_device.cpu_has_native_bf16(tmp_path / "missing") is False


def test_cpu_autocast_follows_the_detection(monkeypatch):
    cpu = torch.device("cpu")
    monkeypatch.setattr(nnet_device, "cpu_has_native_bf16", lambda: True)
    assert nnet_device.mixed_precision(cpu, "auto") == torch.bfloat16
    assert nnet_device.mixed_precision(cpu, "fp32") is None  # fp32 on request
    monkeypatch.setattr(nnet_device, "cpu_has_native_bf16", lambda: False)
    assert nnet_device.mixed_precision(cpu, "auto") is None   # emulated bf16 would be slower than fp32
    # forced: the bf16 and fp16 paths can be exercised on any CPU
    assert nnet_device.mixed_precision(cpu, "bf16") == torch.bfloat16
    assert nnet_device.mixed_precision(cpu, "fp16") == torch.float16
    with pytest.raises(DataError, match="training.amp 'true': use one of auto, bf16, fp16, fp32"):
        nnet_device.mixed_precision(cpu, "true")


@pytest.mark.parametrize("capability, dtype", [((7, 0), torch.float16), ((7, 5), torch.float16),
                                               ((8, 0), torch.bfloat16), ((9, 0), torch.bfloat16)])
def test_gpus_without_bf16_tensor_cores_take_fp16(monkeypatch, capability, dtype):
    """V100 (7.0) and T4 (7.5) report is_bf16_supported() through emulation: they must get fp16 with loss
    scaling, A100 (8.0) and H100 (9.0) bf16."""
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: True)
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device=None: capability)
    gpu = torch.device("cuda", 0)
    assert nnet_device.mixed_precision(gpu, "auto") == dtype
    assert nnet_device.make_scaler(torch.device("cpu"), dtype).is_enabled() == (dtype == torch.float16)


def test_a_job_given_a_gpu_that_torch_cannot_see_stops_naming_the_build(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.version, "cuda", None)
    with pytest.raises(DataError, match=r"--device cuda: torch .* is a CPU-only build \(torch.version.cuda is None\)"):
        nnet_device.resolve_device("cuda")
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "3")  # what run.pl --gpu 1 or Slurm's gres sets
    with pytest.raises(DataError, match=r"given GPU 3 .*torch.version.cuda is None"):
        nnet_device.resolve_device("auto")
    monkeypatch.setattr(torch.version, "cuda", "12.8")
    with pytest.raises(DataError, match=r"torch.version.cuda 12.8\) sees no GPU \(CUDA_VISIBLE_DEVICES='3'\)"):
        nnet_device.resolve_device("auto")
    assert nnet_device.resolve_device("cpu") == torch.device("cpu")  # asked for no GPU
    for hidden in ("", "-1"):  # a job that asked for none: auto is the CPU
        monkeypatch.setenv("CUDA_VISIBLE_DEVICES", hidden)
        assert nnet_device.resolve_device("auto") == torch.device("cpu")


def test_determinism_switch_sets_the_backends():
    try:
        nnet_device.set_determinism(True)
        assert torch.are_deterministic_algorithms_enabled() and torch.is_deterministic_algorithms_warn_only_enabled()
        assert torch.backends.cudnn.deterministic and not torch.backends.cudnn.benchmark
        assert not torch.backends.cuda.matmul.allow_tf32 and not torch.backends.cudnn.allow_tf32
        nnet_device.set_determinism(False)
        assert not torch.are_deterministic_algorithms_enabled()
        assert torch.backends.cudnn.benchmark and torch.backends.cuda.matmul.allow_tf32
    finally:
        nnet_device.set_determinism(False)
