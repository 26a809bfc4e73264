"""Kaldi features in Python: fbank and MFCC with kaldi-native-fbank from a Kaldi-style conf file
(compute-fbank-feats / compute-mfcc-feats), CMVN statistics (compute-cmvn-stats), and applying
CMVN and deltas (apply-cmvn, add-deltas)."""
import argparse
import logging
from pathlib import Path
from typing import Any, Iterable

import kaldiio
import numpy as np

from pyscripts.kaldi.audio import read_audio, read_audio_as
from pyscripts.kaldi.datadir import feature_conf, read_list_table, read_table, write_table
from pyscripts.errors import DataError, check_finite, cli_main
from pyscripts.kaldi.tables import conf_bool, read_kaldi_conf

FRAME_SHIFT = 0.01  # seconds between frames: conf/fbank.conf and conf/mfcc.conf (Kaldi's default)

log = logging.getLogger(__name__)

# Kaldi option name -> (options sub-object or "" for top level, attribute, type).
_FRAME = {
    "sample-frequency": ("samp_freq", float), "frame-shift": ("frame_shift_ms", float),
    "frame-length": ("frame_length_ms", float), "dither": ("dither", float),
    "preemphasis-coefficient": ("preemph_coeff", float), "remove-dc-offset": ("remove_dc_offset", bool),
    "window-type": ("window_type", str), "round-to-power-of-two": ("round_to_power_of_two", bool),
    "blackman-coeff": ("blackman_coeff", float), "snip-edges": ("snip_edges", bool),
}
_MEL = {"num-mel-bins": ("num_bins", int), "low-freq": ("low_freq", float),
        "high-freq": ("high_freq", float)}
_TOP = {"use-energy": ("use_energy", bool), "energy-floor": ("energy_floor", float),
        "raw-energy": ("raw_energy", bool), "htk-compat": ("htk_compat", bool),
        "use-log-fbank": ("use_log_fbank", bool), "use-power": ("use_power", bool),
        "num-ceps": ("num_ceps", int), "cepstral-lifter": ("cepstral_lifter", float)}


def _parse_value(conf, name, text, kind):
    if kind is bool:
        return conf_bool(conf, name, text)
    try:
        return kind(text)
    except ValueError:
        raise DataError(f"{conf}: --{name}={text} is not a valid {kind.__name__}") from None


def make_options(kind: str, conf_path: Path | str) -> Any:
    """kaldi-native-fbank options for kind 'fbank' or 'mfcc' from a Kaldi conf file."""
    return options_from(kind, read_kaldi_conf(conf_path), conf_path)


def options_from(kind: str, items: dict[str, str], conf_path: Path | str) -> Any:
    """kaldi-native-fbank options of kind 'fbank' or 'mfcc' from {option name: value text}; conf_path
    names where they come from, in errors."""
    import kaldi_native_fbank as knf
    opts = knf.FbankOptions() if kind == "fbank" else knf.MfccOptions()
    for name, text in items.items():
        for table, target in ((_FRAME, opts.frame_opts), (_MEL, opts.mel_opts), (_TOP, opts)):
            if name in table:
                attr, typ = table[name]
                if not hasattr(target, attr):
                    raise DataError(f"{conf_path}: option --{name} does not apply to {kind}")
                setattr(target, attr, _parse_value(conf_path, name, text, typ))
                break
        else:
            raise DataError(f"{conf_path}: unknown option --{name} for {kind} features")
    return opts


def feature_record(conf_path: Path | str, kind: str) -> dict[str, Any]:
    """What a model keeps of the features it was trained on: {"kind", "options": {name: value text},
    "conf": the file they were read from}."""
    return {"kind": kind, "options": read_kaldi_conf(conf_path), "conf": str(conf_path)}


def data_feature_record(data_dir: Path | str) -> dict[str, Any] | None:
    """feature_record of a data dir's features (its conf/KIND.conf), or None when it does not record them."""
    conf = feature_conf(data_dir)
    return None if conf is None else feature_record(conf, conf.stem)


def _effective(record):
    """{option: value} of every option of the record's kind, defaults included, so that a conf that
    leaves out an option equals one that sets it to its default."""
    opts = options_from(record["kind"], record["options"], record["conf"])
    values = {}
    for table, target in ((_FRAME, opts.frame_opts), (_MEL, opts.mel_opts), (_TOP, opts)):
        for name, (attr, _) in table.items():
            if hasattr(target, attr):
                values[name] = getattr(target, attr)
    return values


