"""Trains the paper's ConvNet on frame targets (ASR pdf ids or SER classes).

  python3 -m pyscripts.nnet.train [--config conf/convnet_asr.yaml] [--set KEY=VALUE ...]
      [--init-from MODEL --freeze-layers L [--reinit-unfrozen]] [--cmvn-stats FILE]
      [--device auto|cpu|cuda] [--num-threads N]
      TRAIN_DATA DEV_DATA TRAIN_TARGETS DEV_TARGETS EXP_DIR
  python3 -m pyscripts.nnet.train --config conf/convnet_joint.yaml [--set KEY=VALUE ...] [--cmvn-stats FILE]
      [--device D] [--num-threads N]
      ASR_TRAIN_DATA ASR_DEV_DATA ASR_TRAIN_TARGETS ASR_DEV_TARGETS
      SER_TRAIN_DATA SER_DEV_DATA SER_TRAIN_TARGETS SER_DEV_TARGETS EXP_DIR

The one entry of every training (steps/train_convnet.sh, local/run_joint.sh through it, and
pyscripts/transfer/train_group.py through train()). A joint config (a `network:` and a `joint:` key,
conf/convnet_joint*.yaml) trains the joint ASR-SER model of pyscripts/nnet/joint_train.py on the nine
arguments; any other config one network, from scratch or as a transfer row (--init-from). Each is a task
plugged into the one training loop, pyscripts/nnet/loop.py.

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
import datetime
import logging
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import yaml

from pyscripts.errors import DataError, cli_main
from pyscripts.kaldi.tables import format_kaldi_vector
from pyscripts.nnet import joint_train
from pyscripts.fingerprint import read_stamp
from pyscripts.nnet.checkpoints import (SUMMARY, input_stamp, promote_best, read_summary,  # noqa: F401
                                        run_summary, save_file, stamp_changes)
from pyscripts.nnet.config import configure, load_config, validate_config  # noqa: F401
from pyscripts.nnet.data import (epoch_frame_order, gather_windows, load_frame_set,  # noqa: F401
                                 norm_stats_from_cmvn, norm_stats_from_frames, target_counts)
from pyscripts.nnet.device import make_scaler, mixed_precision, resolve_device, set_determinism  # noqa: F401
from pyscripts.nnet.epoch import (BatchOptions, Trainee, evaluate, make_optimizer, make_schedule,  # noqa: F401
                                  train_epoch)
from pyscripts.nnet.loop import TrainingTask, dev_subset, end_epoch, metric_index, run_training, stop_reason
from pyscripts.nnet.model import (TRANSFERABLE_LAYERS, build_model, copy_layers, freeze_layers,  # noqa: F401
                                  load_package, package_model, reinit_layers)
from pyscripts.nnet.trunk_cache import TrunkOutputs, TrunkShare, cache_trunk

log = logging.getLogger("train")
_save = save_file  # the name the bad-input tests call


def init_from_source(model: Any, init_cfg: dict) -> None:
    """Transfer: layers 1..5 from the source model, 1..l frozen, optionally l+1..5 redrawn.
    Layer 6 stays freshly initialised: the output layer belongs to the task."""
    source_path, num_frozen = init_cfg["from"], int(init_cfg["freeze_layers"])
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


class SyncBatchNormCPU(torch.nn.modules.batchnorm._BatchNorm):
    """BatchNorm whose training statistics are those of the whole batch across the ranks of the
    process group, for the gloo backend on CPUs (torch.nn.SyncBatchNorm runs on GPUs only). Sums go
    through differentiable all-reduces, so the gradients also flow through the other ranks' frames.
    It has the BatchNorm's parameters and buffers (same names), so checkpoints do not change."""

    def _check_input_dim(self, x):
        if x.dim() < 2:
            raise ValueError(f"expected at least 2D input (got {x.dim()}D input)")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
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
                # the buffers exist with track_running_stats (typed Optional by torch)
                self.num_batches_tracked.add_(1)  # type: ignore[union-attr]
                momentum = self.momentum if self.momentum is not None else 1.0 / float(self.num_batches_tracked)  # type: ignore[arg-type]  # noqa: E501
                self.running_mean.mul_(1 - momentum).add_(mean.detach(), alpha=momentum)  # type: ignore[union-attr]
                self.running_var.mul_(1 - momentum).add_(var.detach() * n / (n - 1), alpha=momentum)  # type: ignore[union-attr]  # noqa: E501
        return out


