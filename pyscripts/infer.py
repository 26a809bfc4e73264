"""Inference on audio files as users have them: emotion with a SER ConvNet, and phones with the hybrid
ConvNet-HMM beside it (the paper's first figure: one audio, two networks).

  python3 -m pyscripts.infer emotion --model S.pt [options] INPUT...
  python3 -m pyscripts.infer hybrid --asr-model A.pt --ser-model S.pt --graph-dir G [--trans-mdl M]
      [--acwt X] [--beam X] [--decode-config conf/decode.conf] [--tune-dir D] [--phone-map M] [options] INPUT...
  python3 -m pyscripts.infer hybrid --joint-model J.pt --graph-dir G [as above] INPUT...
      the joint ASR-SER ConvNet (pyscripts/nnet/joint.py): phones and emotion from the two output
      layers of one forward pass (the asr head's priors are the prior counts in J.pt)
  options: --format text|json|ctm (pyscripts/infer_output.py) --long-file SECONDS --fbank-config C
           --vad-config V --rule mean|vote

INPUT: an audio file (any rate, channels and format pyscripts/kaldi/audio.py read_audio_as reads: SPHERE,
RIFF wav, and with the soundfile package FLAC, OGG, MP3, A-law, ...), or `scp:FILE`, a Kaldi wav.scp
(`NAME PATH` or `NAME COMMAND |` per line), whose NAMEs name the results.

Per batch, once: the networks, the decoding graph (HCLG.fst), the transition model (final.mdl) and the
symbol tables. Per file, once: reading (and converting), the fbank features, the speech frames, and one
forward pass (hybrid: pyscripts.nnet.forward.SharedForward runs both networks on the same input windows).
Emotion: the speech-frame detector of the vad conf and the SER stages' utterance decision
(pyscripts/ser/evaluate.py). Phones: the ASR ConvNet's log-posteriors minus the log priors of its training
targets (pyscripts/asr/hybrid.py), HCLG decoding (pyscripts/asr/decode.py), 48 -> 39 folding with the
phone map; their times from the transition-ids of the best path. A file longer than --long-file seconds
(default 10) also gets the emotion of each speech segment: runs of speech frames, gaps up to
SEGMENT_GAP_SECONDS bridged, runs shorter than MIN_SEGMENT_SECONDS dropped.
Decoding settings: --acwt, else the acoustic scale the dev scoring chose (TUNE_DIR/scoring/result.json;
TUNE_DIR defaults to the ASR model's dir/decode_dev, the joint model's dir/asr/decode_dev), else the
decode conf's; --beam, else the decode conf's.

The options of --fbank-config must be those of the features the models were trained on (final.pt records
them; a model trained before they were recorded is run with a warning).
A file shorter than one analysis window, and one with no speech frame (no frame above the detector's
thresholds, e.g. digital silence), gets its own line (status too-short / no-speech) and no answer; the
batch goes on and they are not failures. A file that cannot be read is reported on stderr and skipped;
the run then fails at the end naming every such file.
"""
import argparse
import logging
import sys
from pathlib import Path

import numpy as np

from pyscripts.errors import DataError, check_finite, cli_main
from pyscripts.infer_output import FORMATS, NO_SPEECH, OK, TOO_SHORT, Emotion, FileResult, format_result
from pyscripts.kaldi.audio import read_audio_as
from pyscripts.kaldi.features import (FRAME_SHIFT, compute_features, feature_record, make_options,
                                      too_short_message)
from pyscripts.nnet.forward import check_trained_features, load_model, network_log_posteriors
from pyscripts.ser.evaluate import RULES, utterance_decision
from pyscripts.ser.labels import EMOTIONS, detect_speech, read_frame_options, read_vad_options

log = logging.getLogger(__name__)

LONG_FILE_SECONDS = 10.0     # files longer than this get the emotion of each speech segment
SEGMENT_GAP_SECONDS = 0.5    # non-speech gaps up to this long do not end a segment
MIN_SEGMENT_SECONDS = 0.2    # shorter runs of speech (clicks, a breath) are no segment
DEFAULT_DECODE_CONF = "conf/decode.conf"


