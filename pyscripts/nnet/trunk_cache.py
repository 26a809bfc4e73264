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
training.trunk_cache_mb (5120 values per frame after layer 2, 1024 after layer 3, 2 bytes each under
bf16/fp16 autocast, 4 in float32); else, or with several processes (DDP) or torch.compile, the network
runs whole as before. Room is made for just those frames (a GPU commits all of it at once; a CPU only
what is written). The trunk runs under the training's autocast, so the layers above read the values the
uncached network gives them. The cached rows are computed on the batch's not-yet-cached frames rather
than on the whole batch, so they could differ from the uncached run's in the last bits where the
library picks kernels by batch shape; on the tiny corpus the trained weights came out bit-identical in
float32 and in bf16 (tests/integration/test_convnet.py).

Several trainings of one process (pyscripts/transfer/train_group.py) can share the cache (`share`):
rows l >= 2 of a transfer sweep freeze the same source layers (1..2 at least), and on the same frames,
seed and config they draw the same frames in the same order, so the set of frames computed before any
batch, and with it the batches the missing frames are computed in, is what the row alone would have:
the outputs one row computed are those the next would compute, bit for bit. The first training (the
deepest, l >= 3) keeps layer 2's outputs beside layer 3's when both fit, for the l = 2 row.
"""
import copy
import logging
from collections.abc import Iterable, Sequence
from typing import Any

import torch
from torch import nn

from pyscripts.nnet.data import FrameSet, gather_windows
from pyscripts.nnet.layers import MIN_FROZEN

log = logging.getLogger(__name__)


class CachedRows:
    """The stored outputs, shared by every view (TrunkOutputs.at) of one cache: room for `capacity`
    frames in the order they are first used, and which row holds a frame, kept on the host (so a step
    finds its missing frames without waiting for the GPU) and mirrored on the device (to gather them)."""

    def __init__(self, num_frames: int, capacity: int, device: torch.device) -> None:
        self.capacity, self.used = capacity, 0
        self.slot = torch.full((num_frames,), -1, dtype=torch.long)  # frame -> row, -1: not yet computed
        self.slot_on_device = self.slot.to(device)
        self.outputs = {}  # depth -> (capacity, width) tensor, allocated with the first rows

    def add(self, frames: torch.Tensor, out: dict[int, torch.Tensor]) -> None:
        """Stores `out` ({depth: rows}) of `frames` (host indices, none stored yet)."""
        first, end = self.used, self.used + len(frames)
        if end > self.capacity:
            raise RuntimeError(f"frozen-trunk cache: {end} frames used, room for {self.capacity} "
                               "(frames_used() undercounts)")
        for depth, rows in out.items():
            if depth not in self.outputs:
                self.outputs[depth] = rows.new_empty((self.capacity, rows.shape[1]))
            self.outputs[depth][first:end] = rows
        index = torch.arange(first, end)
        self.slot[frames] = index
        self.slot_on_device[frames.to(self.slot_on_device.device)] = index.to(self.slot_on_device.device)
        self.used = end


class TrunkOutputs:
    """Frame set stand-in whose rows are the cached layers' output of each frame, computed the first
    time a batch asks for the frame and kept (no frame is computed twice, none that no batch uses).
    It can keep layer 2's and layer 3's outputs together (depths), computed in the same pass, for the
    trainings of a group that read either (at(depth)). The rows are computed under the training's
    autocast and kept in its dtype (bf16 halves the memory), so the layers above read exactly the
    values they would read uncached."""

    def __init__(self, model: Any, frames: Any, depths: Sequence[int], channels_last: bool, capacity: int,
                 amp_dtype: torch.dtype | None = None) -> None:
        self.model, self.frames, self.channels_last = model, frames, channels_last
        self.depth, self.depths, self.amp_dtype = max(depths), depths, amp_dtype
        self.targets = frames.targets
        self.store = CachedRows(frames.num_frames, capacity, frames.targets.device)

    @property
    def num_frames(self) -> int:
        return self.frames.num_frames

    def at(self, depth: int) -> "TrunkOutputs":
        """The same cache (the same stored rows) read at layer `depth`."""
        view = copy.copy(self)
        view.depth = depth
        return view

    @torch.no_grad()
    def rows(self, batch: torch.Tensor, on_device: torch.Tensor | None = None) -> torch.Tensor:
        """The cached outputs of the frames `batch` (host indices; on_device: the same on the frames' device)."""
        batch = batch.cpu()
        on_device = batch.to(self.targets.device, non_blocking=True) if on_device is None else on_device
        missing = batch[self.store.slot[batch] < 0]
        if len(missing):
            self.store.add(missing, self._compute(missing))
        return self.store.outputs[self.depth][self.store.slot_on_device[on_device]]

    def _compute(self, frames):
        device = self.targets.device
        x = gather_windows(self.frames.feats, self.frames.first, self.frames.last, frames.to(device),
                           self.model.context)
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        with torch.autocast(device.type, dtype=self.amp_dtype or torch.float32, enabled=self.amp_dtype is not None):
            x = self.model.layer2(self.model.layer1(x))  # frozen: BatchNorm in eval mode, no dropout
            # layer 3 without its dropout, which the head draws at each step
            return {d: x if d == 2 else self.model.layer3[:-1](x) for d in self.depths}


class TrunkShare:
    """The caches the trainings of one process share (pyscripts/transfer/train_group.py), by what their
    frames depend on. depths: the cache depths those trainings read; the first training keeps all of
    them that its frozen layers give, when they fit."""

    def __init__(self, depths: Iterable[int]) -> None:
        self.depths, self.caches = {d for d in depths if d >= MIN_FROZEN}, {}


def cached_depth(num_frozen: int) -> int:
    """How many layers the cache holds: 2, or 3 without layer 3's dropout."""
    return min(num_frozen, 3)


class FrozenTrunkHead(nn.Module):
    """The network above a cached trunk: layer 3's dropout when the cache holds layer 3, then the
    layers above the cache (frozen or not) up to layer 6."""

    def __init__(self, model: Any, num_frozen: int) -> None:
        super().__init__()
        self.model, self.depth = model, cached_depth(num_frozen)

    def forward(self, trunk_out: torch.Tensor) -> torch.Tensor:
        x = trunk_out
        if self.depth == 3:
            x = self.model.layer3[-1](x)  # the block's Dropout
        for n in range(self.depth + 1, 7):
            x = self.model.layer(n)(x)
        return x


def layer_width(model: Any, depth: int) -> int:
    """Values per frame of the cached output of layer `depth` (2 or 3)."""
    return model.flat_dim if depth == 2 else model.layer3[0].out_features


def trunk_size_mb(model: Any, depths: Iterable[int], num_frames: int, amp_dtype: torch.dtype | None = None) -> float:
    value_bytes = torch.finfo(amp_dtype or torch.float32).bits // 8
    return num_frames * sum(layer_width(model, d) for d in depths) * value_bytes / 2**20


def frames_used(tcfg: dict, num_train: int, num_dev: int) -> tuple[int, int]:
    """At most how many (training, dev) frames a training passes through the network."""
    per_epoch = tcfg["frames_per_epoch"]
    train = num_train if per_epoch is None else min(num_train, int(tcfg["max_epochs"]) * int(per_epoch))
    return train, num_dev if tcfg["dev_frames"] is None else min(num_dev, int(tcfg["dev_frames"]))


def cache_trunk(model: Any, train_set: FrameSet, dev_set: FrameSet, cfg: dict, distributed: bool,
                share: TrunkShare | None = None, inputs: Iterable = (),
                amp_dtype: torch.dtype | None = None) -> tuple | None:
    """(train, dev, head) on cached trunk outputs when the rule allows (see the module doc), else None.
    share: a TrunkShare that keeps the caches for the next trainings of the process, found again by
    `inputs` (what the frames depend on: source model, features, targets, normalisation).
    amp_dtype: the training's autocast dtype (None: float32), which the trunk is computed in too."""
    num_frozen, tcfg = int(cfg["init"]["freeze_layers"]), cfg["training"]
    if num_frozen < MIN_FROZEN or distributed or tcfg["compile"] or not cfg["init"]["from"]:
        return None
    depth, channels_last = cached_depth(num_frozen), bool(tcfg["channels_last"])
    key = (tuple(inputs), channels_last, str(amp_dtype), str(train_set.feats.device))
    head = FrozenTrunkHead(model, num_frozen)
    shared = share.caches.get(key) if share is not None else None
    if shared and depth in shared[0].depths:
        log.info("frozen layers 1..%d: outputs shared with an earlier training of this process", depth)
        return (*(cache.at(depth) for cache in shared), head)
    # Shallower depths the process's later trainings read are kept too (this model freezes them).
    depths = sorted({depth} | {d for d in (share.depths if share else ()) if d < depth})
    capacity = frames_used(tcfg, train_set.num_frames, dev_set.num_frames)
    limit = int(tcfg["trunk_cache_mb"])
    if trunk_size_mb(model, depths, sum(capacity), amp_dtype) > limit:
        depths = [depth]
    size = trunk_size_mb(model, depths, sum(capacity), amp_dtype)
    if size > limit:
        log.info("frozen layers 1..%d: their outputs would take up to %.0f MB > training.trunk_cache_mb %d: "
                 "computed in every step", depth, size, limit)
        return None
    log.info("frozen layers 1..%d: each frame's output computed once and kept (up to %.0f MB)%s", depth, size,
             ", layer 2's too for a later training" if len(depths) > 1 else "")
    caches = tuple(TrunkOutputs(model, frames, depths, channels_last, room, amp_dtype)
                   for frames, room in zip((train_set, dev_set), capacity))
    if share is not None:
        share.caches[key] = caches
    return (*(cache.at(depth) for cache in caches), head)
