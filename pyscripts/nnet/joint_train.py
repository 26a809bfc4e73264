"""The joint ASR-SER ConvNet (pyscripts/nnet/joint.py) as a training task of the one loop
(pyscripts/nnet/loop.py): batches that mix both corpora. Started like every training, by
`python3 -m pyscripts.nnet.train` with a joint config and nine arguments (see there).

Config (conf/convnet_joint*.yaml), a mapping of three keys:
  network: an ordinary ConvNet config, relative to the file (conf/convnet_asr*.yaml): the model,
           optimiser, schedule and training sections, read and checked by pyscripts.nnet.config.load_config
  set:     a list of KEY=VALUE overrides of it, as --set (optional)
  joint:   ser_fraction  the share of SER frames in every batch: round(batch_size * ser_fraction) SER
                         frames, the rest ASR frames (both at least one)
           ser_weight    the loss is CE_asr + ser_weight * CE_ser, each the mean over its own frames
           normalise     per_task (default): each task's input normalised as its single-task Baseline's:
                         ASR with the global CMVN stats of data.cmvn_stats (--cmvn-stats; stage 9's
                         data/timit/train/cmvn_global.stats), or its training frames' statistics when
                         none is given; SER with its training frames' statistics (as stage 11).
                         mixture: one mean and variance for both, those of the mixture the trunk sees
                         (each corpus's training frames weighted by its share of the batch; no CMVN file)
--set joint.KEY=VALUE changes the joint section, any other --set the network config.

Batches: each batch takes its ASR frames from a seeded shuffle of the ASR training frames and its SER
frames from one of the SER training frames; a stream that runs out goes on with a fresh shuffle. An
epoch is training.frames_per_epoch mixed frames, or (null) as many batches as it takes for every frame
of both corpora to be seen at least once. The mixed batch goes through the trunk as one batch (its
BatchNorm statistics are the mixture's), then each head gets its own frames; each corpus's frames are
normalised with its task's statistics before they are mixed.

Early stopping, newbob and the choice of final.pt use one dev metric: the ASR dev metric + ser_weight *
the SER dev metric (training.dev_metric: loss or FER; ASR dev = TIMIT dev, SER dev = the fold's valid
set; training.dev_frames limits each of them to a fixed random subset). Transfer (init.from) does not
apply; one process (no torchrun).

EXP_DIR receives final.pt (JointConvNet package), final.stamp, checkpoint.pt while training (a re-run
resumes), history.tsv, config.yaml, asr.prior_counts and ser.prior_counts (Kaldi text vectors), and
train_summary (key=value: seconds, epochs, stop, best_epoch, the ASR and SER dev loss and FER).
"""
import datetime
import logging
import math
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import torch
import torch.nn.functional as F
import yaml

from pyscripts.config_files import read_yaml
from pyscripts.errors import DataError
from pyscripts.kaldi.tables import write_kaldi_vector
from pyscripts.nnet.checkpoints import input_stamp, promote_best, run_summary
from pyscripts.nnet.config import load_config, validate_config
from pyscripts.nnet.data import (FrameSet, gather_windows, load_frame_set, norm_stats_from_cmvn, norm_stats_from_frames,
                                 target_counts)
from pyscripts.nnet.device import make_scaler, mixed_precision, resolve_device, set_determinism
from pyscripts.nnet.epoch import (BatchOptions, EpochProgress, Trainee, autocast, evaluate, make_optimizer,
                                  make_schedule)
from pyscripts.nnet.joint import HEADS, JointConvNet, build_joint_model, package_joint
from pyscripts.nnet.loop import TrainingTask, dev_subset, end_epoch, metric_index, run_training, stop_reason

log = logging.getLogger("joint")

NORMALISATIONS = ("per_task", "mixture")
JOINT_SCHEMA = {"joint": {"ser_fraction": (float, (lambda v: 0 < v < 1, "in (0, 1)")),
                          "ser_weight": (float, (lambda v: v > 0, "> 0")),
                          "normalise": (str, (lambda v: v in NORMALISATIONS, "one of " + ", ".join(NORMALISATIONS)))}}
JOINT_DEFAULTS = {"normalise": "per_task"}  # keys a joint section may leave out


@dataclass
class Corpus:
    """One task's training and dev data: Kaldi data dirs and targets dirs."""
    train_data: str | Path
    dev_data: str | Path
    train_targets: str | Path
    dev_targets: str | Path


def corpora_of(dirs: Sequence[str | Path]) -> dict[str, Corpus]:
    """{"asr": Corpus, "ser": Corpus} of the command line's eight data and targets dirs."""
    return {h: Corpus(*dirs[4 * i:4 * i + 4]) for i, h in enumerate(HEADS)}