# -- features ---------------------------------------------------------------------------------------
class FeatureFront:
    """Audio -> fbank features and speech frames, with the options read once per batch."""

    def __init__(self, fbank_conf, vad_conf):
        self.fbank_conf = fbank_conf
        self.opts = make_options("fbank", fbank_conf)
        self.frame_opts = read_frame_options(fbank_conf)
        self.vad_opts = read_vad_options(vad_conf)

    def samples(self, entry) -> np.ndarray:
        return read_audio_as(entry, self.opts.frame_opts.samp_freq)

    def features(self, name: str, samples: np.ndarray) -> np.ndarray:
        """(frames, dim) fbank; (0, dim) for a signal shorter than one window."""
        return check_finite(compute_features("fbank", self.opts, samples), f"{name}: features")

    def speech(self, name: str, samples: np.ndarray, feats: np.ndarray) -> np.ndarray:
        """The speech-frame mask of the SER stages' detector, one flag per feature frame."""
        vad = detect_speech(samples, self.frame_opts, self.vad_opts)
        if len(vad.speech) != len(feats):
            raise DataError(f"{name}: {len(feats)} feature frames but {len(vad.speech)} detector frames; "
                            f"{self.fbank_conf} has framing options the detector does not follow")
        return vad.speech

    def too_short(self, samples) -> str:
        return too_short_message(len(samples), self.opts)


def check_fbank_conf(model_path, fbank_conf, model=None):
    """The options of fbank_conf must be those the model was trained on (final.pt records them): other mel
    bins would fail on the input size, another window would give other posteriors without a word."""
    model = model if model is not None else load_model(str(model_path), "cpu")
    check_trained_features(model, model_path, feature_record(fbank_conf, "fbank"),
                           "give --fbank-config a conf with the options it was trained with")


# -- networks ---------------------------------------------------------------------------------------
class Networks:
    """The networks of a command, loaded and checked once: a SER model alone (emotion), an ASR and a SER
    model (hybrid) or one joint model. log_posteriors gives (ASR or None, SER) frame log-posteriors."""

    def __init__(self, fbank_conf, ser_model=None, asr_model=None, joint_model=None):
        for path, what in ((ser_model, "SER model; train the SER folds first (local/run_ser.sh)"),
                           (asr_model, "ASR model"), (joint_model, "joint model; train it first (local/run_joint.sh)")):
            if path and not Path(path).is_file():
                raise DataError(f"{path}: {what} not found")
        self.names = {"asr": asr_model or joint_model, "ser": ser_model or joint_model}
        self.joint = self.shared = None
        self.asr_prior_counts = None
        if joint_model:
            from pyscripts.nnet.joint import load_joint_model
            self.joint, prior_counts = load_joint_model(str(joint_model))
            check_fbank_conf(joint_model, fbank_conf, self.joint)
            self.asr_prior_counts = prior_counts["asr"]
            return
        self.ser = load_model(str(ser_model), "cpu")
        check_fbank_conf(ser_model, fbank_conf, self.ser)
        if asr_model:
            from pyscripts.asr.hybrid import find_prior_counts
            from pyscripts.nnet.forward import SharedForward
            asr = load_model(str(asr_model), "cpu")
            check_fbank_conf(asr_model, fbank_conf, asr)
            self.asr_prior_counts = find_prior_counts(asr_model)[0]
            self.shared = SharedForward([asr, self.ser])

    def log_posteriors(self, name: str, feats: np.ndarray) -> tuple:
        if self.joint is not None:
            out = network_log_posteriors(self.joint, feats)
            asr, ser = out["asr"], out["ser"]
        elif self.shared is not None:
            asr, ser = self.shared.log_posteriors(feats)
        else:
            asr, ser = None, network_log_posteriors(self.ser, feats)
        if asr is not None:
            check_finite(asr, f"{name}: log-posteriors of {self.names['asr']}")
        return asr, check_finite(ser, f"{name}: log-posteriors of {self.names['ser']}")


# -- emotion ----------------------------------------------------------------------------------------
def decide_emotion(wav, log_post, speech, rule="mean") -> Emotion:
    """The utterance decision of the SER stages from SER frame log-posteriors and the speech mask."""
    hyp, scores, fallback = utterance_decision(log_post, speech, rule)
    if fallback:
        log.warning("%s: no speech frame found; decided on all %d frames", wav, len(speech))
    return Emotion(EMOTIONS[hyp], float(scores[hyp]), scores, int(np.sum(speech)), len(speech))


