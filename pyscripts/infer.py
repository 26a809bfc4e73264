"""Inference on wav files as users have them (any rate and channel count: pyscripts/kaldi/audio.py):
emotion with a SER ConvNet, and phones with the hybrid ConvNet-HMM beside it (the paper's first
figure: one audio, two networks).

  python3 -m pyscripts.infer emotion --model S.pt [--fbank-config C] [--vad-config V] [--rule mean] WAV...
      one line per wav: `WAV EMOTION POSTERIOR  ang=.. hap=.. neu=.. sad=..  speech=S/N frames`
  python3 -m pyscripts.infer hybrid --asr-model A.pt --graph-dir G --ser-model S.pt [--trans-mdl M]
      [--acwt 0.1] [--beam 13] [--phone-map M] [--fbank-config C] [--vad-config V] [--rule mean] WAV...
      per wav:  WAV
                  phones: sil dh ax ... sil
                  emotion: neu 0.612 (ang=0.101 hap=0.150 neu=0.612 sad=0.137; 231 of 402 frames speech)
  python3 -m pyscripts.infer hybrid --joint-model J.pt --graph-dir G [options as above] WAV...
      the same with the joint ASR-SER ConvNet (pyscripts/nnet/joint.py): phones and emotion from the two
      output layers of one forward pass (the asr head's priors are the prior counts in J.pt)

The options of --fbank-config must be those of the features the models were trained on (final.pt records
them; a model trained before they were recorded is run with a warning).
Emotion: fbank features as in training, the frame posteriors of a fold's model, the speech-frame
detector of the vad conf and the utterance decision of the SER stages (pyscripts/ser/evaluate.py).
Phones: the ASR ConvNet's log-posteriors minus the log priors of its training targets
(pyscripts/asr/hybrid.py), HCLG decoding (pyscripts/asr/decode.py), 48 -> 39 folding with the phone map.
A bad file is reported and skipped; the run fails at the end naming every bad file.
"""
import argparse
import logging
import sys
from pathlib import Path

from pyscripts.errors import DataError, check_finite, cli_main
from pyscripts.kaldi.features import feature_record, wav_features
from pyscripts.nnet.forward import check_trained_features, load_model, log_posteriors
from pyscripts.ser.evaluate import RULES, utterance_decision
from pyscripts.ser.labels import EMOTIONS, detect_speech, read_frame_options, read_vad_options

log = logging.getLogger(__name__)


def _speech_frames(wav, samples, feats, fbank_conf, vad_conf):
    """The speech-frame mask of the SER stages' detector, one flag per feature frame."""
    vad = detect_speech(samples, read_frame_options(fbank_conf), read_vad_options(vad_conf))
    if len(vad.speech) != len(feats):
        raise DataError(f"{wav}: {len(feats)} feature frames but {len(vad.speech)} detector frames; "
                        f"{fbank_conf} has framing options the detector does not follow")
    return vad.speech


def check_fbank_conf(model_path, fbank_conf, model=None):
    """The options of fbank_conf must be those the model was trained on (final.pt records them): other mel
    bins would fail on the input size, another window would give other posteriors without a word."""
    model = model if model is not None else load_model(str(model_path), "cpu")
    check_trained_features(model, model_path, feature_record(fbank_conf, "fbank"),
                           "give --fbank-config a conf with the options it was trained with")


def _check_models(args):
    """check_fbank_conf for every model of the command line, once: a conf that does not fit is one error,
    not one per file."""
    if getattr(args, "joint_model", None):
        from pyscripts.nnet.joint import load_joint_model
        check_fbank_conf(args.joint_model, args.fbank_config, load_joint_model(str(args.joint_model))[0])
    for model in filter(None, (getattr(args, name, None) for name in ("model", "asr_model", "ser_model"))):
        check_fbank_conf(model, args.fbank_config)


def decide_emotion(wav, log_post, speech, rule="mean"):
    """(emotion, its score, scores of the 4 emotions, speech frames, frames) from SER frame log-posteriors."""
    hyp, scores, fallback = utterance_decision(log_post, speech, rule)
    if fallback:
        log.warning("%s: no speech frame found; decided on all %d frames", wav, len(speech))
    return EMOTIONS[hyp], float(scores[hyp]), scores, int(speech.sum()), len(speech)


