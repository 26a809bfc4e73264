"""One TIMIT-size epoch of the paper's ConvNet on a GPU, measured the way stage 9 trains: how fast, how
close to the chip's peak, how much memory, and what stands in the way. Prepared to run in a few minutes
on a lent GPU machine.

  python3 -m pyscripts.bench.gpu_epoch [--device cuda] [--config conf/convnet_asr.yaml] [--frames 1100000]
      [--batch-sizes 256 1024 4096] [--seconds 5] [--warmup-seconds 5] [--json FILE]

On synthetic features (TIMIT's 1.1 M training frames x 40 fbank, 144 pdf targets) it builds the network,
optimiser, layout (channels_last), cuDNN/TF32 settings (training.deterministic) and autocast dtype
(mixed_precision(device, "auto"), as pyscripts/nnet/train.py chooses it) of the recipe's config, and runs
the training stage's own train_epoch / evaluate on host-side frame orders, as stage 9 does. The sweep
always holds the config's own training.batch_size (256: what stage 9 runs). Per batch size it records:
training and inference frames/s, each after a warm-up that lasts until the time per step is steady
(cuDNN autotuning, lazy initialisation and the allocator's first requests are not timed); the fraction
of the GPU's dense bf16 peak that the training FLOPs reach (peaks of known GPUs below; null for others);
the time share of gathering the 31-frame windows against the whole step (one batch alive at a time, as in
training); and the peak GPU memory of training, gathering and inference, each measured from a reset.
Then one whole epoch over all frames, at the recipe's batch size and at the fastest one. The goal is a
TIMIT-size epoch under 1 s on an H100/H200-class GPU. Runs on the CPU too (--device cpu --frames 20000
--seconds 1) to check the script itself; GPU memory is then null.
"""
import argparse
import json
import platform
import time

import torch

from pyscripts.bench.train_throughput import counted_flops, synthetic_frames
from pyscripts.errors import DataError, cli_main
from pyscripts.nnet.data import epoch_frame_order, gather_windows
from pyscripts.nnet.model import build_model
from pyscripts.nnet.train import (BatchOptions, Trainee, evaluate, load_config, make_optimizer, mixed_precision,
                                  resolve_device, set_determinism, train_epoch)

NUM_TARGETS, FEAT_DIM = 144, 40   # TIMIT's monophone pdfs, the recipe's fbank
EXTRA_BATCH_SIZES = (1024, 4096)  # beside the config's own: where a GPU gets busy
MIN_STEPS = 3                     # a measurement has at least this many steps, however slow
# Dense bf16 tensor-core peaks (FLOP/s) from the vendors' data sheets.
BF16_PEAK = {"H200": 989.4e12, "H100 SXM": 989.4e12, "H100 PCIe": 756.0e12, "H100": 989.4e12,
             "A100": 312.0e12, "L40S": 362.1e12}


def bf16_peak(device):
    if device.type != "cuda":
        return None
    name = torch.cuda.get_device_name(device)
    return next((peak for key, peak in BF16_PEAK.items() if key in name), None)


def sweep_batch_sizes(recipe_batch_size):
    """The recipe's own batch size and the larger ones a GPU wants (EXTRA_BATCH_SIZES), ascending."""
    return sorted({int(recipe_batch_size), *EXTRA_BATCH_SIZES})


def _sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _timed(device, func):
    _sync(device)
    start = time.perf_counter()
    func()
    _sync(device)
    return time.perf_counter() - start


def _measured(device, func):
    """(seconds, peak GPU memory in MiB while func ran, counted from a reset; None on the CPU)."""
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    seconds = _timed(device, func)
    peak = round(torch.cuda.max_memory_allocated(device) / 2**20) if device.type == "cuda" else None
    return seconds, peak


def warm_up(run, budget, tolerance=0.1, min_chunks=3):
    """Runs chunks of steps (`run(n)` runs n steps and returns their seconds) until two consecutive
    chunks take the same time per step within `tolerance` (relative; after at least `min_chunks` chunks,
    the first of one step), or `budget` seconds have gone. Returns (seconds per step of the last chunk,
    whether it became steady, seconds spent)."""
    steps, spent, previous, chunks = 1, 0.0, None, 0
    while True:
        seconds = run(steps)
        per_step, spent, chunks = seconds / steps, spent + seconds, chunks + 1
        steady = previous is not None and chunks >= min_chunks and abs(per_step - previous) <= tolerance * previous
        if steady or spent >= budget:
            return per_step, steady, round(spent, 3)
        previous = per_step
        # Later chunks last about a tenth of the budget: long enough to average out single slow steps.
        steps = max(1, min(int(budget / 10 / max(per_step, 1e-9)), int((budget - spent) / max(per_step, 1e-9))))


