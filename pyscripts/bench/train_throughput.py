"""Benchmark of the paper's ConvNet: training and inference frames/s, FLOPs per frame, parameters, memory.

  python3 -m pyscripts.bench.train_throughput [--device cpu] [--device cuda] [--seconds 10]
      [--batch-sizes 128 256] [--num-threads N] [--json FILE]

Uses the training stage's own train_epoch/evaluate (window gather included) on synthetic frames.
FLOPs are counted analytically from the layer shapes (2 per multiply-add, convolutions and
fully connected layers; BatchNorm, ReLU and pooling are left out, as is usual) and cross-checked
with torch.utils.flop_counter, which counts the same operations.
"""
import argparse
import json
import logging
import os
import resource
import time

import numpy as np
import torch
from torch.utils.flop_counter import FlopCounterMode

from pyscripts.nnet.data import frame_set_from_arrays
from pyscripts.nnet.model import ConvNet
from pyscripts.nnet.train import BatchOptions, Trainee, evaluate, make_optimizer, train_epoch


def analytic_flops_per_frame(num_targets, feat_dim=40, context=15, c1=64, c2=128, fc=1024):
    """Forward FLOPs of one frame from the paper's table: valid convs, 2x2/2 pooling."""
    t, f = 2 * context + 1, feat_dim
    t1, f1 = t - 5 + 1, f - 4 + 1                 # conv 5x4
    macs = t1 * f1 * c1 * (5 * 4 * 1)
    t1, f1 = t1 // 2, f1 // 2                     # pool
    t2, f2 = t1 - 3 + 1, f1 - 3 + 1               # conv 3x3
    macs += t2 * f2 * c2 * (3 * 3 * c1)
    flat = c2 * (t2 // 2) * (f2 // 2)             # pool, flatten
    macs += flat * fc + 2 * fc * fc + fc * num_targets
    return 2 * macs


def counted_flops(model, backward):
    x = torch.randn(2, 1, 2 * model.context + 1, model.feat_dim)   # 2 frames: BatchNorm needs 2 in training
    model.train(backward)
    with FlopCounterMode(display=False) as counter:
        out = model(x)
        if backward:
            out.sum().backward()
    model.zero_grad(set_to_none=True)
    return counter.get_total_flops() / 2


def synthetic_frames(num_frames, num_targets, device, utt_len=300):
    rng = np.random.default_rng(0)
    lengths = [utt_len] * (num_frames // utt_len)
    feats = [rng.normal(size=(n, 40)).astype(np.float32) for n in lengths]
    targets = [rng.integers(num_targets, size=n) for n in lengths]
    return frame_set_from_arrays(feats, targets).to(device)


def measure(device, batch_size, channels_last, seconds, num_targets, frames):
    torch.manual_seed(0)
    model = ConvNet(num_targets).to(device, memory_format=torch.channels_last if channels_last
                                    else torch.contiguous_format)
    optimizer = make_optimizer(model, {"name": "sgd", "lr": 0.01, "momentum": 0.9}, 1e-3)
    scaler = torch.amp.GradScaler(device.type, enabled=False)
    amp = torch.bfloat16 if device.type == "cuda" else None
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    generator = torch.Generator().manual_seed(0)

    def run(num_batches):
        order = torch.randint(frames.num_frames, (num_batches * batch_size,), generator=generator).to(device)
        sync()
        start = time.perf_counter()
        train_epoch(Trainee(model, model, optimizer, None, scaler), frames, order,
                    BatchOptions(batch_size, amp, channels_last))
        sync()
        return time.perf_counter() - start

    warm = run(3) / 3
    steps = max(5, int(seconds / max(warm, 1e-6)))
    train_fps = steps * batch_size / run(steps)
    eval_frames = min(frames.num_frames, max(2048, int(train_fps * seconds / 2)))
    sub = frame_set_from_arrays([frames.feats[:eval_frames].cpu().numpy()],
                                [frames.targets[:eval_frames].cpu().numpy()]).to(device)
    eval_opts = BatchOptions(1024, amp, channels_last)
    evaluate(model, sub, eval_opts)
    sync()
    start = time.perf_counter()
    evaluate(model, sub, eval_opts)
    sync()
    infer_fps = eval_frames / (time.perf_counter() - start)
    return train_fps, infer_fps


def main():
    logging.basicConfig(level=logging.WARNING)
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", action="append", help="cpu and/or cuda (default: cpu, and cuda if present)")
    parser.add_argument("--seconds", type=float, default=10.0, help="time per training measurement")
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[128, 256])
    parser.add_argument("--num-targets", type=int, default=144)
    parser.add_argument("--num-threads", type=int, help="CPU threads (default: torch's choice)")
    parser.add_argument("--json", help="also write the results here")
    args = parser.parse_args()
    if args.num_threads:
        torch.set_num_threads(args.num_threads)
    devices = args.device or (["cpu", "cuda"] if torch.cuda.is_available() else ["cpu"])

    model = ConvNet(args.num_targets)
    analytic = analytic_flops_per_frame(args.num_targets)
    counted_fwd, counted_train = counted_flops(model, backward=False), counted_flops(model, backward=True)
    if counted_fwd != analytic:
        raise SystemExit(f"FLOP count mismatch: analytic {analytic}, torch.utils.flop_counter {counted_fwd}")
    results = {"parameters": sum(p.numel() for p in model.parameters()), "num_targets": args.num_targets,
               "forward_flops_per_frame": analytic, "train_flops_per_frame": counted_train,
               "torch_threads": torch.get_num_threads(), "runs": []}
    print(f"parameters: {results['parameters']:,}  ({args.num_targets} targets)")
    print(f"FLOPs/frame forward: {analytic / 1e6:.2f} M (analytic = flop_counter), "
          f"forward+backward: {counted_train / 1e6:.2f} M (flop_counter)")
    print(f"{'device':<8}{'batch':>6}{'layout':>15}{'train fr/s':>12}{'infer fr/s':>12}{'train GFLOP/s':>15}")
    for name in devices:
        device = torch.device(name)
        frames = synthetic_frames(60_000, args.num_targets, device)
        for batch_size in args.batch_sizes:
            for channels_last in (False, True):
                if device.type == "cuda":
                    torch.cuda.reset_peak_memory_stats()
                train_fps, infer_fps = measure(device, batch_size, channels_last, args.seconds,
                                               args.num_targets, frames)
                layout = "channels_last" if channels_last else "contiguous"
                run = {"device": name, "batch_size": batch_size, "layout": layout,
                       "train_frames_per_s": round(train_fps), "infer_frames_per_s": round(infer_fps)}
                if device.type == "cuda":
                    run["peak_gpu_memory_mib"] = round(torch.cuda.max_memory_allocated() / 2 ** 20)
                results["runs"].append(run)
                gpu_memory = f"   peak GPU memory {run['peak_gpu_memory_mib']} MiB" if device.type == "cuda" else ""
                print(f"{name:<8}{batch_size:>6}{layout:>15}{train_fps:>12.0f}{infer_fps:>12.0f}"
                      f"{train_fps * counted_train / 1e9:>15.1f}{gpu_memory}")
    usage = resource.getrusage(resource.RUSAGE_SELF)
    results["peak_rss_mib"] = round(usage.ru_maxrss / 1024)
    # Page faults and kernel time show what glibc's handing memory back costs (path.sh's MALLOC_* settings).
    results["cpu_seconds"] = {"user": round(usage.ru_utime, 1), "system": round(usage.ru_stime, 1)}
    results["minor_page_faults"] = usage.ru_minflt
    results["malloc_env"] = {name: os.environ.get(name) for name in ("MALLOC_MMAP_MAX_", "MALLOC_TRIM_THRESHOLD_")}
    print(f"peak process memory (RSS): {results['peak_rss_mib']} MiB; CPU user {usage.ru_utime:.0f} s, "
          f"system {usage.ru_stime:.0f} s, {usage.ru_minflt} minor page faults; {results['malloc_env']}")
    if args.json:
        with open(args.json, "w") as out:
            json.dump(results, out, indent=1)


if __name__ == "__main__":
    main()
