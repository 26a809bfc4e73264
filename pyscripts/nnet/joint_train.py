"""Training of the joint ASR-SER ConvNet (pyscripts/nnet/joint.py) on batches that mix both corpora.
The command line is `python3 -m pyscripts.nnet.joint train` (see there).

Config (conf/convnet_joint*.yaml), a mapping of three keys:
  network: an ordinary ConvNet config, relative to the file (conf/convnet_asr*.yaml): the model,
           optimiser, schedule and training sections, read and checked by pyscripts.nnet.train.load_config
  set:     a list of KEY=VALUE overrides of it, as --set (optional)
  joint:   ser_fraction  the share of SER frames in every batch: round(batch_size * ser_fraction) SER
                         frames, the rest ASR frames (both at least one)
           ser_weight    the loss is CE_asr + ser_weight * CE_ser, each the mean over its own frames
--set joint.KEY=VALUE changes the joint section, any other --set the network config.

Batches: each batch takes its ASR frames from a seeded shuffle of the ASR training frames and its SER
frames from one of the SER training frames; a stream that runs out goes on with a fresh shuffle. An
epoch is training.frames_per_epoch mixed frames, or (null) as many batches as it takes for every frame
of both corpora to be seen at least once. The mixed batch goes through the trunk as one batch (its
BatchNorm statistics are the mixture's), then each head gets its own frames.

Early stopping, newbob and the choice of final.pt use one dev metric: the ASR dev metric + ser_weight *
the SER dev metric (training.dev_metric: loss or FER; ASR dev = TIMIT dev, SER dev = the fold's valid
set; training.dev_frames limits each of them to a fixed random subset).

Input normalisation: one mean and variance for both corpora, those of the mixture the trunk sees (each
corpus's training frames weighted by its share of the batch), so that one forward pass serves both
heads. data.cmvn_stats and transfer (init.from) do not apply; one process (no torchrun).

EXP_DIR receives final.pt (JointConvNet package), final.stamp, checkpoint.pt while training (a re-run
resumes), history.tsv, config.yaml, asr.prior_counts and ser.prior_counts (Kaldi text vectors), and
train_summary (key=value: seconds, epochs, stop, best_epoch, the ASR and SER dev loss and FER).
"""
import datetime
import logging
import math
import time
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
import yaml

from pyscripts.config_files import read_yaml
from pyscripts.errors import DataError
from pyscripts.kaldi.tables import write_kaldi_vector
from pyscripts.nnet.data import gather_windows, load_frame_set, norm_stats_from_frames, target_counts
from pyscripts.nnet.device import make_scaler, mixed_precision, resolve_device, set_determinism
from pyscripts.nnet.joint import HEADS, build_joint_model, package_joint
from pyscripts.nnet.train import (BatchOptions, EpochProgress, Trainee, _autocast, _promote_best, _save_epoch,
                                  _up_to_date, evaluate, input_stamp, load_config, make_optimizer, make_schedule,
                                  read_stamp, resume_checkpoint, run_summary, stamp_changes, training_features,
                                  validate_config)

log = logging.getLogger("joint")

JOINT_SCHEMA = {"joint": {"ser_fraction": (float, (lambda v: 0 < v < 1, "in (0, 1)")),
                          "ser_weight": (float, (lambda v: v > 0, "> 0"))}}


@dataclass
class Corpus:
    """One task's training and dev data: Kaldi data dirs and targets dirs."""
    train_data: str
    dev_data: str
    train_targets: str
    dev_targets: str


# ---------------------------------------------------------------- configuration
def load_joint_config(path, overrides=()):
    """The network config (load_config) with the joint section added as cfg["joint"], both checked."""
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
    joint = dict(raw["joint"]) if isinstance(raw["joint"], dict) else None
    if joint is None:
        raise DataError(f"config {path}: joint must be a mapping (ser_fraction, ser_weight)")
    for item in (s for s in items if s.startswith("joint.")):
        key, sep, value = item.partition("=")
        if not sep or key.removeprefix("joint.") not in joint:
            raise DataError(f"override '{item}': not KEY=VALUE with a key of the joint section "
                            f"({', '.join(JOINT_SCHEMA['joint'])})")
        joint[key.removeprefix("joint.")] = yaml.safe_load(value)
    validate_config({"joint": joint}, f"config {path}", JOINT_SCHEMA)
    if cfg["data"]["cmvn_stats"] or cfg["init"]["from"] or cfg["init"]["freeze_layers"]:
        raise DataError(f"config {path}: joint training normalises with both corpora's frames and starts from "
                        f"scratch; set data.cmvn_stats: null, init.from: null and init.freeze_layers: 0")
    cfg["joint"] = joint
    return cfg