# ---------------------------------------------------------------- configuration
def is_joint_config(path: str | Path) -> bool:
    """Whether a config file is a joint one (network: and joint: keys) rather than a ConvNet config."""
    raw = read_yaml(Path(path))
    return isinstance(raw, dict) and "network" in raw and "joint" in raw


def _joint_section(raw, items, path):
    """The joint section with its defaults and the joint.KEY=VALUE overrides, checked."""
    if not isinstance(raw["joint"], dict):
        raise DataError(f"config {path}: joint must be a mapping (ser_fraction, ser_weight, normalise)")
    joint = {**JOINT_DEFAULTS, **raw["joint"]}
    for item in (s for s in items if s.startswith("joint.")):
        key, sep, value = item.partition("=")
        if not sep or key.removeprefix("joint.") not in joint:
            raise DataError(f"override '{item}': not KEY=VALUE with a key of the joint section "
                            f"({', '.join(JOINT_SCHEMA['joint'])})")
        joint[key.removeprefix("joint.")] = yaml.safe_load(value)
    validate_config({"joint": joint}, f"config {path}", JOINT_SCHEMA)
    return joint


def load_joint_config(path: str | Path, overrides: Sequence[str] = (), cmvn_stats: str | None = None) -> dict:
    """The network config (load_config) with the joint section added as cfg["joint"], both checked.
    cmvn_stats: the ASR input's global CMVN stats (data.cmvn_stats; per_task normalisation only)."""
    path = Path(path)
    raw = read_yaml(path)
    if not isinstance(raw, dict) or not {"network", "joint"} <= set(raw) <= {"network", "set", "joint"}:
        raise DataError(f"config {path}: expected the keys network (a ConvNet config file), joint (ser_fraction, "
                        f"ser_weight) and optionally set (a list of KEY=VALUE); see conf/convnet_joint.yaml")
    file_set = raw.get("set") or []
    if not isinstance(file_set, list) or not all(isinstance(s, str) for s in file_set):
        raise DataError(f"config {path}: set must be a list of KEY=VALUE strings")
    items = [*file_set, *overrides]
    cfg = load_config(path.parent / str(raw["network"]), [s for s in items if not s.startswith("joint.")])
    cfg["joint"] = _joint_section(raw, items, path)
    if cmvn_stats:  # None or "": the config's
        cfg["data"]["cmvn_stats"] = cmvn_stats
    if cfg["init"]["from"] or cfg["init"]["freeze_layers"]:
        raise DataError(f"config {path}: joint training starts from scratch; set init.from: null and "
                        f"init.freeze_layers: 0")
    if cfg["data"]["cmvn_stats"] and cfg["joint"]["normalise"] == "mixture":
        raise DataError(f"config {path}: joint.normalise mixture normalises with both corpora's frames; drop "
                        f"data.cmvn_stats (--cmvn-stats) or use joint.normalise per_task")
    return cfg


def joint_stamp(cfg: dict, corpora: dict[str, Corpus]) -> dict:
    """{input: checksum} of the config, the ASR CMVN stats and both corpora's features and targets
    (final.stamp)."""
    stamp = {}
    for head, c in corpora.items():
        part = input_stamp(cfg, c.train_data, c.dev_data, c.train_targets, c.dev_targets)
        stamp["config"], stamp["cmvn_stats"] = part["config"], part["cmvn_stats"]
        stamp.update({f"{head}_{k}": v for k, v in part.items() if k.startswith(("train_", "dev_"))})
    return stamp


# ---------------------------------------------------------------- data
def mixture_norm_stats(feats: dict, weights: dict) -> tuple:
    """Mean and std of the mixture of several frame sets, set h weighted by weights[h] (float64)."""
    mean: Any = 0.0  # tensors after the first set
    second: Any = 0.0
    for head, w in weights.items():
        m, s = (t.double() for t in norm_stats_from_frames(feats[head]))
        mean, second = mean + w * m, second + w * (s ** 2 + m ** 2)
    return mean.float(), (second - mean ** 2).clamp_min(1e-10).sqrt().float()


