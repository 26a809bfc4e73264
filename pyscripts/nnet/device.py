"""Where a training runs and in what arithmetic: the device, mixed precision and determinism.

A job is told to use a GPU by --device cuda or by its scheduler (utils/run.pl, Slurm's gres:
CUDA_VISIBLE_DEVICES names devices); when torch cannot see one then, the job stops at once naming the
torch build, rather than training for hours on the CPU.
"""
import logging
import os
from pathlib import Path
from typing import cast

import torch

from pyscripts.errors import DataError

log = logging.getLogger(__name__)
AMP_MODES = ("auto", "bf16", "fp16", "fp32")


def gpus_assigned() -> str:
    """The devices the scheduler gave this job (CUDA_VISIBLE_DEVICES), '' when none."""
    visible = os.environ.get("CUDA_VISIBLE_DEVICES", "").strip()
    return "" if visible in ("", "-1") else visible


def _why_no_gpu():
    if torch.version.cuda is None:
        return (f"torch {torch.__version__} is a CPU-only build (torch.version.cuda is None): install the "
                "CUDA build (README, 'Running on GPUs': TORCH_BUILD=cuda utils/setup_env.sh)")
    return (f"torch {torch.__version__} (torch.version.cuda {torch.version.cuda}) sees no GPU "
            f"(CUDA_VISIBLE_DEVICES='{os.environ.get('CUDA_VISIBLE_DEVICES', '')}'): check nvidia-smi on this "
            "node and that the driver supports this CUDA version")


def resolve_device(name: str, local_rank: int = 0) -> torch.device:
    """torch.device for --device auto|cpu|cuda. auto: the GPU when the job was given one or torch sees
    one, else the CPU. A job given a GPU (cuda, or CUDA_VISIBLE_DEVICES set by its scheduler) that torch
    cannot use is an error."""
    if name not in ("auto", "cpu", "cuda"):
        raise DataError(f"--device {name}: use auto, cpu or cuda")
    if name == "cpu":
        return torch.device("cpu")
    if not torch.cuda.is_available():
        assigned = gpus_assigned()
        if name == "cuda":
            raise DataError(f"--device cuda: {_why_no_gpu()}; or train with --device cpu")
        if assigned:
            raise DataError(f"this job was given GPU {assigned} (CUDA_VISIBLE_DEVICES) but {_why_no_gpu()}; "
                            "or run it with --device cpu, which asks for no GPU")
        return torch.device("cpu")
    torch.cuda.set_device(local_rank)
    return torch.device("cuda", local_rank)


def describe(device: torch.device) -> str:
    """'cpu' or 'cuda:0 (NVIDIA H100 80GB HBM3)', for logs and result files."""
    if device.type != "cuda":
        return str(device)
    return f"{device} ({torch.cuda.get_device_name(device)})"


def cpu_has_native_bf16(cpuinfo: str | Path = "/proc/cpuinfo") -> bool:
    """True when the CPU computes bf16 in hardware (AMX-BF16 or AVX512-BF16 in its flags); elsewhere
    bf16 is emulated and slower than fp32."""
    try:
        flags = next((line.split(":", 1)[1].split() for line in Path(cpuinfo).read_text().splitlines()
                      if line.startswith("flags")), [])
    except OSError:
        return False
    return "amx_bf16" in flags or "avx512_bf16" in flags


def cuda_has_native_bf16(device: torch.device) -> bool:
    """bf16 tensor cores: compute capability 8.0 (A100) and later. torch.cuda.is_bf16_supported() is also
    true on V100/T4-class GPUs, where bf16 is emulated and slow: those take fp16 with loss scaling."""
    return torch.cuda.get_device_capability(device) >= (8, 0)


def mixed_precision(device: torch.device, amp: str) -> torch.dtype | None:
    """The autocast dtype of training.amp (auto|bf16|fp16|fp32) on this device; None means float32.
    auto: bf16 on GPUs with bf16 tensor cores, fp16 (with loss scaling) on older GPUs, bf16 on CPUs that
    do it natively, else fp32. bf16 and fp16 force that dtype (on CPUs too: how tests exercise the paths)."""
    if amp not in AMP_MODES:
        raise DataError(f"training.amp '{amp}': use one of {', '.join(AMP_MODES)}")
    dtype = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}.get(amp, "auto")
    if dtype == "auto":
        if device.type == "cuda":
            dtype = torch.bfloat16 if cuda_has_native_bf16(device) else torch.float16
        else:
            dtype = torch.bfloat16 if device.type == "cpu" and cpu_has_native_bf16() else None
    log.info("arithmetic: %s on %s (training.amp %s)", "float32" if dtype is None else f"{dtype} autocast",
             device, amp)
    return cast("torch.dtype | None", dtype)  # "auto" is replaced above


def make_scaler(device: torch.device, amp_dtype: torch.dtype | None) -> torch.amp.GradScaler:
    """fp16 needs loss scaling (its range is too small for the gradients); bf16 and fp32 do not."""
    return torch.amp.GradScaler(device.type, enabled=amp_dtype == torch.float16)


def load_scaler_state(scaler: torch.amp.GradScaler, state: dict | None) -> None:
    """A checkpoint's scaler state; one saved by a disabled scaler (bf16/fp32, e.g. on another machine)
    holds nothing, and an enabled scaler then starts from its initial scale."""
    if state:
        scaler.load_state_dict(state)
    elif scaler.is_enabled():
        log.info("the checkpoint was trained without loss scaling: the fp16 loss scale starts afresh")


def set_determinism(deterministic: bool) -> None:
    """training.deterministic true: the same inputs give the same weights run after run on one machine
    (deterministic kernels, no cuDNN autotuning, no TF32; an op that has no deterministic kernel on this
    device runs anyway and torch warns in the log, naming it); false: the fastest kernels (cuDNN
    autotuning, TF32 matrix products on GPUs), whose float sums may differ from run to run."""
    if deterministic:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")  # deterministic cuBLAS needs it
    torch.use_deterministic_algorithms(deterministic, warn_only=True)
    torch.backends.cudnn.deterministic = deterministic
    torch.backends.cudnn.benchmark = not deterministic
    torch.backends.cuda.matmul.allow_tf32 = not deterministic
    torch.backends.cudnn.allow_tf32 = not deterministic