def speech_segments(speech, max_gap=round(SEGMENT_GAP_SECONDS / FRAME_SHIFT),
                    min_frames=round(MIN_SEGMENT_SECONDS / FRAME_SHIFT)) -> list[tuple[int, int]]:
    """[(first frame, end frame)] of the runs of speech frames, gaps of up to max_gap non-speech frames
    bridged, runs spanning fewer than min_frames dropped."""
    frames = np.flatnonzero(np.asarray(speech, dtype=bool))
    if len(frames) == 0:
        return []
    breaks = np.flatnonzero(np.diff(frames) - 1 > max_gap)
    starts = frames[np.concatenate([[0], breaks + 1])]
    ends = frames[np.concatenate([breaks, [len(frames) - 1]])] + 1
    return [(int(s), int(e)) for s, e in zip(starts, ends) if e - s >= min_frames]


def segment_emotions(name, log_post, speech, rule) -> list[tuple[int, int, Emotion]]:
    return [(s, e, decide_emotion(name, log_post[s:e], speech[s:e], rule))
            for s, e in speech_segments(speech)]


# -- phones -----------------------------------------------------------------------------------------
def decode_settings(acwt=None, beam=None, decode_conf=DEFAULT_DECODE_CONF, tune_dir=None) -> tuple:
    """(acoustic scale, beam, lattice beam, where the acoustic scale came from): the options given, else
    the acoustic scale the dev scoring chose (TUNE_DIR/scoring/result.json), else the decode conf's."""
    from pyscripts.asr.decode_conf import read_decode_conf
    from pyscripts.asr.result import read_result, result_path
    conf = read_decode_conf(decode_conf)
    source = "--acwt"
    if acwt is None and tune_dir and result_path(tune_dir).is_file():
        acwt, source = float(read_result(tune_dir)["acwt"]), str(result_path(tune_dir))
    if acwt is None:
        acwt, source = conf.acwt, str(decode_conf)
    return acwt, conf.beam if beam is None else beam, conf.lattice_beam, source


class PhoneDecoder:
    """HCLG decoding of the ASR network's log-posteriors, with the graph, the transition model, the
    symbol tables and the log priors loaded once per batch."""

    def __init__(self, graph_dir, prior_counts, trans_mdl=None, phone_map="conf/phones.60-48-39.map",
                 acwt=0.1, beam=13.0, lattice_beam=8.0):
        from pyscripts.asr.decode import DecoderOptions, GraphDecoder
        from pyscripts.asr.hybrid import log_priors_from_counts
        from pyscripts.asr.phones import read_map39
        from pyscripts.kaldi.model import load_transition_model
        from pyscripts.kaldi.tables import read_id2symbol
        graph_dir = Path(graph_dir)
        trans_mdl = Path(trans_mdl) if trans_mdl else graph_dir.parent / "final.mdl"
        phones_txt = graph_dir / "phones.txt"
        for path, what in ((trans_mdl, "transition model (final.mdl of the graph)"),
                           (graph_dir / "words.txt", "graph's words.txt"), (phones_txt, "graph's phones.txt")):
            if not path.is_file():
                raise DataError(f"{path}: {what} not found")
        self.hclg = graph_dir / "HCLG.fst"
        self.tm = load_transition_model(trans_mdl)
        opts = DecoderOptions(acoustic_scale=acwt, beam=beam, lattice_beam=lattice_beam, decoder="faster")
        self.decoder = GraphDecoder(self.hclg, np.asarray(self.tm.id2pdf[1:], dtype=np.int64), opts)
        self.id2word, self.id2phone = read_id2symbol(graph_dir / "words.txt"), read_id2symbol(phones_txt)
        self.map39 = read_map39(phone_map)
        self.log_priors = log_priors_from_counts(prior_counts)[0]

    def decode(self, name: str, log_post: np.ndarray) -> tuple[list, list]:
        """(39-phone sequence of the best path's words, [(39-phone, first frame, frames)] of its
        transition-ids)."""
        import kaldifst

        from pyscripts.asr.hybrid import pseudo_loglikes
        from pyscripts.asr.scoring import NON_PHONE_WORDS, fold_phones
        result = self.decoder.decode(pseudo_loglikes(log_post, self.log_priors), name)
        if not result.words:
            raise DataError(f"{name}: no path through {self.hclg} (try a larger --beam)")
        if not result.reached_final:
            log.warning("%s: no final state reached; printing the best partial path", name)
        _, best = self.decoder.decoder.get_best_path(use_final_probs=result.reached_final)
        _, tids, _, _ = kaldifst.get_linear_symbol_sequence(best)
        spans = phone_spans(self.tm, np.asarray(tids, dtype=np.int64), result.reached_final, name)
        if sum(n for _, _, n in spans) != len(log_post):
            raise DataError(f"{name}: the best path has {sum(n for _, _, n in spans)} frames, the features "
                            f"{len(log_post)}; graph and transition model do not match")
        phones48 = [self.id2word[w] for w in result.words if self.id2word[w] not in NON_PHONE_WORDS]
        folded = fold_phones([self.id2phone[p] for p, _, _ in spans], self.map39, utt=name)
        return (fold_phones(phones48, self.map39, utt=name),
                [(p, s, n) for p, (_, s, n) in zip(folded, spans)])