def task_norm_stats(cfg: dict, train: dict[str, FrameSet]) -> dict:
    """{head: (mean, std)} of each task's input (see the module doc: joint.normalise)."""
    if cfg["joint"]["normalise"] == "mixture":
        share = cfg["joint"]["ser_fraction"]
        stats = mixture_norm_stats({h: s.feats for h, s in train.items()}, {"asr": 1.0 - share, "ser": share})
        return {h: stats for h in HEADS}
    cmvn = cfg["data"]["cmvn_stats"]
    stats = {"asr": norm_stats_from_cmvn(cmvn) if cmvn else norm_stats_from_frames(train["asr"].feats),
             "ser": norm_stats_from_frames(train["ser"].feats)}
    dim = train["asr"].feats.shape[1]
    if len(stats["asr"][0]) != dim:
        raise DataError(f"{cmvn} has {len(stats['asr'][0])}-dim stats, the features are {dim}-dim")
    return stats


def _read_corpora(corpora):
    """Both corpora's train and dev frames (raw). Returns ({head: train}, {head: dev}, {head: targets})."""
    train, dev, num_targets = {}, {}, {}
    for head, c in corpora.items():
        train[head], num_targets[head] = load_frame_set(c.train_data, c.train_targets)
        dev[head], n_dev = load_frame_set(c.dev_data, c.dev_targets)
        if n_dev != num_targets[head]:
            raise DataError(f"{c.train_targets} has {num_targets[head]} targets but {c.dev_targets} has {n_dev}: "
                            f"the {head} dev targets must come from the same alignment model / label set")
    dims = {str(getattr(corpora[h], f"{s}_data")): frames.feats.shape[1]
            for h in corpora for s, frames in (("train", train[h]), ("dev", dev[h]))}
    if len(set(dims.values())) > 1:
        raise DataError(f"the corpora's features differ in dimension ({dims}); make them with the same "
                        f"fbank config (conf/fbank.conf)")
    return train, dev, num_targets


def load_corpora(cfg: dict, corpora: dict) -> tuple:
    """Both corpora's train and dev frames, each normalised with its task's statistics. Returns
    ({head: train set}, {head: dev set}, {head: number of targets}, {head: (mean, std)})."""
    train, dev, num_targets = _read_corpora(corpora)
    stats = task_norm_stats(cfg, train)
    for head in HEADS:
        mean, std = stats[head]
        for frame_set in (train[head], dev[head]):
            frame_set.feats = (frame_set.feats - mean) / std
    return train, dev, num_targets, stats


# ---------------------------------------------------------------- one epoch
def batch_split(batch_size: int, ser_fraction: float) -> dict:
    """{"asr": frames, "ser": frames} of every training batch."""
    n_ser = round(batch_size * ser_fraction)
    if not 1 <= n_ser <= batch_size - 1:
        raise DataError(f"training.batch_size {batch_size} with joint.ser_fraction {ser_fraction} leaves "
                        f"{batch_size - n_ser} ASR and {n_ser} SER frames per batch; both need at least one")
    return {"asr": batch_size - n_ser, "ser": n_ser}


def head_order(num_frames: int, needed: int, seed: int, epoch: int, stream: int) -> torch.Tensor:
    """`needed` frame indices of one corpus for an epoch: seeded shuffles of all its frames, one after
    the other (stream tells the corpora apart)."""
    generator = torch.Generator().manual_seed((seed * 1000 + epoch) * 10 + stream)
    parts = [torch.randperm(num_frames, generator=generator) for _ in range(math.ceil(needed / num_frames))]
    return torch.cat(parts)[:needed]