def feature_differences(a: dict[str, Any], b: dict[str, Any]) -> list[str]:
    """How the features of records a and b differ, e.g. ['--num-mel-bins=40 vs 23'] (a's value first);
    [] when they are the same features."""
    if a["kind"] != b["kind"]:
        return [f"{a['kind']} vs {b['kind']} features"]
    va, vb = _effective(a), _effective(b)
    return [f"--{name}={_text(va[name])} vs {_text(vb[name])}" for name in va if va[name] != vb[name]]


def _text(value):
    return str(value).lower() if isinstance(value, bool) else f"{value:g}" if isinstance(value, float) else str(value)


def compute_features(kind: str, opts: Any, samples: np.ndarray) -> np.ndarray:
    """Feature matrix (frames x dim, float32) of int16-scale samples, as Kaldi computes it."""
    import kaldi_native_fbank as knf
    extractor = knf.OnlineFbank(opts) if kind == "fbank" else knf.OnlineMfcc(opts)
    extractor.accept_waveform(opts.frame_opts.samp_freq, samples.astype(np.float32).tolist())
    extractor.input_finished()
    n = extractor.num_frames_ready
    if n == 0:  # shorter than one window: an empty (0, dim) matrix, for the caller to name the file
        return np.zeros((0, extractor.dim), dtype=np.float32)
    return np.array([extractor.get_frame(i) for i in range(n)], dtype=np.float32)


def window_samples(opts: Any) -> int:
    """Samples of one analysis window (--frame-length at --sample-frequency): fewer give no frame."""
    return int(opts.frame_opts.samp_freq * opts.frame_opts.frame_length_ms / 1000)


def too_short_message(num_samples: int, opts: Any) -> str:
    """Why a signal of num_samples gives no frame: its duration against one window's."""
    rate = opts.frame_opts.samp_freq
    return (f"too short: {num_samples} samples ({num_samples / rate:.3f} s) at {rate:g} Hz, shorter than one "
            f"{opts.frame_opts.frame_length_ms / 1000:.3f} s analysis window ({window_samples(opts)} samples)")


def wav_features(wav: Path | str, conf: Path | str, kind: str = "fbank") -> tuple[np.ndarray, np.ndarray]:
    """(samples, features) of one audio file for inference, with the options of `conf`. A file at
    another sample rate or with several channels is converted to the rate of `conf`, mono, saying so."""
    opts = make_options(kind, conf)
    samples = read_audio_as(wav, opts.frame_opts.samp_freq)
    feats = compute_features(kind, opts, samples)
    if len(feats) == 0:
        raise DataError(f"{wav}: {too_short_message(len(samples), opts)}")
    return samples, check_finite(feats, f"{wav}: features")


def make_feats(kind: str, conf: Path | str, data_dir: Path | str, ark: Path | str, scp: Path | str) -> dict[str, str]:
    """Computes features for every utterance of data_dir/wav.scp into ark + scp (and num frames)."""
    opts = make_options(kind, conf)
    wav_scp = Path(data_dir) / "wav.scp"
    if (Path(data_dir) / "segments").is_file():
        raise DataError(f"{data_dir}/segments: segmented recordings are not supported by the embedded "
                        "backend; give one wav per utterance or use Kaldi (KALDI_ROOT)")
    wavs = read_table(wav_scp)
    rate = opts.frame_opts.samp_freq
    num_frames = {}
    with kaldiio.WriteHelper(f"ark,scp:{ark},{scp}") as writer:
        for i, (utt, entry) in enumerate(wavs.items()):
            utt_rate, samples = read_audio(entry)
            if utt_rate != rate:
                raise DataError(f"{wav_scp}: utterance {utt} has sample rate {utt_rate} Hz but {conf} "
                                f"says {rate:g} Hz; resample the audio (sox -R in.wav -r {rate:g} out.wav)")
            feats = compute_features(kind, opts, samples)
            if len(feats) == 0:
                raise DataError(f"{wav_scp}: utterance {utt} is {too_short_message(len(samples), opts)}; "
                                "remove it from the data dir (or its recording is damaged)")
            writer(utt, check_finite(feats, f"{wav_scp}: features of utterance {utt}"))
            num_frames[utt] = str(len(feats))
            if (i + 1) % 100 == 0:
                log.info("%d/%d utterances", i + 1, len(wavs))
    log.info("computed %s for %d utterances, %d frames", kind, len(wavs),
             sum(int(v) for v in num_frames.values()))
    return num_frames


