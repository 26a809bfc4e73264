"""Frame targets for SER: each frame gets its utterance's emotion, then a voice-activity / voicing
detector relabels silent and unvoiced frames as `sil`.

Classes (ids in the targets): 0 ang, 1 hap, 2 neu, 3 sad, 4 sil.

The detector works on the same frames as the fbank features (frame length, shift, sample rate and
snip-edges read from the fbank conf), so it yields exactly utt2num_frames decisions per utterance.
A frame counts as speech when both hold:
  * energy: its log energy (DC removed, dB re. int16 full scale) is at least --energy-floor-db and
    within --energy-threshold-db of the utterance's reference level, the --energy-percentile
    percentile of its frame energies (a high percentile rather than the maximum, so one click does not
    set the reference);
  * voicing: the peak of its normalised cross-correlation function (NCCF, as in Kaldi's pitch
    tracker) over the lags of the pitch range --min-f0..--max-f0 is at least --nccf-threshold. The
    NCCF compares the frame's samples with the same number of samples `lag` later, so it looks up to
    1/min-f0 beyond the frame's end. Periodic (voiced) sound peaks near 1; noise and unvoiced
    consonants stay low.
The decisions are then smoothed by a majority over --smooth-frames frames (odd; 1 = off).

An utterance in which no frame is speech keeps all its frames as sil (it then teaches the network only
silence) and is counted in the log; utterance decisions fall back to all its frames (see evaluate.py).

Options of the detector are read from a Kaldi-style conf file (conf/vad.conf, `--name=value` lines).
"""
import argparse
import logging
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

import numpy as np

from pyscripts.kaldi.datadir import read_table, write_table
from pyscripts.errors import DataError, cli_main
from pyscripts.corpora.iemocap import EMOTIONS
from pyscripts.kaldi.tables import conf_bool, read_kaldi_conf

log = logging.getLogger(__name__)

SIL = "sil"
CLASSES = EMOTIONS + (SIL,)
SIL_ID = CLASSES.index(SIL)
FOLD_SUBSETS = ("train", "valid", "test")
INT16_FULL_SCALE = 32768.0


@dataclass
class FrameOptions:
    """The framing of the features the targets must align with (Kaldi's frame options)."""
    sample_frequency: float = 16000.0
    frame_length: float = 25.0   # ms
    frame_shift: float = 10.0    # ms
    snip_edges: bool = True

    @property
    def window_size(self) -> int:
        return int(round(self.sample_frequency * self.frame_length / 1000))

    @property
    def window_shift(self) -> int:
        return int(round(self.sample_frequency * self.frame_shift / 1000))


@dataclass
class VadOptions:
    energy_threshold_db: float = 30.0   # speech is within this many dB of the reference level
    energy_percentile: float = 99.0     # reference level: this percentile of the frame energies
    energy_floor_db: float = -60.0      # and never below this absolute level (dB re. full scale)
    min_f0: float = 60.0                # pitch range searched for the NCCF peak (Hz)
    max_f0: float = 500.0
    nccf_threshold: float = 0.5         # voiced when the NCCF peak reaches this
    nccf_ballast_db: float = -70.0      # level (dB re. full scale) added to the NCCF's denominator so
                                        # that near-silent frames do not look periodic
    smooth_frames: int = 5              # majority smoothing window of the decisions (odd, 1 = off)


def _fill(options, path, conf, ignore_unknown):
    types = {f.name: f.type for f in fields(options)}
    for name, text in conf.items():
        attr = name.replace("-", "_")
        if attr not in types:
            if ignore_unknown:
                continue
            raise DataError(f"{path}: unknown option --{name}; known: "
                            + ", ".join("--" + a.replace("_", "-") for a in types))
        kind = types[attr]
        if kind in (bool, "bool"):
            value = conf_bool(path, name, text)
        else:
            try:
                value = (int if kind in (int, "int") else float)(text)
            except ValueError:
                raise DataError(f"{path}: --{name}={text} is not a number") from None
        setattr(options, attr, value)
    return options


def read_frame_options(fbank_conf: Path | str) -> FrameOptions:
    """Framing from the fbank conf (other fbank options are not about framing and are ignored)."""
    return _fill(FrameOptions(), fbank_conf, read_kaldi_conf(fbank_conf), ignore_unknown=True)


def read_vad_options(vad_conf: Path | str) -> VadOptions:
    opts = _fill(VadOptions(), vad_conf, read_kaldi_conf(vad_conf), ignore_unknown=False)
    if not 0 < opts.min_f0 < opts.max_f0:
        raise DataError(f"{vad_conf}: need 0 < --min-f0 < --max-f0, got {opts.min_f0}, {opts.max_f0}")
    if opts.smooth_frames < 1 or opts.smooth_frames % 2 == 0:
        raise DataError(f"{vad_conf}: --smooth-frames must be odd and >= 1, got {opts.smooth_frames}")
    if not 0 < opts.energy_percentile <= 100:
        raise DataError(f"{vad_conf}: --energy-percentile must be in (0, 100]")
    return opts


