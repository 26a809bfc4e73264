"""Trains the paper's ConvNet on frame targets (ASR pdf ids or SER classes).

  python3 -m pyscripts.nnet.train [--config conf/convnet_asr.yaml] [--set KEY=VALUE ...]
      [--init-from MODEL --freeze-layers L [--reinit-unfrozen]] [--cmvn-stats FILE]
      [--device auto|cpu|cuda] [--num-threads N]
      TRAIN_DATA DEV_DATA TRAIN_TARGETS DEV_TARGETS EXP_DIR

Under torchrun (WORLD_SIZE > 1) every process holds all frames; the epoch's shuffled frame order is
cut into one equal share per rank (rank r takes every N-th frame), each rank's batch is
training.batch_size / N frames, and DistributedDataParallel averages the gradients. BatchNorm is
synchronised: it normalises with the mean and variance of the whole batch, all ranks' shares
together (torch.nn.SyncBatchNorm on GPUs, SyncBatchNormCPU with gloo on CPUs), so N processes x B/N
frames take the same steps as one process x B frames, up to the order of float sums, when B and the
epoch's frames divide by N. What still differs: dropout draws its masks per rank (from seed, epoch and
rank), so with dropout > 0 the runs are equally good but not equal; with dropout 0 they match.

EXP_DIR receives:
  checkpoint.pt   the state after the last finished epoch (model, optimiser, schedule, early-stopping
                  state, history); a re-run resumes from it. Dropout noise and the shuffle are drawn
                  from generators reseeded from (seed, epoch, rank) at each epoch start, so the epoch
                  number restores the random state exactly and a resumed run equals an uninterrupted one.
  best.pt         the model with the best dev metric so far (becomes final.pt at the end)
  final.pt        written when training ends: the best model with its config, input normalisation,
                  num_targets, prior counts and feature options (the data dir's conf/fbank.conf:
                  inference refuses others) - all that inference needs. checkpoint.pt is removed then.
                  Retraining keeps the last good final.pt, and the files below with it, until the new
                  one is complete.
  final.stamp     checksums of what final.pt was trained on (config, features, targets, CMVN stats,
                  source model): a re-run skips an up-to-date model and trains an outdated one again
  prior_counts    frame counts per target in the training targets, a Kaldi text vector (as Kaldi's
                  ali_train_pdf.counts), for hybrid decoding (written with final.pt, as config.yaml)
  history.tsv     one line per epoch: lr, train and dev loss/FER, time
  train_summary   written with final.pt: start, end, seconds, epochs, why it stopped, the best dev
                  epoch (`key=value` lines, read by the stages that report trainings)
"""
import argparse
import copy
import datetime
import errno
import hashlib
import io
import logging
import math
import os
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
import yaml

from pyscripts.config_files import read_yaml
from pyscripts.errors import DataError, cli_main
from pyscripts.fingerprint import file_digest, scp_digest
from pyscripts.kaldi.features import data_feature_record, feature_differences
from pyscripts.kaldi.tables import format_kaldi_vector
from pyscripts.nnet.data import (epoch_frame_order, gather_windows, load_frame_set, norm_stats_from_cmvn,
                                 norm_stats_from_frames, target_counts)
from pyscripts.nnet.device import (AMP_MODES, load_scaler_state, make_scaler, mixed_precision, resolve_device,
                                   set_determinism)
from pyscripts.nnet.model import (TRANSFERABLE_LAYERS, build_model, copy_layers, freeze_layers, load_package,
                                  package_model, reinit_layers)
from pyscripts.nnet.trunk_cache import TrunkOutputs, cache_trunk

log = logging.getLogger("train")
SUMMARY = "train_summary"  # beside final.pt, see run_summary
PROGRESS_SECONDS = 60      # a progress line in the training log this often
# Keys that may differ between a checkpoint and the run that resumes it (they do not change results).
RESUME_FREE_KEYS = {("training", "log_interval_frames"), ("training", "eval_batch_size")}


# ---------------------------------------------------------------- configuration
def load_config(path, overrides=()):
    """YAML config; `base: FILE` (relative to the file) is read first and updated key by key.
    overrides: "section.key=value" strings, value parsed as YAML. Unknown keys are errors (typos), and
    every value is checked against CONFIG_SCHEMA here, before any data is read or file written."""
    path = Path(path)
    cfg = read_yaml(path)
    if not isinstance(cfg, dict):
        raise DataError(f"config {path}: expected a mapping of sections (model:, optimizer:, ...)")
    base = cfg.pop("base", None)
    if base is not None:
        cfg = _merge(load_config(path.parent / base), cfg, str(path))
    validate_config(cfg, f"config {path}")
    for item in overrides:
        key, sep, value = item.partition("=")
        if not sep:
            raise DataError(f"override '{item}' is not KEY=VALUE (e.g. optimizer.lr=0.01)")
        *parents, leaf = key.split(".")
        node = cfg
        for p in parents:
            node = node.get(p) if isinstance(node, dict) else None
        if not isinstance(node, dict) or leaf not in node:
            raise DataError(f"override '{item}': no key '{key}' in config {path}")
        node[leaf] = yaml.safe_load(value)
    if overrides:
        validate_config(cfg, f"config {path} with --set {' '.join(overrides)}")
    return cfg


# The type of every config value, and the range it must lie in: (type or types, (test, range text)).
_POS, _NONNEG, _UNIT = (lambda v: v > 0, "> 0"), (lambda v: v >= 0, ">= 0"), (lambda v: 0 <= v < 1, "in [0, 1)")
_NULL = type(None)


