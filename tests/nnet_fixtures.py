"""Synthetic training sets for the ConvNet tests: fbank-like features and frame targets as Kaldi
scp/ark, small enough for a training run in seconds."""
import kaldiio
import numpy as np


def write_split(data_dir, targets_dir, num_utts=8, num_targets=3, seed=0, bad_lengths=(), missing=(),
                nan_utt=None):
    """Features whose frames are noisy class means in runs like phone states (learnable), and their
    int32 targets; utterances utt000, utt001, ... Targets of `bad_lengths` are 3 frames short, those
    of `missing` are left out, and one feature of `nan_utt` is NaN."""
    rng = np.random.default_rng(seed)
    means = np.random.default_rng(0).normal(scale=1.5, size=(num_targets, 40)).astype(np.float32)
    data_dir.mkdir(parents=True, exist_ok=True)
    targets_dir.mkdir(parents=True, exist_ok=True)
    with kaldiio.WriteHelper(f"ark,scp:{data_dir}/feats.ark,{data_dir}/feats.scp") as feats_out, \
         kaldiio.WriteHelper(f"ark,scp:{targets_dir}/targets.ark,{targets_dir}/targets.scp") as targets_out:
        for u in range(num_utts):
            utt = f"utt{u:03d}"
            frames = int(rng.integers(30, 90))
            labels = np.repeat(rng.integers(num_targets, size=frames), rng.integers(4, 12, size=frames))[:frames]
            feats = (means[labels] + rng.normal(size=(frames, 40)) + 8.0).astype(np.float32)
            if utt == nan_utt:
                feats[7, 3] = np.nan
            feats_out(utt, feats)
            if utt in missing:
                continue
            targets_out(utt, labels[:-3].astype(np.int32) if utt in bad_lengths else labels.astype(np.int32))
    (targets_dir / "num_targets").write_text(f"{num_targets}\n")
