"""One TIMIT-size epoch of the paper's ConvNet on a GPU: how fast, how close to the chip's peak, and
what stands in the way. Prepared to run in a few minutes on a lent GPU machine.

  python3 -m pyscripts.bench.gpu_epoch [--device cuda] [--frames 1100000] [--batch-sizes 1024 4096]
      [--seconds 5] [--json FILE]

On synthetic features (TIMIT's 1.1 M training frames x 40 fbank, 144 pdf targets), with the training
stage's own gather_windows / train_epoch / evaluate (bf16 autocast, channels_last), it records per batch
size: training and inference frames/s; the fraction of the GPU's dense bf16 peak that the training
FLOPs reach (peaks of known GPUs below; null for others); the time share of gathering the 31-frame
windows against the network's step; peak GPU memory; and then the time of one whole epoch over all
frames at the fastest batch size. The goal is a TIMIT-size epoch under 1 s on an H100/H200-class GPU.
Runs on the CPU too (--device cpu, small --frames) to check the script itself.
"""
import argparse
import json
import time

import torch

from pyscripts.bench.train_throughput import counted_flops, synthetic_frames
from pyscripts.nnet.data import gather_windows
from pyscripts.nnet.model import ConvNet
from pyscripts.nnet.train import BatchOptions, Trainee, evaluate, make_optimizer, train_epoch

# Dense bf16 tensor-core peaks (FLOP/s) from the vendors' data sheets.
BF16_PEAK = {"H200": 989.4e12, "H100 SXM": 989.4e12, "H100 PCIe": 756.0e12, "H100": 989.4e12,
             "A100": 312.0e12, "L40S": 362.1e12}


def bf16_peak(device):
    if device.type != "cuda":
        return None
    name = torch.cuda.get_device_name(device)
    return next((peak for key, peak in BF16_PEAK.items() if key in name), None)


def _sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _timed(device, func):
    _sync(device)
    start = time.perf_counter()
    func()
    _sync(device)
    return time.perf_counter() - start


def measure_batch(device, frames, batch_size, seconds, train_flops):
    """Training / inference frames/s, share of the step spent gathering windows, peak memory."""
    torch.manual_seed(0)
    model = ConvNet(144).to(device, memory_format=torch.channels_last)
    optimizer = make_optimizer(model, {"name": "sgd", "lr": 0.01, "momentum": 0.9}, 1e-3)
    amp = torch.bfloat16 if device.type == "cuda" else None
    trainee = Trainee(model, model, optimizer, None, torch.amp.GradScaler(device.type, enabled=False))
    opts = BatchOptions(batch_size, amp, True)
    generator = torch.Generator().manual_seed(0)

    def order(n_batches):
        return torch.randint(frames.num_frames, (n_batches * batch_size,), generator=generator).to(device)

    warm = _timed(device, lambda: train_epoch(trainee, frames, order(3), opts)) / 3
    steps = max(5, int(seconds / max(warm, 1e-6)))
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    batches = order(steps)
    train_s = _timed(device, lambda: train_epoch(trainee, frames, batches, opts))
    gather_s = _timed(device, lambda: [gather_windows(frames.feats, frames.first, frames.last,
                                                      batches[i:i + batch_size], model.context)
                                       for i in range(0, len(batches), batch_size)])
    infer_s = _timed(device, lambda: evaluate(model, frames, BatchOptions(batch_size, amp, True),
                                              subset=batches.cpu()))
    train_fps = steps * batch_size / train_s
    peak = bf16_peak(device)
    return {"batch_size": batch_size, "train_frames_per_s": round(train_fps),
            "infer_frames_per_s": round(len(batches) / infer_s),
            "bf16_peak_fraction": None if peak is None else round(train_fps * train_flops / peak, 4),
            "gather_share_of_step": round(gather_s / train_s, 3),
            "peak_gpu_memory_mib": (round(torch.cuda.max_memory_allocated(device) / 2**20)
                                    if device.type == "cuda" else None)}, trainee, opts


def full_epoch_seconds(device, frames, trainee, opts):
    """One epoch over every frame in a seeded shuffle, as the training stage runs it."""
    order = torch.randperm(frames.num_frames, generator=torch.Generator().manual_seed(1)).to(device)
    return _timed(device, lambda: train_epoch(trainee, frames, order, opts))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--frames", type=int, default=1_100_000, help="TIMIT's training set: about 1.1 M")
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[1024, 4096])
    parser.add_argument("--seconds", type=float, default=5.0, help="time per training measurement")
    parser.add_argument("--json", help="also write the results here")
    args = parser.parse_args(argv)
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise SystemExit("no CUDA device is visible: this benchmark needs a GPU (or --device cpu to test it)")
    frames = synthetic_frames(args.frames, 144, device)
    train_flops = counted_flops(ConvNet(144), backward=True)
    result = {"device": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
              "frames": frames.num_frames, "train_flops_per_frame": train_flops, "runs": []}
    best = None
    for batch_size in args.batch_sizes:
        run, trainee, opts = measure_batch(device, frames, batch_size, args.seconds, train_flops)
        result["runs"].append(run)
        print(json.dumps(run), flush=True)
        if best is None or run["train_frames_per_s"] > best[0]["train_frames_per_s"]:
            best = (run, trainee, opts)
    result["epoch_batch_size"] = best[0]["batch_size"]
    result["epoch_seconds"] = round(full_epoch_seconds(device, frames, best[1], best[2]), 3)
    text = json.dumps(result, indent=1)
    print(text)
    if args.json:
        with open(args.json, "w") as out:
            out.write(text + "\n")


if __name__ == "__main__":
    main()