class Run:
    """The network, optimiser and batch options of one stage-9 training at one batch size."""

    def __init__(self, cfg, device, batch_size, amp_dtype):
        tcfg = cfg["training"]
        torch.manual_seed(int(tcfg["seed"]))
        channels_last = bool(tcfg["channels_last"])
        self.model = build_model(NUM_TARGETS, FEAT_DIM, cfg["model"]).to(
            device, memory_format=torch.channels_last if channels_last else torch.contiguous_format)
        optimizer = make_optimizer(self.model, cfg["optimizer"], cfg["model"]["conv_l2"])
        scaler = torch.amp.GradScaler(device.type, enabled=amp_dtype == torch.float16)  # fp16 needs loss scaling
        self.trainee = Trainee(self.model, self.model, optimizer, None, scaler)
        self.opts = BatchOptions(batch_size, amp_dtype, channels_last)
        self.device, self.batch_size = device, batch_size
        self.generator = torch.Generator().manual_seed(int(tcfg["seed"]))

    def order(self, num_frames, steps):
        """Frame indices of `steps` full batches, on the host like stage 9's epoch order."""
        return torch.randint(num_frames, (steps * self.batch_size,), generator=self.generator)

    def train(self, frames, steps):
        order = self.order(frames.num_frames, steps)
        return _timed(self.device, lambda: train_epoch(self.trainee, frames, order, self.opts))

    def infer(self, frames, steps):
        subset = self.order(frames.num_frames, steps)
        return _timed(self.device, lambda: evaluate(self.model, frames, self.opts, subset=subset))


def gather_batches(frames, order, batch_size, context, channels_last):
    """The window gather of a training epoch alone: each batch is made and dropped, one alive at a time."""
    for start in range(0, len(order), batch_size):
        batch = order[start:start + batch_size].to(frames.feats.device, non_blocking=True)
        x = gather_windows(frames.feats, frames.first, frames.last, batch, context)
        if channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
    return None


def measure_batch(run, frames, seconds, warmup_seconds, train_flops):
    """Training and inference frames/s, the gather's share of a step, and peak memory of one batch size."""
    device, batch_size = run.device, run.batch_size
    step_s, steady, warm_s = warm_up(lambda n: run.train(frames, n), warmup_seconds)
    steps = max(MIN_STEPS, int(seconds / max(step_s, 1e-9)))
    order = run.order(frames.num_frames, steps)
    train_s, train_peak = _measured(device, lambda: train_epoch(run.trainee, frames, order, run.opts))
    gather_s, gather_peak = _measured(device, lambda: gather_batches(frames, order, batch_size, run.model.context,
                                                                     run.opts.channels_last))
    infer_step_s, infer_steady, _ = warm_up(lambda n: run.infer(frames, n), warmup_seconds / 2)
    infer_steps = max(MIN_STEPS, int(seconds / 2 / max(infer_step_s, 1e-9)))
    subset = run.order(frames.num_frames, infer_steps)
    infer_s, infer_peak = _measured(device, lambda: evaluate(run.model, frames, run.opts, subset=subset))
    train_fps = steps * batch_size / train_s
    peak = bf16_peak(device)
    return {"batch_size": batch_size, "train_frames_per_s": round(train_fps),
            "infer_frames_per_s": round(infer_steps * batch_size / infer_s),
            "bf16_peak_fraction": None if peak is None else round(train_fps * train_flops / peak, 4),
            "gather_share_of_step": round(gather_s / train_s, 3),
            "train_steps": steps, "warmup": {"seconds": warm_s, "steady": steady, "infer_steady": infer_steady},
            "peak_gpu_memory_mib": {"train": train_peak, "gather": gather_peak, "infer": infer_peak}}


