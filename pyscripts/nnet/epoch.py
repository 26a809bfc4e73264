"""One epoch of any training task: the training steps over frame batches, the dev evaluation, the
optimiser and schedule, and the progress lines of the training log. The tasks (pyscripts/nnet/train.py,
joint_train.py) and the loop (loop.py) share them."""
import logging
import math
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F

from pyscripts.errors import DataError
from pyscripts.nnet.data import gather_windows
from pyscripts.nnet.trunk_cache import TrunkOutputs
from pyscripts.progress import Progress

log = logging.getLogger("train")


class EpochProgress:
    """How far an epoch is: progress.Progress's log line (frames done of all, rate, time left) with the
    running loss and FER, which the job's log shows under any runner, and a one-line bar on stderr in
    a terminal."""

    def __init__(self, total: int, label: str, bar: bool) -> None:
        self.total, self.bar = total, bar
        self.lines = Progress(label, total, unit="frames", logger=log)

    def due(self, step: int) -> bool:
        """Whether to report after this step (a clock read: no wait for the device)."""
        return self.lines.due() or (self.bar and step % 20 == 0)

    def update(self, done: int, loss: float, fer: float) -> None:
        self.lines.update(done, f"running train AvgLoss {loss:.4f} FER {100 * fer:.2f}%")
        if self.bar:
            rate = done / max(time.monotonic() - self.lines.start, 1e-9)
            bar = "#" * int(30 * done / self.total)
            sys.stderr.write(f"\r{self.lines.label} [{bar:<30}] {done}/{self.total} frames, {rate:.0f} fr/s, "
                             f"loss {loss:.3f} FER {100 * fer:.1f}% ")
            sys.stderr.flush()

    def close(self) -> None:
        if self.bar:
            sys.stderr.write("\n")


@dataclass
class Trainee:
    """The network and what updates it."""
    model: torch.nn.Module
    step_model: torch.nn.Module  # the model as the steps call it: compiled and/or wrapped for DDP
    optimizer: torch.optim.Optimizer
    schedule: torch.optim.lr_scheduler.LRScheduler  # ReduceLROnPlateau is one too
    scaler: torch.amp.GradScaler


@dataclass
class BatchOptions:
    """How batches are formed and computed, in training and evaluation."""
    batch_size: int
    amp_dtype: torch.dtype | None = None  # autocast to this dtype; None: float32
    channels_last: bool = False
    reduce: Callable | None = None        # sums a tensor over the DDP ranks; None: one process


def batch_inputs(model: Any, frames: Any, batch: torch.Tensor, opts: "BatchOptions") -> tuple:
    """The network's input and targets for `batch`, frame indices held on the host: they go to the
    device without waiting for it (no sync per step). The input: windows of frames, or the cached frozen
    trunk's outputs."""
    on_device = batch.to(frames.targets.device, non_blocking=True)
    if isinstance(frames, TrunkOutputs):
        x = frames.rows(batch, on_device)
    else:
        x = gather_windows(frames.feats, frames.first, frames.last, on_device, model.context)
        if opts.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
    return x, frames.targets[on_device]


def autocast(device: torch.device, opts: "BatchOptions") -> torch.autocast:
    return torch.autocast(device.type, dtype=opts.amp_dtype or torch.float32, enabled=opts.amp_dtype is not None)