def _one_of(*names):
    return lambda v: v in names, "one of " + ", ".join(names)


CONFIG_SCHEMA = {
    "model": {"context": (int, _NONNEG), "conv1_channels": (int, _POS), "conv2_channels": (int, _POS),
              "fc_dim": (int, _POS), "dropout": (float, _UNIT), "conv_l2": (float, _NONNEG)},
    "optimizer": {"name": (str, _one_of("sgd", "rmsprop")), "lr": (float, _POS), "momentum": (float, _UNIT),
                  "rmsprop_alpha": (float, _UNIT)},
    "schedule": {"name": (str, _one_of("newbob", "exponential")), "factor": (float, _UNIT),
                 "threshold": (float, _NONNEG), "gamma": (float, _POS)},
    "training": {"seed": (int, None), "batch_size": (int, (lambda v: v >= 2, ">= 2")), "max_epochs": (int, _POS),
                 "frames_per_epoch": ((int, _NULL), _POS), "dev_frames": ((int, _NULL), _POS),
                 "dev_metric": (str, _one_of("loss", "fer")), "patience": (int, _POS),
                 "eval_batch_size": (int, _POS), "amp": (str, _one_of(*AMP_MODES)),
                 "deterministic": (bool, None), "compile": (bool, None),
                 "channels_last": (bool, None), "log_interval_frames": (int, _POS),
                 "trunk_cache_mb": (int, _NONNEG)},
    "init": {"from": ((str, _NULL), None), "freeze_layers": (int, (lambda v: 0 <= v <= TRANSFERABLE_LAYERS,
                                                                    f"0..{TRANSFERABLE_LAYERS}")),
             "reinit_unfrozen": (bool, None)},
    "data": {"cmvn_stats": ((str, _NULL), None)},
}


def validate_config(cfg, where, schema=None):
    """Raises DataError naming the key, the value and the expected type or range. YAML quirks are
    caught here rather than deep in training: "false" (a string) would count as true, 1e-3 (no dot)
    is a string in YAML 1.1. schema: CONFIG_SCHEMA, or the sections of another config in its form."""
    schema = CONFIG_SCHEMA if schema is None else schema
    for section, keys in schema.items():
        node = cfg.get(section)
        if not isinstance(node, dict):
            raise DataError(f"{where}: section '{section}' is missing or not a mapping")
        for key in node:
            if key not in keys:
                raise DataError(f"{where}: unknown key '{section}.{key}' (known: {', '.join(keys)})")
        for key, (types, check) in keys.items():
            if key not in node:
                raise DataError(f"{where}: key '{section}.{key}' is missing")
            value, types = node[key], types if isinstance(types, tuple) else (types,)
            ok = isinstance(value, types) and not (isinstance(value, bool) and bool not in types)
            if not ok and float in types and isinstance(value, int) and not isinstance(value, bool):
                ok = True  # an integer is a fine float
            if not ok:
                names = " or ".join("null" if t is _NULL else "number" if t is float else t.__name__ for t in types)
                hint = ""
                if isinstance(value, str) and float in types:
                    hint = " (a string: remove any quotes; YAML reads 1e-3 as a string, 1.0e-3 as a number)"
                elif isinstance(value, str) and bool in types:
                    hint = " (a string: write true or false without quotes)"
                raise DataError(f"{where}: {section}.{key} is {value!r} ({type(value).__name__}); expected "
                                f"{names}{hint}")
            if check is not None and value is not None and not check[0](value):
                raise DataError(f"{where}: {section}.{key} is {value!r}; expected a value {check[1]}")
    for section in cfg:
        if section not in schema:
            raise DataError(f"{where}: unknown section '{section}' (known: {', '.join(schema)})")


def _merge(base, update, where):
    out = copy.deepcopy(base)
    for key, value in update.items():
        if key not in out:
            raise DataError(f"config {where}: unknown key '{key}' (not in its base config)")
        out[key] = _merge(out[key], value, where) if isinstance(value, dict) else value
    return out


def _config_differences(a, b, prefix=()):
    keys = set(a) | set(b)
    diffs = []
    for k in sorted(keys):
        va, vb = a.get(k), b.get(k)
        if isinstance(va, dict) and isinstance(vb, dict):
            diffs += _config_differences(va, vb, prefix + (k,))
        elif va != vb and prefix + (k,) not in RESUME_FREE_KEYS:
            diffs.append(".".join(prefix + (k,)))
    return diffs


# ---------------------------------------------------------------- model building and saving
def _save(obj, path):
    """torch.save through memory: torch's own file writer reports a full disk as 'unexpected pos'."""
    buffer = io.BytesIO()
    torch.save(obj, buffer)
    _write_file(path, buffer.getbuffer())


def _write_file(path, data):
    """Writes bytes or text to path.tmp, then renames it: a kill never leaves a half-written file under the
    real name, and a full disk is an error naming the file that leaves no .tmp behind."""
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    try:
        with open(tmp, "wb") as f:
            f.write(data.encode() if isinstance(data, str) else data)
        os.replace(tmp, path)
    except OSError as err:
        tmp.unlink(missing_ok=True)
        full = err.errno in (errno.ENOSPC, errno.EDQUOT)
        raise DataError(f"{path}: cannot write it ({'disk full: ' if full else ''}{err.strerror}); "
                        f"{'free space on its disk' if full else 'check that its directory is writable'} and "
                        f"run again ({path.name} keeps its last complete version, if any; a training resumes "
                        "from checkpoint.pt)") from None


