"""training.amp on CPUs: bf16 only where the CPU does it natively (detected from its flags)."""
import torch

from pyscripts.nnet import train as nnet_train


def test_native_bf16_is_read_from_the_cpu_flags(tmp_path):
    for flags, native in (("fpu sse2 avx2 avx512f", False), ("fpu avx512f avx512_bf16", True),
                          ("fpu amx_tile amx_bf16 amx_int8", True)):
        cpuinfo = tmp_path / "cpuinfo"
        cpuinfo.write_text(f"processor\t: 0\nflags\t\t: {flags}\n\nprocessor\t: 1\nflags\t\t: {flags}\n")
        assert nnet_train.cpu_has_native_bf16(cpuinfo) is native
    assert nnet_train.cpu_has_native_bf16(tmp_path / "missing") is False


def test_cpu_autocast_follows_the_detection(monkeypatch):
    cpu = torch.device("cpu")
    monkeypatch.setattr(nnet_train, "cpu_has_native_bf16", lambda: True)
    assert nnet_train.mixed_precision(cpu, True) == torch.bfloat16
    assert nnet_train.mixed_precision(cpu, False) is None  # fp32 on request
    monkeypatch.setattr(nnet_train, "cpu_has_native_bf16", lambda: False)
    assert nnet_train.mixed_precision(cpu, True) is None   # emulated bf16 would be slower than fp32