def train_epoch(trainee: "Trainee", frames: Any, order: torch.Tensor, opts: "BatchOptions",
                log_interval: int | None = None, label: str = "", show_progress: bool = False) -> tuple:
    """One pass of `trainee` (Trainee) over `order` (frame indices, best on the host) in batches of
    `opts` (BatchOptions). Returns (mean loss, FER, frames)."""
    model, step_model, optimizer, scaler = trainee.model, trainee.step_model, trainee.optimizer, trainee.scaler
    batch_size = opts.batch_size
    model.train()
    device = frames.targets.device
    sums = torch.zeros(4, dtype=torch.float64, device=device)  # loss*frames, errors, frames, bad batches
    first_bad = torch.tensor(-1, device=device)  # the first batch with a NaN/inf loss, kept on the device
    progress = EpochProgress(len(order), label, show_progress)
    next_log = log_interval or math.inf
    for start in range(0, len(order), batch_size):
        batch = order[start:start + batch_size]
        if len(batch) < 2:  # BatchNorm cannot normalise a single frame
            break
        x, y = batch_inputs(model, frames, batch, opts)
        with autocast(device, opts):
            logits = step_model(x)
        loss = F.cross_entropy(logits.float(), y)
        optimizer.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        scaler.step(optimizer)
        scaler.update()
        with torch.no_grad():
            sums[0] += loss.detach().double() * len(batch)
            sums[1] += (logits.argmax(1) != y).sum()
            sums[2] += len(batch)
            bad = ~torch.isfinite(loss.detach())
            sums[3] += bad
            first_bad = torch.where(bad & (first_bad < 0), start // batch_size + 1, first_bad)
        done = start + len(batch)
        if done >= next_log or progress.due(start // batch_size):
            loss_sum, errors, n, _ = sums.tolist()
            progress.update(done, loss_sum / n, errors / n)
            if done >= next_log:
                log.info("%s: %d frames, running train AvgLoss %.4f (Xent) FER %.2f%%", label, done,
                         loss_sum / n, 100 * errors / n)
                next_log += log_interval or 0  # not None here: next_log is finite
    progress.close()
    if opts.reduce:
        opts.reduce(sums)
    loss_sum, errors, n, num_bad = sums.tolist()
    if n == 0:
        raise DataError("no training batch in this epoch: the training set has fewer than 2 frames per rank")
    if num_bad:  # checked once per epoch (no sync per batch); nothing of this epoch gets saved
        where = f"batch {int(first_bad)}" if first_bad >= 0 else "a batch of another rank"
        raise DataError(f"{label}: the training loss became NaN or inf at {where} ({int(num_bad)} such "
                        "batches); stopped before saving this epoch (checkpoint.pt and best.pt keep the last "
                        "good one). Lower optimizer.lr, or check the features and targets")
    return loss_sum / n, errors / n, int(n)


@torch.no_grad()
def evaluate(model: Any, frames: Any, opts: "BatchOptions", rank: int = 0, world_size: int = 1,
             subset: torch.Tensor | None = None) -> tuple:
    """Dev cross-entropy and FER over all frames, or the frame indices `subset` (each rank takes every
    world_size-th of them), in batches of `opts` (BatchOptions)."""
    model.eval()
    device = frames.targets.device
    sums = torch.zeros(3, dtype=torch.float64, device=device)
    order = torch.arange(frames.num_frames) if subset is None else subset.cpu()
    order = order[rank::world_size]
    for start in range(0, len(order), opts.batch_size):
        x, y = batch_inputs(model, frames, order[start:start + opts.batch_size], opts)
        with autocast(device, opts):
            logits = model(x).float()
        sums[0] += F.cross_entropy(logits, y, reduction="sum").double()
        sums[1] += (logits.argmax(1) != y).sum()
        sums[2] += len(y)
    if opts.reduce:
        opts.reduce(sums)
    loss_sum, errors, n = sums.tolist()
    return loss_sum / n, errors / n, int(n)


def make_optimizer(model: Any, opt_cfg: dict, conv_l2: float) -> torch.optim.Optimizer:
    # The paper's L2 conv_l2*sum(w^2) on the conv kernels has gradient 2*conv_l2*w: weight decay 2*conv_l2.
    kernels = model.conv_kernels()
    kernel_ids = {id(p) for p in kernels}
    others = [p for p in model.parameters() if p.requires_grad and id(p) not in kernel_ids]
    groups = [{"params": kernels, "weight_decay": 2.0 * conv_l2}, {"params": others, "weight_decay": 0.0}]
    name = opt_cfg["name"]
    if name == "sgd":
        return torch.optim.SGD(groups, lr=opt_cfg["lr"], momentum=opt_cfg["momentum"])
    if name == "rmsprop":
        return torch.optim.RMSprop(groups, lr=opt_cfg["lr"], alpha=opt_cfg["rmsprop_alpha"],
                                   momentum=opt_cfg["momentum"])
    raise DataError(f"optimizer.name '{name}': use sgd or rmsprop")


def make_schedule(optimizer: torch.optim.Optimizer, sched_cfg: dict) -> torch.optim.lr_scheduler.LRScheduler:
    name = sched_cfg["name"]
    if name == "newbob":
        return torch.optim.lr_scheduler.ReduceLROnPlateau(
            optimizer, mode="min", factor=sched_cfg["factor"], patience=0,
            threshold=sched_cfg["threshold"], threshold_mode="rel")
    if name == "exponential":
        return torch.optim.lr_scheduler.ExponentialLR(optimizer, gamma=sched_cfg["gamma"])
    raise DataError(f"schedule.name '{name}': use newbob or exponential")