def phone_spans(tm, tids, complete=True, name="?") -> list[tuple[int, int, int]]:
    """[(phone id, first frame, frames)] of a best path's transition-ids (one per frame). A partial
    path (no final state reached) may end inside a phone: its last run of one phone is then one span."""
    from pyscripts.asr.alignments import ali_to_phone_segments
    if complete or len(tids) == 0:
        return ali_to_phone_segments(tm, tids, name)
    try:
        return ali_to_phone_segments(tm, tids, name)
    except DataError:   # it stops inside its last phone
        phones = tm.id2phone[tids]
        changes = np.flatnonzero(phones[1:] != phones[:-1]) + 1
        last = int(changes[-1]) if len(changes) else 0
        head = ali_to_phone_segments(tm, tids[:last], name) if last else []
        return head + [(int(phones[last]), last, len(tids) - last)]


# -- one file, a batch ------------------------------------------------------------------------------
class Recogniser:
    """What a command needs for every file, set up once: features, networks and (hybrid) the decoder."""

    def __init__(self, front: FeatureFront, networks: Networks, decoder: PhoneDecoder | None = None,
                 rule="mean", long_file=LONG_FILE_SECONDS):
        self.front, self.networks, self.decoder = front, networks, decoder
        self.rule, self.long_file = rule, long_file

    def __call__(self, name: str, entry) -> FileResult:
        samples = self.front.samples(entry)
        seconds = len(samples) / self.front.opts.frame_opts.samp_freq
        feats = self.front.features(name, samples)
        if len(feats) == 0:
            return FileResult(name, TOO_SHORT, seconds, 0, self.front.too_short(samples))
        speech = self.front.speech(name, samples, feats)
        if not speech.any():
            return FileResult(name, NO_SPEECH, seconds, len(feats),
                              f"no speech frame in {len(feats)} frames (none above the speech detector's "
                              "thresholds, conf/vad.conf): silence or noise; no phones or emotion given")
        asr_post, ser_post = self.networks.log_posteriors(name, feats)
        result = FileResult(name, OK, seconds, len(feats), emotion=decide_emotion(name, ser_post, speech, self.rule))
        if self.decoder is not None:
            result.phones, result.phone_spans = self.decoder.decode(name, asr_post)
        if seconds > self.long_file:
            result.segments = segment_emotions(name, ser_post, speech, self.rule)
        return result


def read_inputs(args: list[str]) -> list[tuple[str, str]]:
    """[(name, wav.scp value)]: a path names itself; `scp:FILE` gives its lines' NAME and value."""
    from pyscripts.kaldi.datadir import read_table
    items = []
    for arg in args:
        if arg.startswith("scp:"):
            items += list(read_table(arg[len("scp:"):]).items())
        else:
            items.append((arg, arg))
    return items


def for_each_file(items, func):
    """func(name, entry) for every (name, entry); a file that fails is reported and skipped, and the run
    fails at the end naming every one (one bad recording must not hide the results of the others)."""
    failed = []
    for name, entry in items:
        try:
            func(name, entry)
        except DataError as err:
            print(f"ERROR: {err}", file=sys.stderr, flush=True)
            failed.append(name)
    if failed:
        raise DataError(f"{len(failed)} of {len(items)} files failed (see above): {' '.join(failed)}")


def recognise_emotion(wav, model, fbank_conf="conf/fbank.conf", vad_conf="conf/vad.conf", rule="mean"):
    """(emotion, its score, scores of the 4 emotions, speech frames, frames) for one wav file; with no
    speech frame, decided on all frames (with a warning)."""
    front = FeatureFront(fbank_conf, vad_conf)
    networks = Networks(fbank_conf, ser_model=model)
    samples = front.samples(wav)
    feats = front.features(str(wav), samples)
    if len(feats) == 0:
        raise DataError(f"{wav}: {front.too_short(samples)}")
    _, log_post = networks.log_posteriors(str(wav), feats)
    return decide_emotion(wav, log_post, front.speech(str(wav), samples, feats), rule).as_tuple()