def recognise_emotion(wav, model, fbank_conf="conf/fbank.conf", vad_conf="conf/vad.conf", rule="mean"):
    """(emotion, its score, scores of the 4 emotions, speech frames, frames) for one wav file."""
    if not Path(model).is_file():
        raise DataError(f"{model}: model not found; train the SER folds first (local/run_ser.sh)")
    check_fbank_conf(model, fbank_conf)
    samples, feats = wav_features(wav, fbank_conf)
    speech = _speech_frames(wav, samples, feats, fbank_conf, vad_conf)
    log_post = check_finite(log_posteriors(model, feats), f"{wav}: log-posteriors of {model}")
    return decide_emotion(wav, log_post, speech, rule)


def recognise_phones(wav, asr_model, graph_dir, trans_mdl=None, phone_map="conf/phones.60-48-39.map",
                     fbank_conf="conf/fbank.conf", acwt=0.1, beam=13.0, lattice_beam=8.0):
    """The 39-phone sequence of a wav file by the hybrid ConvNet-HMM."""
    from pyscripts.asr.hybrid import find_prior_counts
    if not Path(asr_model).is_file():
        raise DataError(f"{asr_model}: ASR model not found")
    check_fbank_conf(asr_model, fbank_conf)
    _, feats = wav_features(wav, fbank_conf)
    counts, _ = find_prior_counts(asr_model)
    log_post = check_finite(log_posteriors(asr_model, feats), f"{wav}: log-posteriors of {asr_model}")
    return decode_phones(wav, log_post, counts, graph_dir, trans_mdl, phone_map, acwt, beam, lattice_beam)


def recognise_joint(wav, joint_model, graph_dir, trans_mdl=None, phone_map="conf/phones.60-48-39.map",
                    fbank_conf="conf/fbank.conf", vad_conf="conf/vad.conf", rule="mean", acwt=0.1, beam=13.0):
    """(phones, emotion result as recognise_emotion's) of a wav file by the joint ASR-SER ConvNet
    (pyscripts/nnet/joint.py): both heads' log-posteriors from one forward pass."""
    from pyscripts.nnet.forward import network_log_posteriors
    from pyscripts.nnet.joint import load_joint_model
    if not Path(joint_model).is_file():
        raise DataError(f"{joint_model}: joint model not found; train it first (local/run_joint.sh)")
    model, prior_counts = load_joint_model(str(joint_model))
    check_fbank_conf(joint_model, fbank_conf, model)
    samples, feats = wav_features(wav, fbank_conf)
    speech = _speech_frames(wav, samples, feats, fbank_conf, vad_conf)
    log_post = network_log_posteriors(model, feats)
    for head, lp in log_post.items():
        check_finite(lp, f"{wav}: {head} log-posteriors of {joint_model}")
    phones = decode_phones(wav, log_post["asr"], prior_counts["asr"], graph_dir, trans_mdl, phone_map, acwt, beam)
    return phones, decide_emotion(wav, log_post["ser"], speech, rule)


def decode_phones(wav, log_post, prior_counts, graph_dir, trans_mdl=None, phone_map="conf/phones.60-48-39.map",
                  acwt=0.1, beam=13.0, lattice_beam=8.0):
    """The 39-phone sequence from the ASR network's frame log-posteriors and its prior counts."""
    from pyscripts.asr.decode import DecoderOptions, GraphDecoder, load_tid2pdf
    from pyscripts.asr.hybrid import log_priors_from_counts, pseudo_loglikes
    from pyscripts.asr.phones import read_map39
    from pyscripts.asr.scoring import NON_PHONE_WORDS, fold_phones
    from pyscripts.kaldi.tables import read_id2symbol

    graph_dir = Path(graph_dir)
    trans_mdl = Path(trans_mdl) if trans_mdl else graph_dir.parent / "final.mdl"
    for path, what in ((trans_mdl, "transition model (final.mdl of the graph)"),
                       (graph_dir / "words.txt", "graph's words.txt")):
        if not Path(path).is_file():
            raise DataError(f"{path}: {what} not found")
    log_priors, _ = log_priors_from_counts(prior_counts)
    loglikes = pseudo_loglikes(log_post, log_priors)
    opts = DecoderOptions(acoustic_scale=acwt, beam=beam, lattice_beam=lattice_beam, decoder="faster")
    decoder = GraphDecoder(graph_dir / "HCLG.fst", load_tid2pdf(trans_mdl), opts)
    result = decoder.decode(loglikes, Path(wav).name)
    if not result.words:
        raise DataError(f"{wav}: no path through {graph_dir / 'HCLG.fst'} (try a larger --beam)")
    if not result.reached_final:
        log.warning("%s: no final state reached; printing the best partial path", wav)
    id2word = read_id2symbol(graph_dir / "words.txt")
    phones48 = [id2word[w] for w in result.words if id2word[w] not in NON_PHONE_WORDS]
    return fold_phones(phones48, read_map39(phone_map), utt=str(wav))