def accumulate_cmvn(matrices: Iterable[np.ndarray]) -> np.ndarray:
    """Kaldi CMVN stats (2 x dim+1, float64): row 0 sums and frame count, row 1 sums of squares."""
    stats = None
    for m in matrices:
        m = np.asarray(m, dtype=np.float64)
        if stats is None:
            stats = np.zeros((2, m.shape[1] + 1))
        stats[0, :-1] += m.sum(axis=0)
        stats[1, :-1] += (m * m).sum(axis=0)
        stats[0, -1] += len(m)
    if stats is None:
        raise DataError("no features to accumulate CMVN statistics over")
    return stats


def cmvn_mean_std(stats: np.ndarray, floor: float = 1e-10) -> tuple[np.ndarray, np.ndarray]:
    """Mean and standard deviation (variance floored at `floor`) from Kaldi CMVN stats; the one rule
    for apply-cmvn here and for the ConvNet's input normalisation (--cmvn-stats)."""
    count = stats[0, -1]
    mean = stats[0, :-1] / count
    var = np.maximum(stats[1, :-1] / count - mean * mean, floor)
    return mean, np.sqrt(var)


def apply_cmvn(feats: np.ndarray, stats: np.ndarray, norm_vars: bool = False) -> np.ndarray:
    """apply-cmvn: subtract the mean (and divide by the std when norm_vars)."""
    mean, std = cmvn_mean_std(stats)
    out = feats - mean
    return (out / std if norm_vars else out).astype(np.float32)


def add_deltas(feats: np.ndarray, order: int = 2, window: int = 2) -> np.ndarray:
    """add-deltas: appends delta features up to `order`. As in Kaldi, the order-k filter is the
    order-(k-1) filter convolved with the regression window over +-window frames, and it is applied to
    the input frames with the first and last frame repeated at the edges."""
    feats = np.asarray(feats, dtype=np.float32)
    n = len(feats)
    regression = np.arange(-window, window + 1) / (2 * sum(k * k for k in range(1, window + 1)))
    out, filt = [feats], np.ones(1)
    for _ in range(order):
        filt = np.convolve(filt, regression)
        half = len(filt) // 2
        idx = np.clip(np.arange(n)[:, None] + np.arange(-half, half + 1)[None, :], 0, n - 1)
        # filt[j] weighs frame t + j - half.
        out.append(np.einsum("tjd,j->td", feats[idx], filt).astype(np.float32))
    return np.concatenate(out, axis=1)


def compute_cmvn_stats(data_dir: Path | str, out: Path | str, per_speaker: bool) -> None:
    """Global stats of all utterances into a matrix file, or per-speaker stats into ark+scp."""
    d = Path(data_dir)
    table = kaldiio.load_scp(str(d / "feats.scp"))

    def feats(utt):  # one NaN would make the whole set's statistics NaN
        return check_finite(table[utt], f"{d / 'feats.scp'}: utterance {utt}")
    if per_speaker:
        spk2utt = read_list_table(d / "spk2utt")
        with kaldiio.WriteHelper(f"ark,scp:{out}.ark,{out}.scp") as writer:
            for spk, utts in spk2utt.items():
                writer(spk, accumulate_cmvn(feats(u) for u in utts))
    else:
        kaldiio.save_mat(str(out), accumulate_cmvn(feats(u) for u in table))


@cli_main
def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    sub = parser.add_subparsers(dest="cmd", required=True)
    c = sub.add_parser("compute", help="features of a data dir's wav.scp into an ark and scp")
    c.add_argument("--kind", choices=("fbank", "mfcc"), required=True)
    c.add_argument("--config", required=True, help="Kaldi-style conf file (conf/fbank.conf)")
    c.add_argument("--num-frames-out", help="write utt2num_frames here")
    c.add_argument("data_dir")
    c.add_argument("ark")
    c.add_argument("scp")
    s = sub.add_parser("cmvn", help="CMVN statistics of a data dir's feats.scp")
    s.add_argument("--per-speaker", action="store_true",
                   help="per-speaker stats into OUT.ark/OUT.scp; otherwise global stats into OUT")
    s.add_argument("data_dir")
    s.add_argument("out")
    args = parser.parse_args()
    if args.cmd == "compute":
        num_frames = make_feats(args.kind, args.config, args.data_dir, args.ark, args.scp)
        if args.num_frames_out:
            write_table(args.num_frames_out, num_frames)
    else:
        compute_cmvn_stats(args.data_dir, args.out, args.per_speaker)


if __name__ == "__main__":
    main()
