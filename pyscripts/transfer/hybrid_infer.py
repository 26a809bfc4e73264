"""Hybrid ASR-SER inference on a wav file (the seed's first figure): one audio, two ConvNets.

  ASR: fbank (the fbank conf) -> ASR ConvNet log-posteriors -> pseudo log-likelihoods (minus the
       log priors of its training targets, pyscripts/hybrid.py) -> HCLG decoding (pyscripts/decode.py)
       -> phones, folded 48 -> 39 with the phone map (pyscripts/scoring.py)
  SER: the SER ConvNet of one fold -> frame posteriors -> utterance emotion over the speech frames
       (pyscripts/ser/infer.py: the speech-frame detector and decision rule of the SER stages)

  python3 -m pyscripts.transfer.hybrid_infer --asr-model A.pt --graph-dir G --ser-model S.pt
      [--trans-mdl G/../final.mdl] [--acwt 0.1] [--beam 13] [--phone-map M]
      [--fbank-config conf/fbank.conf] [--vad-config conf/vad.conf] [--rule mean] WAV [WAV ...]
prints, per wav:
  WAV
    phones: sil dh ax ... sil
    emotion: neu 0.612 (ang=0.101 hap=0.150 neu=0.612 sad=0.137; 231 of 402 frames speech)
"""
import argparse
import logging
from pathlib import Path

from pyscripts.errors import DataError, check_finite, cli_main

log = logging.getLogger(__name__)


def recognise_phones(wav, asr_model, graph_dir, trans_mdl=None, phone_map="conf/phones.60-48-39.map",
                     fbank_conf="conf/fbank.conf", acwt=0.1, beam=13.0, lattice_beam=8.0):
    """The 39-phone sequence of a wav file by the hybrid ConvNet-HMM."""
    from pyscripts.decode import GraphDecoder, load_tid2pdf
    from pyscripts.features import wav_features
    from pyscripts.hybrid import find_prior_counts, log_priors_from_counts, pseudo_loglikes
    from pyscripts.nnet.forward import log_posteriors
    from pyscripts.scoring import NON_PHONE_WORDS, fold_phones, read_map39, read_words_txt

    graph_dir = Path(graph_dir)
    trans_mdl = Path(trans_mdl) if trans_mdl else graph_dir.parent / "final.mdl"
    for path, what in ((asr_model, "ASR model"), (trans_mdl, "transition model (final.mdl of the graph)"),
                       (graph_dir / "words.txt", "graph's words.txt")):
        if not Path(path).is_file():
            raise DataError(f"{path}: {what} not found")
    _, feats = wav_features(wav, fbank_conf)
    counts, _ = find_prior_counts(asr_model)
    log_priors, _ = log_priors_from_counts(counts)
    log_post = check_finite(log_posteriors(asr_model, feats), f"{wav}: log-posteriors of {asr_model}")
    loglikes = pseudo_loglikes(log_post, log_priors)
    decoder = GraphDecoder(graph_dir / "HCLG.fst", load_tid2pdf(trans_mdl), acwt, beam, lattice_beam,
                           decoder="faster")
    result = decoder.decode(loglikes, Path(wav).name)
    if not result.words:
        raise DataError(f"{wav}: no path through {graph_dir / 'HCLG.fst'} (try a larger --beam)")
    if not result.reached_final:
        log.warning("%s: no final state reached; printing the best partial path", wav)
    id2word = read_words_txt(graph_dir / "words.txt")
    phones48 = [id2word[w] for w in result.words if id2word[w] not in NON_PHONE_WORDS]
    return fold_phones(phones48, read_map39(phone_map), utt=str(wav))


@cli_main
def main(argv=None):
    from pyscripts.ser.evaluate import RULES
    from pyscripts.ser.infer import for_each_file, infer as infer_emotion
    from pyscripts.ser.labels import EMOTIONS
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--asr-model", required=True, help="the ASR ConvNet (final.pt)")
    parser.add_argument("--graph-dir", required=True, help="dir with HCLG.fst and words.txt")
    parser.add_argument("--trans-mdl", help="final.mdl of the graph (default: GRAPH_DIR/../final.mdl)")
    parser.add_argument("--ser-model", required=True, help="the SER ConvNet of one fold (final.pt)")
    parser.add_argument("--acwt", type=float, default=0.1, help="acoustic scale (1/LMWT)")
    parser.add_argument("--beam", type=float, default=13.0)
    parser.add_argument("--phone-map", default="conf/phones.60-48-39.map")
    parser.add_argument("--fbank-config", default="conf/fbank.conf")
    parser.add_argument("--vad-config", default="conf/vad.conf")
    parser.add_argument("--rule", choices=RULES, default="mean", help="SER utterance decision rule")
    parser.add_argument("wavs", nargs="+")
    args = parser.parse_args(argv)

    def one(wav):
        phones = recognise_phones(wav, args.asr_model, args.graph_dir, args.trans_mdl, args.phone_map,
                                  args.fbank_config, args.acwt, args.beam)
        emotion, score, scores, speech, frames = infer_emotion(wav, args.ser_model, args.fbank_config,
                                                                args.vad_config, args.rule)
        posteriors = " ".join(f"{e}={s:.3f}" for e, s in zip(EMOTIONS, scores))
        print(f"{wav}\n  phones: {' '.join(phones)}\n"
              f"  emotion: {emotion} {score:.3f} ({posteriors}; {speech} of {frames} frames speech)", flush=True)
    for_each_file(args.wavs, one)


if __name__ == "__main__":
    main()