# -- command line -----------------------------------------------------------------------------------
def make_recogniser(args) -> Recogniser:
    front = FeatureFront(args.fbank_config, args.vad_config)
    if args.command == "emotion":
        return Recogniser(front, Networks(args.fbank_config, ser_model=args.model), None, args.rule, args.long_file)
    networks = Networks(args.fbank_config, args.ser_model, args.asr_model, args.joint_model)
    tune_dir = args.tune_dir or (Path(args.joint_model).parent / "asr" / "decode_dev" if args.joint_model
                                 else Path(args.asr_model).parent / "decode_dev")
    acwt, beam, lattice_beam, source = decode_settings(args.acwt, args.beam, args.decode_config, tune_dir)
    log.info("decoding with acoustic scale %g (from %s), beam %g", acwt, source, beam)
    decoder = PhoneDecoder(args.graph_dir, networks.asr_prior_counts, args.trans_mdl, args.phone_map,
                           acwt, beam, lattice_beam)
    return Recogniser(front, networks, decoder, args.rule, args.long_file)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    emotion = sub.add_parser("emotion", help="emotion of each file (a SER model)")
    emotion.add_argument("--model", required=True, help="a fold's final.pt, e.g. exp/ser/fold1/final.pt")
    hybrid = sub.add_parser("hybrid", help="phones and emotion of each file (an ASR and a SER model, or one "
                            "joint model)")
    hybrid.add_argument("--asr-model", help="the ASR ConvNet (final.pt)")
    hybrid.add_argument("--graph-dir", required=True, help="dir with HCLG.fst, words.txt and phones.txt")
    hybrid.add_argument("--trans-mdl", help="final.mdl of the graph (default: GRAPH_DIR/../final.mdl)")
    hybrid.add_argument("--ser-model", help="the SER ConvNet of one fold (final.pt)")
    hybrid.add_argument("--joint-model", help="instead of --asr-model and --ser-model: the joint ASR-SER "
                        "ConvNet (local/run_joint.sh: EXP/final.pt), both outputs from one forward pass")
    hybrid.add_argument("--acwt", type=float, help="acoustic scale (1/LMWT) [TUNE_DIR's, else the decode conf's]")
    hybrid.add_argument("--beam", type=float, help="decoding beam [the decode conf's]")
    hybrid.add_argument("--decode-config", default=DEFAULT_DECODE_CONF, help="decode conf [%(default)s]")
    hybrid.add_argument("--tune-dir", help="scored dev decode dir whose scoring/result.json gives the acoustic "
                        "scale [ASR model dir/decode_dev; joint: model dir/asr/decode_dev]")
    hybrid.add_argument("--phone-map", default="conf/phones.60-48-39.map")
    for p in (emotion, hybrid):
        p.add_argument("--format", choices=FORMATS, default="text", help="output format [%(default)s]")
        p.add_argument("--long-file", type=float, default=LONG_FILE_SECONDS,
                       help="files longer than this (seconds) also get the emotion per speech segment (json) "
                       "[%(default)s]")
        p.add_argument("--fbank-config", default="conf/fbank.conf")
        p.add_argument("--vad-config", default="conf/vad.conf")
        p.add_argument("--rule", choices=RULES, default="mean", help="SER utterance decision rule")
        p.add_argument("inputs", nargs="+", metavar="INPUT", help="audio file or scp:WAV_SCP")
    return parser


@cli_main
def main(argv=None):
    parser = _parser()
    args = parser.parse_args(argv)
    given = tuple(bool(getattr(args, m, None)) for m in ("joint_model", "asr_model", "ser_model"))
    if args.command == "hybrid" and given not in ((True, False, False), (False, True, True)):
        parser.error("hybrid: give --asr-model and --ser-model, or --joint-model alone")
    if args.command == "emotion" and args.format == "ctm":
        parser.error("emotion: --format ctm holds phones; use the hybrid command, or --format text|json")
    recognise = make_recogniser(args)
    for_each_file(read_inputs(args.inputs),
                  lambda name, entry: print(format_result(recognise(name, entry), args.format), flush=True))


if __name__ == "__main__":
    main()