def full_epoch(cfg, device, frames, batch_size, amp_dtype, warmup_seconds):
    """One epoch over every frame in stage 9's seeded shuffle (host-side order), after a warm-up."""
    run = Run(cfg, device, batch_size, amp_dtype)
    warm_up(lambda n: run.train(frames, n), warmup_seconds)
    order = epoch_frame_order(frames.num_frames, int(cfg["training"]["seed"]), 1)
    seconds, peak = _measured(device, lambda: train_epoch(run.trainee, frames, order, run.opts))
    return {"batch_size": batch_size, "seconds": round(seconds, 3), "frames_per_s": round(frames.num_frames / seconds),
            "peak_gpu_memory_mib": peak}


def device_info(device, amp_dtype, cfg):
    """What ran it: the device, the torch build, and the arithmetic the config gives on it."""
    info = {"device": "cpu" if device.type != "cuda" else torch.cuda.get_device_name(device),
            "torch": torch.__version__, "cuda": torch.version.cuda,
            "cudnn": torch.backends.cudnn.version() if device.type == "cuda" else None,
            "python": platform.python_version(), "capability": None,
            "amp_dtype": "float32" if amp_dtype is None else str(amp_dtype).removeprefix("torch."),
            "deterministic": bool(cfg["training"]["deterministic"]),
            "torch_threads": torch.get_num_threads()}
    if device.type == "cuda":
        info["capability"] = ".".join(map(str, torch.cuda.get_device_capability(device)))
    return info


def _memory_now(device):
    return round(torch.cuda.memory_allocated(device) / 2**20) if device.type == "cuda" else None


@cli_main
def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cuda", choices=["cuda", "cpu"])
    parser.add_argument("--config", default="conf/convnet_asr.yaml", help="the stage-9 training config")
    parser.add_argument("--frames", type=int, default=1_100_000, help="TIMIT's training set: about 1.1 M")
    parser.add_argument("--batch-sizes", type=int, nargs="+",
                        help="default: the config's training.batch_size, 1024 and 4096")
    parser.add_argument("--seconds", type=float, default=5.0, help="time per training measurement")
    parser.add_argument("--warmup-seconds", type=float, default=5.0,
                        help="longest warm-up before a measurement (it ends earlier once steps are steady)")
    parser.add_argument("--no-epoch", action="store_true", help="skip the whole-epoch timings")
    parser.add_argument("--json", help="also write the results here")
    args = parser.parse_args(argv)
    cfg = load_config(args.config)
    device = resolve_device(args.device)
    set_determinism(cfg["training"]["deterministic"])  # cuDNN autotuning and TF32, as stage 9 sets them
    amp_dtype = mixed_precision(device, "auto")
    recipe_batch = int(cfg["training"]["batch_size"])
    batch_sizes = sorted(set(args.batch_sizes)) if args.batch_sizes else sweep_batch_sizes(recipe_batch)
    frames = synthetic_frames(args.frames, NUM_TARGETS, device)
    if frames.num_frames < max(batch_sizes):
        raise DataError(f"--frames {args.frames}: fewer frames than the batch size {max(batch_sizes)}")
    train_flops = counted_flops(build_model(NUM_TARGETS, FEAT_DIM, cfg["model"]), backward=True)
    result = {**device_info(device, amp_dtype, cfg), "config": args.config, "recipe_batch_size": recipe_batch,
              "frames": frames.num_frames, "train_flops_per_frame": train_flops,
              "frames_gpu_memory_mib": _memory_now(device), "runs": [], "epochs": []}
    for batch_size in batch_sizes:
        run = Run(cfg, device, batch_size, amp_dtype)
        result["runs"].append(measure_batch(run, frames, args.seconds, args.warmup_seconds, train_flops))
        print(json.dumps(result["runs"][-1]), flush=True)
        del run  # the next batch size starts from the frames alone
    fastest = max(result["runs"], key=lambda r: r["train_frames_per_s"])["batch_size"]
    if not args.no_epoch:
        for batch_size in sorted({recipe_batch, fastest} & set(batch_sizes)):
            result["epochs"].append(full_epoch(cfg, device, frames, batch_size, amp_dtype, args.warmup_seconds))
    result["fastest_batch_size"] = fastest
    text = json.dumps(result, indent=1)
    print(text)
    if args.json:
        with open(args.json, "w") as out:
            out.write(text + "\n")


if __name__ == "__main__":
    main()
