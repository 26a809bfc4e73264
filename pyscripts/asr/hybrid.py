"""Hybrid ConvNet-HMM: network log-posteriors to scaled pseudo log-likelihoods, FER, RTF.

A hybrid system decodes with p(x|s) / p(x) = p(s|x) / p(s): the log-likelihood of pdf s at a frame is
the network's log-posterior minus the log prior of s (prior_scale * log p(s), prior_scale 1 by
default). The priors are the relative frame counts of the pdfs in the training alignments (Kaldi's
ali_train_pdf.counts; here `prior_counts` beside final.pt or inside it, or any Kaldi text vector).

Floor for unseen pdfs: a pdf whose relative count is below --prior-floor (default 1e-10, i.e. never
seen in the alignments) gets log prior log(FLT_MAX / total count), about 88.7 - log(total), so its
pseudo log-likelihood lies some 80 nats below its log-posterior: the network was never trained to
predict it, and dividing its tiny posterior by a tiny (or pseudo-count) prior would otherwise let it
win on noise. Kaldi nnet1's PdfPrior goes further and makes such pdfs impossible (log-likelihood
-FLT_MAX/2); here the penalty stays finite, so a path through such a pdf is only very unlikely and
no infinity reaches the decoder or the lattices.

The pseudo log-likelihoods are written as a Kaldi float-matrix archive (loglikes.JOB.ark), the input
of Kaldi's latgen-faster-mapped and of pyscripts.asr.decode.

Command line:
  python3 -m pyscripts.asr.hybrid loglikes [opts] MODEL FEATS_SCP LOGLIKES_ARK
  python3 -m pyscripts.asr.hybrid fer DECODE_DIR TARGETS_DIR
  python3 -m pyscripts.asr.hybrid rtf DECODE_DIR
"""
import argparse
import logging
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import kaldiio
import numpy as np

from pyscripts.errors import DataError, check_finite, cli_main
from pyscripts.kaldi.features import FRAME_SHIFT, data_feature_record
from pyscripts.kaldi.tables import read_kaldi_vector, write_kaldi_vector
from pyscripts.asr.utt_errors import FER_BY_UTT, write_by_utt

log = logging.getLogger(__name__)

FLT_MAX = float(np.finfo(np.float32).max)
DEFAULT_PRIOR_FLOOR = 1e-10


# -- priors ---------------------------------------------------------------------------------------
def find_prior_counts(model_path: Path | str, prior_counts: Path | str | None = None) -> tuple[np.ndarray, str]:
    """(counts, where they came from): an explicit file, else `prior_counts` beside the model, else
    the counts stored in the model package."""
    if prior_counts:
        return read_kaldi_vector(prior_counts), str(prior_counts)
    beside = Path(model_path).parent / "prior_counts"
    if beside.is_file():
        return read_kaldi_vector(beside), str(beside)
    from pyscripts.nnet.model import load_package
    _, package = load_package(str(model_path))
    counts = package.get("prior_counts")
    if counts is None:
        raise DataError(f"{model_path}: no prior counts in the model and no {beside}; pass "
                        "--prior-counts (e.g. the targets dir's pdf_counts)")
    return np.asarray(counts, dtype=np.float64), f"{model_path} (prior_counts)"


def log_priors_from_counts(counts: np.ndarray, prior_floor: float = DEFAULT_PRIOR_FLOOR) -> tuple[np.ndarray, int]:
    """log p(s) from frame counts; pdfs below the floor get log(FLT_MAX / total) (see the module doc).
    The one prior rule of hybrid decoding (decode stage and pyscripts.infer alike).
    Returns (log priors float64, number of floored pdfs)."""
    counts = np.asarray(counts, dtype=np.float64)
    if counts.ndim != 1 or len(counts) == 0 or (counts < 0).any():
        raise DataError("prior counts must be a non-empty vector of non-negative counts")
    total = counts.sum()
    if total <= 0:
        raise DataError("prior counts sum to zero: the alignments had no frames")
    rel = counts / total
    floored = rel < prior_floor
    log_priors = np.where(floored, math.log(FLT_MAX / total), np.log(np.maximum(rel, 1e-300)))
    return log_priors, int(floored.sum())


def pseudo_loglikes(log_post: np.ndarray, log_priors: np.ndarray, prior_scale: float = 1.0) -> np.ndarray:
    """Scaled pseudo log-likelihoods: log p(s|x) - prior_scale * log p(s), float32."""
    log_post = np.asarray(log_post)
    if log_post.ndim != 2 or log_post.shape[1] != len(log_priors):
        raise DataError(f"log-posteriors of shape {log_post.shape} but {len(log_priors)} priors: the "
                        "prior counts do not belong to this model")
    return (log_post - prior_scale * np.asarray(log_priors)[None, :]).astype(np.float32)