def init_from_source(model, init_cfg):
    """Transfer: layers 1..5 from the source model, 1..l frozen, optionally l+1..5 redrawn.
    Layer 6 stays freshly initialised: the output layer belongs to the task."""
    source_path, num_frozen = init_cfg["from"], int(init_cfg["freeze_layers"])
    if not 0 <= num_frozen <= TRANSFERABLE_LAYERS:
        raise DataError(f"--freeze-layers {num_frozen}: must be 0..{TRANSFERABLE_LAYERS}")
    if source_path is None:
        if num_frozen or init_cfg["reinit_unfrozen"]:
            raise DataError("--freeze-layers/--reinit-unfrozen need --init-from MODEL")
        return
    source, _ = load_package(source_path)
    try:
        copy_layers(model, source, TRANSFERABLE_LAYERS)
    except ValueError as err:
        raise DataError(f"--init-from {source_path}: {err}; use the same model section in the config") from None
    if init_cfg["reinit_unfrozen"]:
        reinit_layers(model, num_frozen + 1, TRANSFERABLE_LAYERS)
    freeze_layers(model, num_frozen)
    log.info("layers 1..%d from %s, layers 1..%d frozen, layers %d..%d %s, layer 6 fresh",
             TRANSFERABLE_LAYERS, source_path, num_frozen, num_frozen + 1, TRANSFERABLE_LAYERS,
             "redrawn" if init_cfg["reinit_unfrozen"] else "fine-tuned")


def make_optimizer(model, opt_cfg, conv_l2):
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


def make_schedule(optimizer, sched_cfg):
    name = sched_cfg["name"]
    if name == "newbob":
        return torch.optim.lr_scheduler.ReduceLROnPlateau(
            optimizer, mode="min", factor=sched_cfg["factor"], patience=0,
            threshold=sched_cfg["threshold"], threshold_mode="rel")
    if name == "exponential":
        return torch.optim.lr_scheduler.ExponentialLR(optimizer, gamma=sched_cfg["gamma"])
    raise DataError(f"schedule.name '{name}': use newbob or exponential")


# ---------------------------------------------------------------- one epoch
class EpochProgress:
    """How far an epoch is: a log line every PROGRESS_SECONDS (frames done of all, rate, time left, the
    running loss and FER), which the job's log shows under any runner, and a one-line bar on stderr in
    a terminal."""

    def __init__(self, total, label, bar):
        self.total, self.label, self.bar = total, label, bar
        self.start = time.monotonic()
        self.next_line = self.start + PROGRESS_SECONDS

    def due(self, step):
        """Whether to report after this step (a clock read: no wait for the device)."""
        return time.monotonic() >= self.next_line or (self.bar and step % 20 == 0)

    def update(self, done, loss, fer):
        now = time.monotonic()
        rate = done / max(now - self.start, 1e-9)
        if now >= self.next_line:
            log.info("%s: %d of %d frames (%.0f%%), %.0f frames/s, %s left; running train AvgLoss %.4f FER %.2f%%",
                     self.label, done, self.total, 100 * done / self.total, rate,
                     _duration((self.total - done) / max(rate, 1e-9)), loss, 100 * fer)
            self.next_line = now + PROGRESS_SECONDS
        if self.bar:
            bar = "#" * int(30 * done / self.total)
            sys.stderr.write(f"\r{self.label} [{bar:<30}] {done}/{self.total} frames, {rate:.0f} fr/s, "
                             f"loss {loss:.3f} FER {100 * fer:.1f}% ")
            sys.stderr.flush()

    def close(self):
        if self.bar:
            sys.stderr.write("\n")


def _duration(seconds):
    seconds = int(seconds)
    if seconds < 120:
        return f"{seconds} s"
    return f"{seconds // 60} min" if seconds < 3600 else f"{seconds // 3600} h {seconds % 3600 // 60:02d} min"


@dataclass
class Trainee:
    """The network and what updates it."""
    model: torch.nn.Module
    step_model: torch.nn.Module  # the model as the steps call it: compiled and/or wrapped for DDP
    optimizer: torch.optim.Optimizer
    schedule: object
    scaler: torch.amp.GradScaler


@dataclass
class BatchOptions:
    """How batches are formed and computed, in training and evaluation."""
    batch_size: int
    amp_dtype: torch.dtype | None = None  # autocast to this dtype; None: float32
    channels_last: bool = False
    reduce: Callable | None = None        # sums a tensor over the DDP ranks; None: one process


def _batch(model, frames, batch, opts):
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


def _autocast(device, opts):
    return torch.autocast(device.type, dtype=opts.amp_dtype or torch.float32, enabled=opts.amp_dtype is not None)


def train_epoch(trainee, frames, order, opts, log_interval=None, label="", show_progress=False):
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
        x, y = _batch(model, frames, batch, opts)
        with _autocast(device, opts):
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
                next_log += log_interval
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
def evaluate(model, frames, opts, rank=0, world_size=1, subset=None):
    """Dev cross-entropy and FER over all frames, or the frame indices `subset` (each rank takes every
    world_size-th of them), in batches of `opts` (BatchOptions)."""
    model.eval()
    device = frames.targets.device
    sums = torch.zeros(3, dtype=torch.float64, device=device)
    order = torch.arange(frames.num_frames) if subset is None else subset.cpu()
    order = order[rank::world_size]
    for start in range(0, len(order), opts.batch_size):
        x, y = _batch(model, frames, order[start:start + opts.batch_size], opts)
        with _autocast(device, opts):
            logits = model(x).float()
        sums[0] += F.cross_entropy(logits, y, reduction="sum").double()
        sums[1] += (logits.argmax(1) != y).sum()
        sums[2] += len(y)
    if opts.reduce:
        opts.reduce(sums)
    loss_sum, errors, n = sums.tolist()
    return loss_sum / n, errors / n, int(n)