def batch_split(batch_size, ser_fraction):
    """{"asr": frames, "ser": frames} of every training batch."""
    n_ser = round(batch_size * ser_fraction)
    if not 1 <= n_ser <= batch_size - 1:
        raise DataError(f"training.batch_size {batch_size} with joint.ser_fraction {ser_fraction} leaves "
                        f"{batch_size - n_ser} ASR and {n_ser} SER frames per batch; both need at least one")
    return {"asr": batch_size - n_ser, "ser": n_ser}


def joint_stamp(cfg, corpora):
    """{input: checksum} of the config and both corpora's features and targets (final.stamp)."""
    stamp = {}
    for head, c in corpora.items():
        part = input_stamp(cfg, c.train_data, c.dev_data, c.train_targets, c.dev_targets)
        stamp["config"] = part["config"]
        stamp.update({f"{head}_{k}": v for k, v in part.items() if k.startswith(("train_", "dev_"))})
    return stamp


# ---------------------------------------------------------------- data
def mixture_norm_stats(feats, weights):
    """Mean and std of the mixture of several frame sets, set h weighted by weights[h] (float64)."""
    mean, second = 0.0, 0.0
    for head, w in weights.items():
        m, s = (t.double() for t in norm_stats_from_frames(feats[head]))
        mean, second = mean + w * m, second + w * (s ** 2 + m ** 2)
    return mean.float(), (second - mean ** 2).clamp_min(1e-10).sqrt().float()


def load_corpora(corpora, ser_fraction):
    """Both corpora's train and dev frames, normalised with the mixture's statistics. Returns
    ({head: train set}, {head: dev set}, {head: number of targets}, mean, std)."""
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
    mean, std = mixture_norm_stats({h: s.feats for h, s in train.items()},
                                   {"asr": 1.0 - ser_fraction, "ser": ser_fraction})
    for frame_set in (*train.values(), *dev.values()):
        frame_set.feats = (frame_set.feats - mean) / std
    return train, dev, num_targets, mean, std


def head_order(num_frames, needed, seed, epoch, stream):
    """`needed` frame indices of one corpus for an epoch: seeded shuffles of all its frames, one after
    the other (stream tells the corpora apart)."""
    generator = torch.Generator().manual_seed((seed * 1000 + epoch) * 10 + stream)
    parts = [torch.randperm(num_frames, generator=generator) for _ in range(math.ceil(needed / num_frames))]
    return torch.cat(parts)[:needed]