def for_each_file(wavs, func):
    """func(wav) for every file; a bad file is reported and skipped, and the run fails at the end
    naming every bad file (one bad recording must not hide the results of the others)."""
    failed = []
    for wav in wavs:
        try:
            func(wav)
        except DataError as err:
            print(f"ERROR: {err}", file=sys.stderr, flush=True)
            failed.append(wav)
    if failed:
        raise DataError(f"{len(failed)} of {len(wavs)} files failed (see above): {' '.join(failed)}")


def _posteriors(scores):
    return " ".join(f"{e}={s:.3f}" for e, s in zip(EMOTIONS, scores))


def print_emotion(args, wav):
    emotion, score, scores, speech, frames = recognise_emotion(wav, args.model, args.fbank_config,
                                                               args.vad_config, args.rule)
    print(f"{wav} {emotion} {score:.3f}  {_posteriors(scores)}  speech={speech}/{frames} frames", flush=True)


def print_hybrid(args, wav):
    if args.joint_model:
        phones, (emotion, score, scores, speech, frames) = recognise_joint(
            wav, args.joint_model, args.graph_dir, args.trans_mdl, args.phone_map, args.fbank_config,
            args.vad_config, args.rule, args.acwt, args.beam)
    else:
        phones = recognise_phones(wav, args.asr_model, args.graph_dir, args.trans_mdl, args.phone_map,
                                  args.fbank_config, args.acwt, args.beam)
        emotion, score, scores, speech, frames = recognise_emotion(wav, args.ser_model, args.fbank_config,
                                                                   args.vad_config, args.rule)
    print(f"{wav}\n  phones: {' '.join(phones)}\n"
          f"  emotion: {emotion} {score:.3f} ({_posteriors(scores)}; {speech} of {frames} frames speech)", flush=True)


@cli_main
def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    emotion = sub.add_parser("emotion", help="emotion of each wav (a SER model)")
    emotion.add_argument("--model", required=True, help="a fold's final.pt, e.g. exp/ser/fold1/final.pt")
    emotion.set_defaults(func=print_emotion)
    hybrid = sub.add_parser("hybrid", help="phones and emotion of each wav (an ASR and a SER model, or one "
                            "joint model)")
    hybrid.add_argument("--asr-model", help="the ASR ConvNet (final.pt)")
    hybrid.add_argument("--graph-dir", required=True, help="dir with HCLG.fst and words.txt")
    hybrid.add_argument("--trans-mdl", help="final.mdl of the graph (default: GRAPH_DIR/../final.mdl)")
    hybrid.add_argument("--ser-model", help="the SER ConvNet of one fold (final.pt)")
    hybrid.add_argument("--joint-model", help="instead of --asr-model and --ser-model: the joint ASR-SER "
                        "ConvNet (local/run_joint.sh: EXP/final.pt), both outputs from one forward pass")
    hybrid.add_argument("--acwt", type=float, default=0.1, help="acoustic scale (1/LMWT)")
    hybrid.add_argument("--beam", type=float, default=13.0)
    hybrid.add_argument("--phone-map", default="conf/phones.60-48-39.map")
    hybrid.set_defaults(func=print_hybrid)
    for p in (emotion, hybrid):
        p.add_argument("--fbank-config", default="conf/fbank.conf")
        p.add_argument("--vad-config", default="conf/vad.conf")
        p.add_argument("--rule", choices=RULES, default="mean", help="SER utterance decision rule")
        p.add_argument("wavs", nargs="+")
    args = parser.parse_args(argv)
    given = tuple(bool(getattr(args, m, None)) for m in ("joint_model", "asr_model", "ser_model"))
    if args.command == "hybrid" and given not in ((True, False, False), (False, True, True)):
        parser.error("hybrid: give --asr-model and --ser-model, or --joint-model alone")
    _check_models(args)
    for_each_file(args.wavs, lambda wav: args.func(args, wav))


if __name__ == "__main__":
    main()