def sync_batchnorm(module: torch.nn.Module, device: torch.device) -> torch.nn.Module:
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


@dataclass
class Ranks:
    """This process's place among the torchrun processes (one process: rank 0 of 1)."""
    world_size: int
    rank: int
    local_rank: int
    device: torch.device

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def reduce(self, sums: torch.Tensor) -> None:
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


def _wrap_for_steps(trainee, cfg, ranks):
    """torch.compile and DistributedDataParallel around the model, as the config and torchrun ask."""
    step_model = torch.compile(trainee.model) if cfg["training"]["compile"] else trainee.model
    if ranks.world_size > 1:
        from torch.nn.parallel import DistributedDataParallel
        device_ids = [ranks.local_rank] if ranks.device.type == "cuda" else None
        step_model = DistributedDataParallel(step_model, device_ids=device_ids)
    trainee.step_model = step_model


def _num_params(model, trainable=False):
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable)


class SingleTask(TrainingTask):
    """One network, one output layer: the ASR or SER Baseline, or a transfer row (init.from, frozen layers,
    whose frozen layers' outputs may be computed once: pyscripts/nnet/trunk_cache.py)."""
    resume_hint = "train afresh with steps/train_convnet.sh --force true (or delete it)"

    def __init__(self, cfg: dict, train_data: str | Path, dev_data: str | Path, train_targets: str | Path,
                 dev_targets: str | Path, exp_dir: str | Path, device: str = "auto",
                 trunk_share: TrunkShare | None = None) -> None:
        self.cfg, self.exp_dir, self.trunk_share = cfg, Path(exp_dir), trunk_share
        self.ranks = _ranks(device)
        self.device, self.is_main = self.ranks.device, self.ranks.is_main
        self.inputs = (train_data, dev_data, train_targets, dev_targets)
        self.data_dirs = [train_data, dev_data]
        self.stamp = input_stamp(cfg, *self.inputs)

    def join(self) -> None:
        _join_ranks(self.ranks)

    def prepare(self) -> Trainee:
        train_set, dev_set, self.num_targets, mean, std = _load_normalised(self.cfg, *self.inputs)
        self.prior_counts = target_counts(train_set.targets, self.num_targets)
        if self.is_main:
            _warn_unseen_targets(self.prior_counts, self.num_targets)
        self.train_set, self.dev_set = train_set.to(self.device), dev_set.to(self.device)
        trainee, self.train_opts = _build_trainee(self.cfg, self.num_targets, train_set.feats.shape[1], mean, std,
                                                  self.ranks)
        return trainee

    def describe(self, trainee: Trainee) -> None:
        ranks = self.ranks
        log.info("model: %d parameters (%d trainable), %d targets, device %s%s", _num_params(trainee.model),
                 _num_params(trainee.model, trainable=True), self.num_targets, ranks.device,
                 f" x {ranks.world_size} processes" if ranks.world_size > 1 else "")

    def begin(self, trainee: Trainee) -> None:
        _wrap_for_steps(trainee, self.cfg, self.ranks)
        # What the frozen layers' outputs depend on: the source model, the frames, and the network's shape.
        trunk_inputs = sorted((k, v) for k, v in self.stamp.items() if k != "config") + [
            (section, yaml.safe_dump(self.cfg[section], sort_keys=True)) for section in ("model", "data")]
        cached = cache_trunk(trainee.model, self.train_set, self.dev_set, self.cfg, self.ranks.world_size > 1,
                             self.trunk_share, trunk_inputs, self.train_opts.amp_dtype)
        if cached:  # frozen layers computed once (pyscripts/nnet/trunk_cache.py)
            self.train_set, self.dev_set, trainee.step_model = cached
        tcfg = self.cfg["training"]
        self.dev_subset = dev_subset(self.dev_set.num_frames, self.cfg)
        self.dev_opts = BatchOptions(int(tcfg["eval_batch_size"]), self.train_opts.amp_dtype,
                                     self.train_opts.channels_last, self.train_opts.reduce)
        self.show_progress = self.is_main and sys.stderr.isatty()

    def run_epoch(self, trainee: Trainee, state: dict) -> bool:
        tcfg, ranks = self.cfg["training"], self.ranks
        seed, epoch = int(tcfg["seed"]), state["epoch"] + 1
        label = f"epoch {epoch}/{int(tcfg['max_epochs'])}"
        torch.manual_seed(seed * 1000 + epoch * 10 + ranks.rank)  # dropout noise of this epoch and rank
        order = epoch_frame_order(self.train_set.num_frames, seed, epoch, ranks.rank, ranks.world_size,
                                  tcfg["frames_per_epoch"])
        lr, t0 = trainee.optimizer.param_groups[0]["lr"], time.time()
        train_stats = train_epoch(trainee, self.train_set, order, self.train_opts, tcfg["log_interval_frames"],
                                  label, self.show_progress)
        train_time = time.time() - t0
        if ranks.world_size > 1:  # evaluate every rank's share with rank 0's BatchNorm statistics
            for buffer in trainee.model.buffers():
                torch.distributed.broadcast(buffer, 0)
        eval_model = trainee.step_model if isinstance(self.dev_set, TrunkOutputs) else trainee.model
        dev_stats = evaluate(eval_model, self.dev_set, self.dev_opts, ranks.rank, ranks.world_size, self.dev_subset)
        metric = dev_stats[metric_index(self.cfg)]
        improved = end_epoch(trainee, state, metric, {"loss": dev_stats[0], "fer": dev_stats[1]})
        state["history"].append({"epoch": epoch, "lr": lr, "train_loss": train_stats[0],
                                 "train_fer": train_stats[1], "dev_loss": dev_stats[0], "dev_fer": dev_stats[1],
                                 "train_seconds": round(train_time, 2)})
        log.info("%s: TRAIN AvgLoss %.4f (Xent) FER %.2f%% [%d frames, %.0f frames/s] | "
                 "DEV AvgLoss %.4f (Xent) FER %.2f%% [%d frames] | lrate %.3g | %s", label, train_stats[0],
                 100 * train_stats[1], train_stats[2], train_stats[2] / max(train_time, 1e-9), dev_stats[0],
                 100 * dev_stats[1], dev_stats[2], lr,
                 "best so far" if improved else f"no better than epoch {state['best']['epoch']}")
        return improved

    def package(self, model: Any, cfg: dict, prior_counts: Any, epoch: int, best: dict, history: list) -> dict:
        return package_model(model, cfg, prior_counts, epoch, best, history)

    def finish(self, state: dict, started: datetime.datetime, features: dict | None) -> None:
        """best.pt becomes final.pt (with the whole history and the feature options), with its final.stamp,
        train_summary, prior_counts and config.yaml."""
        best, stop = state["best"], stop_reason(self.cfg, state)
        log.info("done after %d epochs (%s); best dev epoch %d: AvgLoss %.4f FER %.2f%%", state["epoch"],
                 stop, best["epoch"], best["loss"], 100 * best["fer"])
        summary = run_summary(started, state["epoch"], stop, best)
        summary.update(dev_loss=f"{best['loss']:.4f}", dev_fer=f"{best['fer']:.4f}")
        beside = {"prior_counts": format_kaldi_vector(self.prior_counts.tolist(), fmt="{:d}") + "\n",
                  "config.yaml": yaml.safe_dump(self.cfg, sort_keys=False)}
        promote_best(self.exp_dir, state, self.stamp, summary, features, beside)

    def close(self) -> None:
        if self.ranks.world_size > 1:
            torch.distributed.barrier()
            torch.distributed.destroy_process_group()