# -- forward pass ---------------------------------------------------------------------------------
@dataclass
class ForwardOptions:
    """How the network runs, and which priors turn its posteriors into pseudo log-likelihoods."""
    prior_counts: str | None = None  # Kaldi text vector; None: prior_counts beside the model, else inside it
    prior_scale: float = 1.0
    prior_floor: float = DEFAULT_PRIOR_FLOOR
    device: str = "cpu"      # cpu | cuda | auto; decoding runs on CPUs unless told otherwise
    num_threads: int = 1
    batch_size: int = 0      # frames per forward batch; 0: the device's default (pyscripts.nnet.forward.infer_batch)


def device_label(device: Any) -> str:
    """'cpu', or 'cuda:0 (NVIDIA H100 80GB HBM3)': the device a forward pass ran on, for the RTF."""
    import torch
    device = torch.device(device)
    if device.type != "cuda":
        return device.type
    index = torch.cuda.current_device() if device.index is None else device.index
    return f"cuda:{index} ({torch.cuda.get_device_name(index)})"


def compute_loglikes(model_path: Path | str, feats_scp: Path | str, out_ark: Path | str,
                     opts: ForwardOptions = ForwardOptions(), log_priors_out: Path | str | None = None,
                     timing_out: Path | str | None = None) -> tuple[int, float]:
    """Runs the network over FEATS_SCP and writes pseudo log-likelihoods to OUT_ARK (+ .scp)."""
    import torch
    from pyscripts.nnet.forward import check_trained_features, load_model, log_posteriors
    prior_counts, prior_scale, prior_floor = opts.prior_counts, opts.prior_scale, opts.prior_floor
    device, num_threads, batch_size = opts.device, opts.num_threads, opts.batch_size
    if num_threads > 0:
        torch.set_num_threads(num_threads)
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    counts, source = find_prior_counts(model_path, prior_counts)
    log_priors, n_floored = log_priors_from_counts(counts, prior_floor)
    model = load_model(str(model_path), device)
    if model.num_targets != len(log_priors):
        raise DataError(f"{source}: {len(log_priors)} prior counts but {model_path} has "
                        f"{model.num_targets} outputs")
    log.info("priors from %s: %d pdfs, %d unseen (floored), prior scale %g; device %s, %d threads",
             source, len(log_priors), n_floored, prior_scale, device, torch.get_num_threads())
    scaled_log_priors = prior_scale * log_priors
    if log_priors_out:
        write_kaldi_vector(log_priors_out, scaled_log_priors)
    if not Path(feats_scp).is_file():
        raise DataError(f"{feats_scp}: not found; compute features first")
    check_trained_features(model, model_path, data_feature_record(Path(feats_scp).parent),
                           "make this data dir's features with the options the model was trained on "
                           "(steps/make_fbank.sh --config FILE), or decode with a model trained on these")
    out_ark = Path(out_ark)
    out_ark.parent.mkdir(parents=True, exist_ok=True)
    frames = utts = 0
    seconds = 0.0
    with kaldiio.WriteHelper(f"ark,scp:{out_ark},{out_ark.with_suffix('.scp')}") as writer:
        for utt, feats in kaldiio.load_scp_sequential(str(feats_scp)):
            check_finite(feats, f"{feats_scp}: utterance {utt}")
            start = time.perf_counter()
            try:
                log_post = log_posteriors(model_path, feats, batch_size=batch_size or None, device=device)
            except ValueError as err:
                raise DataError(f"{feats_scp}: utterance {utt}: {err}") from None
            check_finite(log_post, f"{model_path}: log-posteriors of utterance {utt} of {feats_scp} (a "
                         "model with NaN weights?)")
            if device == "cuda":
                torch.cuda.synchronize()
            seconds += time.perf_counter() - start
            writer(utt, pseudo_loglikes(log_post, log_priors, prior_scale))
            frames += len(feats)
            utts += 1
    if utts == 0:
        raise DataError(f"{feats_scp}: no utterances")
    rtf = seconds / (frames * FRAME_SHIFT)
    where = device_label(device)
    log.info("forward: %d utterances, %d frames in %.2f s: RTF %.4f (%d threads, %s)", utts, frames,
             seconds, rtf, torch.get_num_threads(), where)
    if timing_out:
        Path(timing_out).parent.mkdir(parents=True, exist_ok=True)
        # device last: its value may hold spaces (read_timing)
        Path(timing_out).write_text(f"frames={frames} seconds={seconds:.4f} utts={utts} "
                                    f"threads={torch.get_num_threads()} device={where}\n")
    return frames, seconds


