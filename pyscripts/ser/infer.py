"""Emotion of a wav file with a trained SER ConvNet (the first half of the seed's hybrid ASR-SER picture).

fbank features as in training (the fbank conf), the frame posteriors of the fold's model, the
voice-activity / voicing detector of the vad conf for the speech frames, and the utterance decision of
pyscripts/ser/evaluate.py (mean emotion posterior over speech frames, or the majority vote).
Prints one line per wav: `WAV EMOTION POSTERIOR  ang=.. hap=.. neu=.. sad=..  speech=S/N frames`.
"""
import argparse
import logging
from pathlib import Path

import numpy as np

from pyscripts.errors import DataError, cli_main
from pyscripts.ser.evaluate import RULES, utterance_decision
from pyscripts.ser.labels import EMOTIONS, detect_speech, read_frame_options, read_vad_options

log = logging.getLogger(__name__)


def infer(wav, model, fbank_conf="conf/fbank.conf", vad_conf="conf/vad.conf", rule="mean"):
    """(emotion, its score, scores of the 4 emotions, speech frames, frames) for one wav file."""
    from pyscripts.audio import read_audio
    from pyscripts.features import compute_features, make_options
    from pyscripts.nnet.forward import log_posteriors
    if not Path(model).is_file():
        raise DataError(f"{model}: model not found; train the SER folds first (local/run_ser.sh)")
    if not Path(wav).is_file():
        raise DataError(f"{wav}: no such wav file")
    opts = make_options("fbank", fbank_conf)
    rate, samples = read_audio(str(wav))
    if rate != opts.frame_opts.samp_freq:
        raise DataError(f"{wav}: sample rate {rate} Hz, but the model's features are at "
                        f"{opts.frame_opts.samp_freq:g} Hz ({fbank_conf}); resample it "
                        f"(sox -R {wav} -r {opts.frame_opts.samp_freq:g} out.wav)")
    feats = compute_features("fbank", opts, samples)
    if len(feats) == 0:
        raise DataError(f"{wav}: shorter than one frame ({len(samples)} samples)")
    vad = detect_speech(samples, read_frame_options(fbank_conf), read_vad_options(vad_conf))
    if len(vad.speech) != len(feats):
        raise DataError(f"{wav}: {len(feats)} feature frames but {len(vad.speech)} detector frames; "
                        f"{fbank_conf} has framing options the detector does not follow")
    hyp, scores, fallback = utterance_decision(log_posteriors(model, feats), vad.speech, rule)
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
    for wav in args.wavs:
        emotion, score, scores, speech, frames = infer(wav, args.model, args.fbank_config,
                                                       args.vad_config, args.rule)
        detail = " ".join(f"{e}={s:.3f}" for e, s in zip(EMOTIONS, scores))
        print(f"{wav} {emotion} {score:.3f}  {detail}  speech={speech}/{frames} frames")


if __name__ == "__main__":
    main()
