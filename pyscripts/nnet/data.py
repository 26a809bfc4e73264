"""Frame data for the ConvNet: a split's features in one tensor, windows gathered by index on the fly.

A split is read from a Kaldi data dir (feats.scp) and a targets dir (targets.scp: int32 vectors of
per-frame class ids, num_targets: one integer). Utterances are concatenated in feats.scp order into
one (frames, dim) float tensor; for every frame we keep the index of its utterance's first and last
frame, so a window of 2*context+1 frames is gathered as feats[clamp(t + offsets, first, last)]: edges
repeat the utterance's first/last frame, and no window is ever stored.
"""
import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import kaldiio
import numpy as np
import torch

from pyscripts.errors import DataError, check_finite
from pyscripts.kaldi.features import cmvn_mean_std

log = logging.getLogger(__name__)


@dataclass
class FrameSet:
    feats: torch.Tensor            # (frames, dim) float32
    targets: torch.Tensor | None   # (frames,) int64 class ids
    first: torch.Tensor            # (frames,) index of the frame's utterance's first frame
    last: torch.Tensor             # (frames,) ... and last frame
    utt_ids: list
    offsets: np.ndarray            # (utts + 1,) utterance u spans frames offsets[u]:offsets[u+1]

    @property
    def num_frames(self) -> int:
        return self.feats.shape[0]

    def to(self, device: torch.device | str) -> "FrameSet":
        def move(t: torch.Tensor | None) -> Any:
            return None if t is None else t.to(device)
        return FrameSet(move(self.feats), move(self.targets), move(self.first), move(self.last),
                        self.utt_ids, self.offsets)


def read_num_targets(targets_dir: str | Path) -> int:
    path = Path(targets_dir) / "num_targets"
    try:
        return int(path.read_text().split()[0])
    except (OSError, ValueError, IndexError) as err:
        raise DataError(f"{path}: cannot read the number of targets ({err}); the targets dir must hold "
                        f"a text file with one integer") from None


def frame_set_from_arrays(feats_list: Sequence[np.ndarray], targets_list: Sequence[np.ndarray] | None = None,
                          utt_ids: Iterable[str] | None = None) -> FrameSet:
    """Builds a FrameSet (on the CPU) from per-utterance arrays."""
    lengths = np.array([len(f) for f in feats_list], dtype=np.int64)
    offsets = np.concatenate([[0], np.cumsum(lengths)])
    feats = torch.from_numpy(np.concatenate(feats_list).astype(np.float32, copy=False))
    first = torch.from_numpy(np.repeat(offsets[:-1], lengths))
    last = torch.from_numpy(np.repeat(offsets[1:] - 1, lengths))
    targets = None
    if targets_list is not None:
        targets = torch.from_numpy(np.concatenate(targets_list).astype(np.int64))
    utt_ids = utt_ids if utt_ids is not None else [str(i) for i in range(len(feats_list))]
    return FrameSet(feats, targets, first, last, list(utt_ids), offsets)