# -- frame error rate -----------------------------------------------------------------------------
def frame_errors(loglikes: np.ndarray, log_priors: np.ndarray, targets: np.ndarray, utt: str = "?") -> tuple[int, int]:
    """(errors, frames) of the network's frame decisions: argmax of the posteriors, recovered from
    the pseudo log-likelihoods by adding the (scaled) log priors back."""
    if len(loglikes) != len(targets):
        raise DataError(f"utterance {utt}: {len(loglikes)} frames of log-likelihoods but {len(targets)} "
                        "frame targets; the targets come from other features")
    decisions = np.argmax(np.asarray(loglikes, dtype=np.float64) + log_priors[None, :], axis=1)
    return int((decisions != np.asarray(targets)).sum()), len(targets)


def loglike_arks(decode_dir: Path | str) -> list[Path]:
    arks = sorted(Path(decode_dir).glob("loglikes.*.ark"), key=lambda p: int(p.name.split(".")[1]))
    if not arks:
        raise DataError(f"{decode_dir}: no loglikes.*.ark; run the forward pass first")
    return arks


def compute_fer(decode_dir: Path | str, targets_dir: Path | str) -> float:
    """FER of the network alone over the decode dir's utterances against a targets dir (pdf ids from
    an alignment). Writes DECODE_DIR/scoring/fer, and scoring/fer_by_utt (`utt frame_errors frames`,
    for the confidence intervals of pyscripts/stats.py); utterances without targets are counted, not hidden."""
    decode_dir, targets_dir = Path(decode_dir), Path(targets_dir)
    log_priors = read_kaldi_vector(decode_dir / "log_priors")
    targets_scp = targets_dir / "targets.scp"
    if not targets_scp.is_file():
        raise DataError(f"{targets_scp}: not found; make a targets dir from this set's alignment "
                        "(python3 -m pyscripts.asr.alignments to-targets ALI_DIR DATA_DIR TARGETS_DIR)")
    targets = kaldiio.load_scp(str(targets_scp))
    errors = frames = utts = missing = 0
    by_utt = {}
    for ark in loglike_arks(decode_dir):
        for utt, loglikes in kaldiio.load_ark(str(ark)):
            if utt not in targets:
                missing += 1
                continue
            if loglikes.shape[1] != len(log_priors):
                raise DataError(f"{ark}: utterance {utt} has {loglikes.shape[1]} columns, "
                                f"{decode_dir}/log_priors has {len(log_priors)}")
            e, n = frame_errors(loglikes, log_priors, targets[utt], utt)
            errors, frames, utts = errors + e, frames + n, utts + 1
            by_utt[utt] = (e, n)
    if utts == 0:
        raise DataError(f"{targets_scp}: none of the utterances of {decode_dir} has targets")
    if missing:
        log.warning("%d utterances of %s have no targets in %s (not aligned) and are not in the FER",
                    missing, decode_dir, targets_scp)
    fer = 100.0 * errors / frames
    line = (f"%FER {fer:.2f} [ {errors} / {frames} frames, {utts} utterances, {missing} without "
            f"targets ] {targets_dir}")
    (decode_dir / "scoring").mkdir(exist_ok=True)
    (decode_dir / "scoring" / "fer").write_text(line + "\n")
    write_by_utt(decode_dir / "scoring" / FER_BY_UTT, by_utt, "FER per utterance: utt frame_errors frames")
    log.info("%s", line)
    return fer


# -- real-time factors ----------------------------------------------------------------------------
def read_timing(path: Path | str) -> dict[str, Any]:
    """The `key=value` fields of a timing file; a word without '=' continues the value before it
    (device=cuda:0 (NVIDIA H100 80GB HBM3))."""
    fields, key = {}, None
    for word in Path(path).read_text().split():
        if "=" in word:
            key, value = word.split("=", 1)
            fields[key] = value
        elif key is not None:
            fields[key] += " " + word
    return {k: (float(v) if k in ("frames", "seconds", "utts", "threads", "nj") else v)
            for k, v in fields.items()}


TIMED_STAGES = ("forward", "decode")


def _stage_timing(timing_dir: Path, stage: str, audio: float) -> dict | None:
    """One timed stage: the jobs' summed seconds and the wall clock of the parallel jobs, per second of
    audio; None when the stage left no timing file."""
    jobs = [read_timing(p) for p in sorted(timing_dir.glob(f"{stage}.*[0-9]"))]
    wall_path = timing_dir / f"{stage}.wall"
    if not jobs and not wall_path.is_file():
        return None
    record: dict[str, Any] = {"label": None, "rtf": None, "wall_rtf": None, "nj": None, "devices": [], "threads": []}
    if jobs:
        threads = sorted({int(job.get("threads", 1)) for job in jobs})
        devices = sorted({job.get("device", "cpu") for job in jobs})
        if len(devices) > 1:
            label = "mixed-device"
        elif devices[0] != "cpu":
            label = "1-gpu"
        else:
            label = f"{threads[0]}-thread" if len(threads) == 1 else "mixed-thread"
        record.update(label=label, rtf=float(f"{sum(job['seconds'] for job in jobs) / audio:.4f}"),
                      devices=devices, threads=threads)
    if wall_path.is_file():
        wall = read_timing(wall_path)
        record.update(wall_rtf=float(f"{wall['seconds'] / audio:.4f}"), nj=int(wall["nj"]))
    return record