def batches_per_epoch(train, split, frames_per_epoch):
    if frames_per_epoch:
        return max(1, frames_per_epoch // sum(split.values()))
    return max(math.ceil(train[h].num_frames / split[h]) for h in split)


# ---------------------------------------------------------------- one epoch
def train_joint_epoch(trainee, train, orders, split, weights, opts, label=""):
    """One pass over mixed batches: batch b takes split[h] frames of orders[h] for every head h.
    Returns {head: (mean loss, FER, frames)}."""
    model, optimizer, scaler = trainee.model, trainee.optimizer, trainee.scaler
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
        with _autocast(device, opts):
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


@dataclass
class JointPlan:
    """What stays the same from epoch to epoch of one joint training."""
    cfg: dict
    train: dict          # {head: FrameSet} on the device
    dev: dict
    views: dict          # {head: single-task view of the model}, for evaluate()
    split: dict          # {head: frames per batch}
    weights: dict        # {head: loss weight}
    num_batches: int
    train_opts: BatchOptions
    dev_opts: BatchOptions
    dev_subsets: dict    # {head: fixed dev frame indices, or None for all}
    metric_index: int    # 0: dev loss, 1: dev FER


def _plan(cfg, trainee, train, dev, train_opts):
    tcfg = cfg["training"]
    split = batch_split(int(tcfg["batch_size"]), cfg["joint"]["ser_fraction"])
    subsets = {}
    for h, frames in dev.items():
        subsets[h] = None
        if tcfg["dev_frames"] and tcfg["dev_frames"] < frames.num_frames:
            perm = torch.randperm(frames.num_frames, generator=torch.Generator().manual_seed(int(tcfg["seed"])))
            subsets[h] = perm[:int(tcfg["dev_frames"])].sort().values
    dev_opts = BatchOptions(int(tcfg["eval_batch_size"]), train_opts.amp_dtype, train_opts.channels_last)
    return JointPlan(cfg, train, dev, {h: trainee.model.view(h) for h in HEADS}, split,
                     {"asr": 1.0, "ser": float(cfg["joint"]["ser_weight"])},
                     batches_per_epoch(train, split, tcfg["frames_per_epoch"]), train_opts, dev_opts, subsets,
                     {"loss": 0, "fer": 1}[tcfg["dev_metric"]])


def _run_epoch(plan, trainee, state):
    """Trains one epoch, evaluates both dev sets, updates `state`; returns whether dev improved."""
    tcfg = plan.cfg["training"]
    seed, epoch = int(tcfg["seed"]), state["epoch"] + 1
    torch.manual_seed(seed * 1000 + epoch * 10)  # dropout noise of this epoch
    device = plan.train["asr"].feats.device
    orders = {h: head_order(plan.train[h].num_frames, plan.num_batches * n, seed, epoch, i).to(device)
              for i, (h, n) in enumerate(plan.split.items())}
    lr, t0 = trainee.optimizer.param_groups[0]["lr"], time.time()
    train_stats = train_joint_epoch(trainee, plan.train, orders, plan.split, plan.weights, plan.train_opts,
                                    f"epoch {epoch}/{tcfg['max_epochs']}")
    seconds = time.time() - t0
    dev_stats = {h: evaluate(plan.views[h], plan.dev[h], plan.dev_opts, subset=plan.dev_subsets[h]) for h in HEADS}
    metric = sum(plan.weights[h] * dev_stats[h][plan.metric_index] for h in HEADS)
    improved = state["best"] is None or metric < state["best"]["metric"]
    if isinstance(trainee.schedule, torch.optim.lr_scheduler.ReduceLROnPlateau):
        trainee.schedule.step(metric)
    else:
        trainee.schedule.step()
    state["epoch"], state["bad_epochs"] = epoch, 0 if improved else state["bad_epochs"] + 1
    if improved:
        state["best"] = {"epoch": epoch, "metric": metric,
                         **{h: {"loss": dev_stats[h][0], "fer": dev_stats[h][1]} for h in HEADS}}
    row = {"epoch": epoch, "lr": lr, "dev_metric": metric, "train_seconds": round(seconds, 2)}
    for h in HEADS:
        row.update({f"{h}_train_loss": train_stats[h][0], f"{h}_train_fer": train_stats[h][1],
                    f"{h}_dev_loss": dev_stats[h][0], f"{h}_dev_fer": dev_stats[h][1]})
    state["history"].append(row)
    frames = sum(s[2] for s in train_stats.values())
    log.info("epoch %d/%d: TRAIN %s [%d frames, %.0f frames/s] | DEV %s | combined dev %s %.4f | lrate %.3g | %s",
             epoch, int(tcfg["max_epochs"]), _stats_text(train_stats), frames, frames / max(seconds, 1e-9),
             _stats_text(dev_stats), tcfg["dev_metric"], metric, lr,
             "best so far" if improved else f"no better than epoch {state['best']['epoch']}")
    return improved


def _stats_text(stats):
    return " ".join(f"{h.upper()} AvgLoss {s[0]:.4f} FER {100 * s[1]:.2f}%" for h, s in stats.items())


# ---------------------------------------------------------------- the training run
def _build(cfg, num_targets, feat_dim, mean, std, device):
    """The seeded joint network, its optimiser, schedule and scaler, and the training BatchOptions."""
    tcfg = cfg["training"]
    set_determinism(tcfg["deterministic"])
    torch.manual_seed(int(tcfg["seed"]))
    model = build_joint_model({h: num_targets[h] for h in HEADS}, feat_dim, cfg["model"])
    model.feat_mean.copy_(mean)
    model.feat_std.copy_(std)
    channels_last = bool(tcfg["channels_last"])
    model.to(device, memory_format=torch.channels_last if channels_last else torch.contiguous_format)
    optimizer = make_optimizer(model, cfg["optimizer"], cfg["model"]["conv_l2"])
    amp_dtype = mixed_precision(device, tcfg["amp"])
    scaler = make_scaler(device, amp_dtype)
    if tcfg["compile"]:
        log.warning("training.compile: not used by the joint training (it runs the model uncompiled)")
    trainee = Trainee(model, model, optimizer, make_schedule(optimizer, cfg["schedule"]), scaler)
    return trainee, BatchOptions(int(tcfg["batch_size"]), amp_dtype, channels_last)


def _resume_or_start(ckpt_path, cfg, stamp, trainee, device):
    """The early-stopping state: from checkpoint.pt when there is one (same config and inputs only)."""
    if not ckpt_path.exists():
        n = sum(p.numel() for p in trainee.model.parameters())
        log.info("joint model: %d parameters, heads %s, device %s", n, trainee.model.head_targets, device)
        return {"epoch": 0, "best": None, "bad_epochs": 0, "history": []}
    return resume_checkpoint(ckpt_path, cfg, stamp, trainee, device,
                             "train afresh with --force (local/run_joint.sh --force true) or delete it")


def _finish(exp_dir, cfg, state, stamp, started, features):
    """best.pt becomes final.pt (with the whole history), with final.stamp and train_summary."""
    best = state["best"]
    stop = "early stopping" if state["bad_epochs"] >= int(cfg["training"]["patience"]) else "max epochs"
    log.info("done after %d epochs (%s); best dev epoch %d: %s", state["epoch"], stop, best["epoch"],
             _stats_text({h: (best[h]["loss"], best[h]["fer"]) for h in HEADS}))
    summary = run_summary(started, state["epoch"], stop, best)
    summary.update(dev_metric=cfg["training"]["dev_metric"], dev_value=f"{best['metric']:.4f}")
    for h in HEADS:
        summary.update({f"{h}_dev_loss": f"{best[h]['loss']:.4f}", f"{h}_dev_fer": f"{best[h]['fer']:.4f}"})
    _promote_best(exp_dir, state, stamp, summary, features)


def train_joint(cfg, corpora, exp_dir, device="auto", force=False):
    """Runs (or resumes) the joint training, or skips it when final.pt was trained on the same inputs;
    corpora: {"asr": Corpus, "ser": Corpus}. Returns the path of final.pt."""
    exp_dir = Path(exp_dir)
    device = resolve_device(device)
    stamp = joint_stamp(cfg, corpora)
    if _up_to_date(exp_dir, stamp, force):
        return exp_dir / "final.pt"
    # one trunk sees both corpora: their features must be made alike
    features = training_features([getattr(c, f"{split}_data") for c in corpora.values()
                                  for split in ("train", "dev")])
    started = datetime.datetime.now()
    exp_dir.mkdir(parents=True, exist_ok=True)
    train, dev, num_targets, mean, std = load_corpora(corpora, cfg["joint"]["ser_fraction"])
    prior_counts = {h: target_counts(train[h].targets, num_targets[h]) for h in HEADS}
    for h in HEADS:
        write_kaldi_vector(exp_dir / f"{h}.prior_counts", prior_counts[h].tolist(), fmt="{:d}")
    (exp_dir / "config.yaml").write_text(yaml.safe_dump(cfg, sort_keys=False))
    train = {h: s.to(device) for h, s in train.items()}
    dev = {h: s.to(device) for h, s in dev.items()}
    trainee, train_opts = _build(cfg, num_targets, train["asr"].feats.shape[1], mean, std, device)
    state = _resume_or_start(exp_dir / "checkpoint.pt", cfg, stamp, trainee, device)
    plan = _plan(cfg, trainee, train, dev, train_opts)
    log.info("batches of %s frames, %d batches per epoch; loss CE_asr + %g * CE_ser", plan.split,
             plan.num_batches, plan.weights["ser"])
    tcfg = cfg["training"]
    while state["epoch"] < int(tcfg["max_epochs"]) and state["bad_epochs"] < int(tcfg["patience"]):
        improved = _run_epoch(plan, trainee, state)
        _save_epoch(exp_dir, cfg, trainee, state, stamp, prior_counts, improved, package_joint)
    _finish(exp_dir, cfg, state, stamp, started, features)
    return exp_dir / "final.pt"


def main_train(args):
    """`python3 -m pyscripts.nnet.joint train` (its parsed arguments)."""
    import os
    if int(os.environ.get("WORLD_SIZE", "1")) > 1:
        raise DataError("the joint training runs in one process; start it without torchrun")
    cfg = load_joint_config(args.config, args.set)
    corpora = {h: Corpus(*(getattr(args, f"{h}_{name}") for name in ("train_data", "dev_data", "train_targets",
                                                                    "dev_targets"))) for h in HEADS}
    if args.check:
        exp_dir = Path(args.exp_dir)
        changed = stamp_changes(read_stamp(exp_dir / "final.stamp"), joint_stamp(cfg, corpora))
        print("no final.pt" if not (exp_dir / "final.pt").exists() else changed or "up-to-date")
        return
    if args.num_threads:
        torch.set_num_threads(args.num_threads)
    train_joint(cfg, corpora, args.exp_dir, args.device, args.force)