def load_frame_set(data_dir: str | Path, targets_dir: str | Path) -> tuple[FrameSet, int]:
    """Reads a split; utterances without targets (alignment failures) are skipped and counted."""
    feats_scp = Path(data_dir) / "feats.scp"
    targets_scp = Path(targets_dir) / "targets.scp"
    for path in (feats_scp, targets_scp):
        if not path.is_file():
            raise DataError(f"{path} does not exist: run the feature extraction / alignment stage first")
    num_targets = read_num_targets(targets_dir)
    feats_table = kaldiio.load_scp(str(feats_scp))
    targets_table = kaldiio.load_scp(str(targets_scp))
    utts = list(feats_table.keys())
    kept = [u for u in utts if u in targets_table]
    missing = len(utts) - len(kept)
    if not utts:
        raise DataError(f"{feats_scp} is empty")
    if missing:
        log.warning("%s: %d of %d utterances have no targets in %s (alignment failures?); skipped",
                    data_dir, missing, len(utts), targets_scp)
    if 2 * missing > len(utts):
        raise DataError(f"{targets_scp}: {missing} of {len(utts)} utterances of {feats_scp} have no "
                        f"targets; are the targets from this data dir? Re-run the alignment.")
    feats_list, targets_list, dim = [], [], None
    for utt in kept:
        feats, targets = _read_entry(feats_table, utt, feats_scp), _read_entry(targets_table, utt, targets_scp)
        if feats.ndim != 2 or len(feats) == 0:
            raise DataError(f"{feats_scp}: utterance {utt} has features of shape {feats.shape}, "
                            f"expected a non-empty (frames, dim) matrix")
        if dim is None:
            dim = feats.shape[1]
        elif feats.shape[1] != dim:
            raise DataError(f"{feats_scp}: utterance {utt} has {feats.shape[1]}-dim features, others {dim}")
        if targets.ndim != 1 or not np.issubdtype(targets.dtype, np.integer):
            raise DataError(f"{targets_scp}: utterance {utt} is not an integer vector of frame targets")
        if len(targets) != len(feats):
            raise DataError(f"utterance {utt}: {len(feats)} feature frames in {feats_scp} but "
                            f"{len(targets)} targets in {targets_scp}; the alignment was probably made "
                            f"with other features (frame shift/length, or snip-edges) - re-align")
        if targets.min() < 0 or targets.max() >= num_targets:
            raise DataError(f"{targets_scp}: utterance {utt} has target ids in {targets.min()}.."
                            f"{targets.max()}, outside 0..{num_targets - 1} given by num_targets")
        feats_list.append(check_finite(feats, f"{feats_scp}: utterance {utt}"))
        targets_list.append(targets)
    frames = frame_set_from_arrays(feats_list, targets_list, kept)
    log.info("%s: %d utterances, %d frames, %d-dim features, %d targets", data_dir, len(kept),
             frames.num_frames, dim, num_targets)
    return frames, num_targets


def _read_entry(table, utt, scp):
    try:
        return table[utt]
    except Exception as err:  # kaldiio raises OSError, ValueError, ... on a missing or corrupt ark
        raise DataError(f"{scp}: cannot read utterance {utt} ({type(err).__name__}: {err}); "
                        f"the archive it points to is missing or damaged - re-run the stage that wrote it") from None


def norm_stats_from_frames(feats: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Global mean and standard deviation over all frames (float64 accumulation)."""
    x = feats.double()
    mean = x.mean(0)
    std = (x.var(0, unbiased=False)).clamp_min(1e-10).sqrt()
    return mean.float(), std.float()


def norm_stats_from_cmvn(path: str | Path) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean and std from a Kaldi global CMVN stats matrix: row 0 sums + count, row 1 sums of squares."""
    try:
        stats = np.asarray(kaldiio.load_mat(str(path)), dtype=np.float64)
    except Exception as err:  # kaldiio raises several types on a bad file
        raise DataError(f"{path}: cannot read a Kaldi CMVN stats matrix ({err})") from None
    if stats.ndim != 2 or stats.shape[0] != 2 or stats[0, -1] <= 0:
        raise DataError(f"{path}: expected global CMVN stats of shape 2 x (dim+1) with a positive count, "
                        f"got shape {stats.shape}; make them with compute-cmvn-stats over the training set")
    mean, std = cmvn_mean_std(stats)
    return torch.tensor(mean, dtype=torch.float32), torch.tensor(std, dtype=torch.float32)


def gather_windows(feats: torch.Tensor, first: torch.Tensor, last: torch.Tensor, frames: torch.Tensor,
                   context: int) -> torch.Tensor:
    """Windows of 2*context+1 frames around `frames`, edges clamped to the utterance: (B, 1, W, dim)."""
    shifts = torch.arange(-context, context + 1, device=feats.device)
    index = frames[:, None] + shifts
    index = torch.maximum(torch.minimum(index, last[frames, None]), first[frames, None])
    return feats[index].unsqueeze(1)


def epoch_frame_order(num_frames: int, seed: int, epoch: int, rank: int = 0, world_size: int = 1,
                      limit: int | None = None) -> torch.Tensor:
    """This rank's frames for an epoch: a seeded shuffle over all frames, optionally cut to `limit`,
    sharded by rank into equal parts (so every rank runs the same number of batches)."""
    generator = torch.Generator().manual_seed(seed * 1000 + epoch)
    order = torch.randperm(num_frames, generator=generator)
    if limit is not None:
        order = order[:limit]
    per_rank = len(order) // world_size
    return order[rank::world_size][:per_rank]


def target_counts(targets: torch.Tensor, num_targets: int) -> torch.Tensor:
    """Frame counts per class, the priors for hybrid decoding (Kaldi's ali_train_pdf.counts)."""
    return torch.bincount(targets.cpu(), minlength=num_targets)
