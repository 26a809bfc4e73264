"""HCLG (pyscripts/gmm/mkgraph.py) decodes synthetic utterances built from known pdf
log-likelihoods to the right phones, with the recipe's mapped decoder (pyscripts/asr/decode.py)."""
import kaldi_hmm_gmm  # noqa: F401,I001  (before kaldifst)
import kaldifst
import numpy as np
import pytest

from gmm_fixtures import PHONES, make_lang
from pyscripts.asr.decode import DecoderOptions, GraphDecoder
from pyscripts.gmm.mkgraph import make_hclg
from pyscripts.gmm.model import init_mono, save_model, save_tree
from pyscripts.kaldi.model import load_transition_model
from pyscripts.kaldi.tables import read_symbols
from pyscripts.asr.lm import arpa_to_g_fst

ACOUSTIC_SCALE = 0.1


@pytest.fixture(scope="module")
def graph(tmp_path_factory):
    root = tmp_path_factory.mktemp("hclg")
    lang = make_lang(root)
    # A uniform phone loop as the LM (a bigram ARPA whose one bigram has the unigram probability).
    logp = np.log10(1.0 / (len(PHONES) + 1))
    arpa = ["\\data\\", f"ngram 1={len(PHONES) + 2}", "ngram 2=1", "", "\\1-grams:", "-99\t<s>\t0"]
    arpa += [f"{logp:.6f}\t{w}\t0" for w in PHONES] + [f"{logp:.6f}\t</s>", "", "\\2-grams:",
                                                       f"{logp:.6f}\t<s> sil", "", "\\end\\", ""]
    (root / "lm.arpa").write_text("\n".join(arpa))
    arpa_to_g_fst(root / "lm.arpa", lang / "words.txt", lang / "G.fst")
    model = root / "mono"
    model.mkdir()
    tm, tree, am = init_mono((lang / "topo").read_text(), np.zeros(3), np.ones(3))
    save_model(model / "final.mdl", tm, am)
    save_tree(model / "tree", tree)
    states, arcs = make_hclg(lang, model, model / "graph")
    assert states > 0 and arcs > states
    return lang, model


def pdf_of(tm, phone_id, state):
    tids = [t for t in range(1, tm.num_transition_ids + 1)
            if tm.id2phone[t] == phone_id and tm.id2hmm_state[t] == state]
    return int(tm.id2pdf[tids[0]])


def synthetic_loglikes(tm, phone_ids, frames_per_state, rng):
    """Per-frame pdf log-likelihoods: 0 for the pdf of the true (phone, state), about -10 for the rest."""
    rows = []
    for k, p in enumerate(phone_ids):
        for s in range(3):
            for _ in range(frames_per_state[k % len(frames_per_state)]):
                row = -10.0 + rng.randn(tm.num_pdfs)
                row[pdf_of(tm, p, s)] = 0.0
                rows.append(row)
    return np.array(rows, dtype=np.float32)


@pytest.mark.parametrize("sequence", [["sil", "k", "aa", "s", "sil"], ["sil", "b", "iy", "iy", "b", "sil"]])
def test_hclg_decodes_known_loglikes(graph, sequence):
    lang, model = graph
    tm = load_transition_model(model / "final.mdl")
    phones = read_symbols(lang / "phones.txt")
    id2word = {i: w for w, i in read_symbols(model / "graph/words.txt").items()}
    loglikes = synthetic_loglikes(tm, [phones[p] for p in sequence], [2, 4, 3], np.random.RandomState(0))
    decoder = GraphDecoder(model / "graph/HCLG.fst", tm.id2pdf[1:],
                           DecoderOptions(ACOUSTIC_SCALE, beam=16.0, decoder="faster"))
    result = decoder.decode(loglikes)
    assert result.reached_final
    # Words of the graph are the phones themselves (the phone-level lexicon).
    assert [id2word[w] for w in result.words] == sequence


def test_graph_dir_layout(graph):
    _, model = graph
    g = model / "graph"
    for name in ("HCLG.fst", "words.txt", "phones.txt", "phones/disambig.int", "disambig_tid.int",
                 "num_pdfs"):
        assert (g / name).is_file(), name
    assert (g / "num_pdfs").read_text().strip() == str(3 * len(PHONES))
    # No disambiguation symbol survives on the input side.
    hclg = kaldifst.StdVectorFst.read(str(g / "HCLG.fst"))
    disambig_tids = {int(x) for x in (g / "disambig_tid.int").read_text().split()}
    ilabels = {a.ilabel for s in kaldifst.StateIterator(hclg) for a in kaldifst.ArcIterator(hclg, s)}
    assert disambig_tids and not ilabels & disambig_tids
    assert max(ilabels) <= load_transition_model(model / "final.mdl").num_transition_ids