def timing_record(decode_dir: Path | str) -> dict | None:
    """{audio_seconds, forward, decode}: the real-time factors of DECODE_DIR/timing/ per stage
    (_stage_timing), or None without timing files."""
    timing_dir = Path(decode_dir) / "timing"
    frames = next((sum(read_timing(p)["frames"] for p in paths) for paths in
                   (sorted(timing_dir.glob(f"{stage}.*[0-9]")) for stage in TIMED_STAGES) if paths), None)
    if frames is None:
        return None
    audio = frames * FRAME_SHIFT
    return {"audio_seconds": round(audio, 3), **{stage: _stage_timing(timing_dir, stage, audio)
                                                  for stage in TIMED_STAGES}}


def summarize_rtf(decode_dir: Path | str) -> None:
    """DECODE_DIR/rtf from timing/ (timing_record): per stage, the RTF of the work itself (seconds summed
    over the jobs, over the audio duration: the RTF of one process with the jobs' thread count, `1-thread`
    for the default single-threaded jobs, `1-gpu` for jobs that ran on a GPU) and the wall-clock RTF
    of the nj parallel jobs, measured by steps/decode_hybrid.sh around the job runner (start-up and
    model loading included); then the device the jobs ran on (`; device=cpu threads=1`, `; device=cuda:0
    (NVIDIA H100 80GB HBM3) threads=1`; a timing file without one is from a CPU job)."""
    decode_dir = Path(decode_dir)
    record = timing_record(decode_dir)
    if record is None:
        raise DataError(f"{decode_dir / 'timing'}: no timing files")
    lines = []
    for stage in TIMED_STAGES:
        timing, parts, where = record[stage], [], ""
        if timing is None:
            continue
        if timing["rtf"] is not None:
            parts.append(f"RTF {timing['label']} {timing['rtf']:.4f}")
            where = f"; device={' + '.join(timing['devices'])} threads={','.join(map(str, timing['threads']))}"
        if timing["wall_rtf"] is not None:
            parts.append(f"RTF wall (nj={timing['nj']}) {timing['wall_rtf']:.4f}")
        lines.append(f"{stage}: audio {record['audio_seconds']:.1f} s, " + ", ".join(parts) + where)
    (decode_dir / "rtf").write_text("\n".join(lines) + "\n")
    for line in lines:
        log.info("%s", line)


@cli_main
def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="cmd", required=True)
    f = sub.add_parser("loglikes", help="network forward pass -> pseudo log-likelihood ark")
    f.add_argument("--prior-counts", help="Kaldi text vector of pdf frame counts (default: "
                   "prior_counts beside MODEL, else inside it)")
    defaults = ForwardOptions()
    f.add_argument("--prior-scale", type=float, default=defaults.prior_scale)
    f.add_argument("--prior-floor", type=float, default=defaults.prior_floor,
                   help="relative count below which a pdf counts as unseen")
    f.add_argument("--device", default=defaults.device, help="cpu | cuda | auto (default: %(default)s)")
    f.add_argument("--num-threads", type=int, default=defaults.num_threads,
                   help="torch CPU threads (0: torch's default)")
    f.add_argument("--batch-size", type=int, default=defaults.batch_size)
    f.add_argument("--write-log-priors", help="write the subtracted (scaled) log priors here")
    f.add_argument("--timing", help="write frames/seconds of the forward pass here")
    f.add_argument("model")
    f.add_argument("feats_scp")
    f.add_argument("loglikes_ark")
    e = sub.add_parser("fer", help="frame error rate of the network against alignment targets")
    e.add_argument("decode_dir")
    e.add_argument("targets_dir")
    r = sub.add_parser("rtf", help="summarise timing/ into DECODE_DIR/rtf")
    r.add_argument("decode_dir")
    args = parser.parse_args()
    if args.cmd == "loglikes":
        opts = ForwardOptions(args.prior_counts, args.prior_scale, args.prior_floor, args.device, args.num_threads,
                              args.batch_size)
        compute_loglikes(args.model, args.feats_scp, args.loglikes_ark, opts, args.write_log_priors, args.timing)
    elif args.cmd == "fer":
        compute_fer(args.decode_dir, args.targets_dir)
    else:
        summarize_rtf(args.decode_dir)


if __name__ == "__main__":
    main()
