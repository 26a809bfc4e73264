"""Frozen-trunk outputs computed once per training instead of once per frame and epoch.

In a transfer training with l >= 2 frozen layers, the frozen layers compute the same output for a
frame in every epoch (frozen weights, BatchNorm in eval mode) up to the first dropout, which stays
active in training: so layers 1..2 (l = 2), or layers 1..3 up to layer 3's dropout (l >= 3), are computed
once for every training and dev frame, and each step runs the rest: layer 3's dropout and layers 4..6
(l >= 3), or layers 3..6 (l = 2). The dropout masks are drawn at each step as before, in the same
order, so the random state follows the uncached run's. That is both convolutions and the first fully
connected layer, about 90% of the arithmetic of a frame.

A frame's output is computed the first time a batch uses it (only for the frames of that batch not yet
computed) and kept, so a training computes no frame twice and none it never uses: it costs at most what
the uncached training costs, however few frames an epoch samples.

The rule: cache when l >= 2 and the outputs of the frames the training can use (max_epochs x
frames_per_epoch training frames, or all; dev_frames or all dev frames) take at most
training.trunk_cache_mb (float32; 5120 values per frame after layer 2, 1024 after layer 3); else, or with
several processes (DDP) or torch.compile, the network runs whole as before. The cached rows are computed
on the batch's not-yet-cached frames rather than on the whole batch, so they could differ from the
uncached run's in the last bits where the CPU library picks kernels by batch shape; on the tiny corpus
the trained weights came out bit-identical.

Several trainings of one process (pyscripts/transfer/train_group.py) can share the cache (`share`):
rows l >= 3 of a transfer sweep freeze the same source layers 1..3, and on the same frames, seed and
config they draw the same batches, so the outputs one row computed are those the next would compute.
"""
import logging

import torch
from torch import nn

from pyscripts.nnet.data import gather_windows

log = logging.getLogger(__name__)
MIN_FROZEN = 2  # both convolutions: below that the cache saves little


class TrunkOutputs:
    """Frame set stand-in whose rows are the cached layers' output of each frame, computed the first
    time a batch asks for the frame and kept (no frame is computed twice, none that no batch uses)."""

    def __init__(self, model, frames, num_frozen, channels_last):
        self.model, self.frames, self.channels_last = model, frames, channels_last
        self.depth = cached_depth(num_frozen)
        width = model.flat_dim if self.depth == 2 else model.layer3[0].out_features
        device = frames.targets.device
        # torch.empty: memory is only committed for the rows written.
        self.outputs = torch.empty((frames.num_frames, width), device=device)
        self.done = torch.zeros(frames.num_frames, dtype=torch.bool, device=device)
        self.targets = frames.targets

    @property
    def num_frames(self):
        return self.frames.num_frames

    @torch.no_grad()
    def rows(self, batch):
        missing = batch[~self.done[batch]]
        if len(missing):
            x = gather_windows(self.frames.feats, self.frames.first, self.frames.last, missing, self.model.context)
            if self.channels_last:
                x = x.contiguous(memory_format=torch.channels_last)
            x = self.model.layer2(self.model.layer1(x))  # frozen: BatchNorm in eval mode, no dropout
            if self.depth == 3:
                x = self.model.layer3[:-1](x)  # the dropout is the head's, drawn at each step
            self.outputs[missing] = x
            self.done[missing] = True
        return self.outputs[batch]


def cached_depth(num_frozen):
    """How many layers the cache holds: 2, or 3 without layer 3's dropout."""
    return min(num_frozen, 3)


class FrozenTrunkHead(nn.Module):
    """The network above a cached trunk: layer 3's dropout when the cache holds layer 3, then the
    layers above the cache (frozen or not) up to layer 6."""

    def __init__(self, model, num_frozen):
        super().__init__()
        self.model, self.depth = model, cached_depth(num_frozen)

    def forward(self, trunk_out):
        x = trunk_out
        if self.depth == 3:
            x = self.model.layer3[-1](x)  # the block's Dropout
        for n in range(self.depth + 1, 7):
            x = self.model.layer(n)(x)
        return x


def trunk_size_mb(model, num_frozen, num_frames):
    width = model.flat_dim if cached_depth(num_frozen) == 2 else model.layer3[0].out_features
    return num_frames * width * 4 / 2**20


def frames_used(tcfg, num_train, num_dev):
    """At most how many training and dev frames a training passes through the network."""
    per_epoch = tcfg["frames_per_epoch"]
    train = num_train if per_epoch is None else min(num_train, int(tcfg["max_epochs"]) * int(per_epoch))
    return train + (num_dev if tcfg["dev_frames"] is None else min(num_dev, int(tcfg["dev_frames"])))


def cache_trunk(model, train_set, dev_set, cfg, distributed, share=None, inputs=()):
    """(train, dev, head) on cached trunk outputs when the rule allows (see the module doc), else None.
    share: a dict that keeps the outputs for the next trainings of the process, found again by
    `inputs` (what the frames depend on: source model, features, targets, normalisation) and the depth."""
    num_frozen, tcfg = int(cfg["init"]["freeze_layers"]), cfg["training"]
    if num_frozen < MIN_FROZEN or distributed or tcfg["compile"] or not cfg["init"]["from"]:
        return None
    channels_last = bool(tcfg["channels_last"])
    key = (tuple(inputs), cached_depth(num_frozen), channels_last, str(train_set.feats.device))
    if share is not None and key in share:
        log.info("frozen layers 1..%d: outputs shared with an earlier training of this process",
                 cached_depth(num_frozen))
        return (*share[key], FrozenTrunkHead(model, num_frozen))
    size = trunk_size_mb(model, num_frozen, frames_used(tcfg, train_set.num_frames, dev_set.num_frames))
    if size > int(tcfg["trunk_cache_mb"]):
        log.info("frozen layers 1..%d: their outputs would take up to %.0f MB > training.trunk_cache_mb %d: "
                 "computed in every step", cached_depth(num_frozen), size, int(tcfg["trunk_cache_mb"]))
        return None
    log.info("frozen layers 1..%d: each frame's output computed once and kept (up to %.0f MB)",
             cached_depth(num_frozen), size)
    outputs = (TrunkOutputs(model, train_set, num_frozen, channels_last),
               TrunkOutputs(model, dev_set, num_frozen, channels_last))
    if share is not None:
        share[key] = outputs
    return (*outputs, FrozenTrunkHead(model, num_frozen))
