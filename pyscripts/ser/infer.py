"""Emotion of a wav file with a trained SER ConvNet (the first half of the seed's hybrid ASR-SER picture).

fbank features as in training (the fbank conf), the frame posteriors of the fold's model, the
voice-activity / voicing detector of the vad conf for the speech frames, and the utterance decision of
pyscripts/ser/evaluate.py (mean emotion posterior over speech frames, or the majority vote).
Prints one line per wav: `WAV EMOTION POSTERIOR  ang=.. hap=.. neu=.. sad=..  speech=S/N frames`.
"""
import argparse
import logging
import sys
from pathlib import Path

from pyscripts.errors import DataError, check_finite, cli_main
from pyscripts.ser.evaluate import RULES, utterance_decision
from pyscripts.ser.labels import EMOTIONS, detect_speech, read_frame_options, read_vad_options

log = logging.getLogger(__name__)


def infer(wav, model, fbank_conf="conf/fbank.conf", vad_conf="conf/vad.conf", rule="mean"):
    """(emotion, its score, scores of the 4 emotions, speech frames, frames) for one wav file."""
    from pyscripts.features import wav_features
    from pyscripts.nnet.forward import log_posteriors
    if not Path(model).is_file():
        raise DataError(f"{model}: model not found; train the SER folds first (local/run_ser.sh)")
    samples, feats = wav_features(wav, fbank_conf)
    vad = detect_speech(samples, read_frame_options(fbank_conf), read_vad_options(vad_conf))
    if len(vad.speech) != len(feats):
        raise DataError(f"{wav}: {len(feats)} feature frames but {len(vad.speech)} detector frames; "
                        f"{fbank_conf} has framing options the detector does not follow")
    log_post = check_finite(log_posteriors(model, feats), f"{wav}: log-posteriors of {model}")
    hyp, scores, fallback = utterance_decision(log_post, vad.speech, rule)
    if fallback:
        log.warning("%s: no speech frame found; decided on all %d frames", wav, len(feats))
    return EMOTIONS[hyp], float(scores[hyp]), scores, int(vad.speech.sum()), len(feats)


@cli_main
def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", required=True, help="a fold's final.pt, e.g. exp/ser/fold1/final.pt")
    parser.add_argument("--fbank-config", default="conf/fbank.conf")
    parser.add_argument("--vad-config", default="conf/vad.conf")
    parser.add_argument("--rule", choices=RULES, default="mean")
    parser.add_argument("wavs", nargs="+")
    args = parser.parse_args()

    def one(wav):
        emotion, score, scores, speech, frames = infer(wav, args.model, args.fbank_config,
                                                       args.vad_config, args.rule)
        detail = " ".join(f"{e}={s:.3f}" for e, s in zip(EMOTIONS, scores))
        print(f"{wav} {emotion} {score:.3f}  {detail}  speech={speech}/{frames} frames", flush=True)
    for_each_file(args.wavs, one)


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


if __name__ == "__main__":
    main()
