"""GMM-HMM decoding with an HCLG graph (Kaldi's gmm-decode-faster): one job of
steps/decode_gmm.sh. Each language-model weight LMWT is a decode with acoustic scale 1/LMWT (what
Kaldi's scoring gets by rescaling lattices; the faster decoder without lattices is several times
quicker than a lattice decode per weight); the best paths go to OUT_DIR/LMWT.JOB.txt as Kaldi text
(utterance id, then words, here phones)."""
import argparse
import logging
import time
from pathlib import Path

import kaldi_hmm_gmm as khg
import kaldifst

from pyscripts.errors import DataError, cli_main
from pyscripts.gmm.data import load_feats
from pyscripts.gmm.model import load_model
from pyscripts.lang import read_symbols

log = logging.getLogger(__name__)

# Output symbols that are not words in the scoring sense.
NON_WORDS = ("<eps>", "#0", "<s>", "</s>")


def parse_range(text):
    """'1:10' -> [1..10]; '2 4 6' -> [2, 4, 6]."""
    if ":" in text:
        lo, hi = (int(x) for x in text.split(":"))
        return list(range(lo, hi + 1))
    return [int(x) for x in text.split()]


def linear_lattice_labels(lattice):
    """(input labels, output labels) along a linear best-path lattice (decoders' get_best_path),
    read from its text form `src dst ilabel olabel weight`; epsilons dropped."""
    arcs = {}
    for line in lattice.to_str().splitlines():
        f = line.split()
        if len(f) >= 4:
            arcs[int(f[0])] = (int(f[1]), int(f[2]), int(f[3]))
    state, ilabels, olabels = lattice.start, [], []
    while state in arcs:
        state, i, o = arcs[state]
        if i:
            ilabels.append(i)
        if o:
            olabels.append(o)
    return ilabels, olabels


def decode_best_path(decoder, decodable):
    """(word ids of the best path, whether it reached a final state); a path that does not is used
    as it is (Kaldi's --allow-partial=true). Word ids are None when nothing survives."""
    decoder.decode(decodable)
    final = decoder.reached_final()
    ok, lattice = decoder.get_best_path(final)
    if not ok:
        return None, final
    return linear_lattice_labels(lattice)[1], final


def decode_data(graph_dir, model_dir, data_dir, out_dir, job, lmwts, beam, max_active, delta_order=2):
    start = time.time()
    graph_dir, model_dir, out_dir = Path(graph_dir), Path(model_dir), Path(out_dir)
    tm, am, _ = load_model(model_dir / "final.mdl", model_dir / "tree")
    if not (graph_dir / "HCLG.fst").is_file():
        raise DataError(f"{graph_dir / 'HCLG.fst'}: missing; run utils/mkgraph.sh")
    hclg = kaldifst.StdVectorFst.read(str(graph_dir / "HCLG.fst"))
    id2word = {i: w for w, i in read_symbols(graph_dir / "words.txt").items()}
    feats = load_feats(data_dir, delta_order)
    decoder = khg.FasterDecoder(hclg, khg.FasterDecoderOptions(beam=beam, max_active=max_active))
    out_dir.mkdir(parents=True, exist_ok=True)
    frames = sum(len(m) for m in feats.values())
    for lmwt in lmwts:
        failed, partial, lines = [], [], []
        for utt in sorted(feats):
            decodable = khg.DecodableAmDiagGmmScaled(am, tm, feats[utt], 1.0 / lmwt)
            word_ids, final = decode_best_path(decoder, decodable)
            if not final:
                partial.append(utt)
            if word_ids is None:
                failed.append(utt)
                word_ids = []
            words = [id2word[w] for w in word_ids if id2word[w] not in NON_WORDS]
            lines.append(f"{utt} {' '.join(words)}".rstrip() + "\n")
        (out_dir / f"{lmwt}.{job}.txt").write_text("".join(lines))
        if failed:
            log.warning("LMWT %d: %d utterances failed to decode (empty hypotheses): %s", lmwt,
                        len(failed), failed[:5])
        if partial:
            log.warning("LMWT %d: %d utterances did not reach a final state (partial best paths): %s",
                        lmwt, len(partial), partial[:5])
    elapsed = time.time() - start
    log.info("decoded %d utterances (%.1f s of audio) at %d LM weights in %.1f s (real-time factor "
             "%.4f per pass)", len(feats), frames / 100.0, len(lmwts), elapsed,
             elapsed / max(len(lmwts), 1) / max(frames / 100.0, 1e-9))


@cli_main
def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--beam", type=float, default=13.0)
    parser.add_argument("--max-active", type=int, default=7000)
    parser.add_argument("--lmwt", default="1:10", help="LM weights, 'MIN:MAX' or a list")
    parser.add_argument("--delta-order", type=int, default=2)
    parser.add_argument("--job", default="1")
    parser.add_argument("graph_dir")
    parser.add_argument("model_dir")
    parser.add_argument("data_dir")
    parser.add_argument("out_dir")
    args = parser.parse_args()
    decode_data(args.graph_dir, args.model_dir, args.data_dir, args.out_dir, args.job,
                parse_range(args.lmwt), args.beam, args.max_active, args.delta_order)


if __name__ == "__main__":
    main()
