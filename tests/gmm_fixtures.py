"""Hand-made fixtures for the GMM-HMM stages: a small phone lang dir and data dirs of synthetic
13-dim "MFCC" features whose frames are drawn from one Gaussian per (phone, HMM state), so that the
true state segmentation of every utterance is known."""
from pathlib import Path

import kaldiio
import numpy as np

from pyscripts.kaldi.datadir import utt2spk_to_spk2utt, write_table
from pyscripts.kaldi.features import accumulate_cmvn
from pyscripts.asr.lang import prepare_lang

PHONES = ["sil", "aa", "b", "iy", "k", "s"]


def make_lang(root, phones=PHONES):
    """Phone-level dict dir (each phone a word, sil the silence) and its lang dir under root."""
    root = Path(root)
    d = root / "dict"
    d.mkdir(parents=True, exist_ok=True)
    (d / "silence_phones.txt").write_text(f"{phones[0]}\n")
    (d / "optional_silence.txt").write_text(f"{phones[0]}\n")
    (d / "nonsilence_phones.txt").write_text("".join(f"{p}\n" for p in phones[1:]))
    (d / "lexicon.txt").write_text("".join(f"{p} {p}\n" for p in phones))
    prepare_lang(d, phones[0], root / "lang")
    return root / "lang"


def state_means(phones=PHONES, dim=13, seed=0, spread=4.0):
    """One well-separated mean per (phone, state)."""
    rng = np.random.RandomState(seed)
    return {(p, s): rng.randn(dim) * spread for p in phones for s in range(3)}


def make_data(data_dir, n_utts, n_spk, seed, phones=PHONES, means=None, dim=13):
    """A data dir (feats, cmvn, text, utt2spk, spk2utt, utt2num_frames) of synthetic utterances:
    sil, 3-6 random phones, sil; each state 2-5 frames (sil states 3-6). Returns
    {utt: [(phone, state, first frame, frames)]}, the true segmentation."""
    data_dir = Path(data_dir)
    data_dir.mkdir(parents=True, exist_ok=True)
    means = means or state_means(phones, dim)
    rng = np.random.RandomState(seed)
    spk_offset = {f"spk{k}": rng.randn(dim) * 2 for k in range(n_spk)}
    truth, text, utt2spk, frames, feats = {}, {}, {}, {}, {}
    for i in range(n_utts):
        spk = f"spk{i % n_spk}"
        utt = f"{spk}_u{i:03d}"
        seq = [phones[0]] + list(rng.choice(phones[1:], rng.randint(3, 7))) + [phones[0]]
        segs, rows, t = [], [], 0
        for p in seq:
            for s in range(3):
                n = rng.randint(3, 7) if p == phones[0] else rng.randint(2, 6)
                segs.append((p, s, t, n))
                rows.append(means[(p, s)] + rng.randn(n, dim) + spk_offset[spk])
                t += n
        truth[utt], text[utt], utt2spk[utt] = segs, seq, spk
        feats[utt] = np.concatenate(rows).astype(np.float32)
        frames[utt] = str(t)
    with kaldiio.WriteHelper(f"ark,scp:{data_dir}/feats.ark,{data_dir}/feats.scp") as w:
        for utt in sorted(feats):
            w(utt, feats[utt])
    spk2utt = utt2spk_to_spk2utt(utt2spk)
    with kaldiio.WriteHelper(f"ark,scp:{data_dir}/cmvn.ark,{data_dir}/cmvn.scp") as w:
        for spk in sorted(spk2utt):
            w(spk, accumulate_cmvn(feats[u] for u in spk2utt[spk]))
    write_table(data_dir / "text", text)
    write_table(data_dir / "utt2spk", utt2spk)
    write_table(data_dir / "spk2utt", spk2utt)
    write_table(data_dir / "utt2num_frames", frames)
    return truth


def write_ctm(path, truth, frame_shift=0.01):
    """Phone-level CTM of a true segmentation (states merged into phones)."""
    lines = []
    for utt in sorted(truth):
        phone_segs = []
        for p, s, t, n in truth[utt]:
            if s == 0:
                phone_segs.append([p, t, n])
            else:
                phone_segs[-1][2] += n
        lines += [f"{utt} 1 {t * frame_shift:.3f} {n * frame_shift:.3f} {p}\n" for p, t, n in phone_segs]
    Path(path).write_text("".join(lines))