# ---------------------------------------------------------------- BatchNorm across DDP ranks
class SyncBatchNormCPU(torch.nn.modules.batchnorm._BatchNorm):
    """BatchNorm whose training statistics are those of the whole batch across the ranks of the
    process group, for the gloo backend on CPUs (torch.nn.SyncBatchNorm runs on GPUs only). Sums go
    through differentiable all-reduces, so the gradients also flow through the other ranks' frames.
    It has the BatchNorm's parameters and buffers (same names), so checkpoints do not change."""

    def _check_input_dim(self, x):
        if x.dim() < 2:
            raise ValueError(f"expected at least 2D input (got {x.dim()}D input)")

    def forward(self, x):
        import torch.distributed as dist
        if not (self.training and dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1):
            return super().forward(x)
        from torch.distributed.nn.functional import all_reduce
        dims = [0] + list(range(2, x.dim()))
        shape = [1, -1] + [1] * (x.dim() - 2)
        sums = all_reduce(torch.cat([x.sum(dims), x.new_tensor([x.numel() // x.size(1)])]))
        n = sums[-1]
        mean = sums[:-1] / n
        centred = x - mean.view(shape)
        var = all_reduce(centred.pow(2).sum(dims)) / n  # two passes: no cancellation in E[x^2] - E[x]^2
        out = centred * torch.rsqrt(var + self.eps).view(shape)
        if self.affine:
            out = out * self.weight.view(shape) + self.bias.view(shape)
        if self.track_running_stats:
            with torch.no_grad():
                self.num_batches_tracked.add_(1)
                momentum = self.momentum if self.momentum is not None else 1.0 / float(self.num_batches_tracked)
                self.running_mean.mul_(1 - momentum).add_(mean.detach(), alpha=momentum)
                self.running_var.mul_(1 - momentum).add_(var.detach() * n / (n - 1), alpha=momentum)
        return out


def sync_batchnorm(module, device):
    """Replaces every BatchNorm of `module` (in place) by one synchronised across the DDP ranks,
    sharing its parameters and buffers (so optimiser state, freezing and saving are unaffected)."""
    if device.type == "cuda":
        return torch.nn.SyncBatchNorm.convert_sync_batchnorm(module)
    for name, child in module.named_children():
        if isinstance(child, torch.nn.modules.batchnorm._BatchNorm):
            new = SyncBatchNormCPU(child.num_features, child.eps, child.momentum, child.affine,
                                   child.track_running_stats)
            if child.affine:
                new.weight, new.bias = child.weight, child.bias
            if child.track_running_stats:
                new.running_mean, new.running_var = child.running_mean, child.running_var
                new.num_batches_tracked = child.num_batches_tracked
            new.train(child.training)
            setattr(module, name, new)
        else:
            sync_batchnorm(child, device)
    return module


# ---------------------------------------------------------------- what a model was trained on
def input_stamp(cfg, train_data, dev_data, train_targets, dev_targets):
    """{input: checksum} of everything a training depends on; saved beside final.pt as final.stamp."""
    cfg = copy.deepcopy(cfg)
    for section, key in RESUME_FREE_KEYS:
        cfg[section].pop(key, None)
    config = hashlib.sha256(yaml.safe_dump(cfg, sort_keys=True).encode()).hexdigest()[:16]
    stamp = {"config": config, "cmvn_stats": file_digest(cfg["data"]["cmvn_stats"]),
             "init_from": file_digest(cfg["init"]["from"])}
    for name, data, targets in (("train", train_data, train_targets), ("dev", dev_data, dev_targets)):
        stamp[f"{name}_feats"] = scp_digest(Path(data) / "feats.scp")
        stamp[f"{name}_targets"] = scp_digest(Path(targets) / "targets.scp") + "/" + \
            file_digest(Path(targets) / "num_targets")
    return stamp


def read_stamp(path):
    path = Path(path)
    return dict(line.split(None, 1) for line in path.read_text().splitlines()) if path.is_file() else None


def stamp_changes(old, new):
    """'' when the stamps agree, else what differs (for the messages)."""
    if old is None:
        return "no final.stamp says what it was trained on"
    changed = [k for k in new if old.get(k) != new[k]]
    return "" if not changed else "changed since it was trained: " + ", ".join(changed)


# ---------------------------------------------------------------- the training run
@dataclass
class Ranks:
    """This process's place among the torchrun processes (one process: rank 0 of 1)."""
    world_size: int
    rank: int
    local_rank: int
    device: torch.device

    @property
    def is_main(self):
        return self.rank == 0

    def reduce(self, sums):
        """Sums a tensor over the ranks, in place."""
        torch.distributed.all_reduce(sums)


def _ranks(device_name):
    """This process's place among the torchrun processes and its device (checked before anything is read)."""
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    rank, local_rank = int(os.environ.get("RANK", "0")), int(os.environ.get("LOCAL_RANK", "0"))
    return Ranks(world_size, rank, local_rank, resolve_device(device_name, local_rank))


def _join_ranks(ranks):
    if ranks.world_size > 1:
        import torch.distributed as dist
        dist.init_process_group("nccl" if ranks.device.type == "cuda" else "gloo")
    if not ranks.is_main:  # one log, from rank 0
        logging.getLogger().setLevel(logging.WARNING)


def _up_to_date(exp_dir, stamp, force):
    """True when final.pt was trained on these inputs. Otherwise the new training starts (or resumes its
    own checkpoint.pt); the last good final.pt stays, with its final.stamp, train_summary and prior_counts,
    until a new one is complete (_promote_best replaces them together)."""
    final_path = exp_dir / "final.pt"
    if final_path.exists():
        changed = stamp_changes(read_stamp(exp_dir / "final.stamp"), stamp)
        if not changed and not force:
            log.info("%s is up to date (same config, features, targets, CMVN stats and source model)", final_path)
            return True
        log.warning("%s: %s; training it again (it stays until the new one is complete)", final_path,
                    "--force" if force else changed)
    if force or final_path.exists():
        _drop_other_checkpoint(exp_dir, stamp, force)
    return False


def _drop_other_checkpoint(exp_dir, stamp, force):
    """Removes checkpoint.pt and best.pt unless they are a killed run of this very training (same inputs
    and config), which resumes; --force never resumes."""
    ckpt = exp_dir / "checkpoint.pt"
    if not force and ckpt.exists():
        try:
            same = torch.load(ckpt, map_location="cpu", weights_only=True).get("stamp") == stamp
        except (OSError, RuntimeError, EOFError):  # a damaged checkpoint cannot resume anything
            same = False
        if same:
            return
    for name in ("checkpoint.pt", "best.pt"):
        (exp_dir / name).unlink(missing_ok=True)


def training_features(data_dirs):
    """The feature options the data dirs' features were made with (DATA/conf/fbank.conf, written by
    steps/make_fbank.sh), for final.pt: inference refuses others. All must be the same; None, with a
    warning, when no data dir records them (made before they were recorded)."""
    records = {str(d): data_feature_record(d) for d in data_dirs}
    known = [r for r in records.values() if r is not None]
    if not known:
        log.warning("%s: no record of their feature options (DATA/conf/fbank.conf, written by "
                    "steps/make_fbank.sh); the model cannot record them, nor inference check them",
                    ", ".join(records))
        return None
    for other in known[1:]:
        diffs = feature_differences(known[0], other)
        if diffs:
            raise DataError(f"{other['conf']}: not the features of {known[0]['conf']} ({'; '.join(diffs)}): one "
                            "training needs one kind of features; make them again with one conf "
                            "(steps/make_fbank.sh --config FILE)")
    unknown = [d for d, r in records.items() if r is None]
    if unknown:
        log.warning("%s: no record of its feature options; assuming those of %s", ", ".join(unknown),
                    known[0]["conf"])
    return known[0]


def _load_normalised(cfg, train_data, dev_data, train_targets, dev_targets):
    """The training and dev frames, normalised once (not per window). Returns (train set, dev set,
    number of targets, feature mean, feature std)."""
    train_set, num_targets = load_frame_set(train_data, train_targets)
    dev_set, dev_num_targets = load_frame_set(dev_data, dev_targets)
    if dev_num_targets != num_targets:
        raise DataError(f"{train_targets} has {num_targets} targets but {dev_targets} has {dev_num_targets}: "
                        f"dev targets must come from the same alignment model / label set")
    feat_dim = train_set.feats.shape[1]
    if dev_set.feats.shape[1] != feat_dim:
        raise DataError(f"{dev_data} has {dev_set.feats.shape[1]}-dim features, {train_data} {feat_dim}-dim")
    if cfg["data"]["cmvn_stats"]:
        mean, std = norm_stats_from_cmvn(cfg["data"]["cmvn_stats"])
        if len(mean) != feat_dim:
            raise DataError(f"{cfg['data']['cmvn_stats']} has {len(mean)}-dim stats, features are {feat_dim}-dim")
    else:
        mean, std = norm_stats_from_frames(train_set.feats)
    for frame_set in (train_set, dev_set):
        frame_set.feats = (frame_set.feats - mean) / std
    return train_set, dev_set, num_targets, mean, std


def _warn_unseen_targets(prior_counts, num_targets):
    unseen = int((prior_counts == 0).sum())
    if unseen:
        log.warning("%d of %d targets never occur in the training targets", unseen, num_targets)


def _build_trainee(cfg, num_targets, feat_dim, mean, std, ranks):
    """The seeded network (with the source layers of a transfer) and its optimiser, schedule and scaler;
    also the BatchOptions of the training batches."""
    tcfg, device = cfg["training"], ranks.device
    set_determinism(tcfg["deterministic"])
    torch.manual_seed(int(tcfg["seed"]))
    model = build_model(num_targets, feat_dim, cfg["model"])
    model.feat_mean.copy_(mean)
    model.feat_std.copy_(std)
    init_from_source(model, cfg["init"])
    channels_last = bool(tcfg["channels_last"])
    model.to(device, memory_format=torch.channels_last if channels_last else torch.contiguous_format)
    if ranks.world_size > 1:
        sync_batchnorm(model, device)
    optimizer = make_optimizer(model, cfg["optimizer"], cfg["model"]["conv_l2"])
    amp_dtype = mixed_precision(device, tcfg["amp"])
    scaler = make_scaler(device, amp_dtype)
    trainee = Trainee(model, model, optimizer, make_schedule(optimizer, cfg["schedule"]), scaler)
    opts = BatchOptions(max(2, int(tcfg["batch_size"]) // ranks.world_size), amp_dtype, channels_last,
                        ranks.reduce if ranks.world_size > 1 else None)
    return trainee, opts


def _resume_or_start(ckpt_path, cfg, stamp, trainee, ranks, num_targets):
    """The early-stopping state: from checkpoint.pt when there is one (same config and inputs only)."""
    if not ckpt_path.exists():
        log.info("model: %d parameters (%d trainable), %d targets, device %s%s", _num_params(trainee.model),
                 _num_params(trainee.model, trainable=True), num_targets, ranks.device,
                 f" x {ranks.world_size} processes" if ranks.world_size > 1 else "")
        return {"epoch": 0, "best": None, "bad_epochs": 0, "history": []}
    return resume_checkpoint(ckpt_path, cfg, stamp, trainee, ranks.device,
                             "train afresh with steps/train_convnet.sh --force true (or delete it)")


def resume_checkpoint(ckpt_path, cfg, stamp, trainee, device, how_to_restart):
    """Loads checkpoint.pt into `trainee` (Trainee) and returns its early-stopping state; refuses one made
    with another config or from other inputs, saying `how_to_restart`."""
    ckpt = torch.load(ckpt_path, map_location=device, weights_only=True)
    diffs = _config_differences(ckpt["config"], cfg)
    if diffs:
        raise DataError(f"{ckpt_path} was made with a different config ({', '.join(diffs)}); "
                        f"delete {ckpt_path.parent} to start afresh, or resume with the same config")
    changed = stamp_changes(ckpt.get("stamp"), stamp)
    if changed:
        raise DataError(f"{ckpt_path}: its inputs {changed.removeprefix('changed since it was trained: ')} "
                        f"changed; {how_to_restart}")
    for name in ("model", "optimizer", "schedule"):
        getattr(trainee, name).load_state_dict(ckpt[name])
    load_scaler_state(trainee.scaler, ckpt["scaler"])
    log.info("resuming from %s after epoch %d", ckpt_path, ckpt["state"]["epoch"])
    return ckpt["state"]


def _wrap_for_steps(trainee, cfg, ranks):
    """torch.compile and DistributedDataParallel around the model, as the config and torchrun ask."""
    step_model = torch.compile(trainee.model) if cfg["training"]["compile"] else trainee.model
    if ranks.world_size > 1:
        from torch.nn.parallel import DistributedDataParallel
        device_ids = [ranks.local_rank] if ranks.device.type == "cuda" else None
        step_model = DistributedDataParallel(step_model, device_ids=device_ids)
    trainee.step_model = step_model


@dataclass
class EpochPlan:
    """What stays the same from epoch to epoch of one training."""
    cfg: dict
    ranks: Ranks
    train_set: object
    dev_set: object
    train_opts: "BatchOptions"
    dev_opts: "BatchOptions"
    dev_subset: object  # fixed frame indices of dev to evaluate, or None for all
    metric_index: int   # 0: dev loss, 1: dev FER decides "best"
    show_progress: bool


def _plan_epochs(cfg, ranks, train_set, dev_set, train_opts):
    tcfg = cfg["training"]
    metric_index = {"loss": 0, "fer": 1}.get(tcfg["dev_metric"])
    if metric_index is None:
        raise DataError(f"training.dev_metric '{tcfg['dev_metric']}': use loss or fer")
    dev_subset = None
    if tcfg["dev_frames"] and tcfg["dev_frames"] < dev_set.num_frames:  # the same frames every epoch
        dev_subset = torch.randperm(dev_set.num_frames, generator=torch.Generator().manual_seed(int(tcfg["seed"])))
        dev_subset = dev_subset[:int(tcfg["dev_frames"])].sort().values
    dev_opts = BatchOptions(int(tcfg["eval_batch_size"]), train_opts.amp_dtype, train_opts.channels_last,
                            train_opts.reduce)
    return EpochPlan(cfg, ranks, train_set, dev_set, train_opts, dev_opts, dev_subset, metric_index,
                     ranks.is_main and sys.stderr.isatty())


def _run_epoch(plan, trainee, state):
    """Trains one epoch, evaluates on dev and updates `state` (early stopping, history). Returns whether
    dev improved."""
    tcfg, ranks = plan.cfg["training"], plan.ranks
    seed, epoch, max_epochs = int(tcfg["seed"]), state["epoch"] + 1, int(tcfg["max_epochs"])
    label = f"epoch {epoch}/{max_epochs}"
    torch.manual_seed(seed * 1000 + epoch * 10 + ranks.rank)  # dropout noise of this epoch and rank
    order = epoch_frame_order(plan.train_set.num_frames, seed, epoch, ranks.rank, ranks.world_size,
                              tcfg["frames_per_epoch"])
    lr = trainee.optimizer.param_groups[0]["lr"]
    t0 = time.time()
    train_stats = train_epoch(trainee, plan.train_set, order, plan.train_opts, tcfg["log_interval_frames"], label,
                              plan.show_progress)
    train_time = time.time() - t0
    if ranks.world_size > 1:  # evaluate every rank's share with rank 0's BatchNorm statistics
        for buffer in trainee.model.buffers():
            torch.distributed.broadcast(buffer, 0)
    eval_model = trainee.step_model if isinstance(plan.dev_set, TrunkOutputs) else trainee.model
    dev_stats = evaluate(eval_model, plan.dev_set, plan.dev_opts, ranks.rank, ranks.world_size, plan.dev_subset)
    metric = dev_stats[plan.metric_index]
    improved = state["best"] is None or metric < state["best"]["metric"]
    if isinstance(trainee.schedule, torch.optim.lr_scheduler.ReduceLROnPlateau):
        trainee.schedule.step(metric)
    else:
        trainee.schedule.step()
    state["epoch"] = epoch
    state["bad_epochs"] = 0 if improved else state["bad_epochs"] + 1
    if improved:
        state["best"] = {"epoch": epoch, "metric": metric, "loss": dev_stats[0], "fer": dev_stats[1]}
    state["history"].append({"epoch": epoch, "lr": lr, "train_loss": train_stats[0], "train_fer": train_stats[1],
                             "dev_loss": dev_stats[0], "dev_fer": dev_stats[1], "train_seconds": round(train_time, 2)})
    log.info("%s: TRAIN AvgLoss %.4f (Xent) FER %.2f%% [%d frames, %.0f frames/s] | "
             "DEV AvgLoss %.4f (Xent) FER %.2f%% [%d frames] | lrate %.3g | %s", label, train_stats[0],
             100 * train_stats[1], train_stats[2], train_stats[2] / max(train_time, 1e-9), dev_stats[0],
             100 * dev_stats[1], dev_stats[2], lr,
             "best so far" if improved else f"no better than epoch {state['best']['epoch']}")
    return improved


def _save_epoch(exp_dir, cfg, trainee, state, stamp, prior_counts, improved, package=package_model):
    """best.pt (made by `package`) when dev improved, and checkpoint.pt (the resume point), history.tsv
    after every epoch."""
    if improved:
        _save(package(trainee.model, cfg, prior_counts, state["epoch"], state["best"], state["history"]),
              exp_dir / "best.pt")
    _save({"config": cfg, "model": trainee.model.state_dict(), "optimizer": trainee.optimizer.state_dict(),
           "schedule": trainee.schedule.state_dict(), "scaler": trainee.scaler.state_dict(), "state": state,
           "stamp": stamp}, exp_dir / "checkpoint.pt")
    _write_history(exp_dir / "history.tsv", state["history"])


def _finish(exp_dir, cfg, state, stamp, started, prior_counts, features):
    """best.pt becomes final.pt (with the whole history and the feature options), with its final.stamp,
    train_summary, prior_counts and config.yaml."""
    best = state["best"]
    stop = "early stopping" if state["bad_epochs"] >= int(cfg["training"]["patience"]) else "max epochs"
    log.info("done after %d epochs (%s); best dev epoch %d: AvgLoss %.4f FER %.2f%%", state["epoch"],
             stop, best["epoch"], best["loss"], 100 * best["fer"])
    summary = run_summary(started, state["epoch"], stop, best)
    summary.update(dev_loss=f"{best['loss']:.4f}", dev_fer=f"{best['fer']:.4f}")
    beside = {"prior_counts": format_kaldi_vector(prior_counts.tolist(), fmt="{:d}") + "\n",
              "config.yaml": yaml.safe_dump(cfg, sort_keys=False)}
    _promote_best(exp_dir, state, stamp, summary, features, beside)


def _promote_best(exp_dir, state, stamp, summary, features=None, beside=None):
    """best.pt becomes final.pt (with the whole history and `features`, the feature options it was trained
    on), with train_summary, the files of `beside` ({name: text}: what belongs to final.pt, e.g.
    prior_counts) and final.stamp. final.stamp goes first and comes back last: a kill in between leaves
    a final.pt that no stamp claims (trained again), never one training's files under another's stamp."""
    package = torch.load(exp_dir / "best.pt", map_location="cpu", weights_only=True)
    package["history"] = state["history"]
    package["features"] = features
    (exp_dir / "final.stamp").unlink(missing_ok=True)
    for name, text in (beside or {}).items():
        _write_file(exp_dir / name, text)
    _save(package, exp_dir / "final.pt")
    _write_file(exp_dir / SUMMARY, "".join(f"{k}={v}\n" for k, v in summary.items()))
    _write_file(exp_dir / "final.stamp", "".join(f"{k} {v}\n" for k, v in stamp.items()))
    (exp_dir / "best.pt").unlink()
    (exp_dir / "checkpoint.pt").unlink()


def train(cfg, train_data, dev_data, train_targets, dev_targets, exp_dir, device="auto", force=False,
          trunk_share=None):
    """Runs (or resumes) one training, or skips it when final.pt was trained on the same inputs
    (final.stamp); force: train afresh. trunk_share: a TrunkShare through which the trainings of one
    process share their cached frozen-trunk outputs (pyscripts/nnet/trunk_cache.py). Returns the path of final.pt."""
    exp_dir = Path(exp_dir)
    ranks = _ranks(device)
    stamp = input_stamp(cfg, train_data, dev_data, train_targets, dev_targets)
    if _up_to_date(exp_dir, stamp, force):
        return exp_dir / "final.pt"
    features = training_features([train_data, dev_data])
    started = datetime.datetime.now()
    _join_ranks(ranks)
    exp_dir.mkdir(parents=True, exist_ok=True)
    train_set, dev_set, num_targets, mean, std = _load_normalised(cfg, train_data, dev_data, train_targets,
                                                                  dev_targets)
    prior_counts = target_counts(train_set.targets, num_targets)
    if ranks.is_main:
        _warn_unseen_targets(prior_counts, num_targets)
    train_set, dev_set = train_set.to(ranks.device), dev_set.to(ranks.device)
    trainee, train_opts = _build_trainee(cfg, num_targets, train_set.feats.shape[1], mean, std, ranks)
    state = _resume_or_start(exp_dir / "checkpoint.pt", cfg, stamp, trainee, ranks, num_targets)
    _wrap_for_steps(trainee, cfg, ranks)
    # What the frozen layers' outputs depend on: the source model, the frames, and the network's shape.
    trunk_inputs = sorted((k, v) for k, v in stamp.items() if k != "config") + [
        (section, yaml.safe_dump(cfg[section], sort_keys=True)) for section in ("model", "data")]
    cached = cache_trunk(trainee.model, train_set, dev_set, cfg, ranks.world_size > 1, trunk_share, trunk_inputs,
                         train_opts.amp_dtype)
    if cached:  # frozen layers computed once (pyscripts/nnet/trunk_cache.py)
        train_set, dev_set, trainee.step_model = cached
    plan = _plan_epochs(cfg, ranks, train_set, dev_set, train_opts)
    tcfg = cfg["training"]
    while state["epoch"] < int(tcfg["max_epochs"]) and state["bad_epochs"] < int(tcfg["patience"]):
        improved = _run_epoch(plan, trainee, state)
        if ranks.is_main:
            _save_epoch(exp_dir, cfg, trainee, state, stamp, prior_counts, improved)
    if ranks.is_main:
        _finish(exp_dir, cfg, state, stamp, started, prior_counts, features)
    if ranks.world_size > 1:
        torch.distributed.barrier()
        torch.distributed.destroy_process_group()
    return exp_dir / "final.pt"


def configure(config, overrides=(), init_from=None, freeze_layers=None, reinit_unfrozen=False, cmvn_stats=None,
              seed_offset=0):
    """The config of one training: the YAML with its overrides, then the command line's source model,
    frozen layers, CMVN stats and seed offset (None/False/0: the YAML's)."""
    cfg = load_config(config, overrides)
    if init_from is not None:
        cfg["init"]["from"] = init_from
    if freeze_layers is not None:
        cfg["init"]["freeze_layers"] = freeze_layers
    if reinit_unfrozen:
        cfg["init"]["reinit_unfrozen"] = True
    if cmvn_stats is not None:
        cfg["data"]["cmvn_stats"] = cmvn_stats
    cfg["training"]["seed"] += seed_offset
    return cfg


def run_summary(started, epochs, stop, best):
    """The common fields of EXP_DIR/train_summary (`key=value` lines: what the stages report of a
    finished training; its times are this run's, a resumed training's earlier runs are not counted)."""
    ended = datetime.datetime.now()
    return {"started": started.isoformat(timespec="seconds"), "ended": ended.isoformat(timespec="seconds"),
            "seconds": f"{(ended - started).total_seconds():.1f}", "epochs": epochs, "stop": stop,
            "best_epoch": best["epoch"]}


def read_summary(exp_dir):
    """{key: value} of EXP_DIR/train_summary, or None when the training has not finished."""
    path = Path(exp_dir) / SUMMARY
    if not path.is_file():
        return None
    return dict(line.split("=", 1) for line in path.read_text().splitlines() if "=" in line)


def _num_params(model, trainable=False):
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable)


def _write_history(path, history):
    keys = list(history[0])
    lines = ["\t".join(keys)] + ["\t".join(f"{h[k]:.6g}" if isinstance(h[k], float) else str(h[k])
                                            for k in keys) for h in history]
    _write_file(path, "\n".join(lines) + "\n")


@cli_main
def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", default="conf/convnet_asr.yaml")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="override a config value, e.g. --set optimizer.lr=0.01 (repeatable)")
    parser.add_argument("--init-from", help="initialise layers 1..5 from this final.pt")
    parser.add_argument("--freeze-layers", type=int, help="keep layers 1..L of --init-from fixed")
    parser.add_argument("--reinit-unfrozen", action="store_true", help="redraw layers L+1..5 instead")
    parser.add_argument("--cmvn-stats", help="Kaldi global CMVN stats for input normalisation")
    parser.add_argument("--seed-offset", type=int, default=0,
                        help="train with training.seed + K: another draw of the same training")
    parser.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    parser.add_argument("--num-threads", type=int, help="CPU threads for torch (default: torch's choice)")
    parser.add_argument("--force", action="store_true", help="train afresh even when final.pt is up to date")
    parser.add_argument("--check", action="store_true", help="only print 'up-to-date' when EXP_DIR/final.pt "
                        "was trained on these inputs (final.stamp), else why not")
    for name in ("train_data", "dev_data", "train_targets", "dev_targets", "exp_dir"):
        parser.add_argument(name)
    args = parser.parse_args(argv)
    cfg = configure(args.config, args.set, args.init_from, args.freeze_layers, args.reinit_unfrozen,
                    args.cmvn_stats, args.seed_offset)
    if args.check:
        exp_dir = Path(args.exp_dir)
        stamp = input_stamp(cfg, args.train_data, args.dev_data, args.train_targets, args.dev_targets)
        changed = stamp_changes(read_stamp(exp_dir / "final.stamp"), stamp)
        print("no final.pt" if not (exp_dir / "final.pt").exists() else changed or "up-to-date")
        return
    if args.num_threads:
        torch.set_num_threads(args.num_threads)
    train(cfg, args.train_data, args.dev_data, args.train_targets, args.dev_targets, args.exp_dir, args.device,
          args.force)


if __name__ == "__main__":
    main()