def num_frames(num_samples: int, frame_opts: FrameOptions) -> int:
    """Number of frames Kaldi (and kaldi-native-fbank) makes of num_samples samples."""
    size, shift = frame_opts.window_size, frame_opts.window_shift
    if frame_opts.snip_edges:
        return 0 if num_samples < size else 1 + (num_samples - size) // shift
    return (num_samples + shift // 2) // shift


def _frame_starts(n_frames, frame_opts):
    """First sample of each frame, Kaldi's convention (may be negative without snip-edges)."""
    size, shift = frame_opts.window_size, frame_opts.window_shift
    starts = np.arange(n_frames) * shift
    if not frame_opts.snip_edges:
        starts = starts + shift // 2 - size // 2
    return starts


def _gather(samples, starts, length):
    """(frames, length) matrix of samples[start:start+length]; outside the signal, samples are
    mirrored as Kaldi does at the edges (index -1 -> 0, N -> N-1)."""
    n = len(samples)
    index = starts[:, None] + np.arange(length)[None, :]
    # Reflect until in range (a very short signal may need more than one reflection).
    while True:
        low, high = index < 0, index >= n
        if not (low.any() or high.any()):
            break
        index = np.where(low, -index - 1, index)
        index = np.where(high, 2 * n - 1 - index, index)
    return samples[index]


def frame_log_energy(frames: np.ndarray) -> np.ndarray:
    """Log energy per frame in dB relative to an int16 full-scale square wave, DC removed."""
    x = frames - frames.mean(axis=1, keepdims=True)
    power = (x * x).mean(axis=1) / INT16_FULL_SCALE ** 2
    return 10.0 * np.log10(np.maximum(power, 1e-20))


def nccf_peak(segments: np.ndarray, size: int, min_lag: int, max_lag: int, ballast: float) -> np.ndarray:
    """Peak over lags min_lag..max_lag of the NCCF of each row: the first `size` samples against the
    `size` samples `lag` later. segments: (frames, size + max_lag). Computed with FFTs."""
    seg = segments - segments.mean(axis=1, keepdims=True)
    x = seg[:, :size]
    nfft = 1 << int(np.ceil(np.log2(size + max_lag)))
    # sum_n x[n] seg[n + lag]: no circular wrap for lag <= max_lag, since n + lag < size + max_lag.
    cross = np.fft.irfft(np.conj(np.fft.rfft(x, nfft)) * np.fft.rfft(seg, nfft), nfft)
    cross = cross[:, min_lag:max_lag + 1]
    e0 = (x * x).sum(axis=1, keepdims=True)
    cumulative = np.concatenate([np.zeros((len(seg), 1)), np.cumsum(seg * seg, axis=1)], axis=1)
    lags = np.arange(min_lag, max_lag + 1)
    e_lag = cumulative[:, lags + size] - cumulative[:, lags]
    nccf = cross / np.sqrt(e0 * e_lag + ballast)
    return nccf.max(axis=1)


def _smooth(decisions, width):
    """Majority over a centred window of `width` frames (edges use the frames available)."""
    if width <= 1 or len(decisions) == 0:
        return decisions
    half = width // 2
    cumulative = np.concatenate([[0], np.cumsum(decisions.astype(np.int64))])
    idx = np.arange(len(decisions))
    lo, hi = np.maximum(idx - half, 0), np.minimum(idx + half + 1, len(decisions))
    votes = cumulative[hi] - cumulative[lo]
    return 2 * votes > (hi - lo)


@dataclass
class VadResult:
    speech: np.ndarray       # (frames,) bool, after smoothing
    log_energy: np.ndarray   # (frames,) dB re. full scale
    nccf: np.ndarray         # (frames,) NCCF peak in the pitch range
    energetic: np.ndarray    # (frames,) bool, the energy test alone
    voiced: np.ndarray       # (frames,) bool, the voicing test alone


def detect_speech(samples: np.ndarray, frame_opts: FrameOptions, vad_opts: VadOptions) -> VadResult:
    """Runs the detector on int16-scale samples; one decision per feature frame."""
    samples = np.asarray(samples, dtype=np.float64)
    n = num_frames(len(samples), frame_opts)
    rate = frame_opts.sample_frequency
    size = frame_opts.window_size
    min_lag = max(1, int(np.floor(rate / vad_opts.max_f0)))
    max_lag = int(np.ceil(rate / vad_opts.min_f0))
    if n == 0:
        empty = np.zeros(0)
        return VadResult(empty.astype(bool), empty, empty, empty.astype(bool), empty.astype(bool))
    starts = _frame_starts(n, frame_opts)
    segments = _gather(samples, starts, size + max_lag)
    log_energy = frame_log_energy(segments[:, :size])
    reference = np.percentile(log_energy, vad_opts.energy_percentile)
    energetic = (log_energy >= reference - vad_opts.energy_threshold_db) \
        & (log_energy >= vad_opts.energy_floor_db)
    ballast_power = (10 ** (vad_opts.nccf_ballast_db / 10)) * INT16_FULL_SCALE ** 2 * size
    nccf = nccf_peak(segments, size, min_lag, max_lag, ballast_power ** 2)
    voiced = nccf >= vad_opts.nccf_threshold
    speech = _smooth(energetic & voiced, vad_opts.smooth_frames)
    return VadResult(speech, log_energy, nccf, energetic, voiced)


def frame_targets(emotion: str, speech: np.ndarray) -> np.ndarray:
    """Per-frame class ids: the emotion's id where speech, sil elsewhere (int32)."""
    if emotion not in EMOTIONS:
        raise DataError(f"emotion {emotion!r} is not one of {', '.join(EMOTIONS)}")
    targets = np.full(len(speech), SIL_ID, dtype=np.int32)
    targets[speech] = EMOTIONS.index(emotion)
    return targets


def write_targets_meta(targets_dir: Path | str) -> None:
    """num_targets and classes.txt (`name id` per line) of a targets dir."""
    d = Path(targets_dir)
    d.mkdir(parents=True, exist_ok=True)
    (d / "num_targets").write_text(f"{len(CLASSES)}\n")
    (d / "classes.txt").write_text("".join(f"{c} {i}\n" for i, c in enumerate(CLASSES)))


def make_labels(data_dir: Path | str, fbank_conf: Path | str, vad_conf: Path | str, ark: Path | str,
                scp: Path | str) -> dict[str, tuple[int, int]]:
    """Targets of every utterance of data_dir into ark+scp; returns {utt: (sil frames, frames)}."""
    import kaldiio
    from pyscripts.kaldi.audio import read_audio
    d = Path(data_dir)
    frame_opts, vad_opts = read_frame_options(fbank_conf), read_vad_options(vad_conf)
    wavs, utt2emo = read_table(d / "wav.scp"), read_table(d / "utt2emo")
    utt2num_frames = read_table(d / "utt2num_frames") if (d / "utt2num_frames").is_file() else None
    if utt2num_frames is None:
        raise DataError(f"{d / 'utt2num_frames'}: missing; compute the fbank features first "
                        f"(steps/make_fbank.sh), the labels must match their frames")
    counts, no_speech = {}, []
    with kaldiio.WriteHelper(f"ark,scp:{ark},{scp}") as writer:
        for utt, entry in wavs.items():
            if utt not in utt2emo:
                raise DataError(f"{d / 'utt2emo'}: no emotion for utterance {utt}")
            rate, samples = read_audio(entry)
            if rate != frame_opts.sample_frequency:
                raise DataError(f"{d / 'wav.scp'}: utterance {utt} has sample rate {rate} Hz but "
                                f"{fbank_conf} says {frame_opts.sample_frequency:g} Hz")
            result = detect_speech(samples, frame_opts, vad_opts)
            expected = int(utt2num_frames[utt])
            if len(result.speech) != expected:
                raise DataError(f"utterance {utt}: the detector made {len(result.speech)} frames but "
                                f"{d / 'utt2num_frames'} says {expected}; were the features computed "
                                f"with another frame conf than {fbank_conf}? Recompute them")
            targets = frame_targets(utt2emo[utt], result.speech)
            sil = int((targets == SIL_ID).sum())
            if sil == len(targets):
                no_speech.append(utt)
                log.warning("%s: no voiced speech frame; all %d frames stay sil (decisions on it "
                            "will use all frames)", utt, len(targets))
            log.info("%s %s: %d of %d frames sil (%.1f%%)", utt, utt2emo[utt], sil, len(targets),
                     100.0 * sil / max(len(targets), 1))
            writer(utt, targets)
            counts[utt] = (sil, len(targets))
    total_sil = sum(s for s, _ in counts.values())
    total = sum(n for _, n in counts.values())
    log.info("%s: %d utterances, %d of %d frames sil (%.1f%%); %d utterances without any speech "
             "frame", data_dir, len(counts), total_sil, total, 100.0 * total_sil / max(total, 1),
             len(no_speech))
    return counts


def subset_targets(targets_dir: Path | str, data_dir: Path | str, out_dir: Path | str) -> int:
    """A targets dir with the entries of data_dir's utterances only (a fold's train/valid/test)."""
    src, out = Path(targets_dir), Path(out_dir)
    scp = read_table(src / "targets.scp")
    utts = read_table(Path(data_dir) / "utt2spk")
    missing = [u for u in utts if u not in scp]
    if missing:
        raise DataError(f"{src / 'targets.scp'}: no targets for {len(missing)} utterance(s) of {data_dir} "
                        f"(e.g. {missing[0]}); re-run local/ser_frame_labels.sh on the full data dir")
    out.mkdir(parents=True, exist_ok=True)
    write_table(out / "targets.scp", {u: scp[u] for u in utts})
    for name in ("num_targets", "classes.txt"):
        (out / name).write_bytes((src / name).read_bytes())
    return len(utts)


def summarise_targets(targets_dir: Path | str) -> tuple[Any, float]:
    """Frame counts per class and sil share per utterance of a targets dir; writes
    class_counts (`class frames`) and utt2sil_share, returns (class counts, sil share overall)."""
    import kaldiio
    d = Path(targets_dir)
    counts = np.zeros(len(CLASSES), dtype=np.int64)
    shares, no_speech = {}, 0
    for utt, targets in kaldiio.load_scp_sequential(str(d / "targets.scp")):
        c = np.bincount(targets, minlength=len(CLASSES))
        counts += c
        shares[utt] = f"{c[SIL_ID] / max(len(targets), 1):.4f}"
        no_speech += int(c[SIL_ID] == len(targets))
    if not shares:
        raise DataError(f"{d / 'targets.scp'}: empty")
    write_table(d / "utt2sil_share", shares)
    (d / "class_counts").write_text("".join(f"{c} {n}\n" for c, n in zip(CLASSES, counts)))
    share = counts[SIL_ID] / counts.sum()
    log.info("%s: %d utterances, %d frames; per class %s; sil share %.1f%%; %d utterances without "
             "speech frames", d, len(shares), counts.sum(),
             " ".join(f"{c}={n}" for c, n in zip(CLASSES, counts)), 100 * share, no_speech)
    return counts, share


@cli_main
def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="cmd", required=True)
    m = sub.add_parser("make", help="frame targets of a data dir (wav.scp, utt2emo, utt2num_frames)")
    m.add_argument("--fbank-config", default="conf/fbank.conf", help="framing of the features")
    m.add_argument("--vad-config", default="conf/vad.conf", help="detector options")
    m.add_argument("--summary", help="also write the counts here, key=value lines: utterances, frames, "
                                     "sil_frames, no_speech (utterances without any speech frame)")
    m.add_argument("data_dir")
    m.add_argument("ark")
    m.add_argument("scp")
    t = sub.add_parser("meta", help="write num_targets and classes.txt into a targets dir")
    t.add_argument("targets_dir")
    s = sub.add_parser("summary", help="class frame counts and sil share of a targets dir")
    s.add_argument("targets_dir")
    f = sub.add_parser("subset-folds", help="targets of every fold's train/valid/test data dirs")
    f.add_argument("targets_dir", help="targets of the full data dir, e.g. exp/ser/targets/all")
    f.add_argument("folds_data_dir", help="FOLDS_DATA_DIR/plan and fold<k>/{train,valid,test}")
    f.add_argument("out_dir", help="writes OUT_DIR/fold<k>/{train,valid,test}")
    args = parser.parse_args()
    if args.cmd == "make":
        counts = make_labels(args.data_dir, args.fbank_config, args.vad_config, args.ark, args.scp)
        if args.summary:
            summary = {"utterances": len(counts), "frames": sum(n for _, n in counts.values()),
                       "sil_frames": sum(s for s, _ in counts.values()),
                       "no_speech": sum(s == n for s, n in counts.values())}
            Path(args.summary).write_text("".join(f"{k}={v}\n" for k, v in summary.items()))
    elif args.cmd == "meta":
        write_targets_meta(args.targets_dir)
    elif args.cmd == "subset-folds":
        folds = Path(args.folds_data_dir)
        for fold in read_table(folds / "plan"):
            for subset in FOLD_SUBSETS:
                n = subset_targets(args.targets_dir, folds / fold / subset, Path(args.out_dir) / fold / subset)
                log.info("%s/%s: targets of %d utterances", fold, subset, n)
    else:
        counts, share = summarise_targets(args.targets_dir)
        print(" ".join(f"{c}={n}" for c, n in zip(CLASSES, counts)) + f" sil_share={share:.4f}")


if __name__ == "__main__":
    main()