def train(cfg: dict, train_data: str | Path, dev_data: str | Path, train_targets: str | Path,
          dev_targets: str | Path, exp_dir: str | Path, device: str = "auto", force: bool = False,
          trunk_share: TrunkShare | None = None) -> Path:
    """Runs (or resumes) one single-task or transfer training, or skips it when final.pt was trained on
    the same inputs (final.stamp); force: train afresh. trunk_share: a TrunkShare through which the
    trainings of one process share their cached frozen-trunk outputs (pyscripts/nnet/trunk_cache.py).
    Returns the path of final.pt."""
    task = SingleTask(cfg, train_data, dev_data, train_targets, dev_targets, exp_dir, device, trunk_share)
    return run_training(task, force)


def _parser():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", default="conf/convnet_asr.yaml")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="override a config value, e.g. --set optimizer.lr=0.01 (repeatable)")
    parser.add_argument("--init-from", help="initialise layers 1..5 from this final.pt")
    parser.add_argument("--freeze-layers", type=int, help="keep layers 1..L of --init-from fixed")
    parser.add_argument("--reinit-unfrozen", action="store_true", help="redraw layers L+1..5 instead")
    parser.add_argument("--cmvn-stats", help="Kaldi global CMVN stats for input normalisation (joint: of the "
                        "ASR input)")
    parser.add_argument("--seed-offset", type=int, default=0,
                        help="train with training.seed + K: another draw of the same training")
    parser.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    parser.add_argument("--num-threads", type=int, help="CPU threads for torch (default: torch's choice)")
    parser.add_argument("--force", action="store_true", help="train afresh even when final.pt is up to date")
    parser.add_argument("--check", action="store_true", help="only print 'up-to-date' when EXP_DIR/final.pt "
                        "was trained on these inputs (final.stamp), else why not")
    parser.add_argument("inputs", nargs="+", metavar="DIR",
                        help="TRAIN_DATA DEV_DATA TRAIN_TARGETS DEV_TARGETS EXP_DIR (joint: the ASR four, the "
                        "SER four, EXP_DIR)")
    return parser


