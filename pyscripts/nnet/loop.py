"""The one training loop. A training task (single-task or transfer: pyscripts/nnet/train.py; joint ASR-SER:
joint_train.py) plugs its hooks into run_training, which does what every training does the same way:
skip an up-to-date final.pt, resume checkpoint.pt, run epochs until max_epochs or early stopping, save
best.pt, checkpoint.pt and history.tsv after each epoch, and make final.pt of the best epoch.

A task says how its data are read and its network built (prepare), what one epoch is (run_epoch: batches
-> loss and metrics, the dev evaluation, the history row; end_epoch below does the schedule and early
stopping for all), how its best model is packaged (package) and what its train_summary says (finish).
"""
import datetime
import logging
from pathlib import Path
from typing import Any

import torch

from pyscripts.nnet.checkpoints import resume_checkpoint, save_epoch, training_features, up_to_date
from pyscripts.nnet.epoch import Trainee

log = logging.getLogger("train")


class TrainingTask:
    """The hooks of one training (subclass it). Attributes set by the subclass: exp_dir (Path), cfg (the
    checked config), stamp ({input: checksum}, final.stamp), device (torch.device), data_dirs (the data
    dirs whose feature options final.pt records), prior_counts (set by prepare), resume_hint (how to
    restart when checkpoint.pt does not match)."""
    exp_dir: Path
    cfg: dict
    stamp: dict
    device: torch.device
    data_dirs: list
    prior_counts: Any
    is_main = True  # the process that writes files (rank 0 under torchrun)
    resume_hint = "train afresh with --force (or delete it)"

    def join(self) -> None:
        """Joins the other processes of the training, if any (before anything is read)."""

    def prepare(self) -> Trainee:
        """Reads the data and builds the seeded network, its optimiser and schedule."""
        raise NotImplementedError

    def describe(self, trainee: Trainee) -> None:
        """Logs the network of a training that starts afresh."""

    def begin(self, trainee: Trainee) -> None:
        """Readies the epochs after the state is known (wrapping, caches, the fixed dev subsets)."""

    def run_epoch(self, trainee: Trainee, state: dict) -> bool:
        """Trains one epoch, evaluates, updates `state` (end_epoch); returns whether dev improved."""
        raise NotImplementedError

    def package(self, model: Any, cfg: dict, prior_counts: Any, epoch: int, best: dict, history: list) -> dict:
        """What best.pt (and then final.pt) holds."""
        raise NotImplementedError

    def finish(self, state: dict, started: datetime.datetime, features: dict | None) -> None:
        """best.pt becomes final.pt, with the task's train_summary (checkpoints.promote_best)."""
        raise NotImplementedError

    def close(self) -> None:
        """Leaves the process group, if any."""


def fresh_state() -> dict:
    """The early-stopping state of a training that starts afresh."""
    return {"epoch": 0, "best": None, "bad_epochs": 0, "history": []}


def should_continue(cfg: dict, state: dict) -> bool:
    tcfg = cfg["training"]
    return state["epoch"] < int(tcfg["max_epochs"]) and state["bad_epochs"] < int(tcfg["patience"])


def stop_reason(cfg: dict, state: dict) -> str:
    return "early stopping" if state["bad_epochs"] >= int(cfg["training"]["patience"]) else "max epochs"


def metric_index(cfg: dict) -> int:
    """0: the dev loss, 1: the dev FER decides which epoch is best (training.dev_metric)."""
    return {"loss": 0, "fer": 1}[cfg["training"]["dev_metric"]]


def dev_subset(num_frames: int, cfg: dict) -> torch.Tensor | None:
    """The fixed dev frames evaluated every epoch (training.dev_frames, drawn with training.seed), or None
    for all."""
    tcfg = cfg["training"]
    if not tcfg["dev_frames"] or tcfg["dev_frames"] >= num_frames:
        return None
    perm = torch.randperm(num_frames, generator=torch.Generator().manual_seed(int(tcfg["seed"])))
    return perm[:int(tcfg["dev_frames"])].sort().values


def end_epoch(trainee: Trainee, state: dict, metric: float, best: dict) -> bool:
    """After an epoch's dev evaluation: steps the schedule (newbob on `metric`), counts the epochs without
    improvement, and keeps `best` ({field: value}, with epoch and metric added) when dev improved."""
    improved = state["best"] is None or metric < state["best"]["metric"]
    if isinstance(trainee.schedule, torch.optim.lr_scheduler.ReduceLROnPlateau):
        trainee.schedule.step(metric)
    else:
        trainee.schedule.step()
    state["epoch"] += 1
    state["bad_epochs"] = 0 if improved else state["bad_epochs"] + 1
    if improved:
        state["best"] = {"epoch": state["epoch"], "metric": metric, **best}
    return improved


def run_training(task: TrainingTask, force: bool = False) -> Path:
    """Runs (or resumes) the training of `task`, or skips it when its final.pt was trained on the same
    inputs (final.stamp); force: train afresh. Returns the path of final.pt."""
    exp_dir = task.exp_dir
    if up_to_date(exp_dir, task.stamp, force):
        return exp_dir / "final.pt"
    features = training_features(task.data_dirs)
    started = datetime.datetime.now()
    task.join()
    exp_dir.mkdir(parents=True, exist_ok=True)
    trainee = task.prepare()
    ckpt = exp_dir / "checkpoint.pt"
    if ckpt.exists():
        state = resume_checkpoint(ckpt, task.cfg, task.stamp, trainee, task.device, task.resume_hint)
    else:
        task.describe(trainee)
        state = fresh_state()
    task.begin(trainee)
    while should_continue(task.cfg, state):
        improved = task.run_epoch(trainee, state)
        if task.is_main:
            save_epoch(exp_dir, task.cfg, trainee, state, task.stamp, task.prior_counts, improved, task.package)
    if task.is_main:
        task.finish(state, started, features)
    task.close()
    return exp_dir / "final.pt"