def batches_per_epoch(train: dict, split: dict, frames_per_epoch: int | None) -> int:
    if frames_per_epoch:
        return max(1, frames_per_epoch // sum(split.values()))
    return max(math.ceil(train[h].num_frames / split[h]) for h in split)


def train_joint_epoch(trainee: Trainee, train: dict, orders: dict, split: dict, weights: dict, opts: BatchOptions,
                      label: str = "") -> dict:
    """One pass over mixed batches: batch b takes split[h] frames of orders[h] for every head h.
    Returns {head: (mean loss, FER, frames)}."""
    model, optimizer, scaler = cast(JointConvNet, trainee.model), trainee.optimizer, trainee.scaler
    model.train()
    device = next(iter(train.values())).feats.device
    sums = torch.zeros(len(split), 3, dtype=torch.float64, device=device)  # loss*frames, errors, frames
    num_bad = torch.zeros((), dtype=torch.long, device=device)
    num_batches = len(orders["asr"]) // split["asr"]
    progress = EpochProgress(num_batches * sum(split.values()), label, bar=False)
    for b in range(num_batches):
        batch = {h: orders[h][b * n:(b + 1) * n] for h, n in split.items()}
        x = torch.cat([gather_windows(train[h].feats, train[h].first, train[h].last, batch[h], model.context)
                       for h in split])
        if opts.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        with autocast(device, opts):
            logits = trainee.step_model(x, split)
        targets = {h: train[h].targets[batch[h]] for h in split}
        losses = {h: F.cross_entropy(logits[h].float(), targets[h]) for h in split}
        loss = sum(weights[h] * losses[h] for h in split)
        optimizer.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        scaler.step(optimizer)
        scaler.update()
        with torch.no_grad():
            for i, h in enumerate(split):
                sums[i, 0] += losses[h].detach().double() * split[h]
                sums[i, 1] += (logits[h].argmax(1) != targets[h]).sum()
                sums[i, 2] += split[h]
            num_bad += ~torch.isfinite(loss.detach())
        if progress.due(b):  # both heads' frames together
            loss_sum, errors, frames = sums.sum(0).tolist()
            progress.update((b + 1) * sum(split.values()), loss_sum / frames, errors / frames)
    if num_bad:
        raise DataError(f"the training loss became NaN or inf in {int(num_bad)} batches; stopped before saving "
                        "this epoch (checkpoint.pt and best.pt keep the last good one). Lower optimizer.lr, "
                        "or check the features and targets")
    return {h: (s[0] / max(s[2], 1), s[1] / max(s[2], 1), int(s[2])) for h, s in zip(split, sums.tolist())}


def _stats_text(stats):
    return " ".join(f"{h.upper()} AvgLoss {s[0]:.4f} FER {100 * s[1]:.2f}%" for h, s in stats.items())


# ---------------------------------------------------------------- the task
class JointTask(TrainingTask):
    """The joint model trained on mixed batches (see the module doc)."""
    resume_hint = "train afresh with --force (local/run_joint.sh --force true) or delete it"

    def __init__(self, cfg: dict, *dirs: str | Path, device: str = "auto") -> None:
        """dirs: the ASR train/dev data and targets dirs, the SER ones, and EXP_DIR (the command line's)."""
        if int(os.environ.get("WORLD_SIZE", "1")) > 1:
            raise DataError("the joint training runs in one process; start it without torchrun")
        self.cfg, self.corpora, self.exp_dir = cfg, corpora_of(dirs[:8]), Path(dirs[8])
        self.device = resolve_device(device)
        self.stamp = joint_stamp(cfg, self.corpora)
        # one trunk sees both corpora: their features must be made alike
        self.data_dirs = [getattr(c, f"{split}_data") for c in self.corpora.values() for split in ("train", "dev")]

    def prepare(self) -> Trainee:
        train, dev, num_targets, stats = load_corpora(self.cfg, self.corpora)
        self.prior_counts = {h: target_counts(train[h].targets, num_targets[h]) for h in HEADS}
        for h in HEADS:
            write_kaldi_vector(self.exp_dir / f"{h}.prior_counts", self.prior_counts[h].tolist(), fmt="{:d}")
        (self.exp_dir / "config.yaml").write_text(yaml.safe_dump(self.cfg, sort_keys=False))
        self.train = {h: s.to(self.device) for h, s in train.items()}
        self.dev = {h: s.to(self.device) for h, s in dev.items()}
        return self._build(num_targets, self.train["asr"].feats.shape[1], stats)

    def _build(self, num_targets, feat_dim, stats):
        """The seeded joint network with each head's input normalisation, its optimiser, schedule and
        scaler; also the training BatchOptions."""
        tcfg = self.cfg["training"]
        set_determinism(tcfg["deterministic"])
        torch.manual_seed(int(tcfg["seed"]))
        model = build_joint_model({h: num_targets[h] for h in HEADS}, feat_dim, self.cfg["model"])
        model.set_normalisation(stats)
        channels_last = bool(tcfg["channels_last"])
        model.to(self.device, memory_format=torch.channels_last if channels_last else torch.contiguous_format)
        optimizer = make_optimizer(model, self.cfg["optimizer"], self.cfg["model"]["conv_l2"])
        amp_dtype = mixed_precision(self.device, tcfg["amp"])
        if tcfg["compile"]:
            log.warning("training.compile: not used by the joint training (it runs the model uncompiled)")
        self.train_opts = BatchOptions(int(tcfg["batch_size"]), amp_dtype, channels_last)
        return Trainee(model, model, optimizer, make_schedule(optimizer, self.cfg["schedule"]),
                       make_scaler(self.device, amp_dtype))

    def describe(self, trainee: Trainee) -> None:
        n = sum(p.numel() for p in trainee.model.parameters())
        log.info("joint model: %d parameters, heads %s, device %s", n, trainee.model.head_targets, self.device)

    def begin(self, trainee: Trainee) -> None:
        tcfg = self.cfg["training"]
        self.split = batch_split(int(tcfg["batch_size"]), self.cfg["joint"]["ser_fraction"])
        self.weights = {"asr": 1.0, "ser": float(self.cfg["joint"]["ser_weight"])}
        self.num_batches = batches_per_epoch(self.train, self.split, tcfg["frames_per_epoch"])
        self.views = {h: cast(JointConvNet, trainee.model).view(h) for h in HEADS}
        self.dev_subsets = {h: dev_subset(frames.num_frames, self.cfg) for h, frames in self.dev.items()}
        self.dev_opts = BatchOptions(int(tcfg["eval_batch_size"]), self.train_opts.amp_dtype,
                                     self.train_opts.channels_last)
        log.info("batches of %s frames, %d batches per epoch; loss CE_asr + %g * CE_ser; input normalisation %s",
                 self.split, self.num_batches, self.weights["ser"], self.cfg["joint"]["normalise"])

    def run_epoch(self, trainee: Trainee, state: dict) -> bool:
        tcfg = self.cfg["training"]
        seed, epoch = int(tcfg["seed"]), state["epoch"] + 1
        torch.manual_seed(seed * 1000 + epoch * 10)  # dropout noise of this epoch
        orders = {h: head_order(self.train[h].num_frames, self.num_batches * n, seed, epoch, i).to(self.device)
                  for i, (h, n) in enumerate(self.split.items())}
        lr, t0 = trainee.optimizer.param_groups[0]["lr"], time.time()
        train_stats = train_joint_epoch(trainee, self.train, orders, self.split, self.weights, self.train_opts,
                                        f"epoch {epoch}/{tcfg['max_epochs']}")
        seconds = time.time() - t0
        dev_stats = {h: evaluate(self.views[h], self.dev[h], self.dev_opts, subset=self.dev_subsets[h])
                     for h in HEADS}
        metric = sum(self.weights[h] * dev_stats[h][metric_index(self.cfg)] for h in HEADS)
        improved = end_epoch(trainee, state, metric,
                             {h: {"loss": dev_stats[h][0], "fer": dev_stats[h][1]} for h in HEADS})
        row = {"epoch": epoch, "lr": lr, "dev_metric": metric, "train_seconds": round(seconds, 2)}
        for h in HEADS:
            row.update({f"{h}_train_loss": train_stats[h][0], f"{h}_train_fer": train_stats[h][1],
                        f"{h}_dev_loss": dev_stats[h][0], f"{h}_dev_fer": dev_stats[h][1]})
        state["history"].append(row)
        frames = sum(s[2] for s in train_stats.values())
        log.info("epoch %d/%d: TRAIN %s [%d frames, %.0f frames/s] | DEV %s | combined dev %s %.4f | lrate %.3g | "
                 "%s", epoch, int(tcfg["max_epochs"]), _stats_text(train_stats), frames, frames / max(seconds, 1e-9),
                 _stats_text(dev_stats), tcfg["dev_metric"], metric, lr,
                 "best so far" if improved else f"no better than epoch {state['best']['epoch']}")
        return improved

    def package(self, model: Any, cfg: dict, prior_counts: Any, epoch: int, best: dict, history: list) -> dict:
        return package_joint(model, cfg, prior_counts, epoch, best, history)

    def finish(self, state: dict, started: datetime.datetime, features: dict | None) -> None:
        """best.pt becomes final.pt (with the whole history), with final.stamp and train_summary."""
        best, stop = state["best"], stop_reason(self.cfg, state)
        log.info("done after %d epochs (%s); best dev epoch %d: %s", state["epoch"], stop, best["epoch"],
                 _stats_text({h: (best[h]["loss"], best[h]["fer"]) for h in HEADS}))
        summary = run_summary(started, state["epoch"], stop, best)
        summary.update(dev_metric=self.cfg["training"]["dev_metric"], dev_value=f"{best['metric']:.4f}")
        for h in HEADS:
            summary.update({f"{h}_dev_loss": f"{best[h]['loss']:.4f}", f"{h}_dev_fer": f"{best[h]['fer']:.4f}"})
        promote_best(self.exp_dir, state, self.stamp, summary, features)


def train_joint(cfg: dict, corpora: dict, exp_dir: str | Path, device: str = "auto", force: bool = False) -> Path:
    """Runs (or resumes) the joint training, or skips it when final.pt was trained on the same inputs;
    corpora: {"asr": Corpus, "ser": Corpus}. Returns the path of final.pt."""
    dirs = [getattr(corpora[h], name) for h in HEADS for name in ("train_data", "dev_data", "train_targets",
                                                                   "dev_targets")]
    return run_training(JointTask(cfg, *dirs, exp_dir, device=device), force)