def _task(args):
    """The training task the command line asks for, by its config's kind and its number of arguments."""
    joint = joint_train.is_joint_config(args.config)
    wanted = 9 if joint else 5
    if len(args.inputs) != wanted:
        raise DataError(f"{args.config} is a {'joint' if joint else 'single-task'} config: it takes {wanted} "
                        f"data/targets/exp arguments, not {len(args.inputs)} (see --help)")
    if joint:
        if args.init_from or args.freeze_layers or args.reinit_unfrozen or args.seed_offset:
            raise DataError(f"{args.config}: the joint model starts from scratch; drop --init-from, "
                            "--freeze-layers, --reinit-unfrozen and --seed-offset")
        cfg = joint_train.load_joint_config(args.config, args.set, args.cmvn_stats)
        return lambda: joint_train.JointTask(cfg, *args.inputs, device=args.device), \
            joint_train.joint_stamp(cfg, joint_train.corpora_of(args.inputs[:8]))
    cfg = configure(args.config, args.set, args.init_from, args.freeze_layers, args.reinit_unfrozen,
                    args.cmvn_stats, args.seed_offset)
    return lambda: SingleTask(cfg, *args.inputs, device=args.device), input_stamp(cfg, *args.inputs[:4])


@cli_main
def main(argv: list[str] | None = None) -> None:
    args = _parser().parse_args(argv)
    if not args.check:  # a job given a GPU that torch cannot use stops before it reads any data
        resolve_device(args.device, int(os.environ.get("LOCAL_RANK", "0")))
    make_task, stamp = _task(args)
    if args.check:
        exp_dir = Path(args.inputs[-1])
        changed = stamp_changes(read_stamp(exp_dir / "final.stamp"), stamp)
        print("no final.pt" if not (exp_dir / "final.pt").exists() else changed or "up-to-date")
        return
    if args.num_threads:
        torch.set_num_threads(args.num_threads)
    run_training(make_task(), args.force)


if __name__ == "__main__":
    main()
